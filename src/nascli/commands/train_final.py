"""``nascli train-final ARCH``: the full training recipe, test accuracy, resumable checkpoints."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from nascli.commands import UserError
from nascli.commands.common import augment_spec, load_data, resolve_arch, setup
from nascli.config import TrainFinalConfig, validate
from nascli.data.loader import BatchLoader
from nascli.engine.console import console, is_interactive
from nascli.engine.rundir import RunDir, atomic_torch_save, now_iso
from nascli.genotypes import genotype_from_dict, genotype_to_dict
from nascli.models import build_network, count_macs, count_parameters
from nascli.training import DivergedError, evaluate, train_epoch

log = logging.getLogger("nascli.train_final")

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = 1


def build_final_model(genotype: Any, data: Any, t: TrainFinalConfig) -> torch.nn.Module:
    """The final network of ``genotype`` for ``data`` with the recipe's macro settings."""
    return build_network(
        genotype, num_classes=data.num_classes, in_channels=data.in_channels,
        cells_per_stage=t.cells_per_stage, channels=t.channels, stem=t.stem,
        auxiliary=t.auxiliary, drop_path=t.drop_path,
    )


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


def _save(run_dir: RunDir, state: dict[str, Any]) -> None:
    atomic_torch_save(state, run_dir.path / CHECKPOINT)


def train_final_task(cfg: DictConfig) -> float | None:
    """The Hydra task of ``nascli train-final``; returns the test accuracy."""
    from hydra.core.hydra_config import HydraConfig

    ckpt = None
    if cfg.get("resume"):
        ckpt = load_checkpoint(Path(str(cfg.resume)))
        cfg = _resumed_config(ckpt)
        run_dir = RunDir(Path(ckpt["path"]).parent)
        genotype, space = genotype_from_dict(ckpt["genotype"], where=ckpt["path"])
        source = f"checkpoint {ckpt['path']}"
    else:
        run_dir = RunDir(HydraConfig.get().runtime.output_dir)
        genotype, space, source = resolve_arch(str(cfg.arch))
    parts = validate(cfg)
    t: TrainFinalConfig = parts["train"]
    seed = int(cfg.seed)
    torch.manual_seed(seed)
    device = setup(parts["device"])
    dev_cfg = parts["device"]
    data = load_data(parts["dataset"], seed).to(device)
    model = build_final_model(genotype, data, t).to(device)
    if dev_cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    params = count_parameters(model)
    macs = count_macs(model, (data.in_channels, *data.image_size))
    log.info("training %s: %s", source, space.to_text(genotype))
    log.info("network N=%d channels=%d stem=%s: %.3fM parameters, %.1fM multiply-adds; "
             "dataset %s (%d train, %d val, %d test); device %s", t.cells_per_stage, t.channels,
             t.stem, params / 1e6, macs / 1e6, data.name, len(data.train), len(data.val),
             len(data.test), device)

    gen = torch.Generator().manual_seed(seed)
    train = BatchLoader(data.train, batch_size=min(t.batch_size, len(data.train)), shuffle=True,
                        drop_last=True, augment=augment_spec(parts["dataset"], data),
                        device=device, generator=gen, channels_last=dev_cfg.channels_last)
    steps = len(train) if t.max_steps is None else min(len(train), t.max_steps)
    optimizer = torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum,
                                nesterov=t.nesterov, weight_decay=t.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=t.epochs * steps)
    scaler = torch.amp.GradScaler("cuda") if dev_cfg.amp == "fp16" and device.type == "cuda" \
        else None
    start, history = 0, []
    if ckpt is not None:
        try:
            model.load_state_dict(ckpt["model"])
        except RuntimeError:
            raise UserError(f"{ckpt['path']}: the checkpoint's weights do not fit the network "
                            "these settings build; resume with the same network settings") from None
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        gen.set_state(ckpt["generator"])
        torch.set_rng_state(ckpt["torch_rng"])
        start, history = int(ckpt["epoch"]), list(ckpt["history"])
        log.info("resumed from %s at epoch %d of %d", ckpt["path"], start, t.epochs)
    else:
        OmegaConf.save(cfg, run_dir.path / "config.yaml", resolve=True)
        run_dir.write_manifest(command="train-final", arch=source, seed=seed,
                               device=str(device), dataset=data.summary(), params=params,
                               macs=macs, started_at=now_iso(), status="running")
    val_split = BatchLoader(data.val, batch_size=t.eval_batch_size, device=device)
    bar = _progress() if is_interactive() else None
    task = bar.add_task("train-final", total=t.epochs, completed=start, acc="-") if bar else None
    if bar:
        bar.start()
    try:
        for epoch in range(start, t.epochs):
            t0 = time.perf_counter()
            model.drop_path_prob = t.drop_path * epoch / t.epochs  # scheduled drop-path
            try:
                loss, n = train_epoch(
                    model, train, optimizer, scheduler, device=device, amp=dev_cfg.amp,
                    scaler=scaler, grad_clip=t.grad_clip,
                    aux_weight=t.auxiliary_weight if t.auxiliary else 0.0,
                    label_smoothing=t.label_smoothing, max_steps=steps,
                    channels_last=dev_cfg.channels_last,
                )
            except DivergedError as exc:
                raise UserError(f"training diverged in epoch {epoch + 1}: {exc}; lower "
                                f"train.lr (now {t.lr}) or raise train.grad_clip") from None
            val_acc, val_loss = evaluate(model, val_split, device=device, amp=dev_cfg.amp,
                                         channels_last=dev_cfg.channels_last)
            row = {"epoch": epoch + 1, "train_loss": loss, "val_acc": val_acc,
                   "val_loss": val_loss, "lr": scheduler.get_last_lr()[0], "steps": n,
                   "seconds": round(time.perf_counter() - t0, 3)}
            history.append(row)
            _save(run_dir, {
                "format": CHECKPOINT_FORMAT, "epoch": epoch + 1, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
                "history": history, "genotype": genotype_to_dict(genotype, space),
                "config": OmegaConf.to_container(cfg, resolve=True),
            })
            log.info("epoch %d/%d  loss %.4f  val acc %.4f  (%.1f s)", epoch + 1, t.epochs,
                     loss, val_acc, row["seconds"])
            if bar:
                bar.update(task, completed=epoch + 1, acc=f"{val_acc:.4f}")
    finally:
        if bar:
            bar.stop()
    test = BatchLoader(data.test, batch_size=t.eval_batch_size, device=device)
    test_acc, test_loss = evaluate(model, test, device=device, amp=dev_cfg.amp,
                                   channels_last=dev_cfg.channels_last)
    result = {"arch": source, "genotype": space.to_text(genotype), "test_acc": test_acc,
              "test_loss": test_loss, "val_acc": history[-1]["val_acc"] if history else None,
              "epochs": t.epochs, "params": params, "macs": macs,
              "checkpoint": str(run_dir.path / CHECKPOINT), "history": history}
    run_dir.write_json("final.json", result)
    run_dir.write_manifest(ended_at=now_iso(), status="finished", test_acc=test_acc)
    table = Table(title="train-final")
    for col in ("arch", "epochs", "params", "val acc", "test acc", "checkpoint"):
        table.add_column(col)
    table.add_row(source, str(t.epochs), f"{params / 1e6:.3f}M",
                  f"{result['val_acc']:.4f}" if result["val_acc"] is not None else "-",
                  f"{test_acc:.4f}", result["checkpoint"])
    console().print(table)
    return test_acc if math.isfinite(test_acc) else None


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("val acc {task.fields[acc]}"), TimeRemainingColumn(),
                    console=console())
