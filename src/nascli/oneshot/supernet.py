"""The weight-sharing supernet of a NASNet-style space: every genotype is one path through it.

Sharing follows ENAS. In each cell of the macro network, for every block, operand slot and op
of the space, the op exists once, and every input state it may read goes through that one
module. The only copies are the ones whose shapes differ: in a reduction cell an op reading a
cell input (stride 2) is a different module from the same op reading a block output (stride 1),
and in spaces that allow ``concat`` an op reading a 2C-wide state is a different module from
one reading a C-wide state.

A cell's output concatenates a genotype-dependent set of hidden states. The consumers of that
output (the next two cells' 1x1 preprocessing, factorized reduction, the classifier) hold one
weight column block per hidden state that may appear, and use the columns of the states that are
actually concatenated, in their order (ENAS does the same). So the path of a genotype computes
exactly the function of the stand-alone network that ``nascli.models.build_model`` builds for
it, and has the same parameter count: :meth:`SuperNet.extract` copies a path into a stand-alone
network, and the tests check that both give the same outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nascli.models.cost import _layer_macs
from nascli.models.network import STEMS, _macro_plan
from nascli.models.ops import FactorizedReduce, PreAct, build_op

#: (state, width) of each hidden state concatenated into a cell output, in concat order.
Layout = tuple[tuple[int, int], ...]


class _Select(nn.Module):
    """Base of the 1x1 layers that read a concatenation of a varying set of hidden states.

    ``widths[s]`` is the widest state ``s`` can be; its weight columns start at ``offsets[s]``.
    A state narrower than its widest uses the first columns of its block.
    """

    def __init__(self, widths: Sequence[int]) -> None:
        super().__init__()
        self.widths = tuple(widths)
        self.offsets = tuple(sum(self.widths[:s]) for s in range(len(self.widths)))
        self.macs = 0  # multiply-adds of the last call, per sample (see SuperNet.cost)
        self.used = 0  # input columns the last call used

    def path_params(self) -> int:
        """Parameters of this layer in the last call's stand-alone network."""
        rows = sum(w.shape[0] for n, w in self.named_parameters() if n.startswith("weight"))
        rest = sum(q.numel() for n, q in self.named_parameters() if not n.startswith("weight"))
        return rows * self.used + rest

    def columns(self, weight: Tensor, layout: Layout) -> Tensor:
        """The input columns of ``weight`` (dim 1) that ``layout`` uses, in its order."""
        if len(layout) == 1 and layout[0][1] == weight.shape[1]:
            return weight
        parts = [weight[:, self.offsets[s]: self.offsets[s] + w] for s, w in layout]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


class SelectConvBN(_Select):
    """Conv(1x1) - BN over the states a cell output concatenates (``ops.ConvBN`` on a path)."""

    def __init__(self, widths: Sequence[int], c_out: int) -> None:
        super().__init__(widths)
        self.weight = nn.Parameter(torch.empty(c_out, sum(self.widths), 1, 1))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)  # nn.Conv2d's initialisation
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: Tensor, layout: Layout) -> Tensor:
        """``x``: the concatenated states of ``layout``."""
        y = F.conv2d(x, self.columns(self.weight, layout))
        self.used = x.shape[1]
        self.macs = y[0].numel() * x.shape[1]
        return self.bn(y)


