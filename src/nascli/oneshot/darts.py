"""Differentiable architecture search (DARTS, Liu et al. 2019) over a NASNet cell space.

The search network is the stand-alone macro network (``nascli.models.network``) whose cells hold
every edge at once: each block b reads every hidden state i in 0..b+1 through a *mixed op*, the
softmax(alpha[edge])-weighted sum of all the space's ops, and sums its incoming edges. Each step
takes an Adam step on the architecture parameters alpha (validation loss, first or second
order) and an SGD step on the weights (training loss). The genotype keeps, per block, the two
strongest edges with their strongest ops, and concatenates every block state, as DARTS does.

Run-directory files: ``darts_alphas.json`` (``{"ops", "edges", "epochs": [record, ...]}``, one
record per finished epoch) and ``darts.ckpt`` (everything needed to resume after an epoch).
The checkpoint is written first; a run killed between the two writes rewrites the JSON from the
checkpoint when it resumes, so the two always agree once a run is going.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import Tensor, nn
from torch.func import functional_call

from nascli.data.loader import BatchLoader
from nascli.data.splits import DataSplits
from nascli.engine.console import console
from nascli.engine.rundir import RunDirError, atomic_torch_save, atomic_write_text
from nascli.models.network import _macro_plan
from nascli.models.ops import OPS, ConvBN, FactorizedReduce, PreAct, build_op
from nascli.spaces.genotype import Block, CellGenotype, NASNetGenotype
from nascli.spaces.nasnet import MAX_CELLS_PER_STAGE, MAX_CHANNELS, NASNetSpace
from nascli.strategies.base import check_option, is_int, is_number
from nascli.training import DivergedError, evaluate

log = logging.getLogger("nascli.darts")

ALPHAS_FILE = "darts_alphas.json"
CHECKPOINT_FILE = "darts.ckpt"
CHECKPOINT_FORMAT = "nascli-darts-1"
#: DARTS's finite-difference step for the Hessian-vector product: 0.01 / ||grad||
FD_SCALE = 0.01

#: Ops without weights (skip connections and pooling): DARTS's known failure mode is a genotype
#: full of them, so every epoch record reports their share.
PARAMETER_FREE_OPS: frozenset[str] = frozenset(
    n for n in OPS.names() if n == "identity" or n.startswith(("avg_pool", "max_pool"))
)


# -- genotypes from alphas ------------------------------------------------------------------------
def cell_edges(blocks: int) -> list[tuple[int, int]]:
    """The (block, input state) pair of every mixed edge, in alpha row order: B(B+3)/2 rows."""
    return [(b, i) for b in range(blocks) for i in range(b + 2)]


def param_free_share(genotype: NASNetGenotype) -> float:
    """Fraction of the genotype's chosen ops (both cells) that are in :data:`PARAMETER_FREE_OPS`."""
    ops = [op for cell in (genotype.normal, genotype.reduce) for b in cell.blocks for op in b.ops]
    return sum(op in PARAMETER_FREE_OPS for op in ops) / len(ops)


def derive_genotype(space: NASNetSpace, alpha_normal: Tensor,
                    alpha_reduce: Tensor) -> NASNetGenotype:
    """The DARTS genotype of ``alpha_*`` (edges, ops): per block the two strongest edges
    (strength: the edge's largest softmax weight; ties go to the lower state), strongest first,
    each with its strongest op; every block state is concatenated. Validated by the space."""
    cells = [_derive_cell(space, alpha, kind)
             for kind, alpha in (("normal", alpha_normal), ("reduce", alpha_reduce))]
    return space.validate(NASNetGenotype(normal=cells[0], reduce=cells[1]))


def _derive_cell(space: NASNetSpace, alpha: Tensor, kind: str) -> CellGenotype:
    edges = cell_edges(space.blocks)
    weights = F.softmax(torch.as_tensor(alpha).detach().float().cpu(), dim=-1)
    if tuple(weights.shape) != (len(edges), len(space.ops)):
        raise ValueError(f"alpha_{kind} has shape {tuple(weights.shape)}; expected "
                         f"({len(edges)}, {len(space.ops)}) (edges, ops)")
    strength, best = weights.max(dim=-1)
    combine = "add" if "add" in space.combine else space.combine[0]
    blocks, row = [], 0
    for b in range(space.blocks):
        top = sorted(range(b + 2), key=lambda i: (-float(strength[row + i]), i))[:2]
        ops = [space.ops[int(best[row + i])] for i in top]
        blocks.append(Block(inputs=(top[0], top[1]), ops=(ops[0], ops[1]), combine=combine))
        row += b + 2
    return CellGenotype(blocks=tuple(blocks), concat=tuple(range(2, space.blocks + 2)))


