"""A user's own components, written the way docs/extending.md shows: one module, no nascli
edits. The tests put this folder on PYTHONPATH and the YAML files of configs/ on --config-dir."""

from __future__ import annotations

from pathlib import Path

import torch

from nascli.data import AugmentSpec, RawData
from nascli.estimators import ModelEstimator
from nascli.strategies import Strategy


class FirstChoice(Strategy):
    """Mutates one fixed starting genotype: a deliberately simple strategy (ask and tell)."""

    name = "first_choice"

    def __init__(self, space, seed: int = 0, *, steps_per_ask: int = 1) -> None:
        super().__init__(space, seed)
        if steps_per_ask < 1:
            raise ValueError(f"steps_per_ask={steps_per_ask!r} is invalid; expected >= 1")
        self.steps_per_ask = steps_per_ask
        self.current = space.sample(self.rng)

    def _propose(self):
        for _ in range(self.steps_per_ask):
            self.current = self.space.mutate(self.current, self.rng)
        return self.current, self.space.hash(self.current)


class WidthScore(ModelEstimator):
    """A 'proxy': minus the absolute difference of the parameter count from a target."""

    name = "width_score"

    def __init__(self, space, data, device="cpu", amp="none", channels_last=False, seed=0, *,
                 target_params: int = 20000) -> None:
        super().__init__(space, data, device, amp, channels_last, seed)
        self.target_params = target_params

    def score(self, model, genotype, seed):
        n = sum(p.numel() for p in model.parameters())
        return -abs(n - self.target_params) / 1000.0, {"params_seen": n}, 0.0


def stripes(root: Path, download: bool, image_size, num_samples: int = 200) -> RawData:
    """Horizontal versus vertical stripes, 16x16 grey images, two classes."""
    size = image_size or (16, 16)
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(num_samples) % 2
    phase = torch.randint(0, 4, (num_samples,), generator=g)
    rows = torch.arange(size[0]).view(1, -1, 1)
    cols = torch.arange(size[1]).view(1, 1, -1)
    line = torch.where(labels.view(-1, 1, 1) == 0, (rows + phase.view(-1, 1, 1)) % 4 < 2,
                       (cols + phase.view(-1, 1, 1)) % 4 < 2)
    images = (line.float() * 200 + 20).to(torch.uint8).unsqueeze(1)
    return RawData(train=(images, labels), num_classes=2, augment=AugmentSpec(), val_fraction=0.25)
