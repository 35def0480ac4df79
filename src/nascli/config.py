"""Structured configs: one dataclass per config group option, used to validate composed configs.

The YAML files in ``configs/`` are what users read and override; after Hydra composes them, each
group node is merged into its schema here, so a wrong type, an unknown key or a value out of
range fails with one line that names the key (see :func:`validate`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from nascli.spaces.nasnet import NASNET_OPS


class ConfigError(ValueError):
    """An invalid config value; the message names the key and what is valid."""


def _check(ok: bool, key: str, value: Any, valid: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid; expected {valid}")


@dataclass
class SearchSpaceConfig:
    """The cell space and the macro network used for search-time models."""

    name: str = "nasnet"
    ops: list[str] = field(default_factory=lambda: list(NASNET_OPS))
    blocks: int = 5
    combine: list[str] = field(default_factory=lambda: ["add"])
    cells_per_stage: int = 1  # N of search-time models
    channels: int = 8  # filters of the first cells of search-time models
    stem: str = "cifar"

    def __post_init__(self) -> None:
        _check(self.blocks >= 1, "search_space.blocks", self.blocks, "an integer >= 1")
        _check(self.cells_per_stage >= 1, "search_space.cells_per_stage", self.cells_per_stage,
               "an integer >= 1")
        _check(self.channels >= 1, "search_space.channels", self.channels, "an integer >= 1")
        _check(self.stem in ("cifar", "imagenet"), "search_space.stem", self.stem,
               "cifar or imagenet")


@dataclass
class StrategyConfig:
    """Fields shared by every strategy (``name`` picks it in the registry)."""

    name: str = "random"
    max_retries: int = 100


@dataclass
class RandomConfig(StrategyConfig):
    name: str = "random"


@dataclass
class EvolutionConfig(StrategyConfig):
    name: str = "evolution"
    population_size: int = 10
    sample_size: int = 3
    identity_prob: float = 0.0
    # zero-cost warm start: initial population = best P of `warm_start_samples` proxy-scored
    warm_start_proxy: str | None = None
    warm_start_samples: int = 0
    # proxy filter on children: propose `children_per_step`, train the best by the proxy
    child_filter_proxy: str | None = None
    children_per_step: int = 1

    def __post_init__(self) -> None:
        _check(self.population_size >= 2, "strategy.population_size", self.population_size,
               "an integer >= 2")
        _check(1 <= self.sample_size <= self.population_size, "strategy.sample_size",
               self.sample_size, f"an integer in 1..population_size ({self.population_size})")
        _check(0.0 <= self.identity_prob < 1.0, "strategy.identity_prob", self.identity_prob,
               "a probability in [0, 1)")
        _check(self.children_per_step >= 1, "strategy.children_per_step",
               self.children_per_step, "an integer >= 1")


@dataclass
class ControllerConfig(StrategyConfig):
    name: str = "ppo"
    max_retries: int = 20
    hidden_size: int = 100
    lr: float = 0.00035
    batch_size: int = 20
    baseline_decay: float = 0.95
    entropy_weight: float = 0.00001
    temperature: float | None = None
    tanh_constant: float | None = None

    def __post_init__(self) -> None:
        _check(self.batch_size >= 1, "strategy.batch_size", self.batch_size, "an integer >= 1")
        _check(self.lr > 0, "strategy.lr", self.lr, "a positive number")
        _check(0.0 <= self.baseline_decay < 1.0, "strategy.baseline_decay",
               self.baseline_decay, "a number in [0, 1)")


@dataclass
class PPOConfig(ControllerConfig):
    name: str = "ppo"
    clip: float = 0.2
    epochs: int = 4


@dataclass
class ReinforceConfig(ControllerConfig):
    name: str = "reinforce"
    lr: float = 0.0006


@dataclass
class PrescreenConfig:
    """Proxy pre-screening: score `samples` candidates with `proxy`, train the best `keep`."""

    proxy: str | None = None
    samples: int = 0
    keep: int = 0


@dataclass
class ProxyConfig:
    """How a candidate is estimated: ``train`` (train-and-test) or a zero-cost proxy."""

    name: str = "train"
    # train-and-test (low fidelity during search)
    epochs: int = 1
    batch_size: int = 64
    lr: float = 0.2
    momentum: float = 0.9
    weight_decay: float = 0.0003
    nesterov: bool = True
    data_fraction: float = 0.5
    max_steps: int | None = None
    eval_batch_size: int = 256
    grad_clip: float = 5.0
    augment: bool = False
    bn_recalibration_batches: int = 8
    # zero-cost proxies
    proxy_batch_size: int = 64

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, "proxy.epochs", self.epochs, "an integer >= 1")
        _check(self.batch_size >= 1, "proxy.batch_size", self.batch_size, "an integer >= 1")
        _check(0.0 < self.data_fraction <= 1.0, "proxy.data_fraction", self.data_fraction,
               "a fraction in (0, 1]")
        _check(self.lr > 0, "proxy.lr", self.lr, "a positive number")


@dataclass
class DatasetConfig:
    name: str = "mnist5k"
    root: str = "~/.cache/nascli/data"
    download: bool = False
    val_fraction: float = 0.2
    fraction: float = 1.0
    image_size: int | None = None
    # synthetic data
    num_samples: int = 2000
    num_classes: int = 10
    channels: int = 3
    # augmentation used by train-final (and by search if proxy.augment)
    crop_padding: int | None = None  # None: the dataset's own default
    flip: bool | None = None
    cutout: int | None = None

    def __post_init__(self) -> None:
        _check(0.0 < self.val_fraction < 1.0, "dataset.val_fraction", self.val_fraction,
               "a fraction in (0, 1)")
        _check(0.0 < self.fraction <= 1.0, "dataset.fraction", self.fraction,
               "a fraction in (0, 1]")


@dataclass
class DeviceConfig:
    name: str = "auto"
    gpus: list[int] = field(default_factory=list)
    amp: str = "none"
    channels_last: bool = True
    cudnn_benchmark: bool = True
    threads: int | None = None

    def __post_init__(self) -> None:
        _check(self.name in ("auto", "cpu", "cuda", "mps"), "device.name", self.name,
               "auto, cpu, cuda or mps")
        _check(self.amp in ("none", "bf16", "fp16"), "device.amp", self.amp, "none, bf16 or fp16")


@dataclass
class ExecutorConfig:
    name: str = "local"
    workers: int = 1

    def __post_init__(self) -> None:
        _check(self.name in ("local", "pool"), "executor.name", self.name, "local or pool")
        _check(self.workers >= 1, "executor.workers", self.workers, "an integer >= 1")


@dataclass
class BudgetConfig:
    evaluations: int | None = 24
    seconds: float | None = None

    def __post_init__(self) -> None:
        _check(self.evaluations is None or self.evaluations >= 1, "budget.evaluations",
               self.evaluations, "an integer >= 1 or null")
        _check(self.seconds is None or self.seconds > 0, "budget.seconds", self.seconds,
               "a positive number or null")
        _check(self.evaluations is not None or self.seconds is not None, "budget",
               "both null", "at least one of evaluations and seconds")


@dataclass
class TrainFinalConfig:
    """The full training recipe of ``train-final``."""

    epochs: int = 10
    batch_size: int = 96
    lr: float = 0.025
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 0.0003
    label_smoothing: float = 0.1
    grad_clip: float = 5.0
    auxiliary: bool = True
    auxiliary_weight: float = 0.4
    drop_path: float = 0.2
    cells_per_stage: int = 2
    channels: int = 16
    stem: str = "cifar"
    eval_batch_size: int = 256
    max_steps: int | None = None

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, "train.epochs", self.epochs, "an integer >= 1")
        _check(0.0 <= self.drop_path < 1.0, "train.drop_path", self.drop_path, "in [0, 1)")
        _check(0.0 <= self.label_smoothing < 1.0, "train.label_smoothing",
               self.label_smoothing, "in [0, 1)")
        _check(self.stem in ("cifar", "imagenet"), "train.stem", self.stem, "cifar or imagenet")


GROUP_SCHEMAS: dict[str, dict[str, type]] = {
    "search_space": {"*": SearchSpaceConfig},
    "strategy": {"random": RandomConfig, "evolution": EvolutionConfig, "ppo": PPOConfig,
                 "reinforce": ReinforceConfig},
    "proxy": {"*": ProxyConfig},
    "dataset": {"*": DatasetConfig},
    "device": {"*": DeviceConfig},
    "executor": {"*": ExecutorConfig},
}
TOP_SCHEMAS: dict[str, type] = {
    "budget": BudgetConfig,
    "prescreen": PrescreenConfig,
    "train": TrainFinalConfig,
}


def _to_object(schema: type, node: Any, key: str) -> Any:
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), node)
        return OmegaConf.to_object(merged)
    except ConfigError:
        raise
    except OmegaConfBaseException as exc:
        # OmegaConf's first line names the key and the problem; drop its multi-line context
        msg = str(exc).splitlines()[0].strip()
        full_key = getattr(exc, "full_key", None)
        where = f"{key}.{full_key}" if full_key else key
        raise ConfigError(f"{where}: {msg}") from None


def validate(cfg: DictConfig) -> dict[str, Any]:
    """Validate a composed config; returns ``{group: dataclass instance}`` for known groups."""
    out: dict[str, Any] = {}
    for group, schemas in GROUP_SCHEMAS.items():
        if group not in cfg:
            continue
        node = cfg[group]
        name = node.get("name", "*") if isinstance(node, DictConfig) else "*"
        schema = schemas.get(name) or schemas.get("*")
        if schema is None:
            raise ConfigError(
                f"{group}.name={name!r} is unknown; valid: {', '.join(sorted(schemas))}"
            )
        out[group] = _to_object(schema, node, group)
    for key, schema in TOP_SCHEMAS.items():
        if key in cfg and cfg[key] is not None:
            out[key] = _to_object(schema, cfg[key], key)
    return out


def config_dir() -> Path:
    """The ``configs`` folder: inside the installed package, or at the top of a source tree."""
    packaged = Path(str(resources.files("nascli"))) / "configs"
    if (packaged / "search.yaml").is_file():
        return packaged
    source = Path(__file__).resolve().parents[2] / "configs"
    if (source / "search.yaml").is_file():
        return source
    raise FileNotFoundError("nascli's configs folder is missing from this installation")
