"""Every option of every config group composes, validates and instantiates; every YAML file
shows exactly its component's defaults (the constructor is the one source of truth)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from nascli.config import RUNTIME, ConfigError, component_options, config_dir, locate, options_of
from nascli.data import DatasetError

ROOT = config_dir()
GROUPS = sorted(RUNTIME)
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((ROOT / g).glob("*.yaml"))]
#: datasets that need files this machine does not have (download=false): they must say so
NEEDS_FILES = {"cifar10", "cifar100", "mnist", "fashion_mnist", "svhn", "imagefolder"}


def _compose(command: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(ROOT), version_base=None):
        return compose(command, overrides=overrides)


def test_every_group_has_options():
    assert {g for g, _ in OPTIONS} == set(GROUPS)
    assert len(OPTIONS) >= 30


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_yaml_shows_its_components_defaults(group, option):
    text = (ROOT / group / f"{option}.yaml").read_text()
    raw = yaml.safe_load(text) or {}
    preset = text.startswith("# @package _global_")
    if preset:  # an option that also sets other groups (strategy=oneshot): its own node
        raw = dict(raw[group])
    target = locate(raw.pop("_target_"), group)
    opts = options_of(target, RUNTIME[group])
    required = {k for k, (_, d) in opts.fields.items() if d == "???"}
    for key, (_, default) in opts.fields.items():
        assert key in raw, f"{group}/{option}.yaml does not show option {key!r}"
        tied = isinstance(raw[key], str) and raw[key].startswith("${")  # follows another key
        if key not in required and raw[key] != "???" and not preset and not tied:
            assert raw[key] == default, (group, option, key, raw[key], default)
    extra = set(raw) - set(opts.fields)
    if extra:  # an open component (datasets): the builder's own options and defaults
        assert opts.open, f"{group}/{option}.yaml has unknown keys {extra}"
        from nascli.data.registry import _builder

        params = inspect.signature(_builder(raw["name"])).parameters
        for key in extra:
            assert key in params, (option, key)
            assert raw[key] == params[key].default, (option, key)
        shown = {p for p in params if p not in ("root", "download", "image_size")}
        assert shown == extra, f"dataset/{option}.yaml should list {sorted(shown - extra)}"


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes_and_instantiates(group, option, tiny_data, tmp_path):
    from nascli.commands.common import EstimatorFactory, build_device, build_space
    from nascli.config import instantiate

    command = "search"
    cfg = _compose(command, [f"{group}={option}"])
    if option in NEEDS_FILES and group == "dataset":
        cfg = OmegaConf.merge(cfg, {"dataset": {"root": "/nonexistent"}})
    if (group, option) == ("objective", "mnas"):  # the cost target has no default
        with pytest.raises(ConfigError, match=r"objective.target: missing value"):
            component_options(cfg[group], group)
        cfg = OmegaConf.merge(cfg, {"objective": {"target": 1e6}})
    path, _values = component_options(cfg[group], group)
    assert path == cfg[group]._target_
    if group == "search_space":
        assert build_space(cfg).describe()
    elif group == "device":
        settings = instantiate(cfg.device, "device")
        assert settings.name == option
    elif group == "dataset":
        _check_dataset(cfg, option)
    elif group == "strategy":
        _check_strategy(cfg, option)
    elif group == "proxy":
        _check_proxy(cfg, option, tiny_data, tmp_path)
    elif group in ("objective", "schedule"):
        made = instantiate(cfg[group], group)
        assert made.kind == option if group == "objective" else (made is None) == (
            option == "none")
    elif group == "executor" and option != "ray":
        # executor=ray runs end to end in tests/engine/test_ray.py: a Ray session started and
        # stopped here left the next one in this process unable to start actors
        space = build_space(cfg)
        settings, device = build_device(_compose(command, ["device=cpu"]))
        cheap = _compose(command, [f"executor={option}", "proxy=params"])
        factory = EstimatorFactory(cheap, 0, built=(space, tiny_data, settings, device))
        executor = instantiate(cfg.executor, "executor", factory=factory, gpus=None)
        try:
            estimate, _ = executor.submit(space.sample(0), seed=0).result(timeout=120)
            assert estimate.ok
        finally:
            executor.shutdown()


def _check_dataset(cfg, option):
    from nascli.commands.common import load_data

    if option in NEEDS_FILES:
        with pytest.raises((DatasetError, ConfigError)):
            load_data(cfg, 0)
    else:
        assert len(load_data(cfg, 0).train) > 0


def _check_strategy(cfg, option):
    from nascli.commands.common import build_space
    from nascli.config import instantiate

    strategy = instantiate(cfg.strategy, "strategy", space=build_space(cfg), seed=0)
    if option == "darts":  # gradient-based: runs on data (tests/oneshot/test_darts.py)
        assert callable(strategy.run)
        return
    g = strategy.ask()
    strategy.tell(g, 0.5, {"params": 1000, "macs": 20000})  # the costs a search passes


def _check_proxy(cfg, option, tiny_data, tmp_path):
    from nascli.commands.common import EstimatorFactory, build_device, build_space

    space = build_space(cfg)
    settings, device = build_device(_compose("search", ["device=cpu"]))
    if option == "supernet":  # inheritance needs a trained supernet
        cfg.proxy.supernet = str(_tiny_supernet(space, tiny_data, tmp_path))
    factory = EstimatorFactory(cfg, 0, built=(space, tiny_data, settings, device))
    estimate = factory()(space.sample(0), seed=0)
    assert estimate.ok, estimate.error
    assert estimate.macs and estimate.params


def _tiny_supernet(space, data, tmp_path):
    import torch

    from nascli.oneshot import SuperNet, SupernetTraining, train_supernet

    path = tmp_path / "supernet.pt"
    train_supernet(SuperNet(space, data.num_classes, data.in_channels), data,
                   SupernetTraining(epochs=1, max_steps=1, batch_size=16),
                   device=torch.device("cpu"), checkpoint=path)
    return path


@pytest.fixture(scope="module")
def tiny_data():
    from nascli.data import load_dataset

    return load_dataset("synthetic", num_samples=80, image_size=16, channels=1, seed=0)


def test_unknown_key_and_wrong_type_name_the_key():
    cfg = _compose("search", ["strategy=evolution", "+strategy.population=3"])
    with pytest.raises(ConfigError, match=r"strategy\.population: unknown key; valid keys"):
        component_options(cfg.strategy, "strategy")
    cfg = _compose("search", ["strategy=evolution", "strategy.population_size=abc"])
    with pytest.raises(ConfigError, match=r"strategy\.population_size"):
        component_options(cfg.strategy, "strategy")


def test_constructor_bounds_are_the_validation():
    from nascli.commands.common import build_space
    from nascli.config import instantiate

    cfg = _compose("search", ["strategy=evolution", "strategy.sample_size=50"])
    with pytest.raises(Exception, match="sample_size=50") as info:
        instantiate(cfg.strategy, "strategy", space=build_space(cfg), seed=0)
    assert "\n" not in str(info.value)


def test_train_final_and_budget_sections_validate():
    from nascli.commands.train_final import FinalTraining
    from nascli.config import section
    from nascli.engine.search import Budget

    cfg = _compose("train_final", ["arch=nasnet-a"])
    assert section(FinalTraining, cfg.train, "train").lr == 0.025
    for bad in ("lr=-1", "momentum=-1", "weight_decay=-1", "channels=0", "epochs=0"):
        node = OmegaConf.merge(cfg.train, OmegaConf.from_dotlist([bad]))
        with pytest.raises(ConfigError, match=f"train.{bad.split('=')[0]}"):
            section(FinalTraining, node, "train")
    with pytest.raises(ConfigError, match="budget"):
        section(Budget, {"evaluations": None, "seconds": None}, "budget")


def test_search_recipe_and_final_recipe_share_one_definition():
    from nascli.commands.train_final import FinalTraining
    from nascli.estimators import SearchTraining
    from nascli.training.recipe import TrainRecipe

    shared = {f for f in TrainRecipe.__dataclass_fields__}
    assert shared <= set(SearchTraining.__dataclass_fields__)
    assert shared <= set(FinalTraining.__dataclass_fields__)
    assert issubclass(SearchTraining, TrainRecipe) and issubclass(FinalTraining, TrainRecipe)


def test_experiment_presets_compose():
    for preset in sorted(p.stem for p in (ROOT / "experiment").glob("*.yaml")):
        command = "train_final" if preset.endswith("_final") else "search"
        extra = ["arch=nasnet-a"] if command == "train_final" else []
        cfg = _compose(command, [f"experiment={preset}", *extra])
        for group in ("search_space", "dataset", "device"):
            component_options(cfg[group], group)
        if command == "search":
            for group in ("strategy", "proxy", "executor"):
                component_options(cfg[group], group)


def test_config_dir_is_the_shipped_one():
    assert (Path(ROOT) / "search.yaml").is_file()
