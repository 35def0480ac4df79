"""Turning validated configs into library objects: space, data, device, estimator, ARCH."""

from __future__ import annotations

import json
import logging
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from nascli.config import DatasetConfig, DeviceConfig, ProxyConfig, SearchSpaceConfig
from nascli.data import DataSplits, load_dataset
from nascli.data.registry import dataset_options
from nascli.data.splits import AugmentSpec
from nascli.estimators.proxy import ProxyEstimator
from nascli.estimators.train import NetworkSettings, TrainEstimator, TrainSettings
from nascli.genotypes import PUBLISHED, get_genotype, load_genotype, published_space
from nascli.spaces import SearchSpace, SpaceError, get_space
from nascli.training.device import setup_device

log = logging.getLogger("nascli")


class ArchError(ValueError):
    """ARCH names no built-in cell, genotype file, run directory or checkpoint."""


def build_space(cfg: SearchSpaceConfig) -> SearchSpace:
    """The search space of a ``search_space`` config."""
    return get_space(cfg.name, ops=list(cfg.ops), blocks=cfg.blocks, combine=list(cfg.combine))


def network_settings(cfg: SearchSpaceConfig) -> NetworkSettings:
    """Macro-network settings of search-time models."""
    return NetworkSettings(cells_per_stage=cfg.cells_per_stage, channels=cfg.channels,
                           stem=cfg.stem)


def load_data(cfg: DatasetConfig, seed: int) -> DataSplits:
    """Load the dataset of a ``dataset`` config (train/val split seeded by ``seed``)."""
    extra = {}
    accepted = set(dataset_options(cfg.name))
    for key in ("num_samples", "num_classes", "channels"):
        if key in accepted:
            extra[key] = getattr(cfg, key)
    return load_dataset(
        cfg.name, root=cfg.root, download=cfg.download, val_fraction=cfg.val_fraction,
        seed=seed, fraction=cfg.fraction, image_size=cfg.image_size, **extra,
    )


def augment_spec(cfg: DatasetConfig, data: DataSplits) -> AugmentSpec:
    """The dataset's default augmentation with the config's overrides applied."""
    d = data.augment
    return AugmentSpec(
        crop_padding=d.crop_padding if cfg.crop_padding is None else cfg.crop_padding,
        flip=d.flip if cfg.flip is None else cfg.flip,
        cutout=d.cutout if cfg.cutout is None else cfg.cutout,
    )


def setup(cfg: DeviceConfig) -> torch.device:
    """Resolve the device of a ``device`` config and apply its settings."""
    return setup_device(cfg.name, list(cfg.gpus), cfg.threads, cfg.cudnn_benchmark)


def build_estimator(
    proxy: ProxyConfig, space_cfg: SearchSpaceConfig, data: DataSplits, device: torch.device,
    device_cfg: DeviceConfig, seed: int,
) -> TrainEstimator | ProxyEstimator:
    """``proxy=train`` gives a train-and-test estimator; any other name a zero-cost one."""
    net = network_settings(space_cfg)
    if proxy.name == "train":
        settings = TrainSettings(**{f.name: getattr(proxy, f.name) for f in fields(TrainSettings)})
        amp = device_cfg.amp
        return TrainEstimator(data, settings, net, device=device, amp=amp,
                              channels_last=device_cfg.channels_last, seed=seed)
    return ProxyEstimator(proxy.name, data, net, device=device,
                          batch_size=proxy.proxy_batch_size, seed=seed)


def resolve_arch(arch: str, space: SearchSpace | None = None) -> tuple[Any, SearchSpace, str]:
    """``(genotype, space, description)`` for a built-in name, genotype JSON or run directory."""
    key = arch.lower().replace("_", "-")
    if key in PUBLISHED:
        return get_genotype(key), published_space(key), f"built-in cell {key}"
    path = Path(arch).expanduser()
    if path.is_dir():
        best = path / "best.json"
        if not best.is_file():
            raise ArchError(f"{path}: run directory has no best.json (no finished evaluation?)")
        genotype, space = load_genotype(best)
        return genotype, space, f"best genotype of run {path}"
    if path.suffix == ".json" or path.is_file():
        if not path.exists():
            raise ArchError(f"{path}: no such genotype file")
        try:
            genotype, space = load_genotype(path)
        except SpaceError as exc:
            raise ArchError(str(exc)) from None
        return genotype, space, f"genotype file {path}"
    raise ArchError(
        f"ARCH {arch!r} is neither a built-in cell ({', '.join(PUBLISHED)}) nor an existing "
        "genotype file, run directory or checkpoint"
    )


def summary_json(obj: Any) -> str:
    """Compact JSON for log lines."""
    return json.dumps(obj, separators=(",", ":"), default=str)
