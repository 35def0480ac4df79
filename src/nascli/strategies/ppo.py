"""Proximal policy optimisation of the LSTM controller, as in NASNet (Zoph et al. 2018)."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from nascli.spaces import SearchSpace
from nascli.strategies.base import StrategyError
from nascli.strategies.controller import ControllerStrategy


class PPO(ControllerStrategy):
    """Controller trained with PPO's clipped objective.

    Each batch of ``batch_size`` results is used for ``epochs`` Adam steps on
    ``-min(ratio * A, clip(ratio, 1 - clip, 1 + clip) * A) - entropy_weight * entropy``, where
    ``ratio`` is the probability of the whole architecture under the current policy over that
    when it was sampled, and ``A`` the reward minus the moving-average baseline.

    Defaults are the paper's (batch 20, Adam lr 0.00035, entropy weight 1e-5, baseline decay
    0.95, one LSTM layer of 100 units); they suit budgets of thousands of architectures. See
    :class:`~nascli.strategies.controller.ControllerStrategy` for the shared options.
    """

    name = "ppo"

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        *,
        clip: float = 0.2,
        epochs: int = 4,
        **options,
    ) -> None:
        super().__init__(space, seed, **options)
        if not 0 < float(clip) < 1:
            raise StrategyError(f"ppo: clip must be in (0, 1), got {clip}")
        if int(epochs) < 1:
            raise StrategyError(f"ppo: epochs must be >= 1, got {epochs}")
        self.clip = float(clip)
        self.epochs = int(epochs)

    def options(self) -> dict:
        """Constructor options, JSON-ready."""
        return {**super().options(), "clip": self.clip, "epochs": self.epochs}

    def _loss_steps(
        self, choices: torch.Tensor, old_logp: torch.Tensor, advantage: torch.Tensor
    ) -> Iterator[torch.Tensor]:
        for _ in range(self.epochs):
            logp, entropy = self.controller.evaluate(choices)
            ratio = torch.exp(logp - old_logp)
            clipped = torch.clamp(ratio, 1 - self.clip, 1 + self.clip)
            objective = torch.minimum(ratio * advantage, clipped * advantage)
            yield -objective.mean() - self.entropy_weight * entropy.mean()
