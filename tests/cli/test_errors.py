"""Bad input: one clear error line, a non-zero exit code, no traceback."""

from __future__ import annotations

import json

import pytest

from nascli.genotypes import NASNET_A, genotype_to_dict
from nascli.spaces import NASNetSpace


def _one_error_line(proc, *needles: str) -> str:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("nascli: error:")]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_unknown_group_option(nascli):
    proc = nascli("search", "strategy=evolutoin")
    _one_error_line(proc, "'evolutoin'",
                    "valid: darts, evolution, nsga2, oneshot, ppo, random, reinforce")


def test_unknown_group_option_in_a_sweep(nascli):
    proc = nascli("search", "-m", "dataset=mnist5k,cifar11")
    _one_error_line(proc, "'cifar11'", "cifar10")


def test_wrong_value_type(nascli):
    proc = nascli("search", "budget.evaluations=abc")
    _one_error_line(proc, "budget.evaluations", "'abc'", "Integer")


def test_value_out_of_range(nascli):
    proc = nascli("search", "strategy=evolution", "strategy.sample_size=50")
    _one_error_line(proc, "strategy.sample_size=50", "population_size")


def test_unknown_key(nascli):
    _one_error_line(nascli("search", "strategy.foo=1"), "strategy.foo")
    _one_error_line(nascli("search", "+strategy.foo=1"), "foo")


def test_missing_genotype_file(nascli):
    _one_error_line(nascli("evaluate", "nope.json", "proxy=params"), "nope.json",
                    "no such genotype file")


def test_malformed_genotype_json(nascli):
    (nascli.cwd / "bad.json").write_text("{\"format\": 1, \"space\": ")
    _one_error_line(nascli("evaluate", "bad.json", "proxy=params"), "bad.json", "not valid JSON")


def test_invalid_genotype_field(nascli):
    data = genotype_to_dict(NASNET_A, NASNetSpace())
    data["normal"]["blocks"][1]["ops"][1] = "conv_9x9"
    (nascli.cwd / "g.json").write_text(json.dumps(data))
    _one_error_line(nascli("evaluate", "g.json", "proxy=params"), "g.json",
                    "normal.blocks[1].ops[1] = 'conv_9x9'")


@pytest.mark.parametrize("dataset", ["cifar10", "svhn"])
def test_dataset_not_there_with_download_off(nascli, tmp_path, dataset):
    proc = nascli("search", f"dataset={dataset}", f"dataset.root={tmp_path / 'empty'}",
                  "device=cpu")
    _one_error_line(proc, "dataset.download=true")


def test_missing_arch(nascli):
    _one_error_line(nascli("evaluate"), "missing ARCH")


def test_unavailable_device(nascli):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    _one_error_line(nascli("evaluate", "nasnet-a", "proxy=params", "device=cuda"), "device=cuda")
