"""DARTS: genotype derivation, the search network, both orders, records, checkpoints, resume."""

from __future__ import annotations

import json
import logging

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

import nascli.oneshot.darts as darts
from nascli.data import load_dataset
from nascli.engine.rundir import RunDirError
from nascli.models import build_model
from nascli.oneshot.darts import (
    DARTS,
    PARAMETER_FREE_OPS,
    DARTSNetwork,
    MixedOp,
    cell_edges,
    derive_genotype,
    param_free_share,
)
from nascli.spaces import DARTSSpace, NASNetSpace
from nascli.training import DivergedError

CPU = torch.device("cpu")
#: tiny and fast: 2 steps of 16 images per epoch, 4-channel cells of 2 blocks
SMALL = {"batch_size": 16, "max_steps": 2}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: see tests/conftest.py


@pytest.fixture(scope="module")
def data():
    # 128 train, 32 val, 40 test images of 8x8x1, 4 classes
    return load_dataset("synthetic", seed=0, num_samples=200, image_size=8, num_classes=4,
                        channels=1)


@pytest.fixture(scope="module")
def space():
    return DARTSSpace(blocks=2, channels=4)


def _search(space, data, **options):
    return darts._Search(DARTS(space, **{**SMALL, **options}), data, CPU, False)


def _alphas(search):
    return [a.detach().clone() for a in search.net.arch_parameters()]


def test_parameter_free_ops_are_identity_and_pooling():
    assert sorted(PARAMETER_FREE_OPS) == ["avg_pool_3x3", "identity", "max_pool_3x3",
                                          "max_pool_5x5", "max_pool_7x7"]


def test_derive_genotype_keeps_the_two_strongest_inputs_and_their_argmax_ops(space):
    ops = list(space.ops)
    assert cell_edges(2) == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]
    normal = torch.zeros(5, len(ops))
    normal[0, ops.index("sep_conv_3x3")] = 3.0
    normal[1, ops.index("max_pool_3x3")] = 1.0
    normal[2, ops.index("dil_conv_3x3")] = 2.0  # block 1 from state 0: second strongest
    normal[3, ops.index("sep_conv_5x5")] = 0.5  # from state 1: dropped
    normal[4, ops.index("identity")] = 5.0  # from state 2 (block 0): strongest
    g = derive_genotype(space, normal, torch.zeros(5, len(ops)))
    blocks = [(b.inputs, b.ops, b.combine) for b in g.normal.blocks]
    assert blocks == [((0, 1), ("sep_conv_3x3", "max_pool_3x3"), "add"),
                      ((2, 0), ("identity", "dil_conv_3x3"), "add")]
    assert g.normal.concat == g.reduce.concat == (2, 3)
    # uniform alphas: ties go to the lower state and the first op (max_pool_3x3 in DARTS_OPS)
    assert [(b.inputs, b.ops) for b in g.reduce.blocks] == [((0, 1), ("max_pool_3x3",) * 2)] * 2
    # normal: max_pool and identity of 4 ops; reduce: 4 of 4 pools
    assert param_free_share(g) == pytest.approx(6 / 8)
    with pytest.raises(ValueError, match=r"alpha_reduce has shape \(4, 7\); expected \(5, 7\)"):
        derive_genotype(space, normal, torch.zeros(4, 7))


def test_mixed_op_with_one_hot_weights_is_that_op():
    torch.manual_seed(0)
    ops = ("identity", "sep_conv_3x3", "avg_pool_3x3")
    mixed = MixedOp(ops, 4, 4, 1).eval()
    x = torch.randn(2, 4, 6, 6)
    for k, op in enumerate(mixed.ops):
        w = F.one_hot(torch.tensor(k), len(ops)).float()
        torch.testing.assert_close(mixed(x, F.relu(x), w), op(x))
    torch.testing.assert_close(mixed(x, F.relu(x), torch.tensor([1.0, 0, 0])), x)


def test_search_network_shapes_and_parameter_split(space):
    torch.manual_seed(0)
    net = DARTSNetwork(space, num_classes=3, in_channels=1, channels=4, cells_per_stage=1)
    assert [tuple(a.shape) for a in net.arch_parameters()] == [(5, 7), (5, 7)]
    assert float(net.alpha_normal.detach().abs().max()) < 1e-2  # 1e-3 * randn
    assert [c.reduction for c in net.cells] == [False, True, False, True, False]
    assert [c.out_channels for c in net.cells] == [8, 16, 16, 32, 32]  # B * C
    ids = {id(p) for p in net.weight_parameters()} | {id(a) for a in net.arch_parameters()}
    assert ids == {id(p) for p in net.parameters()}
    assert len(net.weight_parameters()) == len(list(net.parameters())) - 2
    out = net(torch.randn(4, 1, 8, 8))
    assert out.shape == (4, 3)
    out.sum().backward()
    assert net.alpha_reduce.grad is not None and net.alpha_reduce.grad.abs().sum() > 0


