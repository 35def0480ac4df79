"""train-final with DDP on the CPU (gloo, 2 ranks) against one process: the same loss curve up to
BatchNorm's per-rank statistics, rank 0 alone writes, a killed rank stops the run at once and
the run resumes; the mechanics (shards, shuffle, gradient averaging) exactly, on a BN-free net.

Everything runs through the library in this process (Hydra's entry point, the ranks from one
fork server), so a DDP run costs seconds, not the imports of a new interpreter.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from nascli.commands import run_hydra
from nascli.commands.train_final import (
    CheckpointError,
    FinalTraining,
    rank_batch,
    train_final_task,
    validate_checkpoint,
)
from nascli.data.loader import BatchLoader
from nascli.data.splits import AugmentSpec, TensorSplit
from nascli.engine import faults
from nascli.errors import UserError
from nascli.training.device import CPU, DeviceError
from nascli.training.distributed import (
    Ranks,
    data_parallel,
    mean_over_ranks,
    prestart,
    process_group,
    spawn,
)
from nascli.training.recipe import TrainRecipe, fit

#: train-final in seconds on the CPU (tests/cli/cli_helpers.py TINY_FINAL), three epochs
TINY = ["arch=nasnet-a", "dataset=synthetic", "dataset.num_samples=240", "dataset.image_size=28",
        "dataset.channels=1", "train.channels=4", "train.cells_per_stage=1", "train.max_steps=2",
        "train.batch_size=16", "train.epochs=3", "device=cpu"]

#: Largest relative gap allowed between the per-epoch train loss of 2 ranks and of 1 process.
#: Each rank normalises with the BatchNorm statistics of its own 8 samples, not of all 16; on
#: this 4-channel network that alone moves the gradient by about as much as its size (measured
#: at the initial weights: |g_2 ranks - g_1| / |g_1| = 1.0-1.3), so the curves part a little
#: from the first step. Measured over seeds 0-3: at most 0.070 on losses near 3.3 (2.1 %);
#: 5 % leaves room for that and still fails a loss summed instead of averaged over the ranks
#: (x2). Sharding, shuffle and gradient averaging are checked exactly, without BatchNorm, by
#: test_ranks_train_exactly_like_one_process_without_batchnorm.
LOSS_TOLERANCE = 0.05


def _train_final(out: Path, *overrides: str) -> int:
    return run_hydra("train_final", [*TINY, f"hydra.run.dir={out}", *overrides])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three epochs in one process and on 2 ranks; 2 ranks again, killed (SIGKILL) as rank 0
    writes its second checkpoint, then resumed to the end."""
    root = tmp_path_factory.mktemp("ddp")
    prestart(train_final_task)  # the ranks' fork server imports while one process trains
    assert _train_final(root / "one") == 0
    assert _train_final(root / "ddp", "device.ranks=2") == 0
    os.environ["NASCLI_FAULT"] = "write:checkpoint.pt@2"  # reaches the ranks, not this process
    faults.reset()
    try:
        t0 = time.perf_counter()
        with contextlib.redirect_stderr(io.StringIO()) as err:
            crashed = _train_final(root / "two", "device.ranks=2")
        crash_seconds = time.perf_counter() - t0
    finally:
        del os.environ["NASCLI_FAULT"]
        faults.reset()
    after_crash = torch.load(root / "two" / "checkpoint.pt", weights_only=True)
    resumed = run_hydra("train_final", [f"resume={root / 'two'}",
                                        f"hydra.run.dir={root / 'resume'}"])
    return {"root": root, "crashed": crashed, "crash_seconds": crash_seconds,
            "crash_stderr": err.getvalue(), "after_crash": after_crash, "resumed": resumed}


def _history(run: Path) -> list[dict]:
    return json.loads((run / "final.json").read_text())["history"]


def test_two_ranks_follow_the_loss_curve_of_one_process(runs):
    one = [row["train_loss"] for row in _history(runs["root"] / "one")]
    two = [row["train_loss"] for row in _history(runs["root"] / "ddp")]
    print(f"train loss per epoch, 1 process: {one}; 2 ranks: {two}")
    assert len(one) == len(two) == 3
    assert two == pytest.approx(one, rel=LOSS_TOLERANCE)


def test_a_killed_rank_stops_the_run_in_one_line(runs):
    assert runs["crashed"] == 1
    errors = [ln for ln in runs["crash_stderr"].splitlines() if ln.startswith("nascli: error:")]
    assert len(errors) == 1 and "Traceback" not in runs["crash_stderr"], runs["crash_stderr"]
    assert errors[0].startswith("nascli: error: rank 0 ended with signal SIGKILL")
    assert runs["crash_seconds"] < 60  # not the process group's 30-minute timeout
    ckpt = runs["after_crash"]  # the last complete checkpoint: epoch 1
    assert ckpt["epoch"] == 1 and [row["epoch"] for row in ckpt["history"]] == [1]
    assert ckpt["config"]["device"]["ranks"] == 2


def test_rank_0_alone_logs_and_writes(runs):
    run = runs["root"] / "two"
    log = (run / "train_final.log").read_text()
    assert "2 DDP ranks on cpu" in log
    assert log.count("epoch 1/3") == 1 and "epoch 2/3" not in log  # killed before that line
    # the SIGKILL came in rank 0's second checkpoint write, so it is rank 0 that writes
    assert "rank 0 ended with signal SIGKILL" in log
    files = {p.name for p in run.iterdir()} - {".hydra"}
    leftovers = {f for f in files if f.startswith(".checkpoint.pt.")}  # the killed write
    assert files - leftovers == {".lock", "checkpoint.pt", "config.yaml", "final.json",
                                 "manifest.json", "train_final.log"}
    assert len(leftovers) <= 1
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["device"] == "2 DDP ranks on cpu" and manifest["status"] == "finished"


