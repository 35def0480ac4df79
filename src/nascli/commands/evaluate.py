"""``nascli evaluate ARCH``: estimate one architecture, or test a trained checkpoint."""

from __future__ import annotations

import logging
import statistics
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from rich.table import Table

from nascli.commands.common import build_estimator, load_data, resolve_arch, setup
from nascli.config import validate
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
    from nascli.commands.train_final import build_final_model, load_checkpoint

    ckpt = load_checkpoint(Path(str(cfg.arch)))
    trained = OmegaConf.create(ckpt["config"])
    parts = validate(trained)
    device = setup(validate(cfg)["device"])
    genotype, space = genotype_from_dict(ckpt["genotype"], where=ckpt["path"])
    data = load_data(parts["dataset"], int(trained.seed))
    model = build_final_model(genotype, data, parts["train"])
    model.load_state_dict(ckpt["model"])
    model.to(device)
    loader = BatchLoader(data.test, batch_size=parts["train"].eval_batch_size, device=device)
    acc, loss = evaluate(model, loader, device=device)
    return {"arch": ckpt["path"], "estimator": "test", "genotype": space.to_text(genotype),
            "scores": [acc], "score": acc, "test_loss": loss, "epochs": ckpt["epoch"],
            "params": count_parameters(model), "dataset": data.summary()}


def evaluate_task(cfg: DictConfig) -> float | None:
    """The Hydra task of ``nascli evaluate``; returns the (mean) score."""
    from hydra.core.hydra_config import HydraConfig

    run_dir = RunDir(HydraConfig.get().runtime.output_dir)
    arch = str(cfg.arch)
    if _is_checkpoint(arch):
        result = _test_checkpoint(cfg, run_dir)
    else:
        genotype, space, source = resolve_arch(arch)
        parts = validate(cfg)
        seed = int(cfg.seed)
        device = setup(parts["device"])
        data = load_data(parts["dataset"], seed)
        estimator = build_estimator(parts["proxy"], parts["search_space"], data, device,
                                    parts["device"], seed)
        estimates = [estimator(genotype, seed=seed + r) for r in range(max(1, int(cfg.repeats)))]
        failed = [e for e in estimates if not e.ok]
        scores = [e.score for e in estimates if e.ok]
        first = estimates[0]
        result = {
            "arch": source, "estimator": estimator.name, "genotype": space.to_text(genotype),
            "hash": space.hash(genotype), "scores": scores,
            "score": statistics.fmean(scores) if scores else None,
            "score_std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
            "failed": [e.error for e in failed], "params": first.params, "flops": first.flops,
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
    flops = result.get("flops")
    table.add_row(result["arch"], result["estimator"], shown,
                  f"{(result['params'] or 0) / 1e6:.3f}M",
                  f"{flops / 1e6:.1f}M" if flops else "-")
    console().print(table)
    for error in result.get("failed", []):
        log.warning("failed: %s", error)
    return score
