"""Every exception the trainers raise, in one place."""


class ConfigError(ValueError):
    """A configuration value (Python, YAML or --set) that is wrong; the message names it and the fix."""


class CheckpointError(RuntimeError):
    """No usable checkpoint where one was expected (all corrupt, or the path is not a checkpoint)."""


class TrainingFailedError(RuntimeError):
    """Training failed more often than FailureConfig.max_failures allows; wraps the last error."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during fit(): every rank was stopped and the last checkpoint kept."""
