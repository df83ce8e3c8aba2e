"""The one executor factory: where every stage runs its worker functions.

`make_executor(jobs=..., kind=...)` builds an `Executor`: `inline` (the calling thread),
`threads` (for work that drops the GIL: hashing, reading) or `processes` (codecs, which
hold the GIL and may crash). A new kind (a Dask cluster) is one module that calls
`register_executor`.

Rules for the worker functions given to `Executor.run`:

- pure: inputs in, one result record out; no SQLite, no renames into the store, no
  module-level state. The main process commits what the results say.
- picklable (a module-level function; tasks and results made of plain data), so the
  same function runs unchanged on a cluster's workers (`where="dask://HOST:PORT"`).
- they do not raise for bad input; an exception is a bug and stops the run.

A task source may yield `WAIT` instead of a task: nothing more is submitted until a task in
flight has finished (a caller that limits what runs at once, such as acquire's per-host
limits on a cluster, hands out the next task once it sees a result).

Processes die with their parent (Linux: the parent-death signal), so a killed run
leaves no worker adding files behind it. A worker that dies outright (a segfault in a
codec, the OOM killer) costs only the task it held: the pool is rebuilt, the tasks that
were in flight run again one at a time, and a task that kills its worker when run alone
is split (when the caller says how) until the single culprit is found; it comes back
as an `Outcome` with `crashed` set.
"""

from __future__ import annotations

import ctypes
import importlib
import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures import Executor as _PoolExecutor
from concurrent.futures.process import BrokenProcessPool, ProcessPoolExecutor
from concurrent.futures.thread import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import import_module
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

from musicark.errors import UsageError

T = TypeVar("T")
R = TypeVar("R")

KINDS = ("inline", "threads", "processes")
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Outcome(Generic[T, R]):
    """One task's result, or why its worker died (`crashed`) while running it alone."""

    task: T
    result: R | None = None
    crashed: str | None = None


class Executor(Protocol):
    """What every executor kind provides."""

    kind: str
    jobs: int

    def run(
        self,
        fn: Callable[[T], R],
        tasks: Iterable[T],
        *,
        split: Callable[[T], Sequence[T]] | None = None,
    ) -> Iterator[Outcome[T, R]]:
        """`fn(task)` for each task, results in completion order.

        Tasks are drawn lazily, a few per worker ahead, so memory does not grow with the
        number of tasks. `split` breaks a task whose worker crashed into smaller ones.
        """
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


Factory = Callable[..., Executor]
_FACTORIES: dict[str, Factory] = {}


def register_executor(kind: str, factory: Factory) -> None:
    """Make `kind` available to `make_executor` (`factory(jobs=..., **options)`)."""
    _FACTORIES[kind] = factory


def make_executor(
    *,
    jobs: int,
    kind: str = "processes",
    where: str = "local",
    shared: Sequence[str | os.PathLike[str]] = (),
    **options: Any,
) -> Executor:
    """An executor of `kind` with `jobs` workers (see `resolve_jobs`).

    `where`: "local" (this machine), or a cluster (`parse_where`) whose workers run the
    tasks of every kind; `shared` names the folders its workers must see at the same path
    (checked before the first task; a file is checked without writing anything: data that
    is only read). Options of `processes`: `preload`, modules imported
    once before workers start (by this process when it forks them, else by the fork
    server).
    """
    if jobs < 1:
        raise UsageError("--jobs must be at least 1")
    where = parse_where(where)
    if where != "local":
        scheme = where.partition("://")[0]
        connect: Factory = import_module(_CLUSTERS[scheme]).connect
        return connect(where, jobs=jobs, kind=kind, shared=shared, **options)
    factory = _FACTORIES.get(kind)
    if factory is None:
        raise UsageError(f"executor kind must be one of {', '.join(_FACTORIES)}, not {kind!r}")
    return factory(jobs=jobs, **options)


# cluster schemes of `--executor`, each a module whose `connect(where, ...)` builds the
# executor (imported only when used: a cluster's client library is slow to import)
_CLUSTERS = {"dask": "musicark.executor_dask"}