def test_a_ddp_run_resumes_with_its_ranks(runs):
    assert runs["resumed"] == 0
    log = (runs["root"] / "resume" / "train_final.log").read_text()
    assert "2 DDP ranks on cpu" in log and "at epoch 1 of 3" in log
    assert [log.count(f"epoch {e}/3") for e in (1, 2, 3)] == [0, 1, 1]
    ckpt = torch.load(runs["root"] / "two" / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 3 and [row["epoch"] for row in ckpt["history"]] == [1, 2, 3]
    # exactly where the uninterrupted run went: every rank's random state was saved
    ref = torch.load(runs["root"] / "ddp" / "checkpoint.pt", weights_only=True)
    losses = [[row["train_loss"] for row in _history(runs["root"] / r)] for r in ("two", "ddp")]
    assert losses[0] == losses[1]
    for key, value in ref["model"].items():
        assert torch.equal(ckpt["model"][key], value), key
    assert len(ckpt["rank_rng"]) == 2


def test_a_damaged_rank_state_in_a_checkpoint_is_named(runs):
    ckpt = torch.load(runs["root"] / "ddp" / "checkpoint.pt", weights_only=True)
    ckpt["rank_rng"][1] = ckpt["rank_rng"][1][:100]
    with pytest.raises(CheckpointError, match=r"^x\.pt: field 'rank_rng'\[1\]"):
        validate_checkpoint(ckpt, "x.pt")


# -- the mechanics, exactly --------------------------------------------------------------------

def _toy_split() -> TensorSplit:
    g = torch.Generator().manual_seed(3)
    raw = torch.randint(0, 256, (70, 1, 8, 8), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 3, (70,), generator=g)
    return TensorSplit(raw, labels, torch.tensor([128.0]), torch.tensor([64.0]))


def _toy_fit(ranks: Ranks) -> tuple[dict[str, torch.Tensor], list[float]]:
    """Two epochs of a BatchNorm-free net on 16-sample batches (this rank's share of each),
    shuffled and augmented; returns the weights and the loss of each epoch over all ranks."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 3))
    loader = BatchLoader(_toy_split(), 16, shuffle=True, drop_last=True,
                         augment=AugmentSpec(crop_padding=2, flip=True, cutout=3),
                         generator=torch.Generator().manual_seed(1),
                         shard=(ranks.rank, ranks.world) if ranks.distributed else None)
    cpu = torch.device("cpu")
    result = fit(data_parallel(model, cpu, ranks), loader, TrainRecipe(epochs=2, lr=0.5),
                 device=cpu, steps_per_epoch=len(loader))
    return model.state_dict(), [mean_over_ranks(loss, ranks, cpu) for loss in result.losses]


def _toy_rank(out: str, failing_rank: int | None) -> None:
    ranks = Ranks.from_env()
    with process_group(ranks, torch.device("cpu")):
        if ranks.rank == failing_rank:
            raise UserError(f"rank {ranks.rank} refuses")
        result = _toy_fit(ranks)  # the others wait in its first collective
        if ranks.is_main:
            torch.save(result, out)


def test_ranks_train_exactly_like_one_process_without_batchnorm(tmp_path):
    out = tmp_path / "rank0.pt"
    spawn(_toy_rank, (str(out), None), 2)
    weights, losses = torch.load(out, weights_only=True)
    ref_weights, ref_losses = _toy_fit(Ranks())
    assert losses == pytest.approx(ref_losses, rel=1e-5)
    for key, value in ref_weights.items():
        assert torch.allclose(weights[key], value, atol=1e-6), key


def test_a_users_mistake_in_one_rank_is_one_line_and_stops_the_others(tmp_path):
    t0 = time.perf_counter()
    with pytest.raises(UserError, match=r"^rank 1 refuses$"):
        spawn(_toy_rank, (str(tmp_path / "x.pt"), 1), 2, (UserError,))
    assert time.perf_counter() - t0 < 30


def test_each_rank_gets_its_part_of_the_one_process_batch():
    split, spec = _toy_split(), AugmentSpec(crop_padding=2, flip=True, cutout=3)

    def batches(shard):
        return list(BatchLoader(split, 16, shuffle=True, drop_last=True, augment=spec,
                                generator=torch.Generator().manual_seed(5), shard=shard))

    whole, parts = batches(None), [batches((r, 2)) for r in range(2)]
    assert len(whole) == len(parts[0]) == len(parts[1]) == 4
    for (x, y), (x0, y0), (x1, y1) in zip(whole, *parts, strict=True):
        assert torch.equal(torch.cat([x0, x1]), x) and torch.equal(torch.cat([y0, y1]), y)


def test_ranks_is_validated_and_the_batch_split_evenly():
    with pytest.raises(DeviceError, match=r"^device\.ranks=0 is invalid"):
        CPU(ranks=0)
    assert rank_batch(FinalTraining(batch_size=97), 1000, 4) == 24
    assert rank_batch(FinalTraining(batch_size=96), 50, 2) == 25  # at most the train split
    with pytest.raises(UserError, match="batch_size=2 leaves 3 DDP ranks"):
        rank_batch(FinalTraining(batch_size=2), 1000, 3)
