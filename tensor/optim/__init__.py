"""Optimizers (SGD, Adam, AdamW, RMSprop, Adagrad) and learning-rate schedulers, with PyTorch's names and rules.

    opt = tensor.optim.AdamW(model.parameters(), lr=3e-4)
    sched = tensor.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=1000)
"""
from . import lr_scheduler
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler"]
