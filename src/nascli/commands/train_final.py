"""``nascli train-final ARCH``: the full training recipe, test accuracy, resumable checkpoints."""

from __future__ import annotations

import logging
import logging.config
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from nascli.commands.common import build_device, load_data, resolve_arch
from nascli.config import config_dir, instantiate, section
from nascli.data.loader import BatchLoader
from nascli.engine.console import console, is_interactive
from nascli.engine.loggers import NoLogger, build_logger, epoch_scalars
from nascli.engine.rundir import (
    BEST,
    HISTORY,
    STATE,
    RunDir,
    atomic_torch_save,
    now_iso,
    read_json_object,
)
from nascli.engine.signals import graceful
from nascli.errors import UserError, user_error_types
from nascli.genotypes import genotype_from_dict, genotype_to_dict
from nascli.models import build_model, count_macs, count_parameters
from nascli.training import DivergedError, evaluate
from nascli.training.device import ThreadGovernor
from nascli.training.distributed import (
    RankError,
    Ranks,
    data_parallel,
    fits_shared_memory,
    gather_on_main,
    mean_over_ranks,
    prestart,
    process_group,
    rank_device,
    spawn,
    world_size,
)
from nascli.training.recipe import RecipeError, TrainRecipe, fit

log = logging.getLogger("nascli.train_final")

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = 1


@dataclass
class FinalTraining(TrainRecipe):
    """The full recipe of ``train-final`` (the ``train`` section of configs/train_final.yaml):
    the shared training recipe with train-final's defaults, plus the final network's macro
    settings, the auxiliary head and scheduled drop-path."""

    epochs: int = 10
    batch_size: int = 96
    lr: float = 0.025
    label_smoothing: float = 0.1
    auxiliary: bool = True
    auxiliary_weight: float = 0.4
    drop_path: float = 0.2  # final drop-path probability, scheduled linearly from 0
    cells_per_stage: int = 2
    channels: int = 16
    stem: str = "cifar"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.drop_path < 1.0:
            raise RecipeError(f"drop_path={self.drop_path!r} is invalid; expected a number in "
                              "[0, 1)")
        if self.auxiliary_weight < 0:
            raise RecipeError(f"auxiliary_weight={self.auxiliary_weight!r} is invalid; expected "
                              "a number >= 0")
        for key in ("cells_per_stage", "channels"):
            if getattr(self, key) < 1:
                raise RecipeError(f"{key}={getattr(self, key)!r} is invalid; expected an "
                                  "integer >= 1")
        if self.stem not in ("cifar", "imagenet"):
            raise RecipeError(f"stem={self.stem!r} is invalid; expected cifar or imagenet")


def build_final_model(genotype: Any, space: Any, data: Any, t: FinalTraining) -> torch.nn.Module:
    """The final network of ``genotype`` for ``data`` with the recipe's macro settings."""
    return build_model(space, genotype, num_classes=data.num_classes,
                       in_channels=data.in_channels, cells_per_stage=t.cells_per_stage,
                       channels=t.channels, stem=t.stem, auxiliary=t.auxiliary,
                       drop_path=t.drop_path)


