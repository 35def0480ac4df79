"""Versioned genotype JSON files: ``{"format": 1, "space": ..., "normal": ..., "reduce": ...}``.

Files are parsed as data (``json``), never evaluated or unpickled, and validated against the
space they name; every error names the file and the field.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from nascli.spaces import NASNetSpace, SearchSpace, SpaceError, get_space

FORMAT_VERSION = 1


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


def genotype_from_dict(
    data: Any, where: str = "genotype", space: SearchSpace | None = None
) -> tuple[Any, SearchSpace]:
    """Validate a dict from :func:`genotype_to_dict`; returns ``(genotype, space)``."""
    if not isinstance(data, dict):
        raise GenotypeFileError(f"{where}: expected a JSON object, got {type(data).__name__}")
    fmt = data.get("format")
    if fmt != FORMAT_VERSION:
        raise GenotypeFileError(
            f"{where}: field 'format' is {fmt!r}; this nascli reads format {FORMAT_VERSION}"
        )
    space_name = data.get("space")
    if not isinstance(space_name, str):
        raise GenotypeFileError(f"{where}: field 'space' must name a search space")
    if space is None:
        options = data.get("space_config") or {}
        if not isinstance(options, dict):
            raise GenotypeFileError(f"{where}: field 'space_config' must be an object")
        try:
            space = get_space(space_name, **options)
        except TypeError as exc:
            raise GenotypeFileError(f"{where}: field 'space_config': {exc}") from None
        except SpaceError as exc:
            raise GenotypeFileError(f"{where}: {exc}") from None
    body = {k: v for k, v in data.items()
            if k not in {"format", "space", "space_config", "name", "hash", "meta"}}
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
    text = json.dumps(genotype_to_dict(genotype, space, name=name, **extra), indent=2)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    os.replace(tmp, path)
    return path


def load_genotype(
    path: str | os.PathLike, space: SearchSpace | None = None
) -> tuple[Any, SearchSpace]:
    """Read and validate a genotype file; returns ``(genotype, space)``."""
    path = Path(path)
    if not path.is_file():
        raise GenotypeFileError(f"{path}: no such genotype file")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise GenotypeFileError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    except UnicodeDecodeError:
        raise GenotypeFileError(f"{path}: not a text file") from None
    return genotype_from_dict(data, where=str(path), space=space)
