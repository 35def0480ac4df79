"""REINFORCE with a moving-average baseline (Zoph and Le 2017)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from nascli.spaces import SearchSpace
from nascli.strategies.controller import ControllerStrategy


class Reinforce(ControllerStrategy):
    """Controller trained with the policy gradient ``(reward - baseline) * grad log p``.

    One Adam step per batch of ``batch_size`` results, on
    ``-mean(A * log p) - entropy_weight * entropy``. Options are those of
    :class:`~nascli.strategies.controller.ControllerStrategy` (the same controller as ``ppo``);
    the learning rate defaults to Zoph and Le's 0.0006 (the shipped ``strategy=reinforce``
    config).
    """

    name = "reinforce"

    def __init__(
        self, space: SearchSpace, seed: int = 0, *, lr: float = 0.0006, **options: Any
    ) -> None:
        super().__init__(space, seed, lr=lr, **options)

    def _loss_steps(
        self, choices: torch.Tensor, old_logp: torch.Tensor, advantage: torch.Tensor
    ) -> Iterator[torch.Tensor]:
        logp, entropy = self.controller.evaluate(choices)
        yield -(advantage * logp).mean() - self.entropy_weight * entropy.mean()