class CheckpointError(UserError):
    """A train-final checkpoint that cannot be used; the message names the file and the field."""


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A train-final checkpoint (file or run directory), loaded with ``weights_only=True`` and
    checked field by field (:func:`validate_checkpoint`); ``ckpt["path"]`` is the file."""
    path = checkpoint_path(path)
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the checkpoint file is empty")
    try:
        ckpt = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # a torn or foreign file: say so in one line
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}); the "
                              "file is cut short, damaged or not a checkpoint") from None
    validate_checkpoint(ckpt, path)
    ckpt["path"] = str(path)
    return ckpt


def checkpoint_path(path: Path) -> Path:
    """The checkpoint file that ``path`` (a checkpoint or a train-final run directory) names;
    a search run directory or its ``state.pt`` is refused with a pointer to ``search``."""
    path = Path(path).expanduser()
    run = path if path.is_dir() else path.parent
    is_search = any((run / name).exists() for name in (HISTORY, STATE, BEST))
    if is_search and ((path.is_dir() and not (path / CHECKPOINT).exists())
                      or path.name == STATE):
        raise CheckpointError(
            f"{run} is a search run directory, not a train-final run; continue the search with "
            f"'nascli search resume={run}', or train its best cell with 'nascli train-final {run}'")
    if path.is_dir():
        if not (path / CHECKPOINT).is_file():
            raise CheckpointError(f"{path}: no {CHECKPOINT} here (train-final writes it after "
                                  "each epoch; did the run stop before its first epoch ended?)")
        path = path / CHECKPOINT
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    return path


def validate_checkpoint(ckpt: Any, path: Path | str) -> None:
    """Check every field of a loaded checkpoint (untrusted input) before anything is built,
    trained or written: the config and its recipe, the weights, the genotype, the epoch against
    the recipe, the history, and the optimizer, schedule and RNG states against fresh ones.
    Raises :class:`CheckpointError` naming ``path`` and the field. What needs the network (the
    weights' shapes) is checked when they are loaded (:func:`load_weights`)."""
    where = str(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{where}: not a nascli train-final checkpoint (format "
                              f"{_show(found)}; this nascli reads format {CHECKPOINT_FORMAT})")
    missing = [key for key in CHECKPOINT_FIELDS if key not in ckpt]
    if missing:
        raise CheckpointError(f"{where}: field(s) {', '.join(map(repr, missing))} missing; not "
                              "a complete train-final checkpoint")
    recipe = _check_config(ckpt["config"], where)
    _check_weights(ckpt["model"], where)
    genotype_from_dict(ckpt["genotype"], where=f"{where}: field 'genotype'")
    epoch = ckpt["epoch"]
    if not _is_int(epoch) or not 0 <= epoch <= recipe.epochs:
        raise CheckpointError(f"{where}: field 'epoch' is {_show(epoch)}; expected an integer "
                              f"from 0 to {recipe.epochs} (train.epochs of its config)")
    _check_history(ckpt["history"], epoch, where)
    group, schedule = _fresh_training_state(recipe)
    _check_optimizer(ckpt["optimizer"], group, f"{where}: field 'optimizer'")
    _check_like(ckpt["scheduler"], schedule, f"{where}: field 'scheduler'",
                ("T_max", "eta_min", "base_lrs", "last_epoch"))
    for key in ("generator", "torch_rng"):
        _check_rng_state(ckpt[key], f"{where}: field {key!r}")
    if "rank_rng" in ckpt:  # a DDP run's: each rank's drop-path random state
        if not isinstance(ckpt["rank_rng"], list) or not ckpt["rank_rng"]:
            raise _bad(f"{where}: field 'rank_rng'", ckpt["rank_rng"], "a list of states")
        for i, state in enumerate(ckpt["rank_rng"]):
            _check_rng_state(state, f"{where}: field 'rank_rng'[{i}]")


#: the fields of a checkpoint besides ``format`` (a DDP run's adds ``rank_rng``, the random
#: state of each rank, so that a resume continues exactly)
CHECKPOINT_FIELDS = ("config", "model", "genotype", "epoch", "optimizer", "scheduler",
                     "generator", "torch_rng", "history")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _show(value: Any) -> str:
    """A short description of an untrusted value for an error line."""
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    if value is None or isinstance(value, bool | int | float | str):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    return f"a {type(value).__name__}"


def _bad(name: str, value: Any, expected: str) -> CheckpointError:
    return CheckpointError(f"{name} is {_show(value)}; expected {expected}")


def _check_config(config: Any, where: str) -> FinalTraining:
    """The checkpoint's config: the nodes train-final reads, and its training recipe."""
    name = f"{where}: field 'config'"
    if not isinstance(config, dict):
        raise _bad(name, config, "an object")
    for key in ("train", "dataset", "device"):
        if not isinstance(config.get(key), dict):
            raise _bad(f"{name}.{key}", config.get(key), "an object")
    if not _is_int(config.get("seed")):
        raise _bad(f"{name}.seed", config.get("seed"), "an integer")
    try:
        OmegaConf.create(config)
        return section(FinalTraining, config["train"], "train")
    except (OmegaConfBaseException, ValueError) as exc:  # ConfigError is a ValueError
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{name}: {text}") from None


def _check_weights(weights: Any, where: str) -> None:
    if not isinstance(weights, dict) or not weights:
        raise _bad(f"{where}: field 'model'", weights, "a non-empty state dict")
    for key, value in weights.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise _bad(f"{where}: field 'model' entry {_show(key)}", value, "a tensor")


def _check_history(history: Any, epoch: int, where: str) -> None:
    """One row (an object) per finished epoch, numbered from 1, with a numeric val_acc."""
    name = f"{where}: field 'history'"
    if not isinstance(history, list):
        raise _bad(name, history, "a list of objects, one per finished epoch")
    if len(history) != epoch:
        raise CheckpointError(f"{name} has {len(history)} rows for {epoch} finished epochs")
    for i, row in enumerate(history):
        if not isinstance(row, dict):
            raise _bad(f"{name}[{i}]", row, "an object")
        acc = row.get("val_acc")
        if row.get("epoch") != i + 1 or not (acc is None or isinstance(acc, int | float)):
            raise CheckpointError(f"{name}[{i}] is damaged (epoch {_show(row.get('epoch'))}, "
                                  f"val_acc {_show(acc)})")


def _fresh_training_state(recipe: FinalTraining) -> tuple[dict[str, Any], dict[str, Any]]:
    """The state of a fresh optimizer parameter group (without ``params``) and scheduler made
    from ``recipe``: what a checkpoint's optimizer and scheduler must look like."""
    optimizer = recipe.optimizer([torch.zeros(1, requires_grad=True)])
    scheduler = recipe.scheduler(optimizer, 1)
    group = {k: v for k, v in optimizer.state_dict()["param_groups"][0].items() if k != "params"}
    return group, scheduler.state_dict()


def _check_optimizer(saved: Any, group: dict[str, Any], name: str) -> None:
    """Parameter groups like ``group`` with distinct integer ids; state per known id."""
    if not isinstance(saved, dict) or not isinstance(saved.get("param_groups"), list) \
            or not saved["param_groups"] or not isinstance(saved.get("state"), dict):
        raise _bad(name, saved, "an optimizer state dict ('state' and 'param_groups')")
    ids: list[Any] = []
    for i, saved_group in enumerate(saved["param_groups"]):
        _check_like(saved_group, group, f"{name}.param_groups[{i}]", ("lr", "initial_lr"))
        params = saved_group.get("params")
        if not isinstance(params, list) or not all(_is_int(p) for p in params):
            raise _bad(f"{name}.param_groups[{i}].params", params, "a list of integers")
        ids += params
    if len(set(ids)) != len(ids):
        raise CheckpointError(f"{name}: a parameter id appears twice in param_groups")
    _check_optimizer_state(saved["state"], set(ids), name)


def _check_optimizer_state(state: dict[Any, Any], ids: set[int], name: str) -> None:
    """Per-parameter state: an object of float tensors or numbers for a known parameter id."""
    for key, entry in state.items():
        if not _is_int(key) or key not in ids or not isinstance(entry, dict):
            raise CheckpointError(f"{name}.state has an entry {_show(key)} for no parameter")
        for k, value in entry.items():
            tensor = isinstance(value, torch.Tensor) and value.is_floating_point()
            if not (value is None or tensor or _is_number(value)):
                raise _bad(f"{name}.state[{key}].{k}", value, "a float tensor or a number")


def _check_like(value: Any, ref: Any, name: str, required: tuple[str, ...] = ()) -> None:
    """``value`` has the structure of ``ref`` (a fresh state): the same list lengths and kinds
    of leaves (numbers, flags, strings, tensors of the same dtype and shape) under the keys it
    shares with ``ref``, and every ``required`` key (torch fills in the others, so checkpoints
    of another torch version still load)."""
    if isinstance(ref, dict):
        if not isinstance(value, dict):
            raise _bad(name, value, "an object")
        for key in required:
            if key not in value:
                raise CheckpointError(f"{name}: key {key!r} missing")
        for key in [k for k in ref if k in value]:
            _check_like(value[key], ref[key], f"{name}.{key}")
    elif isinstance(ref, list | tuple):
        if not isinstance(value, list | tuple) or len(value) != len(ref):
            raise _bad(name, value, f"a list of {len(ref)} items")
        for i, (item, sub) in enumerate(zip(value, ref, strict=True)):
            _check_like(item, sub, f"{name}[{i}]")
    elif not _same_kind(value, ref):
        raise _bad(name, value, _kind(ref))


def _kind(ref: Any) -> str:
    """What a value like ``ref`` is, for an error line."""
    if isinstance(ref, torch.Tensor):
        return _show(ref)
    if ref is None or isinstance(ref, bool):
        return "true, false or null"
    return "a number" if isinstance(ref, int | float) else f"a {type(ref).__name__}"


def _same_kind(value: Any, ref: Any) -> bool:
    if isinstance(ref, torch.Tensor):
        return isinstance(value, torch.Tensor) and value.dtype == ref.dtype \
            and value.shape == ref.shape
    if ref is None or isinstance(ref, bool):
        return value is None or isinstance(value, bool)
    if isinstance(ref, int | float):
        return _is_number(value)
    return isinstance(value, type(ref))


def _check_rng_state(value: Any, name: str) -> None:
    """A CPU random-generator state: the right dtype and size, and accepted by a generator."""
    _check_like(value, torch.Generator().get_state(), name)
    try:
        torch.Generator().set_state(value)
    except (RuntimeError, TypeError, ValueError):
        raise CheckpointError(f"{name} is not a valid random-generator state") from None


def load_weights(model: torch.nn.Module, ckpt: dict[str, Any], network: str) -> None:
    """Load a validated checkpoint's weights into ``model``; a network they do not fit (other
    cell, size or dataset) is one line, ``network`` says which network that was."""
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, ValueError, TypeError):
        raise CheckpointError(f"{ckpt['path']}: the checkpoint's weights do not fit {network}") \
            from None


def _resumed_config(ckpt: dict[str, Any], current: DictConfig) -> DictConfig:
    """The checkpoint's config with this command line's ``key=value`` overrides applied
    (e.g. ``train.epochs=600`` to train longer)."""
    from hydra.core.hydra_config import HydraConfig

    cfg = OmegaConf.create(ckpt["config"])
    overrides = HydraConfig.get().overrides.task
    dotlist = [o.lstrip("+") for o in overrides
               if "." in o.split("=", 1)[0] and not o.startswith(("resume=", "~"))]
    for group in ("device", "logger"):
        # a new option (device=cpu to continue a GPU run on a CPU box, logger=tensorboard)
        if any(o.lstrip("+").split("=", 1)[0] == group for o in overrides):
            cfg[group] = OmegaConf.to_container(current[group], resolve=True)
    if dotlist:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(dotlist))
    return cfg


