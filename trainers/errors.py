"""Every exception the trainers raise, in one place."""


class ConfigError(ValueError):
    """A configuration value (Python, YAML or --set) that is wrong; the message names it and the fix."""


class CheckpointError(RuntimeError):
    """No usable checkpoint where one was expected (all corrupt, or the path is not a checkpoint)."""


class SessionError(RuntimeError):
    """A trainers.session function was called outside a training function run by train_loop/Trainer.fit."""


class TrainingFailedError(RuntimeError):
    """Training failed more often than FailureConfig.max_failures allows.

    Attributes:
        errors: rank -> that rank's error with its traceback, from the last failed attempt.
        failures: how many attempts failed.
        run_path: the run's folder (its checkpoints are kept).
    """

    def __init__(self, message: str, errors: dict | None = None, failures: int = 1, run_path: str | None = None):
        super().__init__(message)
        self.errors = dict(errors or {})
        self.failures = failures
        self.run_path = run_path

    def __reduce__(self):
        return (type(self), (str(self), self.errors, self.failures, self.run_path))


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during fit(): every rank was stopped and the last checkpoint kept."""