def parse_where(value: str) -> str:
    """`--executor` / `[ingest] executor`: "local" or SCHEME://HOST:PORT (dask://...)."""
    value = value.strip()
    if value == "local":
        return value
    scheme, sep, rest = value.partition("://")
    host, colon, port = rest.rpartition(":")
    if not sep or scheme not in _CLUSTERS or not colon or not host or not port.isdigit():
        raise UsageError(f"--executor must be local or dask://HOST:PORT, not {value!r}")
    return value


def cpu_count() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def resolve_jobs(jobs: int | None, configured: int = 0) -> int:
    """`--jobs` when given, else the configured `jobs` setting; 0 means one per core."""
    if jobs is None:
        jobs = configured
    if jobs < 0:
        raise UsageError("--jobs must be 0 (one per core) or more")
    return jobs or cpu_count()


class _Base:
    kind = "base"

    def __init__(self, *, jobs: int) -> None:
        self.jobs = jobs

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        pass


class _Wait:
    def __repr__(self) -> str:
        return "WAIT"


WAIT: Any = _Wait()  # yielded by a task source: submit nothing until a task has finished


def waited_for_nothing() -> RuntimeError:
    return RuntimeError("the task source waited with no task in flight")


class InlineExecutor(_Base):
    """Runs every task in the calling thread (debugging, tiny inputs)."""

    kind = "inline"

    def run(
        self,
        fn: Callable[[T], R],
        tasks: Iterable[T],
        *,
        split: Callable[[T], Sequence[T]] | None = None,
    ) -> Iterator[Outcome[T, R]]:
        for task in tasks:
            if task is WAIT:  # every task before it has finished already
                raise waited_for_nothing()
            yield Outcome(task, fn(task))


class _PoolBase(_Base):
    """Bounded in-flight submission to a `concurrent.futures` pool."""

    def __init__(self, *, jobs: int) -> None:
        super().__init__(jobs=jobs)
        self._pool: _PoolExecutor | None = None
        self.ahead = 2 * jobs  # tasks queued per run: no worker waits on the main process

    def _submit(self, fn: Callable[[T], R], task: T) -> Future[R]:
        return self._get_pool().submit(fn, task)

    def _get_pool(self) -> _PoolExecutor:
        raise NotImplementedError

    def run(
        self,
        fn: Callable[[T], R],
        tasks: Iterable[T],
        *,
        split: Callable[[T], Sequence[T]] | None = None,
    ) -> Iterator[Outcome[T, R]]:
        pending: dict[Future[R], T] = {}
        suspects: deque[T] = deque()
        source = iter(tasks)
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < self.ahead:
                    task = next(source, _END)
                    if task is _END:
                        exhausted = True
                        break
                    if task is WAIT:
                        if not pending and not suspects:
                            raise waited_for_nothing()
                        break
                    try:
                        pending[self._submit(fn, task)] = task
                    except BrokenProcessPool:
                        suspects.append(task)
                        break
                if not pending and not suspects:
                    if exhausted:
                        return
                    continue
                if pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        task = pending.pop(fut)
                        try:
                            result = fut.result()
                        except BrokenProcessPool:
                            suspects.append(task)
                            continue
                        yield Outcome(task, result)
                if suspects:
                    # the pool is broken: every task still in it failed with it
                    for fut, task in list(pending.items()):
                        if fut.done() and fut.exception() is None:
                            yield Outcome(task, fut.result())
                        else:
                            suspects.append(task)
                    pending.clear()
                    self._discard_pool()
                    yield from self._isolate(fn, suspects, split)
        finally:
            for fut in pending:
                fut.cancel()

    def _isolate(
        self,
        fn: Callable[[T], R],
        suspects: deque[T],
        split: Callable[[T], Sequence[T]] | None,
    ) -> Iterator[Outcome[T, R]]:
        """Run the tasks that were in a broken pool one at a time to find the culprit."""
        while suspects:
            task = suspects.popleft()
            try:
                result = self._submit(fn, task).result()
            except BrokenProcessPool:
                why = self._discard_pool()
                parts = list(split(task)) if split is not None else [task]
                if len(parts) > 1:
                    suspects.extendleft(reversed(parts))
                else:
                    yield Outcome(task, crashed=why)
                continue
            yield Outcome(task, result)

    def _discard_pool(self) -> str:
        self.close()
        return "the worker process died"

    def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown(wait=True, cancel_futures=True)