@dataclass
class _Job:
    """Everything one train-final run works on."""

    cfg: DictConfig
    run_dir: RunDir
    genotype: Any
    space: Any
    source: str
    recipe: FinalTraining = field(default_factory=FinalTraining)
    ckpt: dict[str, Any] | None = None
    logger: Any = field(default_factory=NoLogger)  # rank 0's metric logger (logger group)


def _job(cfg: DictConfig) -> _Job:
    """The run directory, genotype and recipe: from a checkpoint (resume) or from ARCH."""
    from hydra.core.hydra_config import HydraConfig

    if cfg.get("resume"):
        ckpt = load_checkpoint(Path(str(cfg.resume)))
        cfg = _resumed_config(ckpt, cfg)
        recipe = section(FinalTraining, cfg.train, "train")
        _check_epochs(ckpt, recipe)
        genotype, space = genotype_from_dict(ckpt["genotype"],
                                             where=f"{ckpt['path']}: field 'genotype'")
        logger = build_logger(cfg, Path(ckpt["path"]).parent)
        run_dir = RunDir(Path(ckpt["path"]).parent)
        run_dir.lock()
        return _Job(cfg, run_dir, genotype, space, f"checkpoint {ckpt['path']}", recipe, ckpt,
                    logger)
    genotype, space, source = resolve_arch(str(cfg.arch))
    recipe = section(FinalTraining, cfg.train, "train")
    logger = build_logger(cfg, HydraConfig.get().runtime.output_dir)  # fails before writing
    run_dir = RunDir(HydraConfig.get().runtime.output_dir)
    if run_dir.is_used() or (run_dir.path / CHECKPOINT).exists():
        raise UserError(f"{run_dir.path} already holds a run; continue it with "
                        f"resume={run_dir.path}, or choose another hydra.run.dir")
    run_dir.lock()
    return _Job(cfg, run_dir, genotype, space, source, recipe, logger=logger)


