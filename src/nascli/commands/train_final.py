"""``nascli train-final ARCH``: the full training recipe, test accuracy, resumable checkpoints."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from nascli.commands.common import build_device, load_data, resolve_arch
from nascli.config import section
from nascli.data.loader import BatchLoader
from nascli.engine.console import console, is_interactive
from nascli.engine.rundir import RunDir, atomic_torch_save, now_iso
from nascli.errors import UserError
from nascli.genotypes import genotype_from_dict, genotype_to_dict
from nascli.models import build_model, count_macs, count_parameters
from nascli.training import DivergedError, evaluate
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


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A train-final checkpoint (file or run directory), loaded with ``weights_only=True``."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint")
    try:
        ckpt = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # a torn or foreign file: say so in one line
        raise UserError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path}: not a nascli train-final checkpoint (format "
                        f"{ckpt.get('format') if isinstance(ckpt, dict) else '?'})")
    ckpt["path"] = str(path)
    return ckpt


def _resumed_config(ckpt: dict[str, Any]) -> DictConfig:
    """The checkpoint's config with this command line's ``key=value`` overrides applied
    (e.g. ``train.epochs=600`` to train longer)."""
    from hydra.core.hydra_config import HydraConfig

    cfg = OmegaConf.create(ckpt["config"])
    dotlist = [o.lstrip("+") for o in HydraConfig.get().overrides.task
               if "." in o.split("=", 1)[0] and not o.startswith(("resume=", "~"))]
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


def _job(cfg: DictConfig) -> _Job:
    """The run directory, genotype and recipe: from a checkpoint (resume) or from ARCH."""
    from hydra.core.hydra_config import HydraConfig

    if cfg.get("resume"):
        ckpt = load_checkpoint(Path(str(cfg.resume)))
        cfg = _resumed_config(ckpt)
        genotype, space = genotype_from_dict(ckpt["genotype"], where=ckpt["path"])
        return _Job(cfg, RunDir(Path(ckpt["path"]).parent), genotype, space,
                    f"checkpoint {ckpt['path']}", section(FinalTraining, cfg.train, "train"),
                    ckpt)
    genotype, space, source = resolve_arch(str(cfg.arch))
    return _Job(cfg, RunDir(HydraConfig.get().runtime.output_dir), genotype, space, source,
                section(FinalTraining, cfg.train, "train"))


def train_final_task(cfg: DictConfig) -> float | None:
    """The Hydra task of ``nascli train-final``; returns the test accuracy."""
    job = _job(cfg)
    cfg, t = job.cfg, job.recipe
    seed = int(cfg.seed)
    torch.manual_seed(seed)
    settings, device = build_device(cfg)
    data = load_data(cfg, seed).to(device)
    model = build_final_model(job.genotype, job.space, data, t).to(device)
    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last)
    params = count_parameters(model)
    macs = count_macs(model, (data.in_channels, *data.image_size))
    log.info("training %s: %s", job.source, job.space.to_text(job.genotype))
    log.info("network N=%d channels=%d stem=%s: %.3fM parameters, %.1fM multiply-adds; "
             "dataset %s (%d train, %d val, %d test); device %s", t.cells_per_stage, t.channels,
             t.stem, params / 1e6, macs / 1e6, data.name, len(data.train), len(data.val),
             len(data.test), device)
    if job.ckpt is None:
        OmegaConf.save(cfg, job.run_dir.path / "config.yaml", resolve=True)
        job.run_dir.write_manifest(command="train-final", arch=job.source, seed=seed,
                                   device=str(device), dataset=data.summary(), params=params,
                                   macs=macs, started_at=now_iso(), status="running")
    history = _train(job, model, data, settings, device, seed)
    test = BatchLoader(data.test, batch_size=t.eval_batch_size, device=device)
    test_acc, test_loss = evaluate(model, test, device=device, amp=settings.amp,
                                   channels_last=settings.channels_last)
    result = {"arch": job.source, "genotype": job.space.to_text(job.genotype),
              "test_acc": test_acc, "test_loss": test_loss,
              "val_acc": history[-1]["val_acc"] if history else None, "epochs": t.epochs,
              "params": params, "macs": macs,
              "checkpoint": str(job.run_dir.path / CHECKPOINT), "history": history}
    job.run_dir.write_json("final.json", result)
    job.run_dir.write_manifest(ended_at=now_iso(), status="finished", test_acc=test_acc)
    _print_result(result, params)
    return test_acc if math.isfinite(test_acc) else None


def _train(job: _Job, model: torch.nn.Module, data: Any, settings: Any, device: torch.device,
           seed: int) -> list[dict[str, Any]]:
    """The epochs of the recipe with per-epoch validation and an atomic checkpoint each."""
    t = job.recipe
    gen = torch.Generator().manual_seed(seed)
    train = BatchLoader(data.train, batch_size=min(t.batch_size, len(data.train)), shuffle=True,
                        drop_last=True, augment=data.augment, device=device, generator=gen,
                        channels_last=settings.channels_last)
    steps = len(train) if t.max_steps is None else min(len(train), t.max_steps)
    optimizer = t.optimizer(model.parameters())
    scheduler = t.scheduler(optimizer, t.epochs * steps)
    scaler = torch.amp.GradScaler("cuda") if settings.amp == "fp16" and device.type == "cuda" \
        else None
    start, history = 0, []
    if job.ckpt is not None:
        start, history = _restore(job.ckpt, model, optimizer, scheduler, gen)
        log.info("resumed from %s at epoch %d of %d", job.ckpt["path"], start, t.epochs)
    val_split = BatchLoader(data.val, batch_size=t.eval_batch_size, device=device)
    bar = _progress() if is_interactive() else None
    task = bar.add_task("train-final", total=t.epochs, completed=start, acc="-") if bar else None
    clock = {"t0": time.perf_counter()}

    def before(epoch: int) -> None:
        clock["t0"] = time.perf_counter()
        model.drop_path_prob = t.drop_path * epoch / t.epochs  # scheduled drop-path

    def after(epoch: int, loss: float, n: int) -> None:
        val_acc, val_loss = evaluate(model, val_split, device=device, amp=settings.amp,
                                     channels_last=settings.channels_last)
        row = {"epoch": epoch + 1, "train_loss": loss, "val_acc": val_acc,
               "val_loss": val_loss, "lr": scheduler.get_last_lr()[0], "steps": n,
               "seconds": round(time.perf_counter() - clock["t0"], 3)}
        history.append(row)
        atomic_torch_save({
            "format": CHECKPOINT_FORMAT, "epoch": epoch + 1, "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
            "history": history, "genotype": genotype_to_dict(job.genotype, job.space),
            "config": OmegaConf.to_container(job.cfg, resolve=True),
        }, job.run_dir.path / CHECKPOINT)
        log.info("epoch %d/%d  loss %.4f  val acc %.4f  (%.1f s)", epoch + 1, t.epochs, loss,
                 val_acc, row["seconds"])
        if bar:
            bar.update(task, completed=epoch + 1, acc=f"{val_acc:.4f}")

    if bar:
        bar.start()
    try:
        fit(model, train, t, device=device, steps_per_epoch=steps, optimizer=optimizer,
            scheduler=scheduler, start_epoch=start, amp=settings.amp, scaler=scaler,
            channels_last=settings.channels_last,
            aux_weight=t.auxiliary_weight if t.auxiliary else 0.0,
            before_epoch=before, after_epoch=after)
    except DivergedError as exc:
        raise UserError(f"training diverged in epoch {len(history) + 1}: {exc}; lower "
                        f"train.lr (now {t.lr}) or raise train.grad_clip") from None
    finally:
        if bar:
            bar.stop()
    return history


def _restore(ckpt: dict[str, Any], model: torch.nn.Module, optimizer: Any, scheduler: Any,
             gen: torch.Generator) -> tuple[int, list[dict[str, Any]]]:
    """Load a checkpoint's weights and training state; returns (epoch, history)."""
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError:
        raise UserError(f"{ckpt['path']}: the checkpoint's weights do not fit the network "
                        "these settings build; resume with the same network settings") from None
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    gen.set_state(ckpt["generator"])
    torch.set_rng_state(ckpt["torch_rng"])
    return int(ckpt["epoch"]), list(ckpt["history"])


def _print_result(result: dict[str, Any], params: int) -> None:
    table = Table(title="train-final")
    for col in ("arch", "epochs", "params", "val acc", "test acc", "checkpoint"):
        table.add_column(col)
    table.add_row(result["arch"], str(result["epochs"]), f"{params / 1e6:.3f}M",
                  f"{result['val_acc']:.4f}" if result["val_acc"] is not None else "-",
                  f"{result['test_acc']:.4f}", result["checkpoint"])
    console().print(table)


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("val acc {task.fields[acc]}"), TimeRemainingColumn(),
                    console=console())
