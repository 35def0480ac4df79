"""Genotype files and checkpoint genotypes are untrusted: strict, bounded, one-line errors."""

from __future__ import annotations

import json
import tracemalloc

import pytest

from nascli.genotypes import (
    DARTS_V2,
    NASNET_A,
    GenotypeFileError,
    genotype_from_dict,
    genotype_to_dict,
    load_genotype,
    save_genotype,
)
from nascli.spaces import MAX_GENOTYPE_BYTES, DARTSSpace, NASNetSpace, SpaceError


def _file(tmp_path, data, name="g.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _load_error(path) -> str:
    with pytest.raises(GenotypeFileError) as info:
        load_genotype(path)
    msg = str(info.value)
    assert msg.startswith(str(path)) and "\n" not in msg
    return msg


def _nasnet_a(**changes):
    data = genotype_to_dict(NASNET_A, NASNetSpace())
    data.update(changes)
    return data


def test_network_settings_round_trip_and_old_files_still_load(tmp_path):
    space = NASNetSpace(cells_per_stage=2, channels=16, stem="imagenet")
    g, loaded = load_genotype(save_genotype(tmp_path / "new.json", NASNET_A, space))
    assert g == NASNET_A and loaded.network == space.network and loaded.config() == space.config()
    old = _nasnet_a(space_config={"ops": list(NASNetSpace().ops), "blocks": 5,
                                  "combine": ["add"]})
    g, loaded = load_genotype(_file(tmp_path, old, "old.json"))
    assert g == NASNET_A
    assert loaded.network == {"cells_per_stage": 1, "channels": 8, "stem": "cifar"}
    assert loaded.hash(g) == old["hash"] == "ea0fa16c96ec1003"
    g, loaded = load_genotype(save_genotype(tmp_path / "d.json", DARTS_V2, DARTSSpace()))
    assert g == DARTS_V2 and loaded.name == "darts"


def test_empty_concat_is_an_error(tmp_path):
    data = _nasnet_a()
    data["normal"]["concat"] = []
    assert "normal.concat is empty" in _load_error(_file(tmp_path, data))


FILE_BLOCKS = ["5.7", '"5"', "true", "1e309", "NaN", "Infinity", "null", "[5]", "-1", "0",
               "1" * 5000]


@pytest.mark.parametrize("blocks", FILE_BLOCKS, ids=[b[:8] for b in FILE_BLOCKS])
def test_blocks_must_be_an_integer_in_range(tmp_path, blocks):
    text = json.dumps(_nasnet_a(space_config={"blocks": 0})).replace('"blocks": 0', '"blocks": '
                                                                       + blocks)
    msg = _load_error(_file(tmp_path, text))
    assert "blocks" in msg or "not valid JSON" in msg


@pytest.mark.parametrize("blocks", [5.7, "5", True, float("inf"), float("nan"), 10**5000],
                         ids=["float", "str", "bool", "inf", "nan", "huge"])
def test_checkpoint_blocks_must_be_an_integer(blocks):
    data = _nasnet_a(space_config={"blocks": blocks})
    expected = r"ckpt: space_config\.blocks=.* (is invalid|exceeds the limit)"
    with pytest.raises(GenotypeFileError, match=expected) as info:
        genotype_from_dict(data, where="ckpt")
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


def test_ten_million_blocks_are_refused_in_a_small_file_with_little_memory(tmp_path):
    data = _nasnet_a(space_config={"blocks": 10_000_000})
    path = _file(tmp_path, data)
    assert path.stat().st_size < 4096
    tracemalloc.start()
    try:
        msg = _load_error(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert msg == f"{path}: space_config.blocks=10000000 exceeds the limit of 64 blocks per cell"
    assert peak < 4 * 2**20  # the read buffer is sized for the largest file accepted, 1 MiB


def test_too_many_ops_are_refused(tmp_path):
    data = _nasnet_a(space_config={"ops": [f"op{i}" for i in range(1000)]})
    assert "space_config.ops has 1000 entries, exceeding the limit of 256" in _load_error(
        _file(tmp_path, data))


@pytest.mark.parametrize("fmt", ["true", "1.0", '"1"', "[1]", "null"])
def test_format_must_be_the_integer_1(tmp_path, fmt):
    text = json.dumps(_nasnet_a()).replace('"format": 1', '"format": ' + fmt)
    assert "field 'format' is" in _load_error(_file(tmp_path, text))


def test_unknown_fields_are_refused_listing_the_valid_ones(tmp_path):
    msg = _load_error(_file(tmp_path, _nasnet_a(normall={"blocks": []})))
    assert "unknown field(s) 'normall'; valid: format, space, space_config, name, hash, meta, " \
           "normal, reduce" in msg
    data = _nasnet_a()
    data["reduce"]["concatenate"] = [2]
    assert "reduce has unknown field(s) 'concatenate'; valid: blocks, concat" in _load_error(
        _file(tmp_path, data))
    msg = _load_error(_file(tmp_path, _nasnet_a(space_config={"blocks": 5, "depth": 3})))
    assert msg.endswith("space_config has unknown field(s) 'depth'; valid: ops, blocks, combine, "
                        "cells_per_stage, channels, stem")


@pytest.mark.parametrize(("key", "value"), [("name", 3), ("hash", ["x"]), ("meta", "notes"),
                                            ("space_config", None), ("space", 1)])
def test_header_field_types(tmp_path, key, value):
    assert f"'{key}'" in _load_error(_file(tmp_path, _nasnet_a(**{key: value})))


@pytest.mark.parametrize("depth", [40, 100_000])
def test_deep_nesting_is_one_line(tmp_path, depth):
    text = json.dumps(_nasnet_a(meta={"x": 0})).replace('"x": 0', '"x": ' + "[" * depth
                                                          + "]" * depth)
    assert "nesting exceeds the limit of 32 levels" in _load_error(_file(tmp_path, text))


def test_deep_or_cyclic_checkpoint_dicts_are_one_line():
    deep: list = []
    for _ in range(10_000):
        deep = [deep]
    cyclic: list = []
    cyclic.append(cyclic)
    for meta in ({"x": deep}, {"x": cyclic}):
        with pytest.raises(GenotypeFileError, match="ckpt: nesting exceeds the limit"):
            genotype_from_dict(_nasnet_a(meta=meta), where="ckpt")


@pytest.mark.parametrize("raw", [b"\xff\xfe\x00\x00binary", b"\x89PNG\r\n\x1a\n\x00\x00",
                                 '{"format": 1, "name": "caf\u00e9"}'.encode("latin-1")])
def test_binary_and_non_utf8_files_are_one_line(tmp_path, raw):
    path = tmp_path / "g.json"
    path.write_bytes(raw)
    assert "not a UTF-8 text file" in _load_error(path)


def test_large_files_are_refused_before_parsing(tmp_path):
    path = tmp_path / "big.json"
    path.write_bytes(b" " * (MAX_GENOTYPE_BYTES + 1))
    assert "larger than the limit of 1048576 bytes" in _load_error(path)


def test_nan_is_not_json(tmp_path):
    text = json.dumps(_nasnet_a(meta={"score": float("nan")}))
    assert "NaN is not a JSON number" in _load_error(_file(tmp_path, text))


def test_space_errors_are_genotype_file_errors(tmp_path):
    assert issubclass(GenotypeFileError, SpaceError)
    msg = _load_error(_file(tmp_path, _nasnet_a(space_config={"stem": "mnist"})))
    assert msg.endswith("space_config.stem='mnist' is invalid; valid: cifar, imagenet")
