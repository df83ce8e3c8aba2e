"""Worker processes for the store: forked when that is safe, so they start warm."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor


def worker_pool(jobs: int, *, preload: Sequence[str] = ()) -> ProcessPoolExecutor:
    """`jobs` processes: forked (inheriting the imports) when no other thread runs, else
    started from a fork server that imports `preload` once."""
    method = "fork" if threading.active_count() == 1 else "forkserver"
    ctx = multiprocessing.get_context(method)
    if method == "forkserver" and preload:
        ctx.set_forkserver_preload(list(preload))
    return ProcessPoolExecutor(jobs, mp_context=ctx)