def _check_epochs(ckpt: dict[str, Any], recipe: FinalTraining) -> None:
    """A checkpoint must not have finished more epochs than the recipe asks for."""
    if ckpt["epoch"] > recipe.epochs:
        raise CheckpointError(f"{ckpt['path']}: the checkpoint has finished {ckpt['epoch']} "
                              f"epochs, more than train.epochs={recipe.epochs}; resume with "
                              f"train.epochs={ckpt['epoch']} or more")


def train_final_task(cfg: DictConfig) -> float | None:
    """The Hydra task of ``nascli train-final``; returns the test accuracy. Where the device
    settings ask for several DDP ranks (``device.gpus`` on CUDA, ``device.ranks`` on the CPU)
    it spawns them and waits (docs/ddp.md)."""
    job = _job(cfg)
    try:
        settings, device = build_device(job.cfg, fixed_shapes=True)
        world = world_size(settings, device)
        if world > 1:
            prestart(_rank_main)  # the ranks' imports overlap loading the data
        data = require_images(load_data(job.cfg, int(job.cfg.seed)), "train", "test")
        if world > 1:
            rank_batch(job.recipe, len(data.train), world)  # too small a batch: say so now
            return _launch(job, data, world)
        return _run(job, data.to(device), settings, device, Ranks())
    finally:
        job.run_dir.unlock()  # free for a resume in this process (a sweep, a notebook, a test)


def _run(job: _Job, data: Any, settings: Any, device: torch.device,
         ranks: Ranks) -> float | None:
    """Build the network (seeded: every rank starts from the same weights), train it (this
    rank's shard under DDP) and, on rank 0, test it, write final.json and show the result.
    Returns the test accuracy (None on the other ranks)."""
    torch.manual_seed(int(job.cfg.seed))
    model = build_final_model(job.genotype, job.space, data, job.recipe).to(device)
    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last)
    counts = _announce(job, model, data, device, ranks.world) if ranks.is_main else (0, 0)
    history = _train(job, model, data, settings, device, ranks)
    if not ranks.is_main:
        return None
    return _finish(job, model, data, settings, device, history, *counts)


