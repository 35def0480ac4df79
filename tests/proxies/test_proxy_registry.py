"""The registry: names, user proxies and the guard every registered proxy gets."""

from __future__ import annotations

import pytest
import torch

from nascli.proxies import PROXIES, compute, register_proxy

BUILT_IN = {
    "synflow",
    "log_synflow",
    "snip",
    "grasp",
    "fisher",
    "grad_norm",
    "jacob_cov",
    "naswot",
    "params",
    "flops",
    "zen",
}


def test_built_in_names():
    assert set(PROXIES) >= BUILT_IN


def test_unknown_name_lists_the_valid_ones(small_net, batch):
    with pytest.raises(ValueError, match=r"unknown proxy 'synflo'.*synflow"):
        compute("synflo", small_net, *batch)


def test_user_proxy_is_guarded(small_net, batch, check_unchanged):
    """A careless user proxy that trashes the model still leaves it as it was."""

    @register_proxy("vandal")
    def vandal(model, inputs, targets, *, chunks=1):
        model.eval()
        model.double()
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
            model.stem[1].running_var.fill_(42.0)
        model(inputs.double()).sum()
        for p in model.parameters():
            p.requires_grad_(False)
        return 1.5

    try:
        assert PROXIES["vandal"].splittable
        small_net.stem[0].weight.grad = torch.ones_like(small_net.stem[0].weight)
        done = check_unchanged(small_net)
        assert compute("vandal", small_net, *batch) == 1.5
        done()
    finally:
        PROXIES.unregister("vandal")


def test_failing_proxy_restores_and_raises(small_net, batch, check_unchanged):
    def broken(model, inputs, targets):
        model.eval()
        with torch.no_grad():
            model.head.weight.mul_(3.0)
        raise RuntimeError("something else went wrong")

    register_proxy("broken", broken)
    try:
        done = check_unchanged(small_net)
        with pytest.raises(RuntimeError, match="something else"):
            compute("broken", small_net, *batch)
        done()
    finally:
        PROXIES.unregister("broken")
