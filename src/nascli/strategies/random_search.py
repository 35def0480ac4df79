"""Random search: uniform samples from the space, each architecture asked at most once."""

from __future__ import annotations

from nascli.spaces import Genotype
from nascli.strategies.base import Strategy


class RandomSearch(Strategy):
    """Uniform sampling without repeats (by canonical hash).

    Options (besides ``space`` and ``seed``):
        max_retries (100): draws per ask before a small space is enumerated to find the unseen
            architectures; :class:`~nascli.strategies.SearchExhausted` when none is left.
        allow_duplicates (False): plain sampling with replacement.
    """

    name = "random"

    def _propose(self) -> tuple[Genotype, str]:
        return self._sample_unique()
