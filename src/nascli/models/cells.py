"""A cell of the final network, built from a genotype's :class:`nascli.spaces.CellGenotype`.

Convention between cells: every tensor passed from one cell to the next is already rectified.
Each consumer of a cell output in the NASNet reference (the next two cells' preprocessing, the
classifier, the auxiliary head) starts with ReLU, so the network applies it once per output
instead of once per consumer; the function computed is the reference one.

Inside a cell, a hidden state read by several ops that start with ReLU is rectified once and
passed to their ``body``; so the leading ReLU modules of those ops (and forward hooks on the op
modules themselves) are skipped, while hooks on their conv and BN layers run as usual. These
ReLUs are ``F.relu`` calls, visible to a ``TorchFunctionMode``.

Hidden states: 0 is h_i (the previous cell's output), 1 is h_{i-1}, block b writes state b + 2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from nascli.models.ops import ConvBN, FactorizedReduce, PreAct, build_op

if TYPE_CHECKING:  # models read genotype attributes only; spaces must not load at run time
    from nascli.spaces.genotype import CellGenotype


def drop_path(x: torch.Tensor, prob: float) -> torch.Tensor:
    """Zero whole samples with probability ``prob``, scale the rest by 1 / (1 - prob).

    The mask is drawn on ``x``'s device and dtype, so it works on CPU, CUDA and MPS alike.
    """
    keep = 1.0 - prob
    mask = torch.empty((x.shape[0], 1, 1, 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x * mask.div_(keep)


class Cell(nn.Module):
    """One normal or reduction cell: ``forward(h, h_prev) -> relu(concat of output states)``.

    Args:
        spec: the cell's blocks and concat list (from a genotype).
        c_prev: channels of h (the previous cell's output).
        c_prev_prev: channels of h_prev.
        channels: C, the channels of every op output.
        reduction: halve H and W (stride 2 on ops that read states 0 and 1).
        reduction_prev: h_prev has twice the height and width of h.

    Inputs are rectified (see the module docstring); the output is too. Output channels:
    ``out_channels`` (C per ``add`` block or cell input in the concat list, 2C per ``concat``
    block).
    """

    def __init__(
        self,
        spec: CellGenotype,
        c_prev_prev: int,
        c_prev: int,
        channels: int,
        reduction: bool,
        reduction_prev: bool,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.drop_prob = 0.0
        c = channels
        self.pre0 = ConvBN(c_prev, c, 1)
        # h_{i-1} is twice as large after a reduction cell: reduce it without dropping pixels
        self.pre1 = (
            FactorizedReduce(c_prev_prev, c) if reduction_prev else ConvBN(c_prev_prev, c, 1)
        )

        widths = [c, c]
        self.ops = nn.ModuleList()
        plan = []
        for block in spec.blocks:
            for state, name in zip(block.inputs, block.ops, strict=True):
                stride = 2 if reduction and state < 2 else 1
                op = build_op(name, widths[state], c, stride)
                plan.append((state, isinstance(op, PreAct), name != "identity"))
                self.ops.append(op)
            widths.append(c if block.combine == "add" else 2 * c)
        self._plan = tuple(plan)
        self._concat_blocks = tuple(b.combine == "concat" for b in spec.blocks)
        self.concat = tuple(spec.concat)

        # which states feed an op that starts with ReLU: those are rectified once, up front
        self._rectify = tuple(
            any(s == state and pre for s, pre, _ in plan) for state in range(len(widths))
        )
        # cell inputs in a reduction cell's output must be reduced to the blocks' size
        self.out_reduce = nn.ModuleDict(
            {
                str(s): FactorizedReduce(widths[s], widths[s])
                for s in self.concat
                if reduction and s < 2
            }
        )
        self.out_channels = sum(widths[s] for s in self.concat)

    def forward(self, h: torch.Tensor, h_prev: torch.Tensor) -> torch.Tensor:
        """``h``: (N, c_prev, H, W), ``h_prev``: (N, c_prev_prev, H or 2H, ...), both rectified."""
        states = [self.pre0(h), self.pre1(h_prev)]
        rectify = self._rectify
        relu = [F.relu(s) if r else None for s, r in zip(states, rectify[:2], strict=True)]
        drop = self.drop_prob if self.training and self.drop_prob > 0 else 0.0
        ops = list(self.ops)
        for b, concat_block in enumerate(self._concat_blocks):
            outs = []
            for k in (2 * b, 2 * b + 1):
                state, pre, droppable = self._plan[k]
                x = ops[k].body(relu[state]) if pre else ops[k](states[state])
                if drop and droppable:
                    x = drop_path(x, drop)
                outs.append(x)
            out = torch.cat(outs, dim=1) if concat_block else outs[0] + outs[1]
            relu.append(F.relu(out) if rectify[len(states)] else None)
            states.append(out)
        chosen = [
            self.out_reduce[str(s)](states[s]) if self.reduction and s < 2 else states[s]
            for s in self.concat
        ]
        if len(chosen) == 1:
            return F.relu(chosen[0])
        # cat allocates a fresh tensor that nothing else holds, so rectify it in place
        return torch.cat(chosen, dim=1).relu_()
