"""A real Dask cluster on 127.0.0.1 for tests and benchmarks: `dask scheduler` and
`dask worker` processes (one thread each), started and stopped with bounded waits; and
what the cluster tests of each stage share (running musicark against an archive, killing
a busy worker, comparing stores)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from musicark.archive import Archive
from tests.net import free_port

ROOT = Path(__file__).resolve().parents[1]
DASK = str(Path(sys.executable).with_name("dask"))
START_TIMEOUT = 60.0


@dataclass
class Cluster:
    address: str  # tcp://127.0.0.1:PORT
    workdir: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def where(self) -> str:
        return "dask://" + self.address.removeprefix("tcp://")

    def client(self) -> Any:
        from distributed import Client

        return Client(self.address, timeout=10, set_as_default=False)

    def add_worker(
        self, *, name: str, prefix: Sequence[str] = (), threads: int = 1
    ) -> subprocess.Popen[bytes]:
        """One more worker process (under `prefix`, such as an `unshare` command line)."""
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        cmd = [
            DASK, "worker", self.address, "--host", "127.0.0.1", "--nworkers", "1",
            "--nthreads", str(threads), "--no-dashboard", "--name", name,
            "--local-directory", str(self.workdir / name),
        ]  # fmt: skip
        proc = subprocess.Popen(
            [*prefix, *cmd],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_env(),
            start_new_session=True,  # its own process group: stopped with the nanny's child
        )
        log.close()
        self.procs.append(proc)
        return proc

    def wait_workers(self, n: int, timeout: float = START_TIMEOUT) -> None:
        client = self.client()
        try:
            deadline = time.monotonic() + timeout
            while len(client.scheduler_info(n_workers=-1)["workers"]) != n:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the cluster did not reach {n} workers")
                time.sleep(0.1)
        finally:
            client.close()

    def worker_pids(self) -> dict[str, int]:
        """Worker address -> process id of the worker (the nanny's child)."""
        client = self.client()
        try:
            return dict(client.run(os.getpid))
        finally:
            client.close()

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        _stop(proc)
        if proc in self.procs:
            self.procs.remove(proc)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


@contextmanager
def local_cluster(workdir: Path, *, workers: int = 2, threads: int = 1) -> Iterator[Cluster]:
    """A scheduler and `workers` workers of `threads` threads each, stopped on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cluster = Cluster(address=f"tcp://127.0.0.1:{port}", workdir=workdir)
    log = open(workdir / "scheduler.log", "wb")  # noqa: SIM115
    scheduler = subprocess.Popen(
        [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_env(),
        start_new_session=True,
    )
    log.close()
    cluster.procs.append(scheduler)
    try:
        for i in range(workers):
            cluster.add_worker(name=f"w{i}", threads=threads)
        cluster.wait_workers(workers)
        yield cluster
    finally:
        for proc in reversed(cluster.procs):
            _stop(proc)


def die_on_negative(batch: tuple[int, ...]) -> list[int]:
    """A worker function whose worker dies (SIGKILL) on a batch holding a negative number,
    like a codec that segfaults on one file."""
    if any(x < 0 for x in batch):
        os.kill(os.getpid(), signal.SIGKILL)
    return [x * 2 for x in batch]


def halves(batch: tuple[int, ...]) -> list[tuple[int, ...]]:
    return [batch[: len(batch) // 2], batch[len(batch) // 2 :]] if len(batch) > 1 else [batch]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One local cluster for a test module (import it into the module to use it)."""
    with local_cluster(tmp_path_factory.mktemp("dask")) as c:
        yield c


def _archive_env(archive: Archive) -> dict[str, str]:
    return {**os.environ, "MUSICARK_ARCHIVE": str(archive.root), "PYTHONPATH": str(ROOT)}


def musicark(
    archive: Archive, *args: str | os.PathLike[str], timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """`python -m musicark ARGS` on `archive`, to its end."""
    return subprocess.run(
        [sys.executable, "-m", "musicark", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_archive_env(archive),
    )


def start_musicark(archive: Archive, *args: str | os.PathLike[str]) -> subprocess.Popen[str]:
    """`python -m musicark ARGS` on `archive`, started (read it with `communicate`)."""
    return subprocess.Popen(
        [sys.executable, "-m", "musicark", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_archive_env(archive),
    )


def kill_a_busy_worker(
    cluster: Cluster,
    proc: subprocess.Popen[str],
    *,
    after: float = 0.1,
    when: Callable[[], bool] = lambda: True,
) -> str | None:
    """SIGKILL the first worker seen running a task of `proc`, `after` seconds into it
    (well inside the task) and once `when()` holds; its address, or None if no task was
    seen before `proc` ended."""
    pids = cluster.worker_pids()
    client = cluster.client()
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            busy = [w for w, keys in client.processing().items() if keys and w in pids]
            if busy and when():
                time.sleep(after)
                os.kill(pids[busy[0]], signal.SIGKILL)
                return str(busy[0])
            time.sleep(0.01)
        return None
    finally:
        client.close()


def kill_scheduler_when_busy(cluster: Cluster) -> None:
    """SIGKILL the scheduler as soon as a task runs."""
    client = cluster.client()
    deadline = time.monotonic() + 60
    while not any(client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.01)
    client.close()
    os.killpg(cluster.procs[0].pid, signal.SIGKILL)


def store_files(archive: Archive) -> dict[str, str]:
    """Every file under store/ (relative path -> sha256 of its bytes)."""
    return {
        str(p.relative_to(archive.store_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in archive.store_dir.rglob("*")
        if p.is_file()
    }


def hide_from_worker(folder: Path) -> list[str]:
    """A command prefix under which a worker sees an empty filesystem of its own at `folder`
    (skips the test where `unshare -m` is not allowed)."""
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs unshare -m (root or CAP_SYS_ADMIN) to hide a folder from a worker")
    return ["unshare", "-m", "sh", "-c", f'mount -t tmpfs none "{folder}" && exec "$0" "$@"']
