"""A real Dask cluster on 127.0.0.1 for tests and benchmarks: `dask scheduler` and
`dask worker` processes (one thread each), started and stopped with bounded waits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

    def add_worker(self, *, name: str, prefix: Sequence[str] = ()) -> subprocess.Popen[bytes]:
        """One more worker process (under `prefix`, such as an `unshare` command line)."""
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        cmd = [
            DASK, "worker", self.address, "--host", "127.0.0.1", "--nworkers", "1",
            "--nthreads", "1", "--no-dashboard", "--name", name,
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
def local_cluster(workdir: Path, *, workers: int = 2) -> Iterator[Cluster]:
    """A scheduler and `workers` single-threaded workers, stopped on exit."""
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
            cluster.add_worker(name=f"w{i}")
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
