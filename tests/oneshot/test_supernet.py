"""The supernet: shared modules, paths equal to stand-alone networks, BatchNorm recalibration,
path sampling, training with checkpoints and resume, and the inheritance estimator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nascli.data import load_dataset
from nascli.models import build_model, count_macs, count_parameters
from nascli.oneshot import (
    PathSampler,
    SuperNet,
    SupernetError,
    SupernetEstimator,
    SupernetTraining,
    train_supernet,
)
from nascli.spaces import Block, CellGenotype, NASNetGenotype, NASNetSpace
from nascli.training.loop import recalibrate_batchnorm

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data():
    return load_dataset("synthetic", num_samples=160, image_size=12, channels=1, seed=0)


@pytest.fixture(scope="module")
def space():
    return NASNetSpace(blocks=3, channels=4)


def _cell(first_op: str) -> CellGenotype:
    return CellGenotype(blocks=(Block((0, 1), (first_op, "identity")),
                                Block((2, 0), ("max_pool_3x3", "conv_1x1")),
                                Block((1, 3), ("sep_conv_5x5", "avg_pool_3x3"))))


def test_genotypes_sharing_a_choice_share_the_module_and_tensor(space):
    net = SuperNet(space, 10, 1)
    g1 = NASNetGenotype(_cell("sep_conv_3x3"), _cell("conv_3x3"))
    g2 = NASNetGenotype(_cell("sep_conv_3x3"), _cell("dil_conv_3x3"))
    a, b = net.cells[0].path(g1.normal), net.cells[0].path(g2.normal)
    assert a[2] is b[2]  # block 0, slot 0, sep_conv_3x3 reading state 0
    assert a[2][1].weight.data_ptr() == b[2][1].weight.data_ptr()
    # the same op reading another input state is still the same module (ENAS sharing)
    other = net.cells[0].op(0, 0, "sep_conv_3x3", 1, 4)
    assert other is a[2]
    # a different op choice is a different module; the reduction cell reads a stride-2 copy
    r1, r2 = net.cells[1].path(g1.reduce), net.cells[1].path(g2.reduce)
    assert r1[2] is not r2[2]
    c = net.cells[1].channels
    assert net.cells[1].op(1, 0, "conv_1x1", 0, c) is not net.cells[1].op(1, 0, "conv_1x1", 2, c)
    called = []  # the op starts with ReLU: the cell calls its body, so hook its conv
    hook = a[2][1].register_forward_hook(lambda mod, i, o: called.append(mod))
    net(torch.randn(2, 1, 12, 12), g2)
    hook.remove()
    assert called == [a[2][1]]


@pytest.mark.parametrize("kwargs", [{}, {"combine": ("add", "concat"), "cells_per_stage": 2},
                                    {"stem": "imagenet"}])
def test_every_path_is_the_stand_alone_network(kwargs):
    space = NASNetSpace(blocks=3, channels=4, **kwargs)
    torch.manual_seed(0)
    net = SuperNet(space, 10, 1)
    size = (12, 12) if space.network["stem"] == "cifar" else (33, 33)
    x = torch.randn(3, 1, *size)
    rng = np.random.default_rng(0)
    for _ in range(4):
        g = space.sample(rng)
        params, macs = net.cost(g, size)
        standalone = build_model(space, g, num_classes=10, in_channels=1)
        assert params == count_parameters(standalone)
        assert macs == count_macs(standalone, (1, *size))
        copy = net.extract(g).eval()
        net.eval()
        with torch.no_grad():
            assert torch.allclose(net(x, g), copy(x), atol=1e-5)
    assert net.cost(g, size) == (params, macs)  # cached counts agree with measured ones


def test_bn_recalibration_changes_statistics_not_weights(space, data):
    net = SuperNet(space, data.num_classes, data.in_channels).eval()
    g = space.sample(1)
    norms = net.path_norms(g)
    weights = {k: v.clone() for k, v in net.named_parameters()}
    stats = [m.running_mean.clone() for m in norms]
    off_path = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)
                and all(m is not n for n in norms)]
    off_stats = [m.running_mean.clone() for m in off_path]
    x = data.train.images[:32]
    used = recalibrate_batchnorm(net, [(x, None)], device=CPU, norms=norms,
                                 forward=lambda b: net(b, g))
    assert used == 1
    assert any(not torch.equal(a, m.running_mean) for a, m in zip(stats, norms, strict=True))
    now = dict(net.named_parameters())
    assert all(torch.equal(v, now[k]) for k, v in weights.items())
    assert all(torch.equal(a, m.running_mean) for a, m in zip(off_stats, off_path, strict=True))
    assert all(not m.training for m in net.modules())  # modes restored


def test_fair_sampling_trains_every_choice_equally(space):
    sampler = PathSampler(space, "fair", seed=0)
    k = len(space.ops)
    draws = np.array([sampler.indices() for _ in range(2 * k)])
    ops = [i for i, d in enumerate(space.decisions) if d.name.endswith(("op1", "op2"))]
    for j in ops:  # each op exactly once in every k consecutive steps
        assert sorted(draws[:k, j]) == list(range(k)) == sorted(draws[k:, j])
    uniform = PathSampler(space, "uniform", seed=0)
    assert space.validate(uniform()) and space.validate(sampler())
    with pytest.raises(ValueError, match="sampling='often'"):
        PathSampler(space, "often")
    with pytest.raises(ValueError, match="sampling='sometimes' is invalid; expected one of "
                                         "uniform, fair"):
        SupernetTraining(sampling="sometimes")


def _train(space, data, path, epochs, seed=0, lr=0.05, **kw):
    torch.manual_seed(seed)
    net = SuperNet(space, data.num_classes, data.in_channels)
    recipe = SupernetTraining(epochs=epochs, batch_size=16, max_steps=3, lr=lr, **kw)
    result = train_supernet(net, data, recipe, device=CPU, checkpoint=path, seed=seed)
    return net, result


def test_training_killed_after_an_epoch_resumes_exactly(space, data, tmp_path, monkeypatch):
    whole, result = _train(space, data, tmp_path / "a.pt", epochs=2, sampling="fair")
    assert len(result.losses) == 2 and result.steps == 6
    import nascli.oneshot.train as train_module

    real = train_module.save_checkpoint

    def save_then_die(*args, **kwargs):
        real(*args, **kwargs)
        if kwargs["epoch"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        _train(space, data, tmp_path / "b.pt", epochs=2, sampling="fair")
    monkeypatch.setattr(train_module, "save_checkpoint", real)
    resumed, result = _train(space, data, tmp_path / "b.pt", epochs=2, seed=0, sampling="fair")
    assert result.resumed_from == 1 and len(result.losses) == 2
    for (k, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), k
    # a finished checkpoint trains no more
    _, again = _train(space, data, tmp_path / "b.pt", epochs=2, sampling="fair")
    assert again.resumed_from == 2 and again.steps == 0


def test_checkpoint_mismatches_are_one_line(space, data, tmp_path):
    path = tmp_path / "s.pt"
    _train(space, data, path, epochs=1)
    with pytest.raises(SupernetError, match=r"space=.*this run has"):
        SupernetEstimator(NASNetSpace(blocks=2, channels=4), data, supernet=str(path))
    with pytest.raises(SupernetError, match=r"lr=0\.05"):
        _train(space, data, path, epochs=2, lr=0.1)
    damaged = tmp_path / "d.pt"
    damaged.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(SupernetError, match="not a readable supernet checkpoint"):
        SupernetEstimator(space, data, supernet=str(damaged))
    unfinished = tmp_path / "u.pt"
    _train(space, data, unfinished, epochs=1)
    ckpt = torch.load(unfinished, weights_only=True)
    ckpt["finished"] = False
    torch.save(ckpt, unfinished)
    with pytest.raises(SupernetError, match="resume its run"):
        SupernetEstimator(space, data, supernet=str(unfinished))
    with pytest.raises(ValueError, match="val_batches=0"):
        SupernetEstimator(space, data, supernet=str(path), val_batches=0)


def test_inheritance_estimator_is_deterministic_and_counts_cost(space, data, tmp_path):
    path = tmp_path / "s.pt"
    _train(space, data, path, epochs=1)
    est = SupernetEstimator(space, data, supernet=str(path), bn_batch_size=16,
                            val_batch_size=16, val_batches=2)
    g = space.sample(3)
    a, b = est(g), est(g)
    assert a.ok and a.score == b.score and 0.0 <= a.score <= 1.0
    assert a.metrics["inherited_acc"] == a.score and a.epochs == 0.0
    model = build_model(space, g, num_classes=data.num_classes, in_channels=data.in_channels)
    assert a.params == count_parameters(model)
    assert a.macs == count_macs(model, (1, *data.image_size))
    weights = {k: v.clone() for k, v in est.supernet.state_dict().items() if "running" not in k
               and "num_batches" not in k}
    est(space.sample(4))
    after = est.supernet.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in weights.items())  # inheritance never trains