class SelectFactorizedReduce(_Select):
    """``ops.FactorizedReduce`` over the states a cell output concatenates."""

    def __init__(self, widths: Sequence[int], c_out: int) -> None:
        super().__init__(widths)
        c_in = sum(self.widths)
        self.weight_1 = nn.Parameter(torch.empty(c_out - c_out // 2, c_in, 1, 1))
        self.weight_2 = nn.Parameter(torch.empty(c_out // 2, c_in, 1, 1)) if c_out > 1 else None
        for w in (self.weight_1, self.weight_2):
            if w is not None:
                nn.init.kaiming_uniform_(w, a=5**0.5)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: Tensor, layout: Layout) -> Tensor:
        """Halve H and W of the concatenated states of ``layout``."""
        a = F.conv2d(x[:, :, ::2, ::2], self.columns(self.weight_1, layout))
        self.used = x.shape[1]
        self.macs = a[0].numel() * x.shape[1]
        if self.weight_2 is None:
            return self.bn(a)
        b = F.conv2d(x[:, :, 1::2, 1::2], self.columns(self.weight_2, layout))
        self.macs += b[0].numel() * x.shape[1]
        if b.shape[-2:] != a.shape[-2:]:
            b = F.pad(b, (0, a.shape[-1] - b.shape[-1], 0, a.shape[-2] - b.shape[-2]))
        return self.bn(torch.cat([a, b], dim=1))


class SelectLinear(_Select):
    """The classifier over the pooled states of the last cell's output."""

    def __init__(self, widths: Sequence[int], num_classes: int) -> None:
        super().__init__(widths)
        layer = nn.Linear(sum(self.widths), num_classes)
        self.weight, self.bias = layer.weight, layer.bias

    def forward(self, x: Tensor, layout: Layout) -> Tensor:
        """``x``: (N, channels of ``layout``) pooled features."""
        self.used = x.shape[1]
        self.macs = self.bias.numel() * x.shape[1]
        return F.linear(x, self.columns(self.weight, layout), self.bias)


def _op_key(b: int, j: int, op: str, stride: int, mult: int) -> str:
    return f"b{b}_{j}_{op}_s{stride}_w{mult}"


class SuperCell(nn.Module):
    """Every choice of one cell position: the ops of each (block, slot), shared by inputs.

    Args:
        ops, blocks, combine: the space's choices.
        layout_pp, layout_p: widest width of each state the two cell inputs may concatenate.
        channels: C of this cell.
        reduction, reduction_prev: as in ``nascli.models.Cell``.
    """

    def __init__(
        self, ops: Sequence[str], blocks: int, combine: Sequence[str], widths_pp: Sequence[int],
        widths_p: Sequence[int], channels: int, reduction: bool, reduction_prev: bool,
    ) -> None:
        super().__init__()
        c = channels
        self.reduction, self.channels = reduction, c
        self.pre0 = SelectConvBN(widths_p, c)
        self.pre1 = (SelectFactorizedReduce(widths_pp, c) if reduction_prev
                     else SelectConvBN(widths_pp, c))
        wide = "concat" in combine
        self.ops = nn.ModuleDict()
        for b in range(blocks):
            kinds = {(2 if reduction else 1, 1)}
            if b > 0:
                kinds |= {(1, 1), (1, 2)} if wide else {(1, 1)}
            for j in (0, 1):
                for op in ops:
                    for stride, mult in sorted(kinds):
                        self.ops[_op_key(b, j, op, stride, mult)] = build_op(op, mult * c, c,
                                                                             stride)
        self.out_reduce = nn.ModuleDict(
            {str(s): FactorizedReduce(c, c) for s in (0, 1)} if reduction else {})
        #: widest width of every hidden state (what the next cells' 1x1 layers are sized for)
        self.widths = [c, c] + [2 * c if wide else c] * blocks

    def op(self, b: int, j: int, name: str, state: int, width: int) -> nn.Module:
        """The shared op of block ``b``, slot ``j`` for an input ``state`` of ``width``."""
        stride = 2 if self.reduction and state < 2 else 1
        return self.ops[_op_key(b, j, name, stride, width // self.channels)]

    def plan(self, spec: Any) -> tuple[list[tuple[int, nn.Module]], list[int]]:
        """The (input state, shared op) of every operand of cell genotype ``spec``, in block
        and slot order, and the width of every hidden state."""
        operands: list[tuple[int, nn.Module]] = []
        widths = [self.channels, self.channels]
        for b, block in enumerate(spec.blocks):
            for j, (state, name) in enumerate(zip(block.inputs, block.ops, strict=True)):
                operands.append((state, self.op(b, j, name, state, widths[state])))
            widths.append(2 * self.channels if block.combine == "concat" else self.channels)
        return operands, widths

    def forward(self, spec: Any, h: Tensor, layout: Layout, h_prev: Tensor,
                layout_prev: Layout) -> tuple[Tensor, Layout]:
        """The path of cell genotype ``spec``; returns the rectified output and its layout."""
        operands, widths = self.plan(spec)
        states = [self.pre0(h, layout), self.pre1(h_prev, layout_prev)]
        relu: dict[int, Tensor] = {}
        for b, block in enumerate(spec.blocks):
            outs = []
            for state, op in operands[2 * b: 2 * b + 2]:
                if isinstance(op, PreAct):
                    if state not in relu:
                        relu[state] = F.relu(states[state])
                    outs.append(op.body(relu[state]))
                else:
                    outs.append(op(states[state]))
            concat = block.combine == "concat"
            states.append(torch.cat(outs, dim=1) if concat else outs[0] + outs[1])
        chosen = [self.out_reduce[str(s)](states[s]) if self.reduction and s < 2 else states[s]
                  for s in spec.concat]
        out = F.relu(chosen[0]) if len(chosen) == 1 else torch.cat(chosen, dim=1).relu_()
        return out, tuple((s, widths[s]) for s in spec.concat)

    def path(self, spec: Any) -> list[nn.Module]:
        """The modules a cell genotype uses (the 1x1 input layers included)."""
        mods: list[nn.Module] = [self.pre0, self.pre1]
        mods += [op for _, op in self.plan(spec)[0]]
        mods += [self.out_reduce[str(s)] for s in spec.concat if self.reduction and s < 2]
        return mods


class SuperNet(nn.Module):
    """The supernet of a NASNet-style space (its ops, blocks and combine ops) in the macro
    network of ``nascli.models.Network`` (same stem, cell plan and classifier).

    ``forward(x, genotype)`` runs the genotype's single path. Network settings default to the
    space's search-time ones (``space.network``).
    """

    def __init__(
        self, space: Any, num_classes: int, in_channels: int, *,
        cells_per_stage: int | None = None, channels: int | None = None,
        stem: str | None = None, stem_multiplier: float = 3,
    ) -> None:
        super().__init__()
        net = dict(getattr(space, "network", {}))
        n = int(cells_per_stage or net.get("cells_per_stage", 1))
        c = int(channels or net.get("channels", 8))
        stem = stem or net.get("stem", "cifar")
        if stem not in STEMS:
            raise ValueError(f"stem={stem!r} is invalid; expected one of {', '.join(STEMS)}")
        if not (hasattr(space, "ops") and hasattr(space, "blocks") and hasattr(space, "combine")):
            raise ValueError(f"space {getattr(space, 'name', space)!r} has no NASNet-style "
                             "cells (ops, blocks, combine); a supernet needs one")
        self.space = space
        self.settings = {"cells_per_stage": n, "channels": c, "stem": stem,
                         "stem_multiplier": stem_multiplier}
        self.num_classes, self.in_channels = int(num_classes), int(in_channels)
        cifar = stem == "cifar"
        c_stem = int((c if cifar else 32) * stem_multiplier)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, c_stem, 3, 1 if cifar else 2, 1 if cifar else 0, bias=False),
            nn.BatchNorm2d(c_stem), nn.ReLU(inplace=True))
        self.cells = nn.ModuleList()
        self.kinds: list[str] = []
        w_pp, w_p, reduction_prev = [c_stem], [c_stem], False
        for c_cell, reduction in _macro_plan(c, n, stem):
            cell = SuperCell(space.ops, space.blocks, space.combine, w_pp, w_p, c_cell,
                             reduction, reduction_prev)
            self.cells.append(cell)
            self.kinds.append("reduce" if reduction else "normal")
            w_pp, w_p, reduction_prev = w_p, cell.widths, reduction
        self.classifier = SelectLinear(w_p, num_classes)
        #: per image size: (params, MACs) of each shared module, MACs per used 1x1 column
        self._cost_cache: dict[str, Any] = {"size": None, "mods": {}, "per_column": {}}

    def forward(self, x: Tensor, genotype: Any) -> Tensor:
        """Logits (N, num_classes) of ``genotype``'s path."""
        h = self.stem(x)
        stem_layout: Layout = ((0, h.shape[1]),)
        h_prev, layout_prev, layout = h, stem_layout, stem_layout
        for kind, cell in zip(self.kinds, self.cells, strict=True):
            out, out_layout = cell(genotype.cell(kind), h, layout, h_prev, layout_prev)
            h_prev, layout_prev, h, layout = h, layout, out, out_layout
        return self.classifier(h.mean((2, 3)), layout)

    def path(self, genotype: Any) -> list[nn.Module]:
        """Every module ``genotype``'s path runs, in order (stem and classifier included)."""
        mods: list[nn.Module] = [self.stem]
        for kind, cell in zip(self.kinds, self.cells, strict=True):
            mods += cell.path(genotype.cell(kind))
        return [*mods, self.classifier]

    def path_norms(self, genotype: Any) -> list[nn.modules.batchnorm._BatchNorm]:
        """The BatchNorm layers on ``genotype``'s path (what recalibration re-estimates)."""
        seen: dict[int, nn.Module] = {}
        for mod in self.path(genotype):
            for m in mod.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    seen.setdefault(id(m), m)
        return list(seen.values())

    def layouts(self, genotype: Any) -> list[tuple[Layout, Layout]]:
        """The input layouts ``(h, h_prev)`` of every cell, then the classifier's ``(h, h)``."""
        stem: Layout = ((0, self.stem[0].out_channels),)
        out, p, pp = [], stem, stem
        for kind, cell in zip(self.kinds, self.cells, strict=True):
            out.append((p, pp))
            spec = genotype.cell(kind)
            widths = cell.plan(spec)[1]
            p, pp = tuple((s, widths[s]) for s in spec.concat), p
        return [*out, (p, p)]

    @torch.no_grad()
    def cost(self, genotype: Any, image_size: Sequence[int]) -> tuple[int, int]:
        """``(parameters, multiply-adds of one image)`` of the stand-alone network of
        ``genotype``: the parameters of its path, the 1x1 layers counting only the columns it
        uses; multiply-adds counted as :func:`nascli.models.count_macs` counts them.

        Each shared module's count is measured once (a one-image forward) and cached; the 1x1
        layers' counts follow from the columns a path uses.
        """
        path = self.path(genotype)
        fixed = [m for m in path if not isinstance(m, _Select)]
        cache = self._cost_cache
        if cache["size"] != tuple(image_size) or any(id(m) not in cache["mods"] for m in fixed):
            self._measure(genotype, path, image_size, cache)
        params = sum(cache["mods"][id(m)][0] for m in fixed)
        macs = sum(cache["mods"][id(m)][1] for m in fixed)
        layouts = self.layouts(genotype)
        selects: list[tuple[_Select, Layout]] = [(self.classifier, layouts[-1][0])]
        for cell, (p, pp) in zip(self.cells, layouts, strict=False):
            selects += [(cell.pre0, p), (cell.pre1, pp)]
        for m, layout in selects:
            m.used = sum(w for _, w in layout)
            m.macs = cache["per_column"][id(m)] * m.used
            params += m.path_params()
            macs += m.macs
        return int(params), int(macs)

    def _measure(self, genotype: Any, path: list[nn.Module], image_size: Sequence[int],
                 cache: dict[str, Any]) -> None:
        """Count the parameters and multiply-adds of every module on ``path`` (one image)."""
        if cache["size"] != tuple(image_size):
            cache.update(size=tuple(image_size), mods={}, per_column={})
        owner: dict[int, int] = {}
        counts: dict[int, int] = {}
        for mod in path:
            if not isinstance(mod, _Select):
                counts[id(mod)] = 0
                for m in mod.modules():
                    if isinstance(m, nn.Conv2d | nn.Linear):
                        owner.setdefault(id(m), id(mod))

        def hook(module: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
            counts[owner[id(module)]] += _layer_macs(module, args, out)

        convs = {id(m): m for mod in path for m in mod.modules() if id(m) in owner}
        handles = [m.register_forward_hook(hook) for m in convs.values()]
        try:
            self._eval_forward(genotype, path, image_size)
        finally:
            for h in handles:
                h.remove()
        for mod in path:
            if isinstance(mod, _Select):
                cache["per_column"][id(mod)] = mod.macs // mod.used  # linear in the columns
            else:
                params = sum(q.numel() for q in {id(q): q for q in mod.parameters()}.values())
                cache["mods"][id(mod)] = (params, counts[id(mod)])

    def _eval_forward(self, genotype: Any, path: list[nn.Module],
                      image_size: Sequence[int]) -> None:
        """One zero image through ``genotype``'s path, its modules in eval mode."""
        # the path's modes only: switching all of a supernet's modules takes tens of ms
        modes = [(m, m.training) for mod in path for m in mod.modules()]
        p = next(self.parameters())
        try:
            for m, _ in modes:
                m.training = False
            self(torch.zeros((1, self.in_channels, *image_size), device=p.device, dtype=p.dtype),
                 genotype)
        finally:
            for m, training in modes:
                m.training = training

    def extract(self, genotype: Any) -> nn.Module:
        """A stand-alone network (``nascli.models.build_network``) of ``genotype`` that holds
        copies of the path's weights and BatchNorm statistics (train it further, or export it)."""
        from nascli.models import build_network

        g = self.space.validate(genotype)
        s = self.settings
        net = build_network(g, num_classes=self.num_classes, in_channels=self.in_channels,
                            cells_per_stage=s["cells_per_stage"], channels=s["channels"],
                            stem=s["stem"], stem_multiplier=s["stem_multiplier"])
        p = next(self.parameters())
        net.to(p.device)
        net.stem.load_state_dict(self.stem.state_dict())
        layout_pp = layout_p = ((0, net.stem[0].out_channels),)
        for kind, cell, target in zip(self.kinds, self.cells, net.cells, strict=True):
            layout = _copy_cell(cell, target, g.cell(kind), layout_pp, layout_p)
            layout_pp, layout_p = layout_p, layout
        with torch.no_grad():
            net.classifier.weight.copy_(self.classifier.columns(self.classifier.weight,
                                                                layout_p))
            net.classifier.bias.copy_(self.classifier.bias)
        return net


def _copy_cell(cell: SuperCell, target: nn.Module, spec: Any, layout_pp: Layout,
               layout_p: Layout) -> Layout:
    """Copy one cell's path into a stand-alone ``nascli.models.Cell``; returns its out layout."""
    with torch.no_grad():
        target.pre0[0].weight.copy_(cell.pre0.columns(cell.pre0.weight, layout_p))
        target.pre0[1].load_state_dict(cell.pre0.bn.state_dict())
        if isinstance(cell.pre1, SelectFactorizedReduce):
            target.pre1.conv_1.weight.copy_(cell.pre1.columns(cell.pre1.weight_1, layout_pp))
            if cell.pre1.weight_2 is not None:
                target.pre1.conv_2.weight.copy_(cell.pre1.columns(cell.pre1.weight_2, layout_pp))
            target.pre1.bn.load_state_dict(cell.pre1.bn.state_dict())
        else:
            target.pre1[0].weight.copy_(cell.pre1.columns(cell.pre1.weight, layout_pp))
            target.pre1[1].load_state_dict(cell.pre1.bn.state_dict())
    operands, widths = cell.plan(spec)
    for k, (_, op) in enumerate(operands):
        target.ops[k].load_state_dict(op.state_dict())
    for s, mod in target.out_reduce.items():
        mod.load_state_dict(cell.out_reduce[s].state_dict())
    return tuple((s, widths[s]) for s in spec.concat)
