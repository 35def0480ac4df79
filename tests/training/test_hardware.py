"""Hardware defaults (issue 11): precision and layout, cuDNN autotuning, warm-up, memory
housekeeping, multiply-adds without an extra forward, several workers per GPU, compile."""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys
import time
from concurrent.futures import Future

import pytest
import torch
from hydra import compose, initialize_config_dir

from nascli.commands.common import EstimatorFactory
from nascli.config import config_dir
from nascli.data import load_dataset
from nascli.engine import executors
from nascli.engine.executors import LocalExecutor, PoolExecutor, auto_executor
from nascli.engine.search import Budget, Search
from nascli.estimators import TrainEstimator
from nascli.estimators.base import Estimate
from nascli.models import build_model, count_macs, count_parameters
from nascli.spaces import NASNetSpace
from nascli.strategies import build
from nascli.training import device as hw
from nascli.training.device import CUDA, Device, DeviceError

SPACE = NASNetSpace(blocks=2, cells_per_stage=1, channels=8)


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        return compose("search", overrides=overrides)


def test_cuda_defaults_are_the_fastest_measured_setting():
    """fp32 + TF32 + channels_last (1,526 img/s on an H200) instead of bf16 + channels_last
    (893 img/s); cuDNN autotuning only where shapes are fixed; 4 candidates per GPU."""
    cuda = CUDA()
    assert (cuda.amp, cuda.tf32, cuda.channels_last) == ("none", True, True)
    assert (cuda.cudnn_benchmark, cuda.workers_per_gpu, cuda.compile) == ("auto", 4, "off")
    # (tests/test_configs.py checks that every YAML file shows its class's defaults)
    assert _compose([]).executor._target_ == "nascli.engine.executors.auto_executor"


@pytest.mark.parametrize(("setting", "fixed", "expected"), [
    ("auto", True, True), ("auto", False, False), (True, False, True), (False, True, False)])
def test_cudnn_autotunes_only_for_fixed_shapes_under_auto(setting, fixed, expected):
    assert hw.cudnn_benchmark_mode(setting, fixed) is expected


@pytest.mark.parametrize(("field", "value", "valid"), [
    ("cudnn_benchmark", "sometimes", "auto, true or false"),
    ("workers_per_gpu", 0, ">= 1"),
    ("workers_per_gpu", True, ">= 1"),
    ("threads", 0, ">= 1 or null"),
    ("compile", "fast", "off, default, reduce-overhead, max-autotune"),
])
def test_bad_device_settings_name_the_value_and_the_valid_ones(field, value, valid):
    with pytest.raises(DeviceError) as info:
        Device(**{field: value})
    assert f"device.{field}={value!r}" in str(info.value)
    assert valid in str(info.value)


def test_tf32_switches_matmul_and_convolution_precision():
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    before = (matmul.fp32_precision, conv.fp32_precision)
    try:
        hw.set_tf32(True)
        assert (matmul.fp32_precision, conv.fp32_precision) == ("tf32", "tf32")
        hw.set_tf32(False)
        assert (matmul.fp32_precision, conv.fp32_precision) == ("ieee", "ieee")
    finally:
        matmul.fp32_precision, conv.fp32_precision = before


def test_each_gpu_gets_workers_per_gpu_slots():
    gpu = torch.device("cuda", 1)
    assert Device(gpus=[0, 1], workers_per_gpu=2).worker_gpus(gpu) == [0, 0, 1, 1]
    assert CUDA().worker_gpus(torch.device("cuda", 0)) == [0, 0, 0, 0]
    assert Device().worker_gpus(gpu) == [1, 1, 1, 1]  # device=auto picked cuda:1
    assert Device().worker_gpus(torch.device("cpu")) is None


def test_memory_is_freed_only_when_a_gpu_runs_short(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (10, 100))
    assert hw.memory_short(torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (50, 100))
    assert not hw.memory_short(torch.device("cuda"))
    assert not hw.memory_short(torch.device("cpu"))


def test_warm_up_is_free_on_the_cpu():
    assert hw.warm_up(torch.device("cpu")) == 0.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_warm_up_runs_once_per_gpu_and_keeps_random_state():
    device = torch.device("cuda", 0)
    hw._WARM.discard(str(device))
    cpu, gpu = torch.get_rng_state(), torch.cuda.get_rng_state(device)
    assert hw.warm_up(device) > 0.0
    assert hw.warm_up(device) == 0.0
    assert torch.equal(cpu, torch.get_rng_state())
    assert torch.equal(gpu, torch.cuda.get_rng_state(device))


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", val_fraction=0.3, seed=0)


def test_cost_counted_once_per_genotype_without_touching_the_seeded_build(digits, monkeypatch):
    est = TrainEstimator(SPACE, digits, max_steps=1, bn_recalibration_batches=0)
    genotypes = [SPACE.sample(s) for s in range(3)]
    for g in genotypes:
        model = build_model(SPACE, g, num_classes=10, in_channels=1)
        expected = count_parameters(model), count_macs(model, (1, *digits.image_size))
        torch.manual_seed(7)
        alone = build_model(SPACE, g, num_classes=10, in_channels=1).state_dict()
        torch.manual_seed(7)
        assert est.cost(g) == expected
        after = build_model(SPACE, g, num_classes=10, in_channels=1).state_dict()
        assert all(torch.equal(alone[k], after[k]) for k in alone)

    import nascli.models

    builds, collects = [], []
    real = nascli.models.build_model
    monkeypatch.setattr(nascli.models, "build_model",
                        lambda *a, **k: builds.append(1) or real(*a, **k))
    monkeypatch.setattr(gc, "collect", lambda *a: collects.append(1) or 0)
    estimate = est(genotypes[0], seed=0)
    assert estimate.ok and (estimate.params, estimate.macs) == est.cost(genotypes[0])
    assert len(builds) == 1  # the network itself; its cost came from the cache
    assert collects == []  # networks hold no reference cycles: no 85 ms gc.collect each


