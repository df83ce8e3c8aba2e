"""Progress reporting: the library calls a callback, the CLI renders it.

A callback receives a `Progress` snapshot; returning `False` asks the job to stop
(the job raises `Cancelled` at its next safe point, leaving a resumable state).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from musicark.errors import Cancelled


@dataclass(frozen=True, slots=True)
class Progress:
    stage: str
    done: int
    total: int | None = None
    unit: str = "items"
    message: str = ""


ProgressCallback = Callable[[Progress], bool | None]


def report(callback: ProgressCallback | None, progress: Progress) -> None:
    """Send `progress` to `callback` and raise `Cancelled` if it returns False."""
    if callback is None:
        return
    if callback(progress) is False:
        raise Cancelled(f"{progress.stage}: cancelled at {progress.done} {progress.unit}")
