"""The NASNet macro network: a stem, three stacks of N normal cells, two reduction cells.

CIFAR style: 3x3 conv stem, then N normal, reduction (2x filters), N normal, reduction (2x),
N normal. ImageNet style (as in the TF reference ``nasnet.py``): a 3x3 stride-2 conv with
``32 * stem_multiplier`` filters, then two reduction cells with C/4 and C/2 filters as a stem,
then the same stacks. ``channels`` is C, the filters of the first stack (NASNet's
``num_conv_filters``); the paper's "N @ F" uses the penultimate filters F, see
:func:`channels_from_penultimate`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from nascli.models.cells import Cell

if TYPE_CHECKING:  # models read genotype attributes only; spaces must not load at run time
    from nascli.spaces.genotype import CellGenotype, NASNetGenotype

#: Macro-network stems (``nascli.spaces.nasnet.STEMS`` names the same ones).
STEMS = ("cifar", "imagenet")


def _width(spec: CellGenotype) -> int:
    """Output channels of a cell in units of C."""
    w = [1, 1] + [2 if b.combine == "concat" else 1 for b in spec.blocks]
    return sum(w[s] for s in spec.concat)


def channels_from_penultimate(filters: int, genotype: NASNetGenotype) -> int:
    """C from the paper's F (channels of the last normal cell, 4C times the cell's width).

    NASNet-A (6 states concatenated): 768 -> 32, 1056 -> 44, 4032 -> 168.
    """
    per_c = 4 * _width(genotype.normal)
    if filters % per_c:
        raise ValueError(f"F={filters} is not a multiple of {per_c} (4 x the normal cell's width)")
    return filters // per_c


def _macro_plan(channels: int, n: int, stem: str) -> list[tuple[int, bool]]:
    """(C, is_reduction) of every cell, stem cells included."""
    c = channels
    plan = [(max(1, c // 4), True), (max(1, c // 2), True)] if stem == "imagenet" else []
    for stage in range(3):
        if stage:
            plan.append((c * 2**stage, True))
        plan += [(c * 2**stage, False)] * n
    return plan


class AuxiliaryHead(nn.Module):
    """ReLU'd input - AvgPool(5, stride 3) - Conv(1x1, 128) - BN - ReLU - Conv(2x2, 768) - BN - ReLU
    - Linear, as in NASNet/DARTS; maps below 5x5 skip the pool, others are pooled to 2x2 so any
    input size works."""

    def __init__(self, c_in: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(c_in, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, c_in, H, W) rectified -> (N, num_classes)."""
        if min(x.shape[-2:]) >= 5:
            x = F.avg_pool2d(x, 5, 3)
        if tuple(x.shape[-2:]) != (2, 2):
            x = F.adaptive_avg_pool2d(x, 2)
        return self.classifier(self.features(x).flatten(1))


class Network(nn.Module):
    """The final network for a genotype; build it with :func:`build_network`.

    ``forward(x)`` returns logits (N, num_classes), or ``(logits, aux_logits)`` in training mode
    with an auxiliary head. Set ``drop_path_prob`` between steps to schedule drop-path.
    """

    def __init__(
        self,
        genotype: NASNetGenotype,
        num_classes: int = 10,
        in_channels: int = 3,
        cells_per_stage: int = 6,
        channels: int = 32,
        stem: str = "cifar",
        auxiliary: bool = False,
        drop_path: float = 0.0,
        stem_multiplier: float = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"unknown stem {stem!r}; valid: {', '.join(STEMS)}")
        if cells_per_stage < 1 or channels < 1:
            raise ValueError("cells_per_stage and channels must be >= 1")
        self.genotype = genotype
        self.num_classes = num_classes
        cifar = stem == "cifar"
        c_stem = int((channels if cifar else 32) * stem_multiplier)
        self.stem = nn.Sequential(
            # ImageNet: stride 2 without padding (VALID), as the reference
            nn.Conv2d(in_channels, c_stem, 3, 1 if cifar else 2, 1 if cifar else 0, bias=False),
            nn.BatchNorm2d(c_stem),
            # rectified once here: every consumer of the stem output would start with ReLU
            nn.ReLU(inplace=True),
        )
        self.cells = nn.ModuleList()
        c_pp, c_p, reduction_prev = c_stem, c_stem, False
        for c, reduction in _macro_plan(channels, cells_per_stage, stem):
            spec = genotype.reduce if reduction else genotype.normal
            cell = Cell(spec, c_pp, c_p, c, reduction, reduction_prev)
            self.cells.append(cell)
            c_pp, c_p, reduction_prev = c_p, cell.out_channels, reduction
        # the auxiliary head reads the second reduction cell of the body, as in DARTS
        self._aux_after = len(self.cells) - cells_per_stage - 1
        c_aux = self.cells[self._aux_after].out_channels
        self.aux_head = AuxiliaryHead(c_aux, num_classes) if auxiliary else None
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(c_p, num_classes)
        self.drop_path_prob = drop_path

    @property
    def drop_path_prob(self) -> float:
        """Drop-path probability of every op output (training mode only)."""
        return self._drop_path_prob

    @drop_path_prob.setter
    def drop_path_prob(self, prob: float) -> None:
        if not 0.0 <= prob < 1.0:
            raise ValueError(f"drop_path_prob must be in [0, 1), got {prob}")
        self._drop_path_prob = float(prob)
        for cell in self.cells:
            cell.drop_prob = float(prob)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_channels, H, W) -> rectified last-cell output (N, F, H/4 or /32, ...)."""
        return self._run(x)[0]

    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = h_prev = self.stem(x)
        aux = None
        want_aux = self.aux_head is not None and self.training
        for i, cell in enumerate(self.cells):
            h_prev, h = h, cell(h, h_prev)
            if want_aux and i == self._aux_after:
                aux = self.aux_head(h)
        return h, aux

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """(N, in_channels, H, W) -> logits, or (logits, aux_logits) when training with aux."""
        h, aux = self._run(x)
        logits = self.classifier(self.dropout(h.mean((2, 3))))
        return (logits, aux) if aux is not None else logits


def build_network(
    genotype: NASNetGenotype,
    num_classes: int = 10,
    in_channels: int = 3,
    cells_per_stage: int = 6,
    channels: int = 32,
    stem: str = "cifar",
    auxiliary: bool = False,
    drop_path: float = 0.0,
    stem_multiplier: float = 3,
    dropout: float = 0.0,
) -> Network:
    """The final network for ``genotype`` (see :class:`Network`).

    ``channels`` is C of the first stack (NASNet-A 6@768 CIFAR: 32; 4@1056 ImageNet: 44 with
    ``stem_multiplier=1``; 6@4032 ImageNet: 168 with ``stem_multiplier=3``). The CIFAR stem has
    ``channels * stem_multiplier`` filters, the ImageNet stem ``32 * stem_multiplier``.
    """
    return Network(
        genotype,
        num_classes=num_classes,
        in_channels=in_channels,
        cells_per_stage=cells_per_stage,
        channels=channels,
        stem=stem,
        auxiliary=auxiliary,
        drop_path=drop_path,
        stem_multiplier=stem_multiplier,
        dropout=dropout,
    )
