"""Helpers for the examples' shortened tests: import an example's file by path, train a job in-process.

The examples are scripts beside their data, not a package, so their modules are loaded from their
files (as `raygrad train` does with `model.class: file.py:Name`).
"""
import importlib.util
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(relative: str):
    """The module in examples/<relative> (e.g. "rl/cartpole.py"), its folder importable for its helpers."""
    path = EXAMPLES / relative
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = "example_" + relative.replace("/", "_").removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def train_job(job_file: str, tmp_path, overrides=()):
    """Train examples/<job_file> in this process (no Ray) with `overrides`; the trainer's Result."""
    from trainers.build import trainer_from
    from trainers.job import load_job

    job = load_job(EXAMPLES / job_file, ["scaling.num_workers=0", f"run.storage_path={tmp_path}", "run.verbose=0",
                                         *overrides])
    return trainer_from(job, resume=False).fit()
