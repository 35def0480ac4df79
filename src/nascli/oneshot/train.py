"""Single-path supernet training (SPOS): one sampled path per step, a checkpoint per epoch.

Training runs the one training loop (:func:`nascli.training.recipe.fit`) on a module whose
forward draws a new path for every batch, so the recipe's SGD, cosine schedule, clipping and
divergence checks are the ones every candidate trains with. Paths are drawn ``uniform`` (each
decision independently, as SPOS) or ``fair``: each decision cycles through its choices in a
fresh random order, so over any ``k`` consecutive steps every one of a decision's ``k`` choices
is trained exactly once (the strict fairness of FairNAS, applied to inputs as well as ops).

The checkpoint (``supernet.pt``) is written atomically after each epoch and holds everything a
resumed run needs to continue exactly: weights, optimizer, schedule, sampler and data order.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from nascli.data.loader import BatchLoader
from nascli.data.splits import stratified_subset
from nascli.errors import UserError
from nascli.oneshot.supernet import SuperNet
from nascli.training.recipe import RecipeError, TrainRecipe, fit

log = logging.getLogger("nascli.oneshot")

SAMPLINGS = ("uniform", "fair")
#: ``format`` field of a supernet checkpoint, and its version.
FORMAT, VERSION = "nascli-supernet", 1


class SupernetError(UserError):
    """A supernet checkpoint that cannot be used here; the message names the file and why."""


@dataclass
class SupernetTraining(TrainRecipe):
    """How the supernet is trained (the ``oneshot`` section of ``nascli search``).

    ``max_steps`` caps the steps of each epoch; ``data_fraction`` of the train split is used.
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.01
    sampling: str = "fair"
    data_fraction: float = 1.0
    augment: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sampling not in SAMPLINGS:
            raise RecipeError(f"sampling={self.sampling!r} is invalid; expected one of "
                              f"{', '.join(SAMPLINGS)}")
        if not 0.0 < self.data_fraction <= 1.0:
            raise RecipeError(f"data_fraction={self.data_fraction!r} is invalid; expected a "
                              "fraction in (0, 1]")