# -- the search network ---------------------------------------------------------------------------
class MixedOp(nn.Module):
    """sum_k w[k] * op_k(x) over the space's ops; (N, C_in, H, W) -> (N, C, H / stride, ...)."""

    def __init__(self, ops: Sequence[str], c_in: int, c: int, stride: int) -> None:
        super().__init__()
        built = []
        for name in ops:
            op = build_op(name, c_in, c, stride)
            if name.startswith(("avg_pool", "max_pool")):
                # as in DARTS: pooling outputs are not normalised like the conv ops' BN outputs,
                # and an unnormalised edge would win or lose on scale alone
                op = nn.Sequential(op, nn.BatchNorm2d(c, affine=False))
            built.append(op)
        self.ops = nn.ModuleList(built)
        self._preact = tuple(isinstance(op, PreAct) for op in built)

    def forward(self, x: Tensor, x_relu: Tensor, weights: Tensor) -> Tensor:
        """``x`` a hidden state, ``x_relu`` = relu(x) (shared by the edge's ReLU-first ops),
        ``weights`` (ops,) softmaxed."""
        out = None
        for w, op, pre in zip(weights, self.ops, self._preact, strict=True):
            y = w * (op.body(x_relu) if pre else op(x))
            out = y if out is None else out + y
        return out


class SearchCell(nn.Module):
    """A cell with every edge mixed: ``forward(h, h_prev, weights)`` -> relu(concat of the B
    block states), (N, B * C, H or H/2, ...). Inputs are rectified, as between stand-alone
    cells (``nascli.models.cells``); ``weights`` (edges, ops) is the softmax of the alphas."""

    def __init__(self, ops: Sequence[str], blocks: int, c_prev_prev: int, c_prev: int, c: int,
                 reduction: bool, reduction_prev: bool) -> None:
        super().__init__()
        self.blocks = blocks
        self.reduction = reduction
        self.pre0 = ConvBN(c_prev, c, 1)
        self.pre1 = FactorizedReduce(c_prev_prev, c) if reduction_prev else ConvBN(c_prev_prev, c)
        self.edges = nn.ModuleList(
            MixedOp(ops, c, c, 2 if reduction and i < 2 else 1) for _, i in cell_edges(blocks)
        )
        self.out_channels = blocks * c

    def forward(self, h: Tensor, h_prev: Tensor, weights: Tensor) -> Tensor:
        """See the class docstring."""
        states = [self.pre0(h), self.pre1(h_prev)]
        relus = [F.relu(s) for s in states]
        row = 0
        for b in range(self.blocks):
            node = sum(self.edges[row + i](states[i], relus[i], weights[row + i])
                       for i in range(b + 2))
            row += b + 2
            states.append(node)
            relus.append(F.relu(node))
        return torch.cat(states[2:], dim=1).relu_()


