"""Training loop pieces: divergence detection, evaluation, BatchNorm recalibration."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nascli.training import DivergedError, evaluate, recalibrate_batchnorm, train_epoch

CPU = torch.device("cpu")


def _batches(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 2, 4, 4, generator=g) * 3 + 1, torch.randint(0, 3, (8,), generator=g))
            for _ in range(n)]


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


def test_recalibration_sets_the_running_stats_to_the_average_over_batches():
    model = _model().eval()
    bn = model[1]
    bn.running_mean.fill_(123.0)
    batches = _batches()
    used = recalibrate_batchnorm(model, batches, device=CPU, max_batches=3)
    assert used == 3 and not model.training and bn.momentum == 0.1
    with torch.no_grad():
        means = torch.stack([model[0](x).mean(dim=(0, 2, 3)) for x, _ in batches[:3]])
    assert torch.allclose(bn.running_mean, means.mean(0), atol=1e-5)


def test_train_epoch_learns_and_evaluate_counts_accuracy():
    model = _model()
    batches = _batches(16)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    first, _ = train_epoch(model, batches[:1], opt, device=CPU)
    for _ in range(5):
        loss, steps = train_epoch(model, batches, opt, device=CPU, max_steps=10)
    assert steps == 10 and loss < first
    acc, val_loss = evaluate(model, batches, device=CPU)
    assert 0.0 <= acc <= 1.0 and val_loss > 0
    # accuracy is the share of argmax hits
    model.eval()
    with torch.no_grad():
        hits = sum(int((model(x).argmax(1) == y).sum()) for x, y in batches)
    assert acc == pytest.approx(hits / (8 * len(batches)))


def test_a_nan_loss_raises_diverged():
    model = _model()
    x, y = _batches(1)[0]
    x[0, 0, 0, 0] = float("nan")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(DivergedError, match="nan"):
        train_epoch(model, [(x, y)], opt, device=CPU)
