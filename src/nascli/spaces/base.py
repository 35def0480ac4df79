"""Search spaces as ordered lists of categorical decisions.

A space lists its :class:`Decision` objects; a genotype is one choice per decision. The base
class gives every space sampling, mutation, encoding to choice indices, validation, a JSON round
trip and a canonical hash. Subclasses that only list decisions get all of this for free, with the
plain genotype type ``tuple`` of choice values. Richer spaces (NASNet) override ``decode`` and
``encode`` to map between index vectors and their own genotype objects.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

Genotype = Hashable


class SpaceError(ValueError):
    """A genotype or a space definition is invalid; the message names the field."""


@dataclass(frozen=True)
class Decision:
    """One categorical choice of a space: a name and its choices (JSON-friendly values)."""

    name: str
    choices: tuple[Any, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", tuple(self.choices))
        if not self.choices:
            raise SpaceError(f"decision {self.name!r} has no choices")

    def __len__(self) -> int:
        return len(self.choices)

    def index(self, value: Any) -> int:
        """Index of ``value`` among the choices; :class:`SpaceError` if it is not one."""
        try:
            return self.choices.index(value)
        except ValueError:
            raise SpaceError(
                f"{self.name}: {value!r} is not a valid choice; valid: "
                f"{', '.join(map(str, self.choices))}"
            ) from None


def approx_count(n: int) -> str:
    """``n`` to 3 significant digits (``5.11e+33``), also past the float range."""
    if n < 10**300:
        return f"{n:.3g}"
    exponent = math.floor(math.log10(n))  # math.log10 takes ints of any size
    return f"{10 ** (math.log10(n) - exponent):.3g}e+{exponent}"


def as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """A numpy Generator from a Generator, a seed or None."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


class SearchSpace:
    """Base class: a space is its ordered ``decisions``.

    Override ``decisions`` (property or attribute) in a subclass; everything else works from it.
    Richer spaces override ``decode``/``encode`` (and optionally ``canonical``, ``mutate``,
    ``to_json``/``from_json``). A space with networks has a builder registered under its
    ``name`` (``nascli.models.register_builder``), which receives ``network`` as keywords.
    """

    #: registry name; set by subclasses
    name: str = "custom"
    #: search-time network settings passed to the space's network builder (none by default)
    network: Mapping[str, Any] = MappingProxyType({})

    @property
    def decisions(self) -> list[Decision]:  # pragma: no cover - overridden
        raise NotImplementedError(f"{type(self).__name__} must define `decisions`")

    # -- encoding ---------------------------------------------------------------------------
    def decode(self, indices: Sequence[int]) -> Genotype:
        """Genotype from one choice index per decision (base: tuple of choice values)."""
        decisions = self.decisions
        self._check_indices(indices, decisions)
        return tuple(d.choices[i] for d, i in zip(decisions, indices, strict=True))

    def encode(self, genotype: Genotype) -> list[int]:
        """One choice index per decision for ``genotype``."""
        decisions = self.decisions
        values = tuple(genotype)  # type: ignore[arg-type]
        if len(values) != len(decisions):
            raise SpaceError(
                f"genotype has {len(values)} values, space {self.name!r} has "
                f"{len(decisions)} decisions"
            )
        return [d.index(v) for d, v in zip(decisions, values, strict=True)]

    def _check_indices(self, indices: Sequence[int], decisions: list[Decision]) -> None:
        if len(indices) != len(decisions):
            raise SpaceError(
                f"{len(indices)} indices given, space {self.name!r} has {len(decisions)} decisions"
            )
        for d, i in zip(decisions, indices, strict=True):
            if not 0 <= int(i) < len(d):
                raise SpaceError(f"{d.name}: index {i} out of range 0..{len(d) - 1}")

    # -- sampling and mutation --------------------------------------------------------------
    def sample(self, rng: np.random.Generator | int | None = None) -> Genotype:
        """A uniformly random genotype."""
        rng = as_rng(rng)
        return self.decode([int(rng.integers(len(d))) for d in self.decisions])

    def mutate(self, genotype: Genotype, rng: np.random.Generator | int | None = None) -> Genotype:
        """A copy of ``genotype`` with one decision changed to a different value.

        Decisions with a single choice are never picked. Raises :class:`SpaceError` if no
        decision can change.
        """
        rng = as_rng(rng)
        decisions = self.decisions
        idx = self.encode(genotype)
        free = [k for k, d in enumerate(decisions) if len(d) > 1]
        if not free:
            raise SpaceError(f"space {self.name!r} has no decision with more than one choice")
        k = free[int(rng.integers(len(free)))]
        shift = int(rng.integers(1, len(decisions[k])))
        idx[k] = (idx[k] + shift) % len(decisions[k])
        return self.decode(idx)

    # -- validation, canonical form, hashing ------------------------------------------------
    def validate(self, genotype: Genotype) -> Genotype:
        """Return ``genotype`` if it belongs to the space, else raise :class:`SpaceError`."""
        self.encode(genotype)
        return genotype

    def canonical(self, genotype: Genotype) -> Genotype:
        """Canonical representative of the genotype's equivalence class (base: itself)."""
        return genotype

    def hash(self, genotype: Genotype) -> str:
        """Stable 16-hex-digit hash of the canonical form; equivalent genotypes share it."""
        payload = json.dumps(
            {"space": self.name, "genotype": self.to_json(self.canonical(genotype))},
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def size(self) -> int:
        """Number of distinct encodings (an upper bound on distinct architectures)."""
        n = 1
        for d in self.decisions:
            n *= len(d)
        return n

    # -- JSON -------------------------------------------------------------------------------
    def to_json(self, genotype: Genotype) -> dict[str, Any]:
        """JSON-ready dict of the genotype (base: decision name to value)."""
        idx = self.encode(genotype)
        return {d.name: d.choices[i] for d, i in zip(self.decisions, idx, strict=True)}

    def from_json(self, data: dict[str, Any]) -> Genotype:
        """Inverse of :meth:`to_json`, validated."""
        if not isinstance(data, dict):
            raise SpaceError(f"genotype must be a JSON object, got {type(data).__name__}")
        decisions = self.decisions
        missing = [d.name for d in decisions if d.name not in data]
        if missing:
            raise SpaceError(f"genotype is missing decision(s): {', '.join(missing)}")
        unknown = sorted(set(data) - {d.name for d in decisions})
        if unknown:
            raise SpaceError(f"genotype has unknown decision(s): {', '.join(unknown)}")
        return self.decode([d.index(data[d.name]) for d in decisions])

    def to_text(self, genotype: Genotype) -> str:
        """Compact one-line form for logs."""
        return " ".join(f"{k}={v}" for k, v in self.to_json(genotype).items())

    def describe(self) -> str:
        """One line about the space."""
        return (
            f"{self.name}: {len(self.decisions)} decisions, {approx_count(self.size())} encodings"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()})"