def _announce(job: _Job, model: torch.nn.Module, data: Any, device: torch.device,
              world: int) -> tuple[int, int]:
    """Log what is trained where and, for a new run, write config.yaml and the manifest.
    Returns the network's (parameters, multiply-adds)."""
    t, seed = job.recipe, int(job.cfg.seed)
    params = count_parameters(model)
    macs = count_macs(model, (data.in_channels, *data.image_size))
    where = str(device) if world == 1 else f"{world} DDP ranks on {device.type}"
    log.info("training %s: %s", job.source, job.space.to_text(job.genotype))
    log.info("network N=%d channels=%d stem=%s: %.3fM parameters, %.1fM multiply-adds; "
             "dataset %s (%d train, %d val, %d test); device %s", t.cells_per_stage, t.channels,
             t.stem, params / 1e6, macs / 1e6, data.name, len(data.train), len(data.val),
             len(data.test), where)
    if job.ckpt is None:
        OmegaConf.save(job.cfg, job.run_dir.path / "config.yaml", resolve=True)
        job.run_dir.write_manifest(command="train-final", arch=job.source, seed=seed,
                                   device=where, dataset=data.summary(), params=params,
                                   macs=macs, started_at=now_iso(), status="running")
    return params, macs


def _finish(job: _Job, model: torch.nn.Module, data: Any, settings: Any, device: torch.device,
            history: list[dict[str, Any]], params: int, macs: int) -> float | None:
    """Test the trained network, write final.json and the finished manifest, show a table."""
    t = job.recipe
    test = BatchLoader(data.test, batch_size=t.eval_batch_size, device=device)
    test_acc, test_loss = evaluate(model, test, device=device, amp=settings.amp,
                                   channels_last=settings.channels_last)
    test_acc, test_loss = finite_or_none(test_acc), finite_or_none(test_loss)
    result = {"arch": job.source, "genotype": job.space.to_text(job.genotype),
              "test_acc": test_acc, "test_loss": test_loss,
              "val_acc": finite_or_none(history[-1]["val_acc"]) if history else None,
              "epochs": t.epochs, "params": params, "macs": macs,
              "checkpoint": str(job.run_dir.path / CHECKPOINT),
              "history": [{k: finite_or_none(v) if isinstance(v, float) else v
                           for k, v in row.items()} for row in history]}
    job.run_dir.write_json("final.json", result)
    job.run_dir.write_manifest(ended_at=now_iso(), status="finished", test_acc=test_acc)
    _print_result(result, params)
    return test_acc