class PathSampler:
    """Draws the path of each training step from the space's decisions (``uniform`` or
    ``fair``); its state is part of the checkpoint."""

    def __init__(self, space: Any, sampling: str = "uniform", seed: int = 0) -> None:
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling={sampling!r} is invalid; expected one of "
                             f"{', '.join(SAMPLINGS)}")
        self.space, self.sampling = space, sampling
        self.sizes = [len(d.choices) for d in space.decisions]
        self.rng = np.random.default_rng(seed)
        self.queues: list[list[int]] = [[] for _ in self.sizes]

    def indices(self) -> list[int]:
        """One choice index per decision for the next step."""
        if self.sampling == "uniform":
            return [int(self.rng.integers(k)) for k in self.sizes]
        out = []
        for k, queue in zip(self.sizes, self.queues, strict=True):
            if not queue:
                queue.extend(int(i) for i in self.rng.permutation(k))
            out.append(queue.pop())
        return out

    def __call__(self) -> Any:
        """The next path's genotype."""
        return self.space.decode(self.indices())

    def state_dict(self) -> dict[str, Any]:
        """The random state and the fair-sampling queues."""
        return {"sampling": self.sampling, "rng": self.rng.bit_generator.state,
                "queues": [list(q) for q in self.queues]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved state."""
        if state["sampling"] != self.sampling or len(state["queues"]) != len(self.sizes):
            raise ValueError("sampler state is for another sampling or space")
        self.rng.bit_generator.state = state["rng"]
        self.queues = [[int(i) for i in q] for q in state["queues"]]


class SinglePath(nn.Module):
    """``forward(x)`` runs a newly drawn path of the supernet (one per training step)."""

    def __init__(self, supernet: SuperNet, sampler: PathSampler) -> None:
        super().__init__()
        self.supernet, self.sampler = supernet, sampler

    def forward(self, x: Tensor) -> Tensor:
        """Logits of the next sampled path."""
        return self.supernet(x, self.sampler())


@dataclass
class SupernetResult:
    """What supernet training did: epochs done, mean loss per epoch, steps, seconds."""

    epochs: int
    losses: list[float]
    steps: int
    seconds: float
    resumed_from: int = 0


def train_supernet(
    supernet: SuperNet, data: Any, recipe: SupernetTraining, *, device: torch.device,
    checkpoint: Path | None = None, seed: int = 0, amp: str = "none",
    channels_last: bool = False,
    on_step: Callable[[int, int, float], None] | None = None,
) -> SupernetResult:
    """Train ``supernet`` one sampled path per step; resume from ``checkpoint`` if it exists.

    After every epoch the checkpoint is rewritten atomically. ``on_step(epoch, step, loss)``
    reports progress. A finished checkpoint returns at once.
    """
    split = stratified_subset(data.train, recipe.data_fraction, seed).to(device)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    loader = BatchLoader(split, batch_size=min(recipe.batch_size, len(split)), shuffle=True,
                         drop_last=True, augment=data.augment if recipe.augment else None,
                         device=device, generator=gen, channels_last=channels_last)
    steps = len(loader) if recipe.max_steps is None else min(len(loader), recipe.max_steps)
    sampler = PathSampler(supernet.space, recipe.sampling, seed)
    optimizer = recipe.optimizer(supernet.parameters())
    scheduler = recipe.scheduler(optimizer, steps * recipe.epochs)
    state = {"epoch": 0, "losses": [], "seconds": 0.0}
    if checkpoint is not None and checkpoint.is_file():
        saved = read_checkpoint(checkpoint, supernet, data)
        _check_recipe(checkpoint, saved, recipe)
        try:
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            sampler.load_state_dict(saved["sampler"])
            gen.set_state(saved["generator"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise SupernetError(f"{checkpoint}: damaged training state ({exc}); delete it to "
                                "train the supernet again") from None
        state = {k: saved[k] for k in state}
        log.info("supernet: resuming %s after epoch %d of %d", checkpoint, state["epoch"],
                 recipe.epochs)
    start, t0 = int(state["epoch"]), time.perf_counter()
    losses = list(state["losses"])

    def after_epoch(epoch: int, loss: float, n: int) -> None:
        losses.append(loss)
        seconds = state["seconds"] + time.perf_counter() - t0
        log.info("supernet epoch %d/%d: loss %.4f, %d steps, %.1f s", epoch + 1, recipe.epochs,
                 loss, n, seconds)
        if checkpoint is not None:
            save_checkpoint(checkpoint, supernet, data, recipe, epoch=epoch + 1, losses=losses,
                            seconds=seconds, optimizer=optimizer, scheduler=scheduler,
                            sampler=sampler, generator=gen)

    def step_cb(step: int, loss: float) -> None:
        if on_step is not None:  # losses holds one entry per finished epoch
            on_step(len(losses), step, loss)

    result = fit(SinglePath(supernet, sampler), loader, recipe, device=device,
                 steps_per_epoch=steps, optimizer=optimizer, scheduler=scheduler,
                 start_epoch=start, amp=amp, channels_last=channels_last,
                 after_epoch=after_epoch, on_step=step_cb)
    return SupernetResult(epochs=recipe.epochs, losses=losses, steps=result.steps,
                          seconds=state["seconds"] + time.perf_counter() - t0,
                          resumed_from=start)


def _check_recipe(path: Path, saved: dict[str, Any], recipe: SupernetTraining) -> None:
    """A resumed training must use the recipe it started with (epochs may grow)."""
    old = dict(saved["recipe"])
    new = asdict(recipe)
    for key in sorted(set(old) | set(new)):
        if key != "epochs" and old.get(key) != new.get(key):
            raise SupernetError(f"{path}: supernet training started with {key}="
                                f"{old.get(key)!r}, not {new.get(key)!r}; resume with the same "
                                "oneshot settings or train a new supernet")
    if recipe.epochs < int(saved["epoch"]):
        raise SupernetError(f"{path}: the supernet already trained {saved['epoch']} epochs, "
                            f"more than oneshot.epochs={recipe.epochs}")


def _meta(supernet: SuperNet, data: Any) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "space_name": supernet.space.name,
            "space": supernet.space.config(), "settings": dict(supernet.settings),
            "num_classes": int(data.num_classes), "in_channels": int(data.in_channels)}


def save_checkpoint(path: Path, supernet: SuperNet, data: Any, recipe: SupernetTraining, *,
                    epoch: int, losses: list[float], seconds: float,
                    optimizer: torch.optim.Optimizer, scheduler: Any, sampler: PathSampler,
                    generator: torch.Generator) -> None:
    """Write the supernet and its training state atomically (``torch.load(...,
    weights_only=True)`` reads it)."""
    from nascli.engine.rundir import atomic_torch_save

    atomic_torch_save({
        **_meta(supernet, data), "recipe": asdict(recipe), "epoch": int(epoch),
        "finished": int(epoch) >= recipe.epochs, "losses": [float(x) for x in losses],
        "seconds": float(seconds), "model": supernet.state_dict(),
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "sampler": sampler.state_dict(), "generator": generator.get_state(),
    }, path)


def read_checkpoint(path: Path, supernet: SuperNet, data: Any) -> dict[str, Any]:
    """Load a supernet checkpoint into ``supernet`` after checking that it fits (format, space,
    network, classes); returns the checkpoint. Raises :class:`SupernetError` in one line."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SupernetError(f"{path}: no such supernet checkpoint") from None
    except Exception as exc:  # truncated, not a torch file, unsafe content
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise SupernetError(f"{path}: not a readable supernet checkpoint ({reason})") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise SupernetError(f"{path}: not a nascli supernet checkpoint (written by nascli "
                            "search strategy=oneshot as supernet.pt)")
    if saved.get("version") != VERSION:
        raise SupernetError(f"{path}: supernet checkpoint version {saved.get('version')!r}; "
                            f"this nascli reads version {VERSION}")
    expected = _meta(supernet, data)
    for key in ("space_name", "space", "settings", "num_classes", "in_channels"):
        if saved.get(key) != expected[key]:
            raise SupernetError(f"{path}: the supernet was trained for {key}={saved.get(key)!r},"
                                f" this run has {expected[key]!r}")
    try:
        _check_fields(saved)
        supernet.load_state_dict(saved["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0][:200]
        raise SupernetError(f"{path}: damaged supernet checkpoint ({reason})") from None
    bad = [n for n, t in supernet.state_dict().items()
           if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise SupernetError(f"{path}: damaged supernet checkpoint (non-finite values in {bad[0]})")
    return saved


def _check_fields(saved: dict[str, Any]) -> None:
    for key, kind in (("epoch", int), ("finished", bool), ("losses", list), ("seconds", float),
                      ("model", dict), ("recipe", dict)):
        if not isinstance(saved.get(key), kind):
            raise TypeError(f"field {key!r} is {type(saved.get(key)).__name__}")
    if saved["epoch"] < 0 or not math.isfinite(saved["seconds"]):
        raise ValueError("epoch or seconds out of range")