@pytest.mark.parametrize("order", ["first", "second"])
def test_an_epoch_moves_alphas_and_weights(space, data, order):
    search = _search(space, data, order=order)
    alphas = _alphas(search)
    weights = [w.detach().clone() for w in search.net.weight_parameters()]
    losses = []
    record = search.epoch_pass(losses.append)
    assert len(losses) == 2 and all(0 < loss < 10 for loss in losses)
    assert record["train_loss"] == pytest.approx(sum(losses) / 2)
    assert 0.0 <= record["val_acc"] <= 1.0
    for before, after in zip(alphas, search.net.arch_parameters(), strict=True):
        # Adam's first steps move every alpha by about alpha_lr
        assert 1e-4 < float((after.detach() - before).abs().max()) < 1e-3
    moved = [not torch.equal(w, v) for w, v in zip(weights, search.net.weight_parameters(),
                                                    strict=True)]
    assert all(moved)


def test_second_order_differs_from_first_order(space, data):
    first, second = _search(space, data), _search(space, data, order="second")
    first.epoch_pass(lambda loss: None)
    second.epoch_pass(lambda loss: None)
    for a, b in zip(first.net.arch_parameters(), second.net.arch_parameters(), strict=True):
        assert not torch.allclose(a, b)


def test_second_order_gradient_matches_exact_unrolled_gradient(space, data, monkeypatch):
    """With a small finite-difference step (and float64) the Hessian-vector product gives the
    exact derivative of L_val(w - lr * grad L_train(w, alpha), alpha); DARTS's 0.01 / ||g|| is
    far coarser than the ReLU kinks of a network this small, so it is not checked here."""
    monkeypatch.setattr(darts, "FD_SCALE", 1e-6)
    search = _search(space, data, order="second", w_lr=0.5)
    net = search.net.double()
    (x, y), (xv, yv) = next(iter(search.train)), next(iter(search.val))
    x, xv = x.double(), xv.double()
    names, weights = zip(*net.named_weights(), strict=True)
    lr, wd = 0.5, search.darts.options["w_weight_decay"]

    def loss(params, inputs, labels):
        buffers = {n: b.clone() for n, b in net.named_buffers()}
        return F.cross_entropy(functional_call(net, {**params, **buffers}, (inputs,)), labels)

    grads = torch.autograd.grad(loss({}, x, y), weights, create_graph=True)
    virtual = {n: w - lr * (g + wd * w) for n, w, g in zip(names, weights, grads, strict=True)}
    exact = torch.autograd.grad(loss(virtual, xv, yv), net.arch_parameters())
    frozen = {n: v.detach() for n, v in virtual.items()}
    first = torch.autograd.grad(loss(frozen, xv, yv), net.arch_parameters())
    unrolled = search._unrolled_grads(x, y, xv, yv)
    for e, f, u in zip(exact, first, unrolled, strict=True):
        assert float((e - f).norm()) > 0.1 * float(f.norm())  # the second-order term matters
        torch.testing.assert_close(u, e, rtol=1e-3, atol=1e-5)


def test_run_writes_softmax_records_per_epoch(space, data, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="nascli.darts")
    result = DARTS(space, seed=1, epochs=2, **SMALL).run(data, "cpu", tmp_path, progress=True)
    assert [r["epoch"] for r in result.epochs] == [1, 2]
    assert result.seconds > 0
    doc = json.loads((tmp_path / "darts_alphas.json").read_text())
    assert doc["ops"] == list(space.ops)
    assert doc["edges"] == [[0, 0], [0, 1], [1, 0], [1, 1], [1, 2]]
    assert doc["epochs"] == result.epochs
    for record in result.epochs:
        for kind in ("normal", "reduce"):
            rows = torch.tensor(record[kind])
            assert rows.shape == (5, 7)
            torch.testing.assert_close(rows.sum(1), torch.ones(5), atol=1e-5, rtol=0)
            assert float(rows.min()) > 0.13 and float(rows.max()) < 0.16  # near 1/7 still
        genotype = space.from_json(record["genotype"])
        assert record["param_free_share"] == param_free_share(genotype)
    assert result.genotype == space.from_json(result.epochs[-1]["genotype"])
    lines = [r.getMessage() for r in caplog.records if r.name == "nascli.darts"]
    assert len(lines) == 2 and lines[1].startswith("darts epoch 2/2: train loss ")
    assert space.to_text(result.genotype) in lines[1]


