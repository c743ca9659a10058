"""tensor.utils.tensorboard.SummaryWriter: torch.utils.tensorboard's writer, so logging code ports.

It is tensorboardX's SummaryWriter (a raygrad dependency, with torch's API) whose add_* methods first
turn raygrad Tensors into NumPy arrays (a 0-d tensor into its number), anywhere in their arguments:
add_scalar(tag, loss), add_scalars(tag, {"train": loss}), add_histogram(name, param), add_image(...).
add_graph needs a traced PyTorch model and is refused with a clear error.
"""
from __future__ import annotations

import functools

from tensorboardX import SummaryWriter as _TensorBoardXWriter

from ..tensor import Tensor


def _plain(value):
    """value with every Tensor inside (lists, tuples, dicts) as a NumPy array or, 0-d, a Python number."""
    if isinstance(value, Tensor):
        array = value.detach().cpu().numpy()
        return array.item() if array.ndim == 0 else array
    if isinstance(value, dict):
        return {key: _plain(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def _taking_tensors(method):
    @functools.wraps(method)
    def add(self, *args, **kwargs):
        return method(self, *[_plain(a) for a in args], **{k: _plain(v) for k, v in kwargs.items()})

    return add


class SummaryWriter(_TensorBoardXWriter):
    """torch.utils.tensorboard.SummaryWriter(log_dir=None, comment='', purge_step=None, max_queue=10,
    flush_secs=120, filename_suffix=''): event files for TensorBoard under log_dir (default runs/...)."""

    def add_graph(self, model, input_to_model=None, verbose=False, *args, **kwargs):
        raise NotImplementedError(
            "SummaryWriter.add_graph: TensorBoard's graph view needs a traced PyTorch model, and raygrad has no "
            "tracer; log scalars, histograms and images, or print(model) for the module tree"
        )


for _name in dir(_TensorBoardXWriter):
    if _name.startswith("add_") and _name != "add_graph":
        setattr(SummaryWriter, _name, _taking_tensors(getattr(_TensorBoardXWriter, _name)))
del _name
