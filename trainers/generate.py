"""`raygrad generate`: text sampled from a checkpoint's model.

    text = generate_text("runs/charlm", prompt="def ", length=200, temperature=0.8)

The model is rebuilt as `raygrad eval` rebuilds it: from the job YAML of the checkpoint's run (or
one given with job_file) and the checkpoint's weights. The model class must define

    generate(self, prompt: str, length: int, temperature: float) -> str

and return the prompt followed by `length` generated characters (or tokens, decoded): the CLI
knows nothing of vocabularies or sampling, so any model that defines this method can be sampled.
examples/language/charlm.py is one.
"""
from __future__ import annotations

import numpy as np

from .errors import ConfigError
from .evaluate import load_model_and_job


def load_model(checkpoint, *, job_file=None, device=None):
    """The checkpoint's model, in eval mode on `device` (default: the first GPU if any, else the CPU).

    checkpoint: a checkpoint file, or a run folder (its latest valid checkpoint).
    """
    model, _, _ = load_model_and_job(checkpoint, job_file=job_file, device=device)
    return model.eval()


def generate_text(checkpoint, prompt: str = "", length: int = 200, temperature: float = 1.0, *, job_file=None,
                  seed: int | None = None, device=None) -> str:
    """model.generate(prompt, length, temperature) of the checkpoint's model; seed makes it repeatable."""
    import tensor

    model = load_model(checkpoint, job_file=job_file, device=device)
    method = getattr(model, "generate", None)
    if not callable(method):
        raise ConfigError(f"{type(model).__name__} has no generate(prompt, length, temperature) method, so it cannot "
                          "be sampled from; define one on the model class (see examples/language/charlm.py)")
    if seed is not None:  # the engine's generator and NumPy's: a model may sample with either
        tensor.manual_seed(seed)
        np.random.seed(seed % 2**32)
    with tensor.no_grad():
        text = method(prompt, length, temperature)
    if not isinstance(text, str):
        raise TypeError(f"{type(model).__name__}.generate returned {type(text).__name__}; it must return a str")
    return text
