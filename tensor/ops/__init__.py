"""The op families, one module each; every op is one Function with forward and backward side by side."""
