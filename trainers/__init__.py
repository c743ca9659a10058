"""raygrad's user-facing layer: configs, Trainer, sessions, checkpoints, sweeps and the CLI."""
