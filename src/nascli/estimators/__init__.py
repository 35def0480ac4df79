"""How a candidate is scored: train-and-test or a zero-cost proxy, behind one interface."""

from nascli.estimators.base import Estimate, Estimator, ModelEstimator
from nascli.estimators.proxy import ProxyEstimator
from nascli.estimators.train import SearchTraining, TrainEstimator

__all__ = [
    "Estimate",
    "Estimator",
    "ModelEstimator",
    "ProxyEstimator",
    "SearchTraining",
    "TrainEstimator",
]