_END: Any = object()


class ThreadExecutor(_PoolBase):
    """Threads: for work that releases the GIL (hashing, file I/O)."""

    kind = "threads"

    def _get_pool(self) -> _PoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.jobs, thread_name_prefix="musicark")
        return self._pool


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Ctrl-C held back while workers are forked: raised inside os.fork's hooks (logging's
    lock release), it would be printed as an ignored exception with a traceback, and the
    lock left held. Raised after the block instead. Main thread only (signal handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if caught:
        raise KeyboardInterrupt


class ProcessExecutor(_PoolBase):
    """Worker processes: forked (inheriting the parent's imports) when no other thread
    runs, else started from a fork server that imports `preload` once.

    Processes are started by the thread that submits (keep that thread alive while the
    executor is in use: the parent-death signal follows the thread that forked).
    """

    kind = "processes"

    def __init__(self, *, jobs: int, preload: Sequence[str] = ()) -> None:
        super().__init__(jobs=jobs)
        self.preload = list(preload)
        self.crashes = 0

    def _submit(self, fn: Callable[[T], R], task: T) -> Future[R]:
        with _interrupts_deferred():  # a submit may fork a worker
            return self._get_pool().submit(fn, task)

    def _get_pool(self) -> _PoolExecutor:
        if self._pool is None:
            method = "fork" if threading.active_count() == 1 else "forkserver"
            ctx = multiprocessing.get_context(method)
            if method == "forkserver" and self.preload:
                ctx.set_forkserver_preload(self.preload)
            elif self.preload:  # imported once here, inherited by every forked worker
                for name in self.preload:
                    importlib.import_module(name)
            self._pool = ProcessPoolExecutor(
                self.jobs, mp_context=ctx, initializer=die_with_parent, initargs=(os.getpid(),)
            )
        return self._pool

    def _discard_pool(self) -> str:
        self.crashes += 1
        why = _death_reason(self._pool)
        self.close()
        return why

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for progress and diagnostics)."""
        processes = getattr(self._pool, "_processes", None) or {}
        return [p.pid for p in processes.values() if p.is_alive()]


def _death_reason(pool: _PoolExecutor | None) -> str:
    """How the dead worker ended, from its exit status (signal 15 is the pool's own
    clean-up of the others)."""
    processes = getattr(pool, "_processes", None) or {}
    for proc in list(processes.values()):
        # The pool has already terminated the others; a fork server reports a child's
        # status only once it has reaped it, which a loaded machine can delay.
        proc.join(timeout=10)
        code = proc.exitcode
        if code is None or code == -signal.SIGTERM or code == 0:
            continue
        if code < 0:
            name = signal.Signals(-code).name
            hint = " (out of memory?)" if -code == signal.SIGKILL else ""
            return f"the worker process was killed by {name}{hint}"
        return f"the worker process exited with status {code}"
    return "the worker process died"


def die_with_parent(parent: int) -> None:
    """Workers die with the process that made the executor: a killed run must not leave
    workers running (and adding files nobody records).

    The parent-death signal covers forked workers; a worker started by a fork server has
    the server as its parent, so a thread also waits on a pidfd of the real parent."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    try:
        pidfd = os.pidfd_open(parent) if hasattr(os, "pidfd_open") else None
    except ProcessLookupError:
        os._exit(1)  # the parent died before the worker started
    except OSError:
        pidfd = None
    if pidfd is not None and os.getppid() != parent:
        threading.Thread(target=_die_with, args=(pidfd,), daemon=True).start()
    try:
        os.kill(parent, 0)  # the parent died before the signal was armed
    except ProcessLookupError:
        os._exit(1)
    except PermissionError:
        pass


def _die_with(pidfd: int) -> None:
    import select

    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    poller.poll()  # readable once the process has exited
    os.kill(os.getpid(), signal.SIGKILL)


register_executor("inline", InlineExecutor)
register_executor("threads", ThreadExecutor)
register_executor("processes", ProcessExecutor)

__all__ = [
    "KINDS",
    "WAIT",
    "Executor",
    "Outcome",
    "cpu_count",
    "make_executor",
    "parse_where",
    "register_executor",
    "resolve_jobs",
]
