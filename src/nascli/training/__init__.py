"""Training and evaluation loops shared by the train-and-test estimator and train-final."""

from nascli.training.device import autocast, resolve_device, setup_device
from nascli.training.loop import DivergedError, evaluate, recalibrate_batchnorm, train_epoch

__all__ = [
    "DivergedError",
    "autocast",
    "evaluate",
    "recalibrate_batchnorm",
    "resolve_device",
    "setup_device",
    "train_epoch",
]
