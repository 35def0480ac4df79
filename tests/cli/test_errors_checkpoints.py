"""Damaged, edited or foreign train-final checkpoints: one error line (exit code 2), no
traceback, and nothing already computed is lost (the checkpoint and final.json stay as they
were)."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest
import torch
from cli_helpers import TINY, TINY_FINAL, nascli_in, one_error_line, run_dirs

from nascli.commands.train_final import CheckpointError, load_checkpoint
from nascli.genotypes import AMOEBANET_A, genotype_to_dict, published_space

FIELDS = ("config", "model", "genotype", "epoch", "optimizer", "scheduler", "generator",
          "torch_rng", "history")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A train-final run directory (one epoch of two steps), made once for this module."""
    cwd = tmp_path_factory.mktemp("trained")
    proc = nascli_in(cwd, "train-final", "nasnet-a", *TINY_FINAL, "train.epochs=1")
    assert proc.returncode == 0, proc.stderr
    (run,) = run_dirs(cwd, "train_final")
    return run


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A private copy of the trained run directory."""
    return Path(shutil.copytree(trained, tmp_path / "run"))


def edit(run: Path, change) -> Path:
    """Load the run's checkpoint, let ``change(ckpt)`` edit it, save it back; returns the file."""
    path = run / "checkpoint.pt"
    ckpt = torch.load(path, weights_only=True)
    change(ckpt)
    torch.save(ckpt, path)
    return path


def unchanged(run: Path):
    """A check that the run's checkpoint and final.json are byte for byte what they are now."""
    before = {name: (run / name).read_bytes() for name in ("checkpoint.pt", "final.json")}

    def check() -> None:
        for name, data in before.items():
            assert (run / name).read_bytes() == data, f"{name} was changed"

    return check


def resume(nascli, run: Path, *extra: str):
    return nascli("train-final", f"resume={run}", *extra)


def evaluate(nascli, path: Path):
    return nascli("evaluate", str(path), "device=cpu")


# -- 1. weights of another network ------------------------------------------------------------
@pytest.mark.parametrize("change", ["channels", "cell"])
def test_evaluate_weights_of_another_network(nascli, run, change):
    def other(ckpt):
        if change == "channels":  # the config now builds a wider network than the weights
            ckpt["config"]["train"]["channels"] = 8
        else:  # another cell with the same settings
            ckpt["genotype"] = genotype_to_dict(AMOEBANET_A, published_space("amoebanet-a"))

    path = edit(run, other)
    one_error_line(evaluate(nascli, path), str(path),
                   "weights do not fit the network its own config builds")


def test_resume_with_other_network_settings(nascli, run):
    check = unchanged(run)
    one_error_line(resume(nascli, run, "train.epochs=2", "train.channels=8"),
                   "weights do not fit the network these settings build")
    check()


# -- 2. missing fields ------------------------------------------------------------------------
@pytest.mark.parametrize("field", FIELDS)
def test_missing_field_in_process(trained, tmp_path, field):
    ckpt = torch.load(trained / "checkpoint.pt", weights_only=True)
    del ckpt[field]
    torch.save(ckpt, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=re.escape(f"field(s) '{field}' missing")):
        load_checkpoint(tmp_path / "c.pt")


# both commands read checkpoints through load_checkpoint: each field is tried with one of them
@pytest.mark.parametrize(("field", "command"),
                         [(f, ("evaluate", "resume")[i % 2]) for i, f in enumerate(FIELDS)])
def test_missing_field(nascli, run, field, command):
    path = edit(run, lambda ckpt: ckpt.pop(field))
    check = unchanged(run)
    proc = evaluate(nascli, path) if command == "evaluate" else resume(nascli, run)
    one_error_line(proc, str(path), f"field(s) '{field}' missing")
    check()


# -- 3. damaged fields ------------------------------------------------------------------------
def _momentum_of_wrong_shape(ckpt):
    state = ckpt["optimizer"]["state"]
    state[0]["momentum_buffer"] = torch.zeros(3)


def _one_parameter_less(ckpt):
    last = ckpt["optimizer"]["param_groups"][0]["params"].pop()
    ckpt["optimizer"]["state"].pop(last, None)


def _later_epoch(ckpt):  # a checkpoint after two of three epochs, resumed with train.epochs=1
    ckpt["config"]["train"]["epochs"] = 3
    ckpt["epoch"] = 2
    ckpt["history"].append(dict(ckpt["history"][0], epoch=2))


