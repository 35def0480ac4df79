"""Bad data on the command line: one error line (exit code 2), no traceback, no run results
(a damaged tensor cache, a decompression bomb, image folders too small to split, one class);
and train-final without a validation split (val_fraction=0) writes no NaN."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import TINY_FINAL, one_error_line, run_dirs
from PIL import Image

from nascli.data.torchvision_sets import CACHE_DIR

QUICK_FINAL = ["train.channels=4", "train.cells_per_stage=1", "train.max_steps=2",
               "train.epochs=1", "device=cpu"]


def images(folder: Path, classes: dict[str, int]) -> Path:
    """``count`` small PNGs per class under ``folder``."""
    for k, (name, count) in enumerate(classes.items()):
        (folder / name).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (12, 12), (60 * k, 5 * i, 100)).save(folder / name / f"{i}.png")
    return folder


def huge_png(width: int, height: int) -> bytes:
    """A small PNG whose header declares ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0"))
            + chunk(b"IEND", b""))


def no_results(cwd: Path) -> None:
    assert not list((cwd / "outputs").rglob("final.json"))
    assert not list((cwd / "outputs").rglob("checkpoint.pt"))
    assert not list((cwd / "outputs").rglob("history.jsonl"))


def test_damaged_dataset_cache_names_the_file(nascli, tmp_path):
    cache = tmp_path / "data" / CACHE_DIR / "mnist.pt"
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"\x00not a tensor file" * 50)
    proc = nascli("evaluate", "nasnet-a", "proxy=params", "dataset=mnist",
                  f"dataset.root={tmp_path / 'data'}", "device=cpu")
    one_error_line(proc, f"tensor cache {cache} is damaged", f"delete {cache}")


def test_decompression_bomb_in_an_image_folder(nascli, tmp_path):
    root = images(tmp_path / "imgs", {"a": 5, "b": 5})
    (root / "b" / "bomb.png").write_bytes(huge_png(30000, 30000))
    proc = nascli("evaluate", "nasnet-a", "proxy=params", "dataset=imagefolder",
                  f"dataset.root={root}", "device=cpu")
    one_error_line(proc, f"image {root / 'b' / 'bomb.png'}", "decompression-bomb limit")


@pytest.mark.parametrize("command", ["train-final", "search"])
def test_two_image_folder_is_refused(nascli, tmp_path, command):
    root = images(tmp_path / "imgs", {"cat": 1, "dog": 1})
    extra = QUICK_FINAL if command == "train-final" else ["search_space.channels=4",
                                                          "proxy.max_steps=2", "device=cpu",
                                                          "budget.evaluations=1"]
    args = ["nasnet-a"] if command == "train-final" else []
    proc = nascli(command, *args, "dataset=imagefolder", f"dataset.root={root}", *extra)
    one_error_line(proc, "too few images: 2 give 2 train, 0 val and 0 test",
                   "val and test splits would be empty", "add more images")
    no_results(nascli.cwd)


def test_one_class_folder_is_refused(nascli, tmp_path):
    root = images(tmp_path / "imgs", {"cat": 12})
    proc = nascli("train-final", "nasnet-a", "dataset=imagefolder", f"dataset.root={root}",
                  *QUICK_FINAL)
    one_error_line(proc, "only 1 class (cat)", "at least 2")
    no_results(nascli.cwd)


def _strict_json(path: Path):
    def refuse(constant: str):
        raise AssertionError(f"{path} holds {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_train_final_without_validation_split_writes_no_nan(nascli):
    proc = nascli("train-final", "nasnet-a", *TINY_FINAL, "dataset.val_fraction=0",
                  "train.epochs=1")
    assert proc.returncode == 0, proc.stderr
    (run,) = run_dirs(nascli.cwd, "train_final")
    final = _strict_json(run / "final.json")
    assert final["val_acc"] is None and final["history"][0]["val_acc"] is None
    assert np.isfinite(final["test_acc"])
    # the checkpoint resumes and evaluates like any other
    assert nascli("train-final", f"resume={run}", "train.epochs=2").returncode == 0
    assert [h["val_acc"] for h in _strict_json(run / "final.json")["history"]] == [None, None]
    assert nascli("evaluate", str(run / "checkpoint.pt"), "device=cpu").returncode == 0
