"""hardshrink and softshrink: zero the values within [-lambd, lambd], composed from existing ops."""
from __future__ import annotations


def hardshrink(input, lambd=0.5):
    """x where |x| > lambd, else 0."""
    return input * (input.abs() > lambd)


def softshrink(input, lambd=0.5):
    """x - lambd above lambd, x + lambd below -lambd, else 0: x minus its clamp to [-lambd, lambd]."""
    if lambd < 0:
        raise ValueError(f"softshrink: lambd must be >= 0, got {lambd}; the shrink window is [-lambd, lambd]")
    return input - input.clamp(-lambd, lambd)
