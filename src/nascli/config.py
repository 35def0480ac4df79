"""Config groups whose options are components: ``_target_`` plus the component's own options.

Every option of every config group is a YAML file that names a class or function with
``_target_`` and lists its options. The options a component accepts, their types and defaults
are read from its constructor signature, so there is no second schema to keep in step: a
wrong type or an unknown key fails with one line naming the key (OmegaConf checks the types),
and range checks are the constructor's own (each raises a one-line error). Components are
created with Hydra's ``instantiate``; the values only known at run time (the space, the data,
the device, the seed) are passed as keyword arguments named in :data:`RUNTIME`.

A user plugs in their own strategy, proxy, dataset, space, device or executor with one Python
file (on ``PYTHONPATH``) and one YAML file (in ``--config-dir`` or on ``hydra.searchpath``);
see docs/extending.md.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from types import NoneType, UnionType
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

#: Keyword arguments each group's components receive at run time (never config options).
RUNTIME: dict[str, tuple[str, ...]] = {
    "search_space": (),
    "strategy": ("space", "seed"),
    "proxy": ("space", "data", "device", "amp", "channels_last", "seed"),
    "dataset": ("seed",),
    "device": (),
    "executor": ("factory", "gpus"),
    "logger": ("run_dir",),
    "objective": (),
    "schedule": (),
}


RUNTIME_ALL = frozenset(n for names in RUNTIME.values() for n in names)


class ConfigError(ValueError):
    """An invalid config value; the message names the key and what is valid."""


def check(ok: bool, key: str, value: Any, valid: str) -> None:
    """Raise :class:`ConfigError` ``key=value is invalid; expected valid`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid; expected {valid}")


# -- reading a component's options from its signature -----------------------------------------
def _signatures(target: Callable[..., Any]) -> tuple[list[tuple[inspect.Parameter, Any]], bool]:
    """(parameter, resolved annotation) pairs a target accepts, following ``**kwargs`` up a
    class's MRO; and whether it still takes arbitrary keywords at the end of the chain."""
    funcs = [c.__init__ for c in inspect.getmro(target) if "__init__" in vars(c)] \
        if inspect.isclass(target) else [target]
    out: list[tuple[inspect.Parameter, Any]] = []
    seen: set[str] = set()
    for func in funcs:
        if func is object.__init__:
            return out, False
        try:
            hints = typing.get_type_hints(func)
        except Exception:  # unresolvable annotations: no type checks for this function
            hints = {}
        params = list(inspect.signature(func).parameters.values())
        for p in params:
            if p.name == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or p.name in seen:
                continue
            seen.add(p.name)
            out.append((p, hints.get(p.name, Any)))
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return out, False
    return out, True


def _config_type(annotation: Any) -> Any:
    """The nearest type OmegaConf can check (``Any`` where it cannot)."""
    if annotation in (int, float, bool, str, Any):
        return annotation
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, UnionType):
        rest = [a for a in args if a is not NoneType]
        if len(rest) == 1:
            inner = _config_type(rest[0])
            return Any if inner is Any else (inner | None)
        return Any
    if origin in (list, tuple, set, frozenset) or (
        origin is not None and inspect.isclass(origin) and issubclass(origin, Iterable)
        and origin not in (str, dict)
    ):
        items = [a for a in args if a is not Ellipsis]
        inner = _config_type(items[0]) if len(items) == 1 or (
            origin is tuple and len(set(items)) == 1) else Any
        if inner in (int, float, bool, str):
            return list[inner]
        return list[Any]
    return Any


@dataclasses.dataclass(frozen=True)
class Options:
    """What a component accepts: ``fields`` (name -> (type, default or MISSING)), and
    ``open`` when it also takes arbitrary keywords (checked by the component itself)."""

    fields: dict[str, tuple[Any, Any]]
    open: bool


def options_of(target: Callable[..., Any], runtime: Iterable[str] = ()) -> Options:
    """The config options of ``target``: its parameters minus the ``runtime`` ones.

    A class whose options are a dataclass of their own (``Options = SomeRecipe``, taken as
    ``**options``) is read from that dataclass instead.
    """
    own = getattr(target, "Options", None)
    if inspect.isclass(target) and own is not None and dataclasses.is_dataclass(own):
        params, _ = _signatures(own)
        params = [(p, a) for p, a in params if p.name not in RUNTIME_ALL]
        explicit, _ = _signatures(target)
        params += [(p, a) for p, a in explicit
                   if p.kind is p.KEYWORD_ONLY and p.name not in {q.name for q, _ in params}]
        open_ = False
    else:
        params, open_ = _signatures(target)
    skip = set(runtime)
    fields: dict[str, tuple[Any, Any]] = {}
    for p, annotation in params:
        if p.name in skip or p.name.startswith("_"):
            continue
        default = MISSING if p.default is p.empty else p.default
        if isinstance(default, tuple):
            default = list(default)
        fields[p.name] = (_config_type(annotation), default)
    for source in (own, target):  # dataclass fields with a default_factory
        if source is not None and dataclasses.is_dataclass(source):
            for f in dataclasses.fields(source):
                if f.name in fields and f.default_factory is not dataclasses.MISSING:
                    fields[f.name] = (fields[f.name][0], f.default_factory())
    return Options(fields, open_)


def _schema(name: str, options: Options) -> type:
    specs = []
    for key, (tp, default) in options.fields.items():
        if isinstance(default, list | dict):
            specs.append((key, tp, dataclasses.field(default_factory=lambda d=default: list(d)
                                                       if isinstance(d, list) else dict(d))))
        elif default is MISSING or isinstance(default, int | float | str | bool | NoneType):
            specs.append((key, tp, dataclasses.field(default=default)))
        else:  # an object default (a callable, say) is not a config value
            specs.append((key, Any, dataclasses.field(default=None)))
    return dataclasses.make_dataclass(name.replace(".", "_") or "component", specs)


def locate(path: str, where: str) -> Callable[..., Any]:
    """The class or function a ``_target_`` names; one line if it cannot be imported."""
    from hydra.utils import get_object

    try:
        return get_object(path)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{where}._target_={path!r} cannot be imported ({reason})") from None


def _fail(group: str, exc: OmegaConfBaseException) -> ConfigError:
    msg = str(exc).splitlines()[0].strip()
    key = getattr(exc, "full_key", None)
    return ConfigError(f"{group}.{key}: {msg}" if key else f"{group}: {msg}")


def component_options(node: DictConfig, group: str) -> tuple[str, dict[str, Any]]:
    """Validate a group node against its ``_target_``; returns (target path, typed options).

    Raises :class:`ConfigError` on a missing ``_target_``, an unknown key (listing the valid
    ones) or a value of the wrong type.
    """
    if not isinstance(node, DictConfig) or "_target_" not in node:
        raise ConfigError(f"{group}: the option has no _target_ (a component class or function)")
    path = str(node["_target_"])
    target = locate(path, group)
    options = options_of(target, RUNTIME.get(group, ()))
    try:
        plain = OmegaConf.to_container(node, resolve=True, throw_on_missing=False)
    except OmegaConfBaseException as exc:
        raise _fail(group, exc) from None
    given = {k: v for k, v in plain.items() if not str(k).startswith("_")}
    known = {k: v for k, v in given.items() if k in options.fields}
    extra = {k: v for k, v in given.items() if k not in options.fields}
    if extra and not options.open:
        bad = sorted(map(str, extra))[0]
        raise ConfigError(f"{group}.{bad}: unknown key; valid keys of {path}: "
                          f"{', '.join(options.fields) or '(none)'}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(_schema(group, options)),
                                 OmegaConf.create(known))
        missing = sorted(OmegaConf.missing_keys(merged))
        if missing:
            raise ConfigError(f"{group}.{missing[0]}: missing value (set {group}.{missing[0]}=...)")
        values = OmegaConf.to_container(merged, resolve=True)
    except OmegaConfBaseException as exc:
        raise _fail(group, exc) from None
    missing = sorted(k for k, v in extra.items() if v == "???")
    if missing:
        raise ConfigError(f"{group}.{missing[0]}: missing value (set {group}.{missing[0]}=...)")
    values.update(extra)
    return path, values


def instantiate(node: DictConfig, group: str, **runtime: Any) -> Any:
    """Create the component of a group node with Hydra's ``instantiate``.

    ``runtime`` keywords are passed as they are (objects, tensors). A ``ValueError`` or
    ``TypeError`` raised by the constructor is a bad option: re-raised as one-line
    :class:`ConfigError` unless it already is a user error type.
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    path, values = component_options(node, group)
    spec = OmegaConf.create({"_target_": path, **values})
    try:
        factory = hydra_instantiate(spec, _partial_=True, _convert_="all")
        return factory(**runtime)
    except InstantiationException as exc:
        cause = exc.__cause__ or exc
        raise ConfigError(_keyed(group, str(cause).splitlines()[0])) from None
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        raise ConfigError(_keyed(group, str(exc).splitlines()[0])) from None


def _keyed(group: str, message: str) -> str:
    """``group.key=value ...`` for a constructor's ``[name: ]key=value is invalid`` message."""
    prefix, sep, rest = message.partition(": ")
    if sep and prefix.isidentifier() and rest.split("=", 1)[0].isidentifier() and "=" in rest:
        message = rest  # "evolution: sample_size=50 ..." -> "sample_size=50 ..."
    head = message.split("=", 1)[0]
    if "=" in message and head.isidentifier():
        return f"{group}.{message}"
    return f"{group}: {message}"


def option_name(cfg: DictConfig, group: str) -> str:
    """The name of the group's option: Hydra's choice (``strategy=evolution``) when known,
    else the target's ``name`` attribute or its last dotted part."""
    try:
        from hydra.core.hydra_config import HydraConfig

        choice = HydraConfig.get().runtime.choices.get(group)
        if choice:
            return str(choice)
    except Exception:  # outside a Hydra run (Compose API, Python callers)
        pass
    node = cfg[group]
    if "name" in node and isinstance(node["name"], str):
        return str(node["name"])
    return str(node["_target_"]).rsplit(".", 1)[-1]


# -- plain sections (budget, prescreen, ...) -------------------------------------------------
def section(schema: type, node: Any, key: str) -> Any:
    """Merge a plain config section into its dataclass (``__post_init__`` checks ranges)."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), node)
        return OmegaConf.to_object(merged)
    except ConfigError:
        raise
    except OmegaConfBaseException as exc:
        raise _fail(key, exc) from None
    except ValueError as exc:  # a range check of the section's own __post_init__
        raise ConfigError(_keyed(key, str(exc).splitlines()[0])) from None


def config_dir() -> Path:
    """The ``configs`` folder: inside the installed package, or at the top of a source tree."""
    packaged = Path(str(resources.files("nascli"))) / "configs"
    if (packaged / "search.yaml").is_file():
        return packaged
    source = Path(__file__).resolve().parents[2] / "configs"
    if (source / "search.yaml").is_file():
        return source
    raise FileNotFoundError("nascli's configs folder is missing from this installation")
