"""Every proxy leaves the model exactly as it was, and gives the same score twice."""

from __future__ import annotations

import math

import pytest
import torch

from nascli.proxies import PROXIES, compute

ALL = sorted(PROXIES)


def _prepare(model: torch.nn.Module, mode: str) -> None:
    """Put the model in a mode and give it some existing gradients to keep."""
    if mode == "train":
        model.train()
    elif mode == "eval":
        model.eval()
    else:  # mixed: a caller may freeze BatchNorm in an otherwise training model
        model.train()
        model.stem[1].eval()
    model.stem[0].weight.grad = torch.full_like(model.stem[0].weight, 0.5)
    model.frozen[1].weight.grad = torch.ones_like(model.frozen[1].weight)
    # A BatchNorm that has seen data, so running stats are not the defaults.
    model.stem[1].running_mean.uniform_(-1, 1)
    model.stem[1].num_batches_tracked.fill_(7)


@pytest.mark.parametrize("mode", ["train", "eval", "mixed"])
@pytest.mark.parametrize("name", ALL)
def test_model_unchanged(name, mode, small_net, batch, check_unchanged):
    _prepare(small_net, mode)
    done = check_unchanged(small_net)
    score = compute(name, small_net, *batch)
    assert isinstance(score, float) and not math.isnan(score)
    done()


@pytest.mark.parametrize("name", ALL)
def test_deterministic(name, small_net, batch):
    small_net.train()  # dropout active in the caller's mode: the score must not depend on it
    first = compute(name, small_net, *batch)
    assert compute(name, small_net, *batch) == first


@pytest.mark.parametrize("name", ["snip", "grad_norm", "fisher", "grasp"])
def test_frozen_layer_is_scored(name, small_net, batch):
    """Freezing a layer changes training, not the architecture: its weights still count."""
    frozen_score = compute(name, small_net, *batch)
    small_net.frozen[0].weight.requires_grad_(True)
    assert compute(name, small_net, *batch) == pytest.approx(frozen_score, rel=1e-6)


def test_caller_context_does_not_leak_in(small_net, batch):
    """No-grad, inference mode or autocast around the call change no score."""
    expected = {name: compute(name, small_net, *batch) for name in ALL}
    for context in (torch.no_grad, torch.inference_mode, lambda: torch.autocast("cpu")):
        with context():
            for name in ALL:
                assert compute(name, small_net, *batch) == expected[name], (name, context)
    with torch.inference_mode():
        made_there = [t.clone() for t in batch]  # inference tensors
    for name in ALL:
        assert compute(name, small_net, *made_there) == expected[name], name


def test_float64_model_unchanged(small_net, batch, check_unchanged):
    """Synflow converts to float64 and takes |theta| in place: a float64 model must survive."""
    small_net.double()
    done = check_unchanged(small_net)
    for name in ALL:
        compute(name, small_net, *batch)
    done()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("name", ALL)
def test_gpu_matches_cpu(name, small_net, batch, check_unchanged):
    cpu = compute(name, small_net, *batch)
    small_net.cuda()
    done = check_unchanged(small_net)
    gpu = compute(name, small_net, *batch)  # CPU inputs: moved to the model's device
    done()
    assert gpu == pytest.approx(cpu, rel=1e-3, abs=1e-4)
