"""Networks for random genotypes: build, forward, backward, auxiliary head, drop-path."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nascli.genotypes import DARTS_V2, NASNET_A
from nascli.models import build_network, channels_from_penultimate, drop_path
from nascli.spaces import Block, CellGenotype, DARTSSpace, NASNetGenotype, NASNetSpace

STEM_CASES = [("cifar", 28), ("cifar", 32), ("cifar", 33), ("imagenet", 64)]


@st.composite
def genotypes(draw):
    kind = draw(st.sampled_from(["nasnet", "concat", "darts"]))
    seed = draw(st.integers(0, 2**32 - 1))
    if kind == "darts":
        return DARTSSpace().sample(seed)
    combine = ("add",) if kind == "nasnet" else ("add", "concat")
    return NASNetSpace(blocks=draw(st.integers(2, 5)), combine=combine).sample(seed)


@settings(max_examples=20, deadline=None)
@given(
    genotype=genotypes(),
    stem=st.sampled_from(STEM_CASES),
    in_channels=st.sampled_from([1, 3]),
    channels=st.integers(4, 8),
    num_classes=st.integers(2, 11),
)
def test_random_genotype_trains_one_step(genotype, stem, in_channels, channels, num_classes):
    stem_type, size = stem
    model = build_network(
        genotype,
        num_classes=num_classes,
        in_channels=in_channels,
        cells_per_stage=1,
        channels=channels,
        stem=stem_type,
        auxiliary=True,
        drop_path=0.2,
    )
    x = torch.randn(2, in_channels, size, size)
    logits, aux = model(x)
    assert logits.shape == aux.shape == (2, num_classes)
    assert torch.isfinite(logits).all() and torch.isfinite(aux).all()
    (logits.logsumexp(1).mean() + 0.4 * aux.logsumexp(1).mean()).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert model.classifier.weight.grad is not None and model.stem[0].weight.grad is not None
    assert all(torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, num_classes)


@pytest.mark.parametrize(("stem", "size"), STEM_CASES)
def test_aux_head_only_in_training(stem, size):
    model = build_network(NASNET_A, 5, 3, 1, 4, stem=stem, auxiliary=True)
    x = torch.randn(2, 3, size, size)
    logits, aux = model(x)
    assert logits.shape == aux.shape == (2, 5)
    assert model.eval()(x).shape == (2, 5)
    plain = build_network(NASNET_A, 5, 3, 1, 4, stem=stem)
    assert plain(x).shape == (2, 5)


def test_aux_head_sits_after_the_second_reduction():
    model = build_network(DARTS_V2, cells_per_stage=2, channels=4, auxiliary=True)
    reductions = [i for i, c in enumerate(model.cells) if c.reduction]
    assert model._aux_after == reductions[1]
    assert model.aux_head.features[0].in_channels == model.cells[reductions[1]].out_channels


def test_cell_widths_follow_the_genotype():
    model = build_network(NASNET_A, cells_per_stage=2, channels=8)
    assert [c.out_channels for c in model.cells] == [48, 48, 64, 96, 96, 128, 192, 192]
    assert model.classifier.in_features == 192


def test_cell_inputs_and_concat_blocks_in_the_output():
    # states 0/1 in a reduction cell's output are reduced; concat blocks are 2C wide
    cell = CellGenotype(
        blocks=(
            Block(inputs=(0, 1), ops=("sep_conv_3x3", "max_pool_3x3"), combine="concat"),
            Block(inputs=(2, 0), ops=("avg_pool_3x3", "identity")),
        ),
        concat=(0, 1, 2, 3),
    )
    model = build_network(NASNetGenotype(normal=cell, reduce=cell), 3, 1, 1, 4, auxiliary=True)
    assert [c.out_channels for c in model.cells] == [20, 40, 40, 80, 80]
    logits, aux = model(torch.randn(2, 1, 30, 30))
    assert logits.shape == aux.shape == (2, 3)


def test_drop_path_zeroes_samples_and_rescales():
    torch.manual_seed(0)
    x = torch.ones(4000, 3, 2, 2)
    y = drop_path(x, 0.25)
    per_sample = y[:, 0, 0, 0]
    kept = per_sample[per_sample != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / 0.75))
    assert (per_sample == 0).float().mean().item() == pytest.approx(0.25, abs=0.03)
    assert y.mean().item() == pytest.approx(1.0, abs=0.05)
    assert (y == y[:, :1, :1, :1]).all()  # whole samples, not single activations


def test_drop_path_follows_the_input_device():
    x = torch.empty(8, 2, 3, 3, device="meta")
    assert drop_path(x, 0.5).device.type == "meta"


def test_drop_path_prob_is_set_per_step_and_reaches_every_cell():
    model = build_network(NASNET_A, cells_per_stage=1, channels=4, drop_path=0.1)
    assert {c.drop_prob for c in model.cells} == {0.1}
    model.drop_path_prob = 0.3
    assert model.drop_path_prob == 0.3 and {c.drop_prob for c in model.cells} == {0.3}
    with pytest.raises(ValueError):
        model.drop_path_prob = 1.0


def _outputs(model, x, prob, seed=0):
    model.drop_path_prob = prob
    torch.manual_seed(seed)
    with torch.no_grad():
        return model(x)


def test_drop_path_only_in_training_and_not_on_identity():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 28, 28)
    model = build_network(NASNET_A, cells_per_stage=1, channels=4)
    assert not torch.equal(_outputs(model, x, 0.0), _outputs(model, x, 0.5))
    model.eval()
    torch.testing.assert_close(_outputs(model, x, 0.0), _outputs(model, x, 0.5))

    ident = CellGenotype(blocks=(Block(inputs=(0, 1), ops=("identity", "identity")),), concat=(2,))
    skip_only = build_network(NASNetGenotype(normal=ident, reduce=ident), cells_per_stage=1)
    torch.testing.assert_close(_outputs(skip_only, x, 0.0), _outputs(skip_only, x, 0.9))


def test_channels_from_penultimate():
    assert channels_from_penultimate(768, NASNET_A) == 32
    assert channels_from_penultimate(1056, NASNET_A) == 44
    assert channels_from_penultimate(4032, NASNET_A) == 168
    assert channels_from_penultimate(576, DARTS_V2) == 36
    with pytest.raises(ValueError, match="multiple"):
        channels_from_penultimate(770, NASNET_A)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="stem"):
        build_network(NASNET_A, stem="mnist")
    bad = CellGenotype(blocks=(Block(inputs=(0, 1), ops=("conv_9x9", "identity")),))
    with pytest.raises(KeyError, match="conv_9x9"):
        build_network(NASNetGenotype(normal=bad, reduce=bad), cells_per_stage=1, channels=4)