DAMAGE = {
    "momentum of another shape": (_momentum_of_wrong_shape,
                                  "field 'optimizer': state momentum_buffer of parameter 0"),
    "optimizer with a parameter less": (_one_parameter_less, "field 'optimizer' holds"),
    "optimizer lr is text": (lambda c: c["optimizer"]["param_groups"][0].update(lr="fast"),
                             "field 'optimizer'.param_groups[0].lr is 'fast'"),
    "optimizer state is a list": (lambda c: c["optimizer"].update(state=[1, 2]),
                                  "field 'optimizer' is"),
    "scheduler T_max is text": (lambda c: c["scheduler"].update(T_max="x"),
                                "field 'scheduler'.T_max is 'x'"),
    "scheduler without last_epoch": (lambda c: c["scheduler"].pop("last_epoch"),
                                     "field 'scheduler': key 'last_epoch' missing"),
    "generator is float": (lambda c: c.update(generator=c["generator"].float()),
                           "field 'generator' is a torch.float32 tensor"),
    "generator is short": (lambda c: c.update(generator=c["generator"][:100]),
                           "field 'generator' is a torch.uint8 tensor of shape (100,)"),
    "generator state is invalid": (lambda c: c.update(generator=torch.zeros_like(c["generator"])),
                                   "field 'generator' is not a valid random-generator state"),
    "torch rng is int64": (lambda c: c.update(torch_rng=c["torch_rng"].long()),
                           "field 'torch_rng' is a torch.int64 tensor"),
    "epoch is text": (lambda c: c.update(epoch="1"), "field 'epoch' is '1'"),
    "epoch is negative": (lambda c: c.update(epoch=-1), "field 'epoch' is -1"),
    "epoch beyond the recipe": (lambda c: c.update(epoch=99), "field 'epoch' is 99"),
    "history is a dict": (lambda c: c.update(history={"epoch": 1}), "field 'history' is a dict"),
    "history of numbers": (lambda c: c.update(history=[1]), "field 'history'[0] is 1"),
    "history too short": (lambda c: c.update(history=[]), "field 'history' has 0 rows"),
    "config is text": (lambda c: c.update(config="x"), "field 'config' is 'x'"),
    "config train value out of range": (lambda c: c["config"]["train"].update(lr=-1),
                                        "field 'config': train.lr"),
    "weights are numbers": (lambda c: c.update(model={"w": 1}), "field 'model' entry 'w' is 1"),
    "more epochs than the new recipe": (_later_epoch,
                                        "finished 2 epochs, more than train.epochs=1"),
}


#: what only the network (built after the data are loaded) can tell, and resume's own checks
ON_RESUME = ("momentum of another shape", "optimizer with a parameter less",
             "more epochs than the new recipe")


@pytest.mark.parametrize("case", [c for c in DAMAGE if c not in ON_RESUME])
def test_damaged_field_in_process(trained, tmp_path, case):
    change, needle = DAMAGE[case]
    path = edit(Path(shutil.copytree(trained, tmp_path / "run")), change)
    with pytest.raises(CheckpointError, match=re.escape(needle)) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("case", [*ON_RESUME, "generator is float", "epoch is text",
                                  "history is a dict", "optimizer lr is text"])
def test_damaged_field_on_resume(nascli, run, case):
    change, needle = DAMAGE[case]
    path = edit(run, change)
    check = unchanged(run)
    extra = ["train.epochs=1"] if case == "more epochs than the new recipe" else []
    one_error_line(resume(nascli, run, *extra), str(path), needle)
    check()


# -- 4. unreadable files ----------------------------------------------------------------------
CONTENT = {"garbage": lambda data: b"this is not a checkpoint\n" * 10,
           "truncated": lambda data: data[: len(data) // 2],
           "empty": lambda data: b""}


@pytest.mark.parametrize(("kind", "command"), [(k, "evaluate") for k in CONTENT]
                         + [("truncated", "resume"), ("empty", "resume")])
def test_unreadable_checkpoint_file(nascli, run, kind, command):
    path = run / "checkpoint.pt"
    path.write_bytes(CONTENT[kind](path.read_bytes()))
    check = unchanged(run)
    proc = evaluate(nascli, path) if command == "evaluate" else resume(nascli, run)
    one_error_line(proc, str(path), "empty" if kind == "empty" else "not a readable checkpoint")
    check()


# -- 5. the wrong kind of run directory ------------------------------------------------------
def test_resume_a_search_run_says_it_is_a_search(nascli):
    assert nascli("search", *TINY, "budget.evaluations=1").returncode == 0
    (search,) = run_dirs(nascli.cwd)
    for target in (search, search / "state.pt"):
        line = one_error_line(nascli("train-final", f"resume={target}"),
                              "is a search run directory, not a train-final run",
                              f"nascli search resume={search}")
        assert str(search) in line
    assert not (search / "checkpoint.pt").exists()


def test_resume_a_folder_without_checkpoint(nascli, tmp_path):
    (tmp_path / "nothing").mkdir()
    one_error_line(nascli("train-final", f"resume={tmp_path / 'nothing'}"),
                   "no checkpoint.pt here")


# -- 9. an untrusted genotype -----------------------------------------------------------------
@pytest.mark.parametrize("command", ["evaluate", "resume"])
def test_genotype_asking_for_ten_million_blocks(nascli, run, command):
    path = edit(run, lambda c: c["genotype"]["space_config"].update(blocks=10**7))
    start = time.perf_counter()
    proc = evaluate(nascli, path) if command == "evaluate" else resume(nascli, run)
    one_error_line(proc, "field 'genotype'", "blocks=10000000 exceeds the limit of 64")
    assert time.perf_counter() - start < 60
