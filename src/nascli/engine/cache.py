"""An evaluation cache shared by search runs (``nascli search cache=DIR``): docs/cache.md.

Layout: ``DIR/<settings>/settings.json`` names what was held fixed (space, estimator, data,
precision; :func:`cache_settings`), and ``DIR/<settings>/<hash>.json`` holds one finished
evaluation of the architecture with canonical hash ``hash`` under those settings. Every file
is written atomically (temporary file, fsync, rename), so a kill leaves either the old entry
or the new one, and several processes may share one directory: the last writer wins. An
entry carries a checksum of its own content; one that does not parse, does not check or was
edited by hand is ignored with one warning line and overwritten by the next result. JSON
only: nothing read from the cache is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from pathlib import Path
from typing import Any

import nascli
from nascli.engine.rundir import _json_default, atomic_write_text, now_iso
from nascli.errors import UserError

log = logging.getLogger("nascli.cache")

#: the entry format and key scheme; a new version starts new settings folders
VERSION = 1
FORMAT = "nascli-evaluation-cache"
SETTINGS = "settings.json"
#: dataset keys that say where the data lives, not what it is (the content is fingerprinted)
LOCATION_KEYS = ("root", "download")
#: images per split hashed by :func:`sample_fingerprint`
SAMPLES = 256
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")


def canonical_json(data: Any) -> str:
    """Compact JSON with sorted keys: equal data, equal text (hashes and checksums). Numbers
    of numpy or torch are written as the history writes them (their ``item()``)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False,
                      default=_json_default)


def _digest(data: Any, n: int = 16) -> str:
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()[:n]


