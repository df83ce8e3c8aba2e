"""The Dask executor: a stage's tasks run on the workers of a Dask cluster.

`--executor dask://HOST:PORT` (or `[ingest] executor`) makes `make_executor` return a
`DaskExecutor` connected to that scheduler. The worker functions are the ones local
processes run (pure, picklable, one batch of files per task), so a cluster run records
exactly what a local run would: the coordinator (the `musicark` process) alone writes
SQLite and renames into the store; workers only read sources and write temporary files
into staging.

Store, staging and sources live on a filesystem every worker sees at the same path. That
is checked before the first task: the coordinator writes a token file into each shared
folder and every worker must read it back; data that is only read is checked by a few of
its files, which every worker must see with the same size and modification time
(`probe`). A worker that cannot is named in a one-line error.

Faults:
- every task ends with a syncfs of the shared folders on its worker, so what it wrote is
  durable before the coordinator renames it into the store;
- a worker that dies mid-task (SIGKILL, a lost machine): the scheduler runs its task again
  on another worker. The dead task left at most a temporary file in staging, which is not
  in the store and is removed by the next clean-up of staging;
- a task that killed every worker it ran on (`distributed.scheduler.allowed-failures`
  times) is split like a local crash until the culprit is found, and comes back as an
  `Outcome` with `crashed` set;
- the scheduler lost: `ClusterError` (one line); nothing from the unfinished batches was
  recorded, so the next run resumes.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import CancelledError
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar

from musicark.errors import ClusterError
from musicark.executor import WAIT, Outcome, _Base, waited_for_nothing
from musicark.paths import sync_filesystem

T = TypeVar("T")
R = TypeVar("R")

CONNECT_TIMEOUT = 10.0  # seconds to reach the scheduler and to see a first worker
POLL = 1.0  # seconds between checks that the scheduler is still there
RETRIES = 3  # times a task whose result vanished with its worker is run again
PROBE_NAME = ".musicark-probe-"


def connect(
    where: str,
    *,
    jobs: int,
    kind: str = "processes",
    shared: Sequence[str | os.PathLike[str]] = (),
    timeout: float = CONNECT_TIMEOUT,
    **_local_options: Any,
) -> DaskExecutor:
    """A `DaskExecutor` on the scheduler `where` (dask://HOST:PORT), its workers probed.

    `jobs` and `kind` only matter locally: the cluster's worker threads set the width.
    """
    return DaskExecutor(where, shared=shared, timeout=timeout)


class DaskExecutor(_Base):
    """Runs tasks as Dask futures, a bounded number in flight (two per worker thread)."""

    kind = "dask"

    def __init__(
        self,
        where: str,
        *,
        shared: Sequence[str | os.PathLike[str]] = (),
        timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        from distributed import Client

        _quiet_client_logs()
        self.where = where
        self.shared = [str(folder) for folder in shared]
        self.address = "tcp://" + where.partition("://")[2]
        host, _, port = where.partition("://")[2].rpartition(":")
        try:  # a refused connection is known at once; the client would retry until timeout
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
        except OSError as exc:
            why = exc.strerror or str(exc) or type(exc).__name__
            raise ClusterError(f"cannot reach the Dask scheduler at {where} ({why})") from exc
        try:
            self._client: Any = Client(
                self.address, timeout=timeout, set_as_default=False, direct_to_workers=True
            )
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"cannot reach the Dask scheduler at {where} ({exc})") from exc
        try:
            self._client.wait_for_workers(1, timeout=timeout)
            self.workers = probe(self._client, shared)
        except BaseException:
            self.close()
            raise
        super().__init__(jobs=sum(self.workers.values()))
        self.ahead = 2 * self.jobs

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with suppress(Exception):  # a scheduler already gone: nothing left to release
                client.close(timeout=5)

    def run(
        self,
        fn: Callable[[T], R],
        tasks: Iterable[T],
        *,
        split: Callable[[T], Sequence[T]] | None = None,
    ) -> Iterator[Outcome[T, R]]:
        """`fn(task)` for each task on the cluster, results in completion order."""
        from distributed.scheduler import KilledWorker

        if self._client is None:
            raise ClusterError(f"the Dask executor on {self.where} is closed")
        pending: dict[Any, T] = {}
        again: deque[T] = deque()  # parts of a task that killed its workers
        tries: dict[int, int] = {}  # id(task) -> times run again after it vanished
        source = iter(tasks)
        exhausted = False
        try:
            while True:
                while len(pending) < self.ahead and (again or not exhausted):
                    if again:
                        task = again.popleft()
                    else:
                        task = next(source, _END)
                        if task is _END:
                            exhausted = True
                            break
                        if task is WAIT:
                            if not pending:
                                raise waited_for_nothing()
                            break
                    fut = self._call(
                        self._client.submit, _durable, fn, task, self.shared, pure=False
                    )
                    pending[fut] = task
                if not pending:
                    return
                for fut in self._wait(list(pending)):
                    task = pending.pop(fut)
                    if fut.status == "finished":
                        yield Outcome(task, self._call(fut.result))
                        continue
                    exc = self._call(fut.exception) if fut.status == "error" else None
                    if exc is None:
                        # no result and no error (its worker died and the scheduler let the
                        # key go, as it may on a busy machine): run it again
                        if tries.get(id(task), 0) < RETRIES:
                            tries[id(task)] = tries.get(id(task), 0) + 1
                            again.append(task)
                            continue
                        exc = KilledWorker(fut.key, None, RETRIES)  # type: ignore[arg-type]
                    if not isinstance(exc, KilledWorker):
                        raise exc  # a bug in the worker function: it stops the run, as locally
                    parts = list(split(task)) if split is not None else [task]
                    if len(parts) > 1:
                        again.extend(parts)
                    else:
                        yield Outcome(task, crashed=f"the task killed its Dask workers ({exc})")
        finally:
            for fut in pending:
                with suppress(Exception):  # the scheduler is gone: nothing to cancel there
                    fut.cancel()

    def _wait(self, futures: list[Any]) -> set[Any]:
        """The futures done within POLL seconds (an empty set after checking the scheduler)."""
        from distributed import wait

        try:
            with self._client.as_current():  # `wait` asks for the current client
                done, _ = self._call(wait, futures, timeout=POLL, return_when="FIRST_COMPLETED")
        except TimeoutError:
            self._check_scheduler()
            return set()
        return set(done)

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`fn(...)` with a lost connection to the scheduler as a `ClusterError`."""
        try:
            return fn(*args, **kwargs)
        except CancelledError:  # the client dropped the futures: the scheduler was lost
            raise self._lost(RuntimeError("the connection was closed")) from None
        except TimeoutError:  # an OSError, but only slow (a busy machine), not lost
            raise
        except OSError as exc:
            raise self._lost(exc) from exc

    def _check_scheduler(self) -> None:
        """A client that gave up reconnecting is lost; while it tries ("connecting"), its
        futures are cancelled if it fails, which `_call` reports."""
        if self._client is None or self._client.status not in ("running", "connecting"):
            raise self._lost(RuntimeError("the connection is closed"))

    def _lost(self, exc: BaseException) -> ClusterError:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return ClusterError(
            f"lost the Dask scheduler at {self.where} ({why}); run the command again to resume"
        )


def _durable(fn: Callable[[T], R], task: T, shared: list[str]) -> R:
    """On a worker: `fn(task)`, then flush what it wrote to the shared folders.

    Locally one syncfs by the coordinator covers its workers' writes (one kernel); on a
    cluster each worker's client of the shared filesystem holds its own dirty data, so a
    task's temporary files are durable before its result reaches the coordinator, which
    renames them into the store."""
    result = fn(task)
    for folder in shared:
        with suppress(OSError):  # not a folder this task wrote into (the probe saw it)
            sync_filesystem(Path(folder))
    return result


def _quiet_client_logs() -> None:
    """The client logs a lost connection itself (tracebacks on stderr); here it becomes one
    `ClusterError`, so its loggers keep only what is worse than that."""
    for name in ["distributed", *logging.Logger.manager.loggerDict]:
        if name.startswith("distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def probe(client: Any, shared: Sequence[str | os.PathLike[str]]) -> dict[str, int]:
    """Check that every worker sees each of the `shared` paths as this machine does, and
    return the workers' threads.

    A folder: the coordinator writes a token file into it and every worker must read it
    back. A file (data that is only read, such as the folders `verify` checks): nothing is
    written; every worker must see it with the same size and modification time."""
    token = secrets.token_hex(16)
    files: list[str] = []
    seen: dict[str, tuple[int, int]] = {}
    try:
        for name in map(str, shared):
            if os.path.isfile(name):
                st = os.stat(name)
                seen[name] = (st.st_size, st.st_mtime_ns)
                continue
            path = Path(name) / f"{PROBE_NAME}{token}"
            path.write_text(token, encoding="ascii")
            files.append(str(path))
        try:
            answers = client.run(_check_token, files, token, seen, on_error="return")
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"cannot reach the Dask workers ({exc})") from exc
    finally:
        for name in files:
            Path(name).unlink(missing_ok=True)
    bad = {}
    for worker, answer in answers.items():
        if isinstance(answer, BaseException):
            bad[worker] = f"cannot run musicark's probe ({type(answer).__name__}: {answer})"
        elif answer is not None:
            bad[worker] = answer
    if bad:
        worker = sorted(bad)[0]
        more = f" (and {len(bad) - 1} more workers)" if len(bad) > 1 else ""
        raise ClusterError(f"Dask worker {worker} {bad[worker]}{more}")
    info = client.scheduler_info(n_workers=-1)["workers"]
    return {addr: int(w.get("nthreads", 1)) for addr, w in info.items()}


def _check_token(
    files: list[str], token: str, seen: dict[str, tuple[int, int]] | None = None
) -> str | None:
    """On a worker: None if every token file reads back as `token` and every file of
    `seen` has its size and modification time, else why not."""
    for name in files:
        try:
            text = Path(name).read_text(encoding="ascii")
        except OSError as exc:
            return f"cannot see the shared folder {os.path.dirname(name)} ({exc.strerror})"
        if text != token:
            return f"sees a different {os.path.dirname(name)} than this machine"
    for name, (size, mtime_ns) in (seen or {}).items():
        try:
            st = os.stat(name)
        except OSError as exc:
            return f"cannot see the shared file {name} ({exc.strerror})"
        if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
            return f"sees a different {name} than this machine (size or modification time)"
    return None


_END: Any = object()

__all__ = ["DaskExecutor", "connect", "probe"]
