"""Stages announce what they changed; followers subscribe (as beets' plugin events).

    events.listen("catalog.changed", fn)       # fn(CatalogChanged) after every import
    events.send("catalog.changed", archive=archive, progress=progress)

A stage sends an event after its change is committed, so a follower sees the new state.
Followers run in the sender's thread, in the order they subscribed; an exception from one
propagates to the stage's caller (the change itself stays committed). A follower keeps
derived data up to date (the search index follows the catalogue), so a library caller
gets the same result as the CLI without wiring the follow-ups itself.

Built-in followers live in the packages listed in `FOLLOWERS` under the event they follow,
which subscribe when they are imported; `send` imports an event's packages first, so no
caller has to (and an event no built-in follows imports nothing: an ingest does not load
the search index's modules to announce its change).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any, Literal, overload

from musicark.errors import UsageError

if TYPE_CHECKING:
    from musicark.archive import Archive
    from musicark.progress import ProgressCallback

# Packages whose import subscribes their followers, by the event they follow.
FOLLOWERS: dict[str, tuple[str, ...]] = {
    "catalog.changed": ("musicark.search", "musicark.store"),
    "store.changed": (),
    "release.changed": (),
}


@dataclass(frozen=True, slots=True)
class CatalogChanged:
    """Tracks, albums or artists were imported or changed in the archive's catalogue."""

    archive: Archive
    progress: ProgressCallback | None = None


@dataclass(frozen=True, slots=True)
class StoreChanged:
    """Blobs and ledger rows were added to (or removed from) the archive's store."""

    archive: Archive
    progress: ProgressCallback | None = None


@dataclass(frozen=True, slots=True)
class ReleaseChanged:
    """A release was packed or published; `stage` says which."""

    archive: Archive
    release: str
    stage: str
    progress: ProgressCallback | None = None


EVENTS: dict[str, type] = {
    "catalog.changed": CatalogChanged,
    "store.changed": StoreChanged,
    "release.changed": ReleaseChanged,
}

_listeners: dict[str, list[Callable[[Any], None]]] = {name: [] for name in EVENTS}
_lock = threading.Lock()
_followers_loaded: set[str] = set()  # events whose follower packages are imported


def _check(event: str) -> None:
    if event not in EVENTS:
        raise UsageError(f"unknown event {event!r} (one of: {', '.join(EVENTS)})")


@overload
def listen(event: Literal["catalog.changed"], fn: Callable[[CatalogChanged], None]) -> None: ...
@overload
def listen(event: Literal["store.changed"], fn: Callable[[StoreChanged], None]) -> None: ...
@overload
def listen(event: Literal["release.changed"], fn: Callable[[ReleaseChanged], None]) -> None: ...
def listen(event: str, fn: Callable[[Any], None]) -> None:
    """Call `fn(payload)` after every `send(event, ...)`; subscribing twice is a no-op."""
    _check(event)
    with _lock:
        if fn not in _listeners[event]:
            _listeners[event].append(fn)


def unlisten(event: str, fn: Callable[[Any], None]) -> None:
    _check(event)
    with _lock:
        if fn in _listeners[event]:
            _listeners[event].remove(fn)


def _load_followers(event: str) -> None:
    if event not in _followers_loaded:
        for module in FOLLOWERS[event]:
            import_module(module)
        _followers_loaded.add(event)


def send(event: str, **payload: Any) -> None:
    """Build `event`'s typed payload from `payload` and hand it to every follower."""
    _check(event)
    message = EVENTS[event](**payload)  # a misspelt field fails here, in the sender
    _load_followers(event)
    with _lock:
        followers = list(_listeners[event])
    for fn in followers:
        fn(message)
