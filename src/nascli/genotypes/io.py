"""Versioned genotype JSON files: ``{"format": 1, "space": ..., "normal": ..., "reduce": ...}``.

Files are parsed as data (``json``), never evaluated or unpickled, and validated against the
space they name; every error is one line naming the file and the field. Files and checkpoint
entries are untrusted: their size, nesting and claimed counts are checked against the caps of
:mod:`nascli.spaces.genotype` before anything proportional to them is allocated, and every field
is checked for its exact type (``true`` is not the format number 1, ``5.7`` is not a count).
"""

from __future__ import annotations

import inspect
import json
import os
import re
from pathlib import Path
from typing import Any

from nascli.spaces import SPACES, NASNetSpace, SearchSpace, SpaceError, get_space
from nascli.spaces.genotype import (
    MAX_GENOTYPE_BYTES,
    MAX_JSON_DEPTH,
    check_json_depth,
    is_integer,
    short_repr,
)

FORMAT_VERSION = 1
#: Fields of a genotype file: a header, then the cells.
HEADER_FIELDS: tuple[str, ...] = ("format", "space", "space_config", "name", "hash", "meta")
FILE_FIELDS: tuple[str, ...] = (*HEADER_FIELDS, "normal", "reduce")


class GenotypeFileError(SpaceError):
    """A genotype file is missing, malformed or invalid."""


def genotype_to_dict(
    genotype: Any, space: SearchSpace, name: str | None = None, **extra: Any
) -> dict[str, Any]:
    """The versioned JSON dict of a genotype (``extra`` keys are kept under ``meta``)."""
    data: dict[str, Any] = {"format": FORMAT_VERSION, "space": space.name}
    if isinstance(space, NASNetSpace):
        data["space_config"] = space.config()
    if name:
        data["name"] = name
    data.update(space.to_json(genotype))
    data["hash"] = space.hash(genotype)
    if extra:
        data["meta"] = extra
    return data


def _options_of(factory: Any) -> list[str] | None:
    """Keyword options a space factory takes; None when it cannot tell (``**kwargs``)."""
    if factory is None:
        return None
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _space_from_header(data: dict[str, Any], where: str) -> SearchSpace:
    space_name = data.get("space")
    if not isinstance(space_name, str):
        raise GenotypeFileError(f"{where}: field 'space' must name a search space")
    options = data.get("space_config", {})
    if not isinstance(options, dict):
        raise GenotypeFileError(f"{where}: field 'space_config' must be an object")
    valid = _options_of(SPACES.get(space_name, None))
    unknown = sorted(map(short_repr, set(options) - set(valid or options)))
    if unknown:
        raise GenotypeFileError(
            f"{where}: space_config has unknown field(s) {', '.join(unknown)}; "
            f"valid: {', '.join(valid or ())}"
        )
    try:
        return get_space(space_name, **options)
    except TypeError as exc:  # an option the space does not take
        raise GenotypeFileError(f"{where}: field 'space_config': {exc}") from None
    except SpaceError as exc:
        msg = str(exc)
        # a space's option errors start with the option's name: say where it came from
        option = re.match(r"\w+", msg)
        field_ = "space_config." if option and option.group() in options else ""
        raise GenotypeFileError(f"{where}: {field_}{msg}") from None


def genotype_from_dict(
    data: Any, where: str = "genotype", space: SearchSpace | None = None
) -> tuple[Any, SearchSpace]:
    """Validate a dict from :func:`genotype_to_dict` (a parsed file or a checkpoint entry, both
    untrusted); returns ``(genotype, space)``. Errors are one line naming ``where`` and the
    field."""
    if not isinstance(data, dict):
        raise GenotypeFileError(f"{where}: expected a JSON object, got {type(data).__name__}")
    try:
        check_json_depth(data, where)
    except SpaceError as exc:
        raise GenotypeFileError(str(exc)) from None
    unknown = sorted(map(short_repr, set(data) - set(FILE_FIELDS)))
    if unknown:
        raise GenotypeFileError(
            f"{where}: unknown field(s) {', '.join(unknown)}; valid: {', '.join(FILE_FIELDS)}"
        )
    fmt = data.get("format")
    if not is_integer(fmt) or fmt != FORMAT_VERSION:
        raise GenotypeFileError(
            f"{where}: field 'format' is {short_repr(fmt)}; this nascli reads format "
            f"{FORMAT_VERSION}"
        )
    for key, kind in (("name", str), ("hash", str), ("meta", dict)):
        if key in data and not isinstance(data[key], kind):
            raise GenotypeFileError(
                f"{where}: field {key!r} must be a{'n object' if kind is dict else ' string'}"
            )
    if space is None:
        space = _space_from_header(data, where)
    body = {k: v for k, v in data.items() if k not in HEADER_FIELDS}
    try:
        if isinstance(space, NASNetSpace):
            genotype = space.from_json(body, where=where)
        else:
            genotype = space.from_json(body)
    except SpaceError as exc:
        msg = str(exc)
        raise GenotypeFileError(msg if msg.startswith(where) else f"{where}: {msg}") from None
    return genotype, space


def save_genotype(
    path: str | os.PathLike, genotype: Any, space: SearchSpace, name: str | None = None,
    **extra: Any,
) -> Path:
    """Write a genotype file atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from nascli.engine.rundir import atomic_write_text  # readable by the group, like run files

    text = json.dumps(genotype_to_dict(genotype, space, name=name, **extra), indent=2)
    atomic_write_text(path, text + "\n")
    return path


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def load_genotype(
    path: str | os.PathLike, space: SearchSpace | None = None
) -> tuple[Any, SearchSpace]:
    """Read and validate a genotype file; returns ``(genotype, space)``.

    Files over :data:`MAX_GENOTYPE_BYTES` are refused before they are read, and nesting deeper
    than ``MAX_JSON_DEPTH`` after parsing, so a hostile file costs little memory or time.
    """
    path = Path(path)
    if not path.is_file():
        raise GenotypeFileError(f"{path}: no such genotype file")
    size_error = GenotypeFileError(
        f"{path}: larger than the limit of {MAX_GENOTYPE_BYTES} bytes for a genotype file"
    )
    if path.stat().st_size > MAX_GENOTYPE_BYTES:
        raise size_error
    with path.open("rb") as f:
        raw = f.read(MAX_GENOTYPE_BYTES + 1)  # the file may grow after stat
    if len(raw) > MAX_GENOTYPE_BYTES:
        raise size_error
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise GenotypeFileError(f"{path}: not a UTF-8 text file") from None
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise GenotypeFileError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    except RecursionError:
        raise GenotypeFileError(
            f"{path}: nesting exceeds the limit of {MAX_JSON_DEPTH} levels"
        ) from None
    except ValueError as exc:  # NaN or Infinity, an integer too long to convert
        raise GenotypeFileError(f"{path}: not valid JSON ({exc})") from None
    return genotype_from_dict(data, where=str(path), space=space)
