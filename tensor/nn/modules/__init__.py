"""torch.nn.modules: the submodule paths where PyTorch defines its layers, for code that names them or
their private bases (`isinstance(m, nn.modules.batchnorm._BatchNorm)`, `nn.modules.conv._ConvNd`,
`nn.modules.loss._WeightedLoss`, `from torch.nn.modules.utils import _pair`).

raygrad's files are split differently, so each path (`batchnorm`, `conv`, `linear`, ...) answers with
any layer of tensor.nn and the private bases below; `utils` is a real module with torch's tuple helpers.
"""
from __future__ import annotations

import sys
import types

from .. import conv, dropout, instancenorm, lazy_norm, loss, normalization
from . import utils

# PyTorch's private base classes by name, as raygrad has them (its _NormBase is our _BatchNorm, which
# the instance norms also derive from).
_PRIVATE = {
    "_BatchNorm": normalization._BatchNorm, "_NormBase": normalization._BatchNorm,
    "_InstanceNorm": instancenorm._InstanceNorm, "_LazyNormBase": lazy_norm._LazyNormBase,
    "_ConvNd": conv._ConvNd, "_ConvTransposeNd": conv._ConvTranspose,
    "_Loss": loss._Loss, "_WeightedLoss": loss._WeightedLoss, "_DropoutNd": dropout._DropoutNd,
}

_PATHS = ("activation", "adaptive", "batchnorm", "channelshuffle", "container", "conv", "distance", "dropout",
          "flatten", "fold", "instancenorm", "lazy", "linear", "loss", "module", "normalization", "padding",
          "pixelshuffle", "pooling", "rnn", "sparse", "transformer", "upsampling")


def _lookup(path, name):
    if name in _PRIVATE:
        return _PRIVATE[name]
    layer = vars(sys.modules[__package__.rpartition(".")[0]]).get(name)  # tensor.nn's own namespace
    if not name.startswith("_") and isinstance(layer, type):
        return layer
    raise AttributeError(f"module {path!r} has no attribute {name!r} (raygrad has no such layer)")


class _TorchPath(types.ModuleType):
    """One of torch.nn.modules' submodules: a layer class of tensor.nn or a private base, by name."""

    def __getattr__(self, name):
        return _lookup(self.__name__, name)


def __getattr__(name):  # torch.nn.modules.Conv2d: the package itself holds every layer too
    return _lookup(__name__, name)


for _path in _PATHS:
    globals()[_path] = sys.modules[f"{__name__}.{_path}"] = _TorchPath(f"{__name__}.{_path}")