def finite_or_none(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing or not finite (JSON has no NaN)."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def require_images(data: Any, *splits: str) -> Any:
    """``data`` when each of ``splits`` holds images; else one line naming the empty ones
    (a dataset given as ready-made DataSplits skips the checks of ``load_dataset``)."""
    empty = [s for s in splits if len(getattr(data, s)) == 0]
    if empty:
        raise UserError(f"dataset {data.name}: the {' and '.join(empty)} split(s) hold no "
                        f"images ({len(data.train)} train, {len(data.val)} val, "
                        f"{len(data.test)} test); add images")
    return data


def rank_batch(t: FinalTraining, samples: int, world: int) -> int:
    """Samples each of ``world`` ranks trains on per step: the global batch
    (``train.batch_size``, at most ``samples``) split evenly, a remainder left out (a batch of
    97 on 4 ranks trains 4 x 24 = 96 a step); the learning rate stays the recipe's."""
    batch = min(t.batch_size, samples)
    if batch < world:
        raise UserError(f"train.batch_size={t.batch_size} leaves {world} DDP ranks less than "
                        f"one sample each; use train.batch_size={world} or more, or fewer ranks")
    return batch // world


def _train(job: _Job, model: torch.nn.Module, data: Any, settings: Any, device: torch.device,
           ranks: Ranks | None = None) -> list[dict[str, Any]]:
    """The epochs of the recipe with per-epoch validation and an atomic checkpoint each.

    Under DDP each rank trains on its part of every global batch (the shuffle and
    augmentation draws come from one seeded generator all ranks share) and rank 0 alone
    validates, logs and writes checkpoints; other ranks return an empty history."""
    t, ranks = job.recipe, ranks or Ranks()
    seed = int(job.cfg.seed)
    gen = torch.Generator().manual_seed(seed)
    per_rank = rank_batch(t, len(data.train), ranks.world)
    if ranks.is_main and per_rank * ranks.world < min(t.batch_size, len(data.train)):
        log.info("train.batch_size=%d over %d DDP ranks: %d samples a rank, %d a step",
                 t.batch_size, ranks.world, per_rank, per_rank * ranks.world)
    train = BatchLoader(data.train, batch_size=per_rank * ranks.world, shuffle=True,
                        drop_last=True, augment=data.augment, device=device, generator=gen,
                        channels_last=settings.channels_last,
                        shard=(ranks.rank, ranks.world) if ranks.distributed else None)
    steps = len(train) if t.max_steps is None else min(len(train), t.max_steps)
    optimizer = t.optimizer(model.parameters())
    scheduler = t.scheduler(optimizer, t.epochs * steps)
    scaler = torch.amp.GradScaler("cuda") if settings.amp == "fp16" and device.type == "cuda" \
        else None
    start, history = 0, []
    if job.ckpt is not None:  # every rank loads the same checkpoint (weights-only)
        start, history = _restore(job.ckpt, model, optimizer, scheduler, gen)
        stretch_cosine(scheduler, t.epochs * steps)
        if ranks.is_main:
            log.info("resumed from %s at epoch %d of %d", job.ckpt["path"], start, t.epochs)
    _seed_rank(job.ckpt, ranks, seed)
    net = data_parallel(model, device, ranks,
                        find_unused=t.auxiliary and t.auxiliary_weight == 0)
    end = _EpochEnd(job, model, data, settings, device, ranks,
                    (optimizer, scheduler, gen), history, start)
    try:
        fit(settings.compiled(net), train, t, device=device, steps_per_epoch=steps,
            optimizer=optimizer, scheduler=scheduler, start_epoch=start, amp=settings.amp,
            scaler=scaler, channels_last=settings.channels_last,
            aux_weight=t.auxiliary_weight if t.auxiliary else 0.0,
            before_epoch=end.before, after_epoch=end)
    except DivergedError as exc:
        raise UserError(f"training diverged in epoch {end.epoch + 1}: {exc}; lower "
                        f"train.lr (now {t.lr}) or raise train.grad_clip") from None
    finally:
        end.close()
    return history if ranks.is_main else []


def _seed_rank(ckpt: dict[str, Any] | None, ranks: Ranks, seed: int) -> None:
    """Each DDP rank draws its own drop-path masks (as the samples of one batch do): a rank
    other than 0 continues the random state the checkpoint saved for it, or starts from its
    own seed (a new run, or a checkpoint of another number of ranks). Rank 0 continues the
    checkpoint's ``torch_rng`` like a single process."""
    states = (ckpt or {}).get("rank_rng")
    if states is not None and len(states) == ranks.world:
        torch.set_rng_state(states[ranks.rank])
    elif ranks.rank:
        torch.manual_seed(seed + 1_000_003 * ranks.rank)


class _EpochEnd:
    """The per-epoch work around :func:`fit`: before an epoch the thread count and the
    drop-path schedule; after it the training loss averaged over the ranks, then on rank 0
    validation, the history row, the atomic checkpoint, the log line and the progress bar."""

    def __init__(self, job: _Job, model: torch.nn.Module, data: Any, settings: Any,
                 device: torch.device, ranks: Ranks, state: tuple[Any, Any, torch.Generator],
                 history: list[dict[str, Any]], start: int) -> None:
        self.job, self.model, self.data, self.settings = job, model, data, settings
        self.device, self.ranks, self.state, self.history = device, ranks, state, history
        self.epoch, self.t0 = start, time.perf_counter()
        self.threads = ThreadGovernor(device)
        self.val = BatchLoader(data.val, batch_size=job.recipe.eval_batch_size, device=device)
        self.bar = _progress() if ranks.is_main and is_interactive() else None
        if self.bar:
            self.task = self.bar.add_task("train-final", total=job.recipe.epochs,
                                          completed=start, acc="-")
            self.bar.start()

    def before(self, epoch: int) -> None:
        self.threads.adjust()  # fewer CPU threads while other processes hold cores
        self.epoch, self.t0 = epoch, time.perf_counter()
        t = self.job.recipe
        self.model.drop_path_prob = t.drop_path * epoch / t.epochs  # scheduled drop-path

    def __call__(self, epoch: int, loss: float, n: int) -> None:
        loss = mean_over_ranks(loss, self.ranks, self.device)
        rank_rng = gather_on_main(torch.get_rng_state(), self.ranks)
        if not self.ranks.is_main:
            return
        val_acc = val_loss = None  # no validation split (val_fraction=0): test only at the end
        if len(self.data.val):  # the network itself: DDP's forward would wait for the others
            val_acc, val_loss = (finite_or_none(v) for v in evaluate(
                self.model, self.val, device=self.device, amp=self.settings.amp,
                channels_last=self.settings.channels_last))
        optimizer, scheduler, gen = self.state
        row = {"epoch": epoch + 1, "train_loss": loss, "val_acc": val_acc,
               "val_loss": val_loss, "lr": scheduler.get_last_lr()[0], "steps": n,
               "seconds": round(time.perf_counter() - self.t0, 3)}
        self.history.append(row)
        ckpt = _checkpoint(self.job, epoch + 1, self.model, optimizer, scheduler, gen,
                           self.history)
        if rank_rng is not None:
            ckpt["rank_rng"] = rank_rng
        atomic_torch_save(ckpt, self.job.run_dir.path / CHECKPOINT)
        self.job.logger.log(epoch + 1, epoch_scalars(row))  # after the checkpoint: no repeats
        shown = "-" if val_acc is None else f"{val_acc:.4f}"
        log.info("epoch %d/%d  loss %.4f  val acc %s  (%.1f s)", epoch + 1, self.job.recipe.epochs,
                 loss, shown, row["seconds"])
        if self.bar:
            self.bar.update(self.task, completed=epoch + 1, acc=shown)

    def close(self) -> None:
        if self.bar:
            self.bar.stop()
        self.job.logger.close()


def _checkpoint(job: _Job, epoch: int, model: torch.nn.Module, optimizer: Any, scheduler: Any,
                gen: torch.Generator, history: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything a resume needs after ``epoch`` finished epochs (loads weights-only)."""
    return {
        "format": CHECKPOINT_FORMAT, "epoch": epoch, "model": model.state_dict(),
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
        "history": history, "genotype": genotype_to_dict(job.genotype, job.space),
        "config": OmegaConf.to_container(job.cfg, resolve=True),
    }


def stretch_cosine(scheduler: Any, total: int) -> None:
    """Continue a restored cosine schedule over ``total`` steps (``resume train.epochs=N``
    with a new N): the learning rate is set to the cosine of the new length at the current
    step, from which the scheduler's recursive update continues exactly. Without it the old
    schedule would end early and the learning rate climb back up."""
    if not isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
        return
    if scheduler.T_max == total:
        return
    scheduler.T_max = total
    step = min(scheduler.last_epoch, total)
    lrs = [scheduler.eta_min + (base - scheduler.eta_min) * (1 + math.cos(math.pi * step / total))
           / 2 for base in scheduler.base_lrs]
    for group, lr in zip(scheduler.optimizer.param_groups, lrs, strict=True):
        group["lr"] = lr
    scheduler._last_lr = lrs


def _restore(ckpt: dict[str, Any], model: torch.nn.Module, optimizer: Any, scheduler: Any,
             gen: torch.Generator) -> tuple[int, list[dict[str, Any]]]:
    """Load a validated checkpoint's weights and training state; returns (epoch, history).

    What :func:`validate_checkpoint` cannot know without the network is checked here, before
    any training: the weights' shapes and the optimizer's parameters and state shapes."""
    load_weights(model, ckpt, "the network these settings build; resume with the network "
                 "settings it was trained with (train.channels, train.cells_per_stage, "
                 "train.stem, train.auxiliary, dataset)")
    _load_optimizer(optimizer, ckpt["optimizer"], f"{ckpt['path']}: field 'optimizer'")
    scheduler.load_state_dict(ckpt["scheduler"])
    gen.set_state(ckpt["generator"])
    torch.set_rng_state(ckpt["torch_rng"])
    return int(ckpt["epoch"]), list(ckpt["history"])


def _load_optimizer(optimizer: torch.optim.Optimizer, saved: dict[str, Any], name: str) -> None:
    """Load a checked optimizer state whose parameters and state shapes fit ``optimizer``."""
    expected = [len(g["params"]) for g in optimizer.param_groups]
    found = [len(g["params"]) for g in saved["param_groups"]]
    if found != expected:
        raise CheckpointError(f"{name} holds {found} parameters per group; the network has "
                              f"{expected}")
    optimizer.load_state_dict(saved)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    for i, p in enumerate(params):
        for key, value in optimizer.state.get(p, {}).items():
            if isinstance(value, torch.Tensor) and value.dim() and value.shape != p.shape:
                raise CheckpointError(f"{name}: state {key} of parameter {i} has shape "
                                      f"{tuple(value.shape)}, the parameter {tuple(p.shape)}")


@dataclass
class _RankSpec:
    """What a DDP rank needs to rebuild its job without Hydra (picklable). ``data`` travels in
    shared memory from the spawning job; ``None`` (torchrun, or too little shared memory) has
    each rank load it. ``owner``: rank 0 holds the run directory (under torchrun no job
    process does)."""

    cfg: dict[str, Any]
    run_dir: str
    genotype: dict[str, Any]
    source: str
    checkpoint: str | None
    logging: dict[str, Any] | None
    data: Any = None
    owner: bool = False


def _launch(job: _Job, data: Any, world: int) -> float | None:
    """Spawn ``world`` DDP ranks for this job and wait for them; rank 0 writes everything a
    single process would (checkpoints, log lines, final.json). Returns the test accuracy."""
    from hydra.core.hydra_config import HydraConfig

    spec = _RankSpec(cfg=OmegaConf.to_container(job.cfg, resolve=True),
                     run_dir=str(job.run_dir.path),
                     genotype=genotype_to_dict(job.genotype, job.space), source=job.source,
                     checkpoint=job.ckpt["path"] if job.ckpt else None,
                     logging=OmegaConf.to_container(HydraConfig.get().job_logging, resolve=True),
                     data=data if fits_shared_memory(_nbytes(data)) else None)
    try:
        with graceful():  # SIGTERM stops the ranks too, like Ctrl-C
            spawn(_rank_main, (spec,), world, user_error_types())
    except RankError as exc:
        _crashed(exc)
    return read_json_object(job.run_dir.path / "final.json").get("test_acc")


def _nbytes(data: Any) -> int:
    """Bytes of the dataset's tensors (images, labels, statistics of every split)."""
    splits = (data.train, data.val, data.test)
    return sum(t.numel() * t.element_size() for s in splits
               for t in (s.raw, s.labels, s.mean, s.std))


def _crashed(exc: RankError) -> None:
    """A rank's crash as one line on stderr (exit 1); its traceback goes to the run's log."""
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    record = logging.LogRecord("nascli", logging.ERROR, "", 0, "%s\n%s", (exc, exc.details),
                               None)
    for handler in files:
        handler.handle(record)
    where = f"; traceback in {files[0].baseFilename}" if files and exc.details else ""
    print(f"nascli: error: {exc}{where}", file=sys.stderr)
    raise SystemExit(1)


def _rank_main(spec: _RankSpec) -> None:
    """One DDP rank of train-final, spawned by :func:`_launch` or started by torchrun
    (:func:`torchrun_main`); who it is comes from the environment (:meth:`Ranks.from_env`)."""
    ranks = Ranks.from_env()
    if not ranks.is_main:  # rank 0 speaks for all
        logging.disable(logging.CRITICAL)
        warnings.simplefilter("ignore")
    elif spec.logging:  # the job's console and log file
        logging.config.dictConfig(spec.logging)
    cfg = OmegaConf.create(spec.cfg)
    settings, device = rank_device(instantiate(cfg.device, "device"), ranks)
    with process_group(ranks, device):
        genotype, space = genotype_from_dict(spec.genotype, where=f"{spec.source}: genotype")
        ckpt = load_checkpoint(Path(spec.checkpoint)) if spec.checkpoint else None
        job = _Job(cfg, RunDir(spec.run_dir), genotype, space, spec.source,
                   section(FinalTraining, cfg.train, "train"), ckpt,
                   build_logger(cfg, spec.run_dir) if ranks.is_main else NoLogger())
        if ckpt is not None:
            _check_epochs(ckpt, job.recipe)
        if spec.owner and ranks.is_main:
            job.run_dir.lock()
        data = spec.data
        if data is None:
            data = require_images(load_data(cfg, int(cfg.seed)), "train", "test")
        _run(job, data.to(device), settings, device, ranks)


def torchrun_main(argv: list[str] | None = None) -> int:
    """``torchrun [options] -m nascli.commands.train_final JOB.yaml RUN_DIR``: one rank of a
    train-final job on one or several machines; returns the exit code.

    ``JOB.yaml`` is a composed config (``nascli train-final ARCH ... --cfg job --resolve``:
    Hydra runs once, where you write it); every rank reads it with OmegaConf, loads the data
    and joins the process group torchrun describes. Rank 0 writes ``RUN_DIR`` (put it on a
    shared file system: torchrun may place rank 0 on another machine after a restart); a
    ``RUN_DIR`` that holds a checkpoint is continued, so a restart resumes.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) != 2:
        print("usage: torchrun [options] -m nascli.commands.train_final JOB.yaml RUN_DIR",
              file=sys.stderr)
        return 2
    job_file, run_dir = Path(args[0]), Path(args[1])
    try:
        try:
            cfg = OmegaConf.load(job_file)
        except (OSError, OmegaConfBaseException, ValueError) as exc:
            raise UserError(f"{job_file}: cannot read the job config ({exc})") from None
        genotype, space, source = resolve_arch(str(cfg.arch))
        RunDir(run_dir)  # created before its log file is opened
        checkpoint = run_dir / CHECKPOINT
        logging_cfg = OmegaConf.load(config_dir() / "hydra" / "job_logging" / "nascli.yaml")
        logging_cfg.handlers.file.filename = str(run_dir / "train_final.log")
        _rank_main(_RankSpec(
            cfg=OmegaConf.to_container(cfg, resolve=True), run_dir=str(run_dir),
            genotype=genotype_to_dict(genotype, space), source=source,
            checkpoint=str(checkpoint) if checkpoint.exists() else None,
            logging=OmegaConf.to_container(logging_cfg, resolve=True), owner=True))
    except user_error_types() as exc:
        rank = Ranks.from_env().rank
        line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"nascli: error: {f'rank {rank}: ' if rank else ''}{line}", file=sys.stderr)
        return 2
    return 0


def _print_result(result: dict[str, Any], params: int) -> None:
    table = Table(title="train-final")
    for col in ("arch", "epochs", "params", "val acc", "test acc", "checkpoint"):
        table.add_column(col)
    shown = [f"{result[k]:.4f}" if result[k] is not None else "-" for k in ("val_acc", "test_acc")]
    table.add_row(result["arch"], str(result["epochs"]), f"{params / 1e6:.3f}M", *shown,
                  result["checkpoint"])
    console().print(table)


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("val acc {task.fields[acc]}"), TimeRemainingColumn(),
                    console=console())


if __name__ == "__main__":  # torchrun [options] -m nascli.commands.train_final JOB.yaml RUN_DIR
    from nascli.commands.train_final import torchrun_main as _main  # the one module's classes

    sys.exit(_main())