class DARTSNetwork(nn.Module):
    """The DARTS search network of a NASNet cell space: (N, in_channels, H, W) -> logits.

    CIFAR stem (3x3 conv with ``3 * channels`` filters - BN - ReLU), the cells of
    ``_macro_plan(channels, cells_per_stage, "cifar")``, global average pool and a linear
    classifier. ``alpha_normal`` and ``alpha_reduce`` (edges, ops) start at 1e-3 * randn
    (seed with ``torch.manual_seed`` first for a reproducible network).
    """

    def __init__(self, space: NASNetSpace, num_classes: int, in_channels: int, channels: int,
                 cells_per_stage: int) -> None:
        super().__init__()
        c_stem = 3 * channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(c_stem), nn.ReLU(inplace=True))
        self.cells = nn.ModuleList()
        c_pp, c_p, reduction_prev = c_stem, c_stem, False
        for c, reduction in _macro_plan(channels, cells_per_stage, "cifar"):
            cell = SearchCell(space.ops, space.blocks, c_pp, c_p, c, reduction, reduction_prev)
            self.cells.append(cell)
            c_pp, c_p, reduction_prev = c_p, cell.out_channels, reduction
        self.classifier = nn.Linear(c_p, num_classes)
        shape = (len(cell_edges(space.blocks)), len(space.ops))
        self.alpha_normal = nn.Parameter(1e-3 * torch.randn(shape))
        self.alpha_reduce = nn.Parameter(1e-3 * torch.randn(shape))

    def arch_parameters(self) -> list[nn.Parameter]:
        """[alpha_normal, alpha_reduce]."""
        return [self.alpha_normal, self.alpha_reduce]

    def named_weights(self) -> list[tuple[str, nn.Parameter]]:
        """(name, parameter) of every weight, the alphas excluded."""
        return [(n, p) for n, p in self.named_parameters() if not n.startswith("alpha_")]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter but the alphas."""
        return [p for _, p in self.named_weights()]

    def forward(self, x: Tensor) -> Tensor:
        """(N, in_channels, H, W) -> (N, num_classes)."""
        normal = F.softmax(self.alpha_normal, dim=-1)
        reduce = F.softmax(self.alpha_reduce, dim=-1)
        h = h_prev = self.stem(x)
        for cell in self.cells:
            h_prev, h = h, cell(h, h_prev, reduce if cell.reduction else normal)
        return self.classifier(h.mean((2, 3)))


# -- the strategy ---------------------------------------------------------------------------------
@dataclass
class DARTSResult:
    """A DARTS run: the genotype derived from the final alphas, one record per epoch (see
    :meth:`DARTS.run`) and the seconds spent searching (over all resumes)."""

    genotype: NASNetGenotype
    epochs: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def _int_in(value: Any, low: int, high: float = math.inf) -> bool:
    return is_int(value) and low <= value <= high


def _positive(value: Any) -> bool:
    return is_number(value) and value > 0


#: (option, test(value, options), what is valid), checked in this order
_RULES: tuple[tuple[str, Callable[[Any, dict[str, Any]], bool], str], ...] = (
    ("seed", lambda v, o: is_int(v), "an integer"),
    ("epochs", lambda v, o: _int_in(v, 1), "an integer >= 1"),
    ("batch_size", lambda v, o: _int_in(v, 1), "an integer >= 1"),
    ("w_lr", lambda v, o: _positive(v), "a positive number"),
    ("w_lr_min", lambda v, o: is_number(v) and 0 <= v <= o["w_lr"], "a number in [0, w_lr]"),
    ("w_momentum", lambda v, o: is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    ("w_weight_decay", lambda v, o: is_number(v) and v >= 0, "a number >= 0"),
    ("alpha_lr", lambda v, o: _positive(v), "a positive number"),
    ("alpha_weight_decay", lambda v, o: is_number(v) and v >= 0, "a number >= 0"),
    ("order", lambda v, o: v in ("first", "second"), "first or second"),
    ("grad_clip", lambda v, o: v is None or _positive(v), "a positive number or null"),
    ("max_steps", lambda v, o: v is None or _int_in(v, 1), "an integer >= 1 or null"),
    ("channels", lambda v, o: v is None or _int_in(v, 1, MAX_CHANNELS),
     f"an integer in 1..{MAX_CHANNELS} or null"),
    ("cells_per_stage", lambda v, o: v is None or _int_in(v, 1, MAX_CELLS_PER_STAGE),
     f"an integer in 1..{MAX_CELLS_PER_STAGE} or null"),
)


class DARTS:
    """Differentiable architecture search (Liu et al. 2019) over a NASNet cell space.

    Not an ask-and-tell strategy: :meth:`run` trains one search network and returns the
    genotype. Defaults are the DARTS paper's CIFAR-10 search settings except ``epochs`` (50 in
    the paper). ``max_steps`` caps the steps per epoch; ``channels`` and ``cells_per_stage``
    default to the space's search-time network (``space.network``); ``order`` is ``first``
    (the validation gradient at the current weights) or ``second`` (the unrolled
    approximation, about three times as slow per step).
    """

    name = "darts"

    def __init__(
        self,
        space: Any,
        seed: int = 0,
        *,
        epochs: int = 10,
        batch_size: int = 64,
        w_lr: float = 0.025,
        w_lr_min: float = 0.001,
        w_momentum: float = 0.9,
        w_weight_decay: float = 3e-4,
        alpha_lr: float = 3e-4,
        alpha_weight_decay: float = 1e-3,
        order: str = "first",
        grad_clip: float | None = 5.0,
        max_steps: int | None = None,
        channels: int | None = None,
        cells_per_stage: int | None = None,
    ) -> None:
        if not (hasattr(space, "ops") and hasattr(space, "blocks")):
            shown = getattr(space, "name", type(space).__name__)
            raise ValueError(f"darts: space {shown!r} is not a NASNet cell space (it has no ops "
                             "and blocks); use space nasnet or darts")
        network = getattr(space, "network", {})
        if network.get("stem", "cifar") != "cifar":
            raise ValueError(f"darts: stem={network['stem']!r} is invalid; darts supports "
                             "stem=cifar")
        options: dict[str, Any] = {
            "seed": seed, "epochs": epochs, "batch_size": batch_size, "w_lr": w_lr,
            "w_lr_min": w_lr_min, "w_momentum": w_momentum, "w_weight_decay": w_weight_decay,
            "alpha_lr": alpha_lr, "alpha_weight_decay": alpha_weight_decay, "order": order,
            "grad_clip": grad_clip, "max_steps": max_steps, "channels": channels,
            "cells_per_stage": cells_per_stage,
        }
        for key, test, valid in _RULES:
            check_option(test(options[key], options), self.name, key, options[key], valid)
        options["channels"] = channels or network.get("channels", 16)
        options["cells_per_stage"] = cells_per_stage or network.get("cells_per_stage", 2)
        self.space = space
        self.seed = int(seed)
        #: every option, JSON-ready, ``channels`` and ``cells_per_stage`` resolved
        self.options = options
        self.epochs = int(epochs)

    def run(self, data: DataSplits, device: str | torch.device, run_dir: Path | None = None,
            progress: bool = False, channels_last: bool = False) -> DARTSResult:
        """Search on ``data`` (a ``DataSplits``: weights train on ``train``, alphas on ``val``).

        After each epoch a record ``{"epoch", "train_loss", "val_acc", "normal", "reduce",
        "genotype", "param_free_share"}`` is logged (``normal``/``reduce``: softmax weights per
        edge, rows in :func:`cell_edges` order, columns in ``space.ops`` order) and, with
        ``run_dir``, written to ``darts_alphas.json`` with a checkpoint ``darts.ckpt``; a run
        finds its checkpoint there and resumes after the last finished epoch. Raises
        ``DivergedError`` on a non-finite loss, ``RunDirError`` for a checkpoint that cannot be
        read or does not fit this run.
        """
        if len(data.train) == 0 or len(data.val) == 0:
            raise ValueError(f"darts needs train and val images; got {len(data.train)} train "
                             f"and {len(data.val)} val (set dataset.val_fraction above 0)")
        search = _Search(self, data, torch.device(device), channels_last)
        if run_dir is not None:
            run_dir = Path(run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            path = run_dir / CHECKPOINT_FILE
            if path.exists():
                search.restore(_read_checkpoint(path), path)
                _write_alphas(run_dir, search)  # the records always match the checkpoint
        total = self.epochs * search.steps
        with _progress(progress, total, search.epoch * search.steps) as advance:
            while search.epoch < self.epochs:
                self._log(search.epoch_pass(advance))
                if run_dir is not None:
                    atomic_torch_save(search.state(), run_dir / CHECKPOINT_FILE)
                    _write_alphas(run_dir, search)
        return search.result()

    def _log(self, record: dict[str, Any]) -> None:
        genotype = self.space.from_json(record["genotype"])
        log.info("darts epoch %d/%d: train loss %.4f, val acc %.4f, parameter-free ops %.0f%%, "
                 "genotype %s", record["epoch"], self.epochs, record["train_loss"],
                 record["val_acc"], 100 * record["param_free_share"], self.space.to_text(genotype))


@contextlib.contextmanager
def _progress(enabled: bool, total: int, done: int) -> Iterator[Callable[[float], None]]:
    """``advance(loss)`` for a rich bar over all steps of the run (a no-op when disabled)."""
    if not enabled:
        yield lambda loss: None
        return
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn(),
                   console=console())
    task = bar.add_task("darts", total=total, completed=done, loss="-")
    with bar:
        yield lambda loss: bar.update(task, advance=1, loss=f"{loss:.4f}")


def _cycle(loader: BatchLoader) -> Iterator[tuple[Tensor, Tensor]]:
    """Batches of ``loader`` forever, a fresh shuffle per pass (val may be smaller than train)."""
    while True:
        yield from loader


def _loss(logits: Tensor, y: Tensor, what: str) -> Tensor:
    loss = F.cross_entropy(logits, y)
    value = float(loss.detach())
    if not math.isfinite(value):
        raise DivergedError(f"darts: the {what} loss is {value}")
    return loss


class _Search:
    """The state of one DARTS run: network, optimizers, schedule, data order, records."""

    def __init__(self, darts: DARTS, data: DataSplits, device: torch.device,
                 channels_last: bool) -> None:
        self.darts, self.device, self.channels_last = darts, device, channels_last
        o = darts.options
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(darts.seed)
            net = DARTSNetwork(darts.space, data.num_classes, data.in_channels, o["channels"],
                               o["cells_per_stage"])
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.net = net.to(device, memory_format=fmt)
        self.generators = {"train": torch.Generator().manual_seed(2 * darts.seed),
                           "val": torch.Generator().manual_seed(2 * darts.seed + 1)}
        self.train = self._loader(data.train, self.generators["train"])
        self.val = self._loader(data.val, self.generators["val"])
        self.eval = BatchLoader(data.val, o["batch_size"], device=device,
                                channels_last=channels_last)
        self.steps = min(len(self.train), o["max_steps"] or len(self.train))
        self.w_opt = torch.optim.SGD(net.weight_parameters(), lr=o["w_lr"],
                                     momentum=o["w_momentum"], weight_decay=o["w_weight_decay"])
        self.a_opt = torch.optim.Adam(net.arch_parameters(), lr=o["alpha_lr"], betas=(0.5, 0.999),
                                      weight_decay=o["alpha_weight_decay"])
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.w_opt, T_max=darts.epochs * self.steps, eta_min=o["w_lr_min"])
        self.epoch, self.seconds = 0, 0.0
        self.records: list[dict[str, Any]] = []

    def _loader(self, split: Any, generator: torch.Generator) -> BatchLoader:
        batch = self.darts.options["batch_size"]
        return BatchLoader(split, batch, shuffle=True, drop_last=len(split) >= batch,
                           device=self.device, generator=generator,
                           channels_last=self.channels_last)

    # -- training ---------------------------------------------------------------------------
    def epoch_pass(self, advance: Callable[[float], None]) -> dict[str, Any]:
        """Train one epoch (an alpha step and a weight step per batch); returns its record."""
        start = time.monotonic()
        self.net.train()
        val = _cycle(self.val)
        total = 0.0
        for _, (x, y) in zip(range(self.steps), self.train, strict=False):
            xv, yv = next(val)
            self._arch_step(x, y, xv, yv)
            loss = self._weight_step(x, y)
            total += loss
            advance(loss)
        self.epoch += 1
        self.records.append(self._record(total / self.steps))
        self.seconds += time.monotonic() - start
        return self.records[-1]

    def _weight_step(self, x: Tensor, y: Tensor) -> float:
        loss = _loss(self.net(x), y, "training")
        self.w_opt.zero_grad(set_to_none=True)
        loss.backward()
        clip = self.darts.options["grad_clip"]
        if clip:
            nn.utils.clip_grad_norm_(self.net.weight_parameters(), clip)
        self.w_opt.step()
        self.scheduler.step()
        return float(loss.detach())

    def _arch_step(self, x: Tensor, y: Tensor, xv: Tensor, yv: Tensor) -> None:
        alphas = self.net.arch_parameters()
        if self.darts.options["order"] == "first":
            grads = torch.autograd.grad(_loss(self.net(xv), yv, "validation"), alphas)
        else:
            grads = self._unrolled_grads(x, y, xv, yv)
        for alpha, grad in zip(alphas, grads, strict=True):
            alpha.grad = grad
        self.a_opt.step()

    def _unrolled_grads(self, x: Tensor, y: Tensor, xv: Tensor, yv: Tensor) -> list[Tensor]:
        """DARTS's second-order alpha gradient (its eq. 7 and 8): grad_alpha L_val(w', alpha)
        - lr * Hessian-vector product, with w' one virtual SGD step (momentum, weight decay) on
        the training batch and the product a central difference of grad_alpha L_train."""
        names, weights = zip(*self.net.named_weights(), strict=True)
        alphas = self.net.arch_parameters()
        lr = self.scheduler.get_last_lr()[0]
        grads = _grad(self._virtual_loss({}, x, y, "training"), weights)
        virtual = self._virtual_step(weights, grads, lr)
        loss = self._virtual_loss(dict(zip(names, virtual, strict=True)), xv, yv, "validation")
        out = _grad(loss, [*alphas, *virtual])
        d_alpha, d_w = out[: len(alphas)], out[len(alphas):]
        eps = FD_SCALE / torch.cat([d.flatten() for d in d_w]).norm().clamp_min(1e-12)
        sides = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                moved = {n: w + sign * eps * d for n, w, d in zip(names, weights, d_w, strict=True)}
            sides.append(_grad(self._virtual_loss(moved, x, y, "training"), alphas))
        return [da - lr * (p - m) / (2 * eps)
                for da, p, m in zip(d_alpha, *sides, strict=True)]

    @torch.no_grad()
    def _virtual_step(self, weights: Sequence[Tensor], grads: Sequence[Tensor],
                      lr: float) -> list[Tensor]:
        """w - lr * (momentum * buffer + grad + weight_decay * w): the SGD step, not taken."""
        o = self.darts.options
        out = []
        for w, g in zip(weights, grads, strict=True):
            step = g + o["w_weight_decay"] * w
            buf = self.w_opt.state.get(w, {}).get("momentum_buffer")
            if buf is not None:
                step += o["w_momentum"] * buf
            out.append((w - lr * step).requires_grad_())
        return out

    def _virtual_loss(self, weights: dict[str, Tensor], x: Tensor, y: Tensor,
                      what: str) -> Tensor:
        """The loss with ``weights`` in place of the network's; BN running statistics are
        updated on copies, so the virtual passes leave the network untouched."""
        buffers = {n: b.clone() for n, b in self.net.named_buffers()}
        return _loss(functional_call(self.net, {**weights, **buffers}, (x,)), y, what)

    def _record(self, train_loss: float) -> dict[str, Any]:
        space, net = self.darts.space, self.net
        genotype = derive_genotype(space, net.alpha_normal, net.alpha_reduce)
        val_acc, _ = evaluate(net, self.eval, device=self.device)
        return {
            "epoch": self.epoch,
            "train_loss": train_loss,
            "val_acc": val_acc,
            "normal": _softmax_rows(net.alpha_normal),
            "reduce": _softmax_rows(net.alpha_reduce),
            "genotype": space.to_json(genotype),
            "param_free_share": param_free_share(genotype),
        }

    def result(self) -> DARTSResult:
        """The genotype of the current alphas, the records and the seconds so far."""
        genotype = derive_genotype(self.darts.space, self.net.alpha_normal, self.net.alpha_reduce)
        return DARTSResult(genotype=genotype, epochs=list(self.records), seconds=self.seconds)

    # -- checkpoints ------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything a resume needs (``torch.load(weights_only=True)`` can read it)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "options": self.darts.options,
            "ops": list(self.darts.space.ops),
            "edges": [list(e) for e in cell_edges(self.darts.space.blocks)],
            "steps_per_epoch": self.steps,
            "epoch": self.epoch,
            "records": self.records,
            "seconds": self.seconds,
            "network": self.net.state_dict(),
            "w_optimizer": self.w_opt.state_dict(),
            "a_optimizer": self.a_opt.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": {"torch": torch.get_rng_state(),
                    **{k: g.get_state() for k, g in self.generators.items()}},
        }

    def restore(self, ckpt: Any, path: Path) -> None:
        """Continue from ``ckpt`` (see :meth:`state`); :class:`RunDirError` naming ``path`` if
        it does not fit this run."""
        problem = _identity_misfit(ckpt, self) or _progress_misfit(ckpt, self.darts.epochs)
        if problem:
            raise RunDirError(f"{path}: {problem}; remove it to start this search afresh")
        try:
            self.net.load_state_dict(ckpt["network"])
            self.w_opt.load_state_dict(ckpt["w_optimizer"])
            self.a_opt.load_state_dict(ckpt["a_optimizer"])
            self.scheduler.load_state_dict(ckpt["scheduler"])
            _check_optimizer_shapes(self.w_opt)
            _check_optimizer_shapes(self.a_opt)
            for key, generator in self.generators.items():
                generator.set_state(ckpt["rng"][key])
            torch.set_rng_state(ckpt["rng"]["torch"])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise RunDirError(f"{path}: does not fit this darts run ({reason}); remove it to "
                              "start this search afresh") from None
        self.epoch, self.records = ckpt["epoch"], list(ckpt["records"])
        self.seconds = float(ckpt["seconds"])


def _grad(loss: Tensor, inputs: Sequence[Tensor]) -> list[Tensor]:
    """d loss / d inputs, zeros for inputs the loss does not reach."""
    grads = torch.autograd.grad(loss, inputs, allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for t, g in zip(inputs, grads, strict=True)]


def _softmax_rows(alpha: Tensor) -> list[list[float]]:
    """Softmax weights per edge (rows) and op (columns), rounded to 6 decimals for the file."""
    return [[round(w, 6) for w in row] for row in F.softmax(alpha.detach(), -1).cpu().tolist()]


# -- run-directory files --------------------------------------------------------------------------
def _write_alphas(run_dir: Path, search: _Search) -> None:
    space = search.darts.space
    doc = {"ops": list(space.ops), "edges": [list(e) for e in cell_edges(space.blocks)],
           "epochs": search.records}
    atomic_write_text(run_dir / ALPHAS_FILE, json.dumps(doc, indent=1) + "\n")


def _read_checkpoint(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types; all mean a damaged file
        raise RunDirError(f"{path}: not a readable darts checkpoint ({type(exc).__name__}); the "
                          "file is cut short or damaged; remove it to start this search afresh"
                          ) from None


def _identity_misfit(ckpt: Any, search: _Search) -> str | None:
    """Why ``ckpt`` is not a checkpoint of this search (format, ops, edges, options), or None."""
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        return f"not a nascli darts checkpoint (this nascli reads format {CHECKPOINT_FORMAT})"
    space = search.darts.space
    if ckpt.get("ops") != list(space.ops):
        return f"it searched other ops ({ckpt.get('ops')!r:.120}), this space has {space.ops}"
    if ckpt.get("edges") != [list(e) for e in cell_edges(space.blocks)]:
        return f"its cells have other edges (this space has blocks={space.blocks})"
    saved = ckpt.get("options")
    if not isinstance(saved, dict):
        return "field 'options' is missing"
    for key, value in search.darts.options.items():
        if saved.get(key) != value:
            return f"it was written with {key}={saved.get(key)!r:.60}, this run has {key}={value!r}"
    if ckpt.get("steps_per_epoch") != search.steps:
        return (f"it ran {ckpt.get('steps_per_epoch')!r:.20} steps per epoch, this run "
                f"{search.steps} (other data)")
    return None


def _progress_misfit(ckpt: dict[str, Any], epochs: int) -> str | None:
    """Why the finished epochs and records of ``ckpt`` are damaged, or None."""
    epoch, records = ckpt.get("epoch"), ckpt.get("records")
    if not _int_in(epoch, 1, epochs):
        return f"field 'epoch' is {epoch!r:.20}; expected an integer in 1..{epochs}"
    if not isinstance(records, list) or len(records) != epoch:
        return f"field 'records' does not hold one record per finished epoch ({epoch})"
    if not all(isinstance(r, dict) and r.get("epoch") == i + 1 for i, r in enumerate(records)):
        return "field 'records' is damaged"
    if not is_number(ckpt.get("seconds")):
        return "field 'seconds' is not a number"
    return None


def _check_optimizer_shapes(optimizer: torch.optim.Optimizer) -> None:
    """Raise ValueError unless every per-parameter state tensor has its parameter's shape."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            for key, value in optimizer.state.get(p, {}).items():
                if isinstance(value, Tensor) and value.dim() and value.shape != p.shape:
                    raise ValueError(f"optimizer state {key} has shape {tuple(value.shape)}, "
                                     f"its parameter {tuple(p.shape)}")
