"""Optimizers (SGD, Adam, AdamW, NAdam, RAdam, Adamax, RMSprop, Adagrad, Adadelta, Rprop, ASGD, LBFGS)
and learning-rate schedulers, with PyTorch's names and rules.

    opt = tensor.optim.AdamW(model.parameters(), lr=3e-4)
    sched = tensor.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=1000)
"""
from . import lr_scheduler
from . import swa_utils
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .asgd import ASGD
from .lbfgs import LBFGS
from .nadam import NAdam
from .optimizer import Optimizer
from .radam import RAdam
from .rmsprop import RMSprop
from .rprop import Rprop
from .sgd import SGD

__all__ = [
    "Optimizer", "SGD", "Adam", "AdamW", "NAdam", "RAdam", "Adamax", "RMSprop", "Adagrad", "Adadelta", "Rprop", "ASGD",
    "LBFGS", "lr_scheduler", "swa_utils",
]
