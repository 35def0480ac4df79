"""Random search: uniform samples from the space."""

from __future__ import annotations

from nascli.spaces import Genotype
from nascli.strategies.base import Strategy


class RandomSearch(Strategy):
    """Uniform sampling with ``space.sample`` (no options besides ``space`` and ``seed``).

    Alone it samples with replacement; built with ``build("random", ...)`` it sits inside a
    :class:`~nascli.strategies.addons.Deduplicate` wrapper and asks each architecture (by
    canonical hash) at most once, with exactly the draws of earlier releases.
    """

    name = "random"

    def _propose(self) -> tuple[Genotype, str]:
        genotype = self.space.sample(self.rng)
        return genotype, self.space.hash(genotype)
