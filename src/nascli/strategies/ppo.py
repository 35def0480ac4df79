"""Proximal policy optimisation of the LSTM controller, as in NASNet (Zoph et al. 2018)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from nascli.spaces import SearchSpace
from nascli.strategies.base import check_option, is_int, is_number
from nascli.strategies.controller import ControllerStrategy


class PPO(ControllerStrategy):
    """Controller trained with PPO's clipped objective.

    Each batch of ``batch_size`` results is used for ``epochs`` Adam steps on
    ``-min(ratio * A, clip(ratio, 1 - clip, 1 + clip) * A) - entropy_weight * entropy``, where
    ``ratio`` is the probability of the whole architecture under the current policy over that
    when it was sampled, and ``A`` the reward minus the moving-average baseline.

    Args:
        clip: ratio clipping, in (0, 1).
        epochs: optimisation epochs over each batch (>= 1).
        options: those of :class:`~nascli.strategies.controller.ControllerStrategy`.

    The defaults (the shipped ``strategy=ppo`` config) were measured for budgets of 100 to
    1,000 architectures: Adam lr 0.01, batch 10, tanh constant 1.5; the rest is the paper's
    (entropy weight 1e-5, baseline decay 0.95, one LSTM layer of 100 units, clip 0.2, 4
    epochs). The paper's batch 20 and lr 0.00035 are ``experiment=nasnet_ppo_paper``
    (docs/strategies.md).
    """

    name = "ppo"

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        *,
        clip: float = 0.2,
        epochs: int = 4,
        **options: Any,
    ) -> None:
        super().__init__(space, seed, **options)
        check_option(is_number(clip) and 0 < clip < 1, self.name, "clip", clip,
                     "a number in (0, 1)")
        check_option(is_int(epochs) and epochs >= 1, self.name, "epochs", epochs,
                     "an integer >= 1")
        self.clip = float(clip)
        self.epochs = int(epochs)

    def _loss_steps(
        self, choices: torch.Tensor, old_logp: torch.Tensor, advantage: torch.Tensor
    ) -> Iterator[torch.Tensor]:
        for _ in range(self.epochs):
            logp, entropy = self.controller.evaluate(choices)
            ratio = torch.exp(logp - old_logp)
            clipped = torch.clamp(ratio, 1 - self.clip, 1 + self.clip)
            objective = torch.minimum(ratio * advantage, clipped * advantage)
            yield -objective.mean() - self.entropy_weight * entropy.mean()
