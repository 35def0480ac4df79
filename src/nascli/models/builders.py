"""The genotype-to-network seam: one builder per space name, and :func:`build_model`.

Every caller that turns a genotype into a network (estimators, final training, proxies) goes
through :func:`build_model`, so a user space with its own networks needs one
:func:`register_builder` call and works everywhere. The space supplies its search-time network
settings (``space.network``: N, C, stem); a caller overrides them for final training.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from torch import nn

from nascli.models.network import build_network
from nascli.registry import Registry, UnknownNameError

if TYPE_CHECKING:  # spaces are only read here; importing them at run time would be a circle
    from nascli.spaces.base import Genotype, SearchSpace

#: ``builder(genotype, *, num_classes, in_channels, **network) -> nn.Module``
NetworkBuilder = Callable[..., nn.Module]

#: space name -> network builder
BUILDERS: Registry[NetworkBuilder] = Registry("network builder")


def register_builder(space_name: str, fn: NetworkBuilder) -> NetworkBuilder:
    """Build networks for the space named ``space_name`` with ``fn``
    (``fn(genotype, *, num_classes, in_channels, **network) -> nn.Module``). Returns ``fn``."""
    return BUILDERS.register(space_name, fn)


register_builder("nasnet", build_network)
register_builder("darts", build_network)


def build_model(
    space: SearchSpace,
    genotype: Genotype,
    *,
    num_classes: int,
    in_channels: int,
    **overrides: Any,
) -> nn.Module:
    """The network for ``genotype`` of ``space``, built by the builder registered for its name.

    The genotype is validated by ``space.validate`` first. The builder receives the space's
    search-time settings (``space.network``, e.g. ``cells_per_stage``, ``channels``, ``stem``)
    with ``overrides`` (those or any other builder argument: ``auxiliary``, ``drop_path``, ...)
    replacing them.
    """
    if space.name not in BUILDERS:
        raise UnknownNameError(
            f"no network builder for space {space.name!r}; registered: "
            f"{', '.join(BUILDERS.names())}; add one with nascli.models.register_builder"
        )
    genotype = space.validate(genotype)
    settings = {**space.network, **overrides}
    return BUILDERS.get(space.name)(
        genotype, num_classes=num_classes, in_channels=in_channels, **settings
    )
