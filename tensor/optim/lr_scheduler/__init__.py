"""Learning-rate schedules with PyTorch's names, formulas and state dicts.

    scheduler = StepLR(optimizer, step_size=30, gamma=0.1)
    for epoch in range(100):
        train(...)              # optimizer.step() inside
        scheduler.step()
"""
from .base import LRScheduler, _LRScheduler  # noqa: F401  (PyTorch's old name, not in __all__)
from .compose import ChainedScheduler, SequentialLR
from .cyclic import CosineAnnealingWarmRestarts, CyclicLR
from .one_cycle import OneCycleLR
from .plateau import ReduceLROnPlateau
from .schedules import (
    ConstantLR, CosineAnnealingLR, ExponentialLR, LambdaLR, LinearLR, MultiplicativeLR, MultiStepLR, PolynomialLR, StepLR,
)

__all__ = [
    "LRScheduler", "LambdaLR", "StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR",
    "CosineAnnealingLR", "SequentialLR", "ChainedScheduler", "OneCycleLR", "ReduceLROnPlateau", "MultiplicativeLR",
    "PolynomialLR", "CosineAnnealingWarmRestarts", "CyclicLR",
]