def test_resume_after_an_interrupted_epoch_matches_an_uninterrupted_run(
        space, data, tmp_path, monkeypatch):
    options = {"seed": 3, "epochs": 2, **SMALL}
    straight = DARTS(space, **options).run(data, "cpu", tmp_path / "straight")

    save = darts.atomic_torch_save

    def save_then_stop(obj, path):
        save(obj, path)
        raise KeyboardInterrupt  # killed after the checkpoint, before darts_alphas.json

    monkeypatch.setattr(darts, "atomic_torch_save", save_then_stop)
    run_dir = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        DARTS(space, **options).run(data, "cpu", run_dir)
    monkeypatch.setattr(darts, "atomic_torch_save", save)
    assert not (run_dir / "darts_alphas.json").exists()
    assert torch.load(run_dir / "darts.ckpt", weights_only=True)["epoch"] == 1

    resumed = DARTS(space, **options).run(data, "cpu", run_dir)
    assert [r["epoch"] for r in resumed.epochs] == [1, 2]
    assert resumed.epochs == straight.epochs
    assert resumed.genotype == straight.genotype
    ckpt = {name: torch.load(tmp_path / name / "darts.ckpt", weights_only=True)
            for name in ("straight", "resumed")}
    for key in ("alpha_normal", "alpha_reduce"):
        assert torch.allclose(ckpt["resumed"]["network"][key], ckpt["straight"]["network"][key])
    doc = json.loads((run_dir / "darts_alphas.json").read_text())
    assert doc["epochs"] == ckpt["resumed"]["records"]

    # a finished checkpoint is the result, with no training
    monkeypatch.setattr(darts._Search, "epoch_pass", None)
    again = DARTS(space, **options).run(data, "cpu", run_dir)
    assert again.epochs == resumed.epochs and again.genotype == resumed.genotype


def test_checkpoint_of_another_run_or_damaged_is_refused(space, data, tmp_path):
    DARTS(space, epochs=1, **SMALL).run(data, "cpu", tmp_path)
    path = tmp_path / "darts.ckpt"
    with pytest.raises(RunDirError, match=r"darts\.ckpt: it was written with epochs=1, this "
                                          r"run has epochs=2"):
        DARTS(space, epochs=2, **SMALL).run(data, "cpu", tmp_path)
    with pytest.raises(RunDirError, match="other ops"):
        DARTS(DARTSSpace(blocks=2, channels=4, ops=("identity", "max_pool_3x3")), epochs=1,
              **SMALL).run(data, "cpu", tmp_path)

    ckpt = torch.load(path, weights_only=True)
    ckpt["network"]["alpha_normal"] = torch.zeros(3, 7)
    torch.save(ckpt, path)
    with pytest.raises(RunDirError, match=r"darts\.ckpt: does not fit this darts run"):
        DARTS(space, epochs=1, **SMALL).run(data, "cpu", tmp_path)

    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(RunDirError, match=r"darts\.ckpt: not a readable darts checkpoint") as e:
        DARTS(space, epochs=1, **SMALL).run(data, "cpu", tmp_path)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(("key", "value"), [
    ("order", "third"), ("epochs", 0), ("batch_size", 2.5), ("w_lr", -0.1),
    ("w_lr_min", 0.5), ("w_momentum", 1.0), ("w_weight_decay", float("nan")), ("alpha_lr", 0),
    ("alpha_weight_decay", -1), ("grad_clip", 0), ("max_steps", 0), ("channels", 0),
    ("cells_per_stage", True),
])
def test_bad_option_is_one_line_naming_the_key(space, key, value):
    with pytest.raises(ValueError, match=rf"^darts: {key}=.* is invalid; expected "):
        DARTS(space, **{key: value})


def test_space_and_stem_are_checked():
    with pytest.raises(ValueError, match="space 'lookup' is not a NASNet cell space"):
        DARTS(type("Lookup", (), {"name": "lookup"})())
    with pytest.raises(ValueError, match="darts supports stem=cifar"):
        DARTS(NASNetSpace(stem="imagenet"))
    search = DARTS(NASNetSpace(channels=6, cells_per_stage=2), max_steps=1)
    assert (search.options["channels"], search.options["cells_per_stage"]) == (6, 2)


def test_non_finite_loss_raises_diverged():
    with pytest.raises(DivergedError, match="training loss is nan"):
        darts._loss(torch.tensor([[float("nan"), 0.0]]), torch.tensor([0]), "training")


def test_derived_genotype_builds_and_trains(space, data):
    result = DARTS(space, epochs=1, **SMALL).run(data, "cpu")
    model = build_model(space, result.genotype, num_classes=data.num_classes,
                        in_channels=data.in_channels)
    x = data.train.images[:4]
    out = model(x)
    assert out.shape == (4, 4)
    F.cross_entropy(out, data.train.labels[:4]).backward()
    assert all(p.grad is not None for p in model.parameters())
