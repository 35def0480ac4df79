"""``nascli evaluate ARCH``: estimate one architecture, or test a trained checkpoint."""

from __future__ import annotations

import logging
import statistics
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from rich.table import Table

from nascli.commands.common import build_device, build_estimator, load_data, resolve_arch
from nascli.config import section
from nascli.data.loader import BatchLoader
from nascli.engine.console import console
from nascli.engine.rundir import RunDir, now_iso
from nascli.genotypes import genotype_from_dict
from nascli.models import count_parameters
from nascli.training import evaluate

log = logging.getLogger("nascli.evaluate")


def _is_checkpoint(arch: str) -> bool:
    p = Path(arch).expanduser()
    return p.suffix == ".pt" or (p.is_dir() and (p / "checkpoint.pt").is_file())


def _test_checkpoint(cfg: DictConfig, run_dir: RunDir) -> dict[str, Any]:
    """Test accuracy of a train-final checkpoint (checked field by field before use)."""
    from nascli.commands.train_final import (
        FinalTraining,
        build_final_model,
        load_checkpoint,
        load_weights,
        require_images,
    )

    ckpt = load_checkpoint(Path(str(cfg.arch)))
    trained = OmegaConf.create(ckpt["config"])
    recipe = section(FinalTraining, trained.train, "train")
    _, device = build_device(cfg)
    genotype, space = genotype_from_dict(ckpt["genotype"], where=f"{ckpt['path']}: field "
                                         "'genotype'")
    data = require_images(load_data(trained, int(trained.seed)), "test")
    model = build_final_model(genotype, space, data, recipe)
    load_weights(model, ckpt, "the network its own config builds (its genotype, dataset and "
                 "train settings); the file is damaged or was edited")
    model.to(device)
    loader = BatchLoader(data.test, batch_size=recipe.eval_batch_size, device=device)
    acc, loss = evaluate(model, loader, device=device)
    return {"arch": ckpt["path"], "estimator": "test", "genotype": space.to_text(genotype),
            "scores": [acc], "score": acc, "test_loss": loss, "epochs": ckpt["epoch"],
            "params": count_parameters(model), "dataset": data.summary()}


def _with_network(space: Any, cfg: DictConfig) -> Any:
    """ARCH's own space (its ops and blocks), rebuilt with the search-time network settings
    of ``cfg.search_space``, so ``evaluate ARCH proxy=train`` trains the network a search
    with this config would have trained."""
    network = getattr(space, "network", None)
    if not isinstance(network, dict) or not hasattr(space, "config"):
        return space
    given = {k: cfg.search_space[k] for k in network if k in cfg.search_space}
    return type(space)(**{**space.config(), **given})


def evaluate_task(cfg: DictConfig) -> float | None:
    """The Hydra task of ``nascli evaluate``; returns the (mean) score."""
    from hydra.core.hydra_config import HydraConfig

    run_dir = RunDir(HydraConfig.get().runtime.output_dir)
    arch = str(cfg.arch)
    if _is_checkpoint(arch):
        result = _test_checkpoint(cfg, run_dir)
    else:
        genotype, space, source = resolve_arch(arch)
        seed = int(cfg.seed)
        settings, device = build_device(cfg)
        data = load_data(cfg, seed)
        estimator = build_estimator(cfg, _with_network(space, cfg), data, settings, device, seed)
        estimates = [estimator(genotype, seed=seed + r) for r in range(max(1, int(cfg.repeats)))]
        failed = [e for e in estimates if not e.ok]
        scores = [e.score for e in estimates if e.ok]
        first = estimates[0]
        result = {
            "arch": source, "estimator": estimator.name, "genotype": space.to_text(genotype),
            "hash": space.hash(genotype), "scores": scores,
            "score": statistics.fmean(scores) if scores else None,
            "score_std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
            "failed": [e.error for e in failed], "params": first.params, "macs": first.macs,
            "seconds": [round(e.seconds, 3) for e in estimates],
            "metrics": [e.metrics for e in estimates], "dataset": data.summary(),
        }
    result["finished_at"] = now_iso()
    path = run_dir.write_json(str(cfg.output), result)
    table = Table(title=f"evaluate ({path})")
    for col in ("arch", "estimator", "score", "params", "MACs"):
        table.add_column(col)
    score = result["score"]
    shown = "failed" if score is None else f"{score:.6g}"
    if result.get("score_std"):
        shown += f" ± {result['score_std']:.3g} (n={len(result['scores'])})"
    macs = result.get("macs")
    table.add_row(result["arch"], result["estimator"], shown,
                  f"{(result['params'] or 0) / 1e6:.3f}M",
                  f"{macs / 1e6:.1f}M" if macs else "-")
    console().print(table)
    for error in result.get("failed", []):
        log.warning("failed: %s", error)
    return score
