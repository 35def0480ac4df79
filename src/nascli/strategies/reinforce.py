"""REINFORCE with a moving-average baseline (Zoph and Le 2017)."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from nascli.strategies.controller import ControllerStrategy


class Reinforce(ControllerStrategy):
    """Controller trained with the policy gradient ``(reward - baseline) * grad log p``.

    One Adam step per batch of ``batch_size`` results, on
    ``-mean(A * log p) - entropy_weight * entropy``. Options are those of
    :class:`~nascli.strategies.controller.ControllerStrategy` (the same controller and the same
    measured defaults as ``ppo``); Zoph and Le's learning rate 0.0006 is the
    ``experiment=nas_reinforce_paper`` preset.
    """

    name = "reinforce"

    def _loss_steps(
        self, choices: torch.Tensor, old_logp: torch.Tensor, advantage: torch.Tensor
    ) -> Iterator[torch.Tensor]:
        logp, entropy = self.controller.evaluate(choices)
        yield -(advantage * logp).mean() - self.entropy_weight * entropy.mean()
