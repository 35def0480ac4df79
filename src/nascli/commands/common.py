"""From a composed config to library objects: space, device, data, estimator, strategy, ARCH.

Each group node is created with :func:`nascli.config.instantiate` (Hydra's ``instantiate`` on
its ``_target_``), so built-in options and a user's own components take the same path.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from nascli.config import instantiate
from nascli.data import DataSplits
from nascli.errors import UserError
from nascli.genotypes import PUBLISHED, get_genotype, load_genotype, published_space
from nascli.spaces import SearchSpace, SpaceError
from nascli.training.device import Device

log = logging.getLogger("nascli")


class ArchError(UserError):
    """ARCH names no built-in cell, genotype file, run directory or checkpoint."""


def build_space(cfg: DictConfig) -> SearchSpace:
    """The search space of ``cfg.search_space``."""
    space = instantiate(cfg.search_space, "search_space")
    if not isinstance(space, SearchSpace):
        raise UserError(f"search_space: {cfg.search_space._target_} made a "
                        f"{type(space).__name__}, not a nascli.spaces.SearchSpace")
    return space


def build_device(cfg: DictConfig, fixed_shapes: bool = False) -> tuple[Device, torch.device]:
    """The ``device`` settings and the resolved torch device (settings applied; cuDNN
    autotunes under ``cudnn_benchmark=auto`` only for ``fixed_shapes``, as in train-final)."""
    settings = instantiate(cfg.device, "device")
    return settings, settings.setup(fixed_shapes=fixed_shapes)


def load_data(cfg: DictConfig, seed: int) -> DataSplits:
    """The dataset of ``cfg.dataset`` (train/val split seeded by ``seed``)."""
    from nascli.data.registry import RawData, finish_raw

    data = instantiate(cfg.dataset, "dataset", seed=seed)
    if isinstance(data, RawData):  # a user's builder given directly as _target_
        data = finish_raw(data, name=str(cfg.dataset._target_), seed=seed)
    if not isinstance(data, DataSplits):
        raise UserError(f"dataset: {cfg.dataset._target_} returned {type(data).__name__}, not "
                        "DataSplits or RawData")
    return data


def build_estimator(cfg: DictConfig, space: SearchSpace, data: DataSplits, settings: Device,
                    device: torch.device, seed: int) -> Any:
    """The estimator of ``cfg.proxy`` (train-and-test, a proxy, or a user's own)."""
    return instantiate(cfg.proxy, "proxy", space=space, data=data, device=device,
                       amp=settings.amp, channels_last=settings.channels_last, seed=seed)


class EstimatorFactory:
    """Builds a run's estimator from its config, in this process or inside a pool worker.

    Picklable: a worker process rebuilds device, data and space from the config; in the
    main process the already built objects are reused.
    """

    def __init__(self, cfg: DictConfig, seed: int, built: tuple[Any, ...] | None = None) -> None:
        self.cfg = OmegaConf.to_container(cfg, resolve=True)
        self.seed = seed
        self._built = built

    def __getstate__(self) -> dict[str, Any]:
        return {"cfg": self.cfg, "seed": self.seed, "_built": None}

    def shared(self) -> dict[str, Any] | None:
        """The space and dataset built in this process, for executors that ship them to their
        workers once (Ray's object store) instead of each worker loading the data again."""
        if self._built is None:
            return None
        space, data, _, _ = self._built
        return {"space": space, "data": data}

    def __call__(self, shared: dict[str, Any] | None = None) -> Any:
        from nascli.engine.executors import pinned_gpu

        cfg = OmegaConf.create(self.cfg)
        if pinned_gpu() is not None:  # the worker sees only its GPU, as cuda:0
            cfg.device.gpus = [0]
        if self._built is not None:
            space, data, settings, device = self._built
        else:
            settings, device = build_device(cfg)
            if shared is not None:
                space, data = shared["space"], shared["data"]
            else:
                space, data = build_space(cfg), load_data(cfg, self.seed)
        return build_estimator(cfg, space, data, settings, device, self.seed)


def resolve_arch(arch: str) -> tuple[Any, SearchSpace, str]:
    """``(genotype, space, description)`` for a built-in name, genotype JSON or run directory."""
    key = arch.lower().replace("_", "-")
    if key in PUBLISHED:
        return get_genotype(key), published_space(key), f"built-in cell {key}"
    path = Path(arch).expanduser()
    if path.is_dir():
        best = path / "best.json"
        if not best.is_file():
            raise ArchError(f"{path}: run directory has no best.json (no finished evaluation?)")
        try:
            genotype, space = load_genotype(best)
        except SpaceError as exc:
            raise ArchError(str(exc)) from None
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
