"""One small registry helper, used for spaces, strategies, proxies, datasets, ops and executors.

>>> STRATEGIES = Registry("strategy")
>>> @STRATEGIES.register("random")
... class RandomSearch: ...
>>> STRATEGIES.get("random") is RandomSearch
True

Unknown names raise :class:`UnknownNameError` (a ``ValueError`` and a ``KeyError``), whose one
line lists the valid names. A registry is also a read-only mapping (``name in REG``,
``REG[name]``, iteration in registration order). This module imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class UnknownNameError(ValueError, KeyError):
    """A name that no registry entry has; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class Registry(Mapping[str, T], Generic[T]):
    """Named entries of one kind (``kind`` appears in error messages)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T) -> T: ...

    def register(self, name: str, obj: Any = None) -> Any:
        """Add ``obj`` under ``name``; without ``obj``, a decorator. A name may be re-registered
        (the last one wins), so a user can replace a built-in entry on purpose."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")

        def add(o: T) -> T:
            self._entries[name] = o
            return o

        return add if obj is None else add(obj)

    def get(self, name: str, default: Any = ...) -> T:  # type: ignore[override]
        """The entry ``name``; :class:`UnknownNameError` listing the valid names if it is
        missing (or ``default``, when one is given)."""
        if name in self._entries:
            return self._entries[name]
        if default is not ...:
            return default
        raise UnknownNameError(
            f"unknown {self.kind} {name!r}; valid: {', '.join(self.names()) or '(none registered)'}"
        )

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests and plug-ins that clean up after themselves)."""
        self._entries.pop(name, None)

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"
