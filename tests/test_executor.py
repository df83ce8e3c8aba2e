"""The executor factory: kinds, lazy bounded submission, crashed workers, parent death."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from musicark.errors import UsageError
from musicark.executor import WAIT, Outcome, cpu_count, make_executor, resolve_jobs


def square(x: int) -> int:
    return x * x


def total(xs: tuple[int, ...]) -> int:
    # a task holding 13 kills its worker process outright, as a segfaulting codec would
    if 13 in xs:
        os.kill(os.getpid(), signal.SIGKILL)
    return sum(xs)


def halves(xs: tuple[int, ...]) -> list[tuple[int, ...]]:
    mid = len(xs) // 2
    return [xs[:mid], xs[mid:]] if len(xs) > 1 else [xs]


@pytest.mark.parametrize("kind", ["inline", "threads", "processes"])
def test_every_kind_runs_every_task_once(kind: str) -> None:
    drawn: list[int] = []

    def tasks():
        for i in range(40):
            drawn.append(i)
            yield i

    with make_executor(jobs=2, kind=kind) as ex:
        results = {}
        for seen, out in enumerate(ex.run(square, tasks()), start=1):
            # tasks are drawn lazily: never more than a few per worker ahead of the results
            assert len(drawn) <= seen + 2 * 2
            results[out.task] = out.result
    assert results == {i: i * i for i in range(40)}


def test_a_worker_that_dies_costs_only_its_task() -> None:
    batches = [tuple(range(i, i + 5)) for i in range(0, 30, 5)]  # 13 is in (10..14)
    with make_executor(jobs=2, kind="processes") as ex:
        outs: list[Outcome[tuple[int, ...], int]] = list(ex.run(total, batches, split=halves))
    crashed = [o for o in outs if o.crashed]
    assert [o.task for o in crashed] == [(13,)]
    assert "SIGKILL" in (crashed[0].crashed or "")
    done = sorted(x for o in outs if not o.crashed for x in o.task)
    assert done == [x for x in range(30) if x != 13]
    assert sum(o.result or 0 for o in outs) == sum(range(30)) - 13


def test_jobs_setting() -> None:
    assert resolve_jobs(3, 5) == 3
    assert resolve_jobs(None, 5) == 5
    assert resolve_jobs(None, 0) == resolve_jobs(0, 5) == cpu_count()  # 0: one per core
    with pytest.raises(UsageError, match="0 \\(one per core\\) or more"):
        resolve_jobs(-1)
    with pytest.raises(UsageError):
        make_executor(jobs=1, kind="cluster-of-nothing")


PARENT = """
import sys, threading, time
if sys.argv[1] == "forkserver":  # another thread running: workers come from a fork server
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
from musicark.executor import make_executor
ex = make_executor(jobs=2, kind="processes")
it = ex.run(time.sleep, [30.0] * 4)
ex._get_pool().submit(int).result()  # the workers are up
print(*ex.worker_pids(), flush=True)
next(it)
"""


@pytest.mark.parametrize("start", ["fork", "forkserver"])
def test_workers_die_with_their_parent(tmp_path: Path, start: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", PARENT, start],
        stderr=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert proc.stdout is not None
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert pids
    time.sleep(0.2)
    proc.kill()  # SIGKILL: no clean-up code runs in the parent
    proc.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_running(p) for p in pids):
        time.sleep(0.05)
    assert not any(_running(p) for p in pids)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_task_source_that_waits_holds_submission_until_a_result() -> None:
    """WAIT: nothing more is submitted until a task in flight has finished (what acquire's
    per-host limits on a cluster rely on)."""
    results: list[int] = []

    def source() -> Iterator[object]:
        for i in range(6):
            yield -i
            before = len(results)
            yield WAIT
            assert len(results) > before  # handed out again only after a result

    with make_executor(jobs=4, kind="threads") as ex:
        for out in ex.run(abs, source()):
            results.append(out.result)
    assert sorted(results) == [0, 1, 2, 3, 4, 5]
    with make_executor(jobs=1, kind="inline") as ex, pytest.raises(RuntimeError, match="waited"):
        list(ex.run(abs, iter([WAIT])))