@pytest.fixture
def restore_threads(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(hw, "_THREADS_FIXED", False)  # whatever earlier tests fixed
    yield
    torch.set_num_threads(before)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")
def test_a_busy_core_takes_a_thread_away(restore_threads, monkeypatch):
    """A real competitor: a spinning process pinned to one of this process's two CPUs."""
    cpus = sorted(os.sched_getaffinity(0))[:2]
    torch.set_num_threads(2)
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.sched_setaffinity(spinner.pid, {cpus[0]})
        time.sleep(0.2)
        monkeypatch.setattr(hw, "_LOADED", hw._read_stat())  # as if nascli loaded now
        time.sleep(0.8)
        governor = hw.ThreadGovernor()
        governor.cpus = cpus
        governor.last = governor._sample()
        # the first call, right after start-up, measures since the module loaded
        assert governor.adjust() == 1 and torch.get_num_threads() == 1
    finally:
        spinner.kill()
        spinner.wait()
    assert hw.ThreadGovernor("cuda").adjust() is None  # GPU work: nothing to govern


@pytest.mark.parametrize(("others", "expected"), [(0.0, 2), (0.4, 2), (0.6, 1), (1.0, 1),
                                                  (1.9, 1)])
def test_threads_are_the_free_cores_up_to_the_ceiling(restore_threads, monkeypatch, others,
                                                      expected):
    torch.set_num_threads(2)
    governor = hw.ThreadGovernor()
    governor.cpus, governor.first = [0, 1], False
    # 10 s in which the CPUs were busy for (others + 1.5) core-seconds per second, 1.5 ours
    governor.last = (0.0, 0.0, 0.0)
    monkeypatch.setattr(governor, "_sample", lambda: (10 * (others + 1.5), 15.0, 10.0))
    assert governor.adjust() == expected and torch.get_num_threads() == expected


def test_threads_given_by_the_user_are_never_adapted(restore_threads):
    torch.set_num_threads(2)
    governor = hw.ThreadGovernor()
    torch.set_num_threads(1)  # the user's own choice, after the governor started
    governor.last = (0.0, 0.0, 0.0)  # as if the whole machine had been busy
    assert governor.adjust() == 1 and governor.last is None
    hw.fix_threads(1)
    fixed = hw.ThreadGovernor()
    fixed.last = (0.0, 0.0, 0.0)
    assert fixed.adjust() == 1


class _NoEstimator:
    """A picklable factory (pool workers build their estimator themselves)."""

    def __call__(self):
        return None


def test_auto_executor_pools_only_several_workers():
    assert isinstance(auto_executor(_NoEstimator()), LocalExecutor)
    assert isinstance(auto_executor(_NoEstimator(), [0]), LocalExecutor)
    pool = auto_executor(_NoEstimator(), [0, 0, 0])
    try:
        assert isinstance(pool, PoolExecutor) and pool.workers == 3
    finally:
        pool.shutdown()


def test_a_pinned_worker_sees_its_gpu_as_cuda_0(monkeypatch):
    import nascli.commands.common as common

    seen = {}

    def fake_device(cfg, fixed_shapes=False):
        seen["gpus"] = list(cfg.device.gpus)
        raise RuntimeError("stop here")

    monkeypatch.setattr(common, "build_device", fake_device)
    monkeypatch.setattr(executors, "_WORKER_GPU", 3)
    cfg = _compose(["device=cuda", "device.gpus=[3]"])
    with pytest.raises(RuntimeError, match="stop here"):
        EstimatorFactory(cfg, seed=0)()
    assert seen["gpus"] == [0]


class _TwoWorkers:
    """An executor that reports two workers and names them in turn."""

    workers = 2

    def __init__(self) -> None:
        self.n = 0

    def submit(self, genotype, seed=None) -> Future:
        self.n += 1
        future: Future = Future()
        future.set_result((Estimate(score=0.5, params=1, macs=1, seconds=0.01),
                           f"pid{self.n % 2}-gpu0"))
        return future

    def shutdown(self, cancel: bool = False) -> None:
        pass


def test_history_and_log_name_the_worker_of_each_evaluation(caplog):
    search = Search(SPACE, build("random", SPACE, seed=0), _TwoWorkers(), Budget(evaluations=4))
    with caplog.at_level(logging.INFO, logger="nascli"):
        result = search.run()
    assert {row["worker"] for row in result.history} == {"pid0-gpu0", "pid1-gpu0"}
    assert "(pid1-gpu0)" in caplog.text
    assert search._last_worker() == f"#{result.history[-1]['id']} by " \
                                    f"{result.history[-1]['worker']}"


def test_compile_wraps_the_training_model_only_when_asked():
    net = torch.nn.Linear(2, 2)
    assert Device().compiled(net) is net
    assert Device(compile=True).compile == "default"
    compiled = Device(compile="default").compiled(net)
    assert compiled is not net and compiled._orig_mod is net  # lazily compiled, same weights
