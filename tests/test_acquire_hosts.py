"""How acquire hands out downloads to a cluster (`acquire.cluster`), in this process: the
per-host and total limits the coordinator keeps, each task's share of the rate, and a
host's Retry-After carried to its later tasks (against a real HTTP server on 127.0.0.1)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from musicark.acquire.cluster import BATCH, FetchTask, HostBatcher, fetch_batch
from musicark.acquire.fetch import Job
from musicark.acquire.http import HttpSettings
from musicark.acquire.model import Offer
from musicark.executor import WAIT
from tests.acquire_server import Fault, FaultServer, Running
from tests.audio import make_file


def job(track: int, url: str, size: int | None = None) -> Job:
    return Job(track, [Offer("urls", url, url=url, size=size)])


def test_tasks_keep_the_per_host_and_total_limits(tmp_path: Path) -> None:
    settings = HttpSettings(concurrency=3, per_host=2, rate_limit=4.0)
    batcher = HostBatcher(
        sources=("urls:x.csv",), staging=tmp_path, settings=settings, ia_base_url=""
    )
    jobs = [job(i, f"http://a.test/{i}.mp3") for i in range(40)]
    jobs += [job(100 + i, f"http://b.test/{i}.mp3") for i in range(5)]
    running: list[FetchTask] = []
    handed: list[int | None] = []
    waits = 0
    for item in batcher.tasks(iter(jobs)):
        if item is WAIT:  # the executor waits for a task to finish
            assert running, "WAIT with nothing in flight"
            waits += 1
            batcher.done(running.pop(0))
            continue
        running.append(item)
        handed += [j.track_id for j in item.jobs]
        hosts = Counter(t.host for t in running)
        assert max(hosts.values()) <= 2 and len(running) <= 3
        assert len({t.host for t in [item]}) == 1 and 1 <= len(item.jobs) <= BATCH
        assert item.settings.rate_limit == 2.0 and item.share == 2  # 4/s shared by 2 tasks
        assert item.settings.per_host == 1
    assert waits > 0
    assert sorted(x for x in handed if x is not None) == sorted(j.track_id or 0 for j in jobs)


def test_a_retry_after_is_handed_to_the_hosts_later_tasks(tmp_path: Path) -> None:
    bodies = [
        make_file(tmp_path / f"r{i}.mp3", seed=60 + i, seconds=2).read_bytes() for i in (0, 1)
    ]
    app = FaultServer()
    with Running(app):
        urls = [app.add(f"/r{i}.mp3", body) for i, body in enumerate(bodies)]
        app.faults["/r0.mp3"] = Fault("retry_after", status=429)  # Retry-After: 1
        settings = HttpSettings(backoff=0.01, max_retry_after=0.2)  # give up on a longer one
        batcher = HostBatcher(
            sources=("urls:x.csv",), staging=tmp_path / "staging", settings=settings,
            ia_base_url="",
        )  # fmt: skip
        first = next(batcher.tasks(iter([job(1, urls[0], len(bodies[0]))])))
        assert first.pause == 0
        [out] = fetch_batch(first)
        assert out.stored is None and out.failures[0][1] == "error_http"
        assert 0.3 < out.pause <= 1.0  # what is left of the server's second
        batcher.done(first)
        batcher.hold(first.host, out.pause)
        t0 = time.monotonic()
        later = next(batcher.tasks(iter([job(2, urls[1], len(bodies[1]))])))
        assert later.pause > 0.2
        [done] = fetch_batch(later)
        assert done.stored is not None
        assert app.starts[-1] - t0 >= later.pause * 0.9  # it waited before asking
