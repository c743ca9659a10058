"""Seeding and saving the random streams a rank uses: the engine's default generators, NumPy's and Python's.

A checkpoint stores every rank's states (see session.report), so a resumed run draws the same
dropout masks and augmentations as one that never stopped. The states are plain dicts and int64
arrays: tensor.save stores them without pickling.
"""
from __future__ import annotations

import random

import numpy as np

import tensor


def seed_everything(seed: int) -> None:
    """Seed the engine's default generators, NumPy's global generator and Python's `random`."""
    tensor.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def capture(device="cpu") -> dict:
    """The current states of this process's random streams (the engine's cpu one and `device`'s)."""
    from tensor.random import default_generator

    devices = ["cpu"] if str(device) == "cpu" else ["cpu", str(device)]
    kind, keys, position, has_gauss, cached_gauss = np.random.get_state()
    python_version, python_state, python_gauss = random.getstate()
    return {
        "tensor": {name: default_generator(name).get_state() for name in devices},
        "numpy": {"kind": kind, "keys": np.asarray(keys, np.int64), "position": int(position),
                  "has_gauss": int(has_gauss), "cached_gauss": float(cached_gauss)},
        "python": {"version": python_version, "state": np.asarray(python_state, np.int64),
                   "gauss": python_gauss},
    }


def restore(state: dict) -> None:
    """Put back the streams `capture` saved (streams missing from `state` are left as they are)."""
    from tensor.random import default_generator

    for name, generator_state in state.get("tensor", {}).items():
        default_generator(name).set_state(generator_state)
    saved = state.get("numpy")
    if saved:
        np.random.set_state((saved["kind"], _host(saved["keys"]).astype(np.uint32), int(saved["position"]),
                             int(saved["has_gauss"]), float(saved["cached_gauss"])))
    saved = state.get("python")
    if saved:
        random.setstate((saved["version"], tuple(int(x) for x in _host(saved["state"])), saved["gauss"]))


def _host(value) -> np.ndarray:
    """A saved array back as NumPy (tensor.load gives engine tensors)."""
    if hasattr(value, "numpy"):
        value = value.detach().cpu().numpy() if hasattr(value, "detach") else value.numpy()
    return np.asarray(value)