def sample_fingerprint(data: Any, samples: int = SAMPLES) -> str:
    """16 hex chars of sha256 over what an estimator reads of ``data`` (a
    :class:`~nascli.data.DataSplits`): per train and val split, the shape and dtype, every
    label, the normalisation statistics and ``samples`` evenly spaced images.

    Cheap at any size (1-2 ms for CIFAR-10-sized data on CPU, see docs/cache.md), and it is
    computed here from the tensors, so data made by a user's builder is told apart even when
    its own ``fingerprint`` field is not a real content hash.
    """
    import torch

    h = hashlib.sha256(f"classes={data.num_classes}".encode())
    for name in ("train", "val"):
        split = getattr(data, name)
        raw, labels = split.raw, split.labels
        h.update(f"|{name}|{tuple(raw.shape)}|{raw.dtype}|".encode())
        n = int(raw.shape[0])
        if n:
            idx = torch.linspace(0, n - 1, steps=min(n, samples)).round().long()
            h.update(raw[idx.to(raw.device)].cpu().contiguous().numpy().tobytes())
        h.update(labels.cpu().to(torch.int64).contiguous().numpy().tobytes())
        for stat in (split.mean, split.std):
            h.update(stat.detach().cpu().to(torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def cache_settings(*, space: dict[str, Any], proxy: dict[str, Any], dataset: dict[str, Any],
                   data: Any, precision: dict[str, Any]) -> dict[str, Any]:
    """Everything a cached score depends on besides the architecture (JSON-ready).

    ``space``, ``proxy`` and ``dataset`` are resolved config nodes (the dataset's location keys
    are dropped: the content fingerprints prove what the data is); ``data`` the loaded
    :class:`~nascli.data.DataSplits`; ``precision`` the arithmetic the estimator runs in
    (``{"amp": ..., "tf32": ...}`` as they take effect on the device). The evaluation seed is
    deliberately not part of it: reuse across runs is the point.
    """
    return {
        "version": VERSION,
        "nascli": nascli.__version__,
        "space": space,
        "proxy": proxy,
        "dataset": {k: v for k, v in dataset.items() if k not in LOCATION_KEYS},
        "data": {"fingerprint": str(data.fingerprint), "sample": sample_fingerprint(data)},
        "precision": precision,
    }


class CacheEntryError(ValueError):
    """A cache entry that cannot be used; the message says why."""


class EvalCache:
    """Finished evaluations under one set of settings, in ``path`` (created if needed).

    Args:
        path: the cache directory, shared by any number of runs and processes.
        settings: what the scores depend on besides the architecture (:func:`cache_settings`).
        run: the run directory writing here (recorded as each stored entry's source).

    :meth:`get` and :meth:`put` never raise for a damaged entry or a failed write: the cache
    is a shortcut, and the run directory stays the record of a search.
    """

    def __init__(self, path: str | Path, settings: dict[str, Any], run: str | None = None
                 ) -> None:
        self.root = Path(path).expanduser()
        self.settings = settings
        self.key = self.key_of(settings)
        self.dir = self.root / self.key
        self.run = run
        self._warned: set[str] = set()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            if not (self.dir / SETTINGS).is_file():
                atomic_write_text(self.dir / SETTINGS,
                                  json.dumps(settings, indent=2, sort_keys=True) + "\n",
                                  point="write:cache")
        except OSError as exc:
            raise UserError(f"cache={self.root}: cannot write the evaluation cache there "
                            f"({exc.strerror or exc})") from None

    @staticmethod
    def key_of(settings: dict[str, Any]) -> str:
        """The name of the folder holding the entries of ``settings``: 16 hex chars."""
        return _digest(settings)

    def path_of(self, h: str) -> Path:
        """The entry file of architecture hash ``h``."""
        name = h if _SAFE_NAME.fullmatch(h) else hashlib.sha256(h.encode()).hexdigest()[:32]
        return self.dir / f"{name}.json"

    def get(self, h: str) -> dict[str, Any] | None:
        """The cached evaluation of hash ``h`` (score, metrics, params, macs, seconds, epochs,
        source), or None: absent, or unusable (one warning line, then treated as absent)."""
        path = self.path_of(h)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            self._warn(path, f"cannot be read ({exc})")
            return None
        try:
            return check_entry(text, self.key, h)
        except CacheEntryError as exc:
            self._warn(path, str(exc))
            return None

    def put(self, row: dict[str, Any], seed: int | None = None) -> bool:
        """Store a finished ``ok`` history row (its id and ``seed`` become the source);
        False, with one warning line, when the entry cannot be written."""
        entry = make_entry(row, self.key, run=self.run, seed=seed)
        path = self.path_of(row["hash"])
        try:
            atomic_write_text(path, canonical_json(entry) + "\n", point="write:cache")
        except (OSError, ValueError, TypeError) as exc:
            self._warn(self.dir, f"cannot store evaluation #{row['id']} ({exc}); the search "
                       "goes on without storing it")
            return False
        return True

    def _warn(self, path: Path, why: str) -> None:
        if str(path) not in self._warned:
            self._warned.add(str(path))
            log.warning("cache: %s: %s; ignored", path, why)


# -- entries ---------------------------------------------------------------------------------
#: fields of a history row an entry keeps (the row's cost becomes the source's)
_KEPT = ("hash", "genotype", "arch", "score", "metrics", "params", "macs")


def make_entry(row: dict[str, Any], key: str, run: str | None, seed: int | None
               ) -> dict[str, Any]:
    """The JSON entry of a finished ``ok`` history ``row`` under settings ``key``."""
    entry: dict[str, Any] = {"format": FORMAT, "version": VERSION, "settings": key}
    entry.update({k: row.get(k) for k in _KEPT})
    entry["source"] = {"run": run, "id": row["id"], "seed": seed,
                       "seconds": row.get("seconds"), "epochs": row.get("epochs"),
                       "worker": row.get("worker"), "finished_at": row.get("finished_at")
                       or now_iso()}
    entry["checksum"] = _digest(entry, 64)
    return entry


def check_entry(text: str, key: str, h: str) -> dict[str, Any]:
    """The evaluation held by an entry's ``text``, checked to be an intact entry of settings
    ``key`` and hash ``h``; :class:`CacheEntryError` naming what is wrong."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise CacheEntryError("not valid JSON (a damaged entry)") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CacheEntryError("not a nascli cache entry")
    checksum = data.pop("checksum", None)
    try:
        intact = checksum == _digest(data, 64)
    except ValueError:  # NaN or infinity written by hand
        intact = False
    if not intact:
        raise CacheEntryError("checksum mismatch (edited by hand or damaged)")
    if data.get("version") != VERSION or data.get("settings") != key or data.get("hash") != h:
        raise CacheEntryError("an entry of other settings or another architecture")
    return _checked_fields(data)


def _checked_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The fields a cached history row takes from an entry, with their types checked."""
    score, source = data.get("score"), data.get("source")
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise CacheEntryError(f"field 'score' must be a finite number, got {score!r}")
    if not isinstance(data.get("metrics"), dict) or not isinstance(source, dict):
        raise CacheEntryError("fields 'metrics' and 'source' must be objects")
    for name in ("params", "macs"):
        value = data.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise CacheEntryError(f"field {name!r} must be an integer or null, got {value!r}")
    return {"score": float(score), "metrics": data["metrics"], "params": data.get("params"),
            "macs": data.get("macs"), "source": source}
