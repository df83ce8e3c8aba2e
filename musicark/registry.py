"""Named registries: where catalogue formats, acquisition sources and plugins plug in.

A `Registry[T]` maps names to objects of one protocol. Built-in entries register
themselves the same way a third-party package does, and a package outside musicark
registers through an entry-point group (see docs/plugins.md):

    [project.entry-points."musicark.formats"]
    myformat = "mypackage.myformat:FORMAT"

The entry point names an object that follows the registry's protocol (or a factory that
returns one) and is registered under the entry point's name. Registration order is kept: it is the order of `names()`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Generic, TypeVar

from musicark.errors import UsageError

T = TypeVar("T")


class RegistryError(UsageError):
    """A name registered twice, or asked for and not registered."""


class Registry(Generic[T]):
    """Objects of one kind by name; `kind` names them in error messages ("format")."""

    def __init__(self, kind: str, *, check: Callable[[object], bool] | None = None) -> None:
        self.kind = kind
        self._check = check
        self._items: dict[str, T] = {}
        self._loaded: set[str] = set()
        self._lock = threading.Lock()

    def register(self, name: str, obj: T, *, replace: bool = False) -> T:
        """Add `obj` under `name`; a second registration of a name is an error unless `replace`."""
        if not name or not isinstance(name, str):
            raise RegistryError(f"a {self.kind} needs a non-empty name")
        if self._check is not None and not self._check(obj):
            raise RegistryError(f"{self.kind} {name!r}: {obj!r} does not follow the protocol")
        with self._lock:
            if name in self._items and not replace:
                raise RegistryError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
        return obj

    def unregister(self, name: str) -> None:
        with self._lock:
            self._items.pop(name, None)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(self._items) or "none"
            raise RegistryError(f"unknown {self.kind} {name!r} (one of: {known})") from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[T]:
        return iter(tuple(self._items.values()))

    def __len__(self) -> int:
        return len(self._items)

    def load_entry_points(self, group: str) -> list[str]:
        """Register every entry point of `group` not yet loaded; returns the names added.

        A plugin that fails to import, or names a duplicate, raises RegistryError naming
        the entry point, so a broken plugin is reported rather than silently missing.
        """
        added = []
        for ep in metadata.entry_points(group=group):
            key = f"{group}:{ep.name}"
            if key in self._loaded:
                continue
            try:
                obj = ep.load()
            except Exception as exc:
                raise RegistryError(
                    f"{self.kind} plugin {ep.name!r} ({ep.value}) cannot be loaded: {exc}"
                ) from exc
            if self._check is not None and not self._check(obj) and callable(obj):
                obj = obj()  # a factory: a class or function that builds the object
            self.register(ep.name, obj)
            self._loaded.add(key)
            added.append(ep.name)
        return added
