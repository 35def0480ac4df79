"""One-shot NAS: a weight-sharing supernet (SPOS), inheritance estimation, and DARTS.

* :mod:`nascli.oneshot.supernet`: the supernet of a NASNet-style space; every genotype selects
  one single-path sub-network whose modules and tensors are the supernet's own.
* :mod:`nascli.oneshot.train`: single-path supernet training (uniform or fair sampling), with a
  checkpoint per epoch and resume.
* :mod:`nascli.oneshot.estimator`: the inheritance estimator (``proxy=supernet``).
* :mod:`nascli.oneshot.darts`: differentiable architecture search (``strategy=darts``).
"""

from nascli.oneshot.darts import DARTS, derive_genotype
from nascli.oneshot.estimator import SupernetEstimator
from nascli.oneshot.supernet import SuperCell, SuperNet
from nascli.oneshot.train import (
    PathSampler,
    SupernetError,
    SupernetTraining,
    read_checkpoint,
    train_supernet,
)

__all__ = [
    "DARTS",
    "PathSampler",
    "SuperCell",
    "SuperNet",
    "SupernetError",
    "SupernetEstimator",
    "SupernetTraining",
    "derive_genotype",
    "read_checkpoint",
    "train_supernet",
]
