"""Acquire's downloads on a Dask cluster (`--executor dask://HOST:PORT`).

A task is a batch of jobs whose offers come from one host (`FetchTask`); a worker runs
`fetch_batch`: it opens the sources again from their specs, downloads each job's offers of
that host one after another into `.part` files in the shared `staging/acquire/parts`,
verifies them (size, checksums, decodes to the end, fsync) and renames them into
`staging/acquire/ready` (one filesystem: atomic). It returns the `Outcome`s (sha256, size,
validators or the failures); the coordinator records them and hands the files to ingest.

Limits, enforced by the coordinator for the whole cluster (`HostBatcher`):

- `--per-host`: at most that many tasks of one host in flight, and a task downloads one
  file at a time, so no more transfers from one host run at once, whatever the workers;
- `--concurrency`: at most that many tasks in flight in all (and no more than the
  cluster's worker threads run);
- `--rate-limit` and robots.txt Crawl-delay: each task paces its requests to a host at
  the rate divided by `--per-host` (and the delay multiplied by it), so the tasks of one
  host together never exceed the rate; with fewer tasks of a host in flight its rate is
  lower than allowed, never higher;
- Retry-After (429/503) pauses the task that received it; what is left of the pause
  comes back with each of its outcomes, and the coordinator starts every later task of that
  host with it (tasks already running pause when they receive their own 429).

A job's offers of another host are not tried in the task: they come back as `rest`, and
the coordinator sends them as a job of their own (to their host's queue).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from musicark.acquire.fetch import Job, Outcome, Worker
from musicark.acquire.http import Downloader, HttpSettings, make_client
from musicark.acquire.model import Offer
from musicark.acquire.sources import BaseSource, SourceContext, open_source, source_classes
from musicark.executor import WAIT, make_executor

BATCH = 16  # jobs per task at most: a killed worker costs at most this many transfers
HOLD = 2048  # jobs waiting for their host's turn at most (then the run waits for results)


def fetch_on_cluster(
    where: str,
    *,
    sources: list[BaseSource],
    staging: Path,
    settings: HttpSettings,
    ia_base_url: str,
    jobs: Callable[[], Iterator[Job]],
    followups: deque[Job],
    settle: Callable[[Outcome | None], None],
    crashed: Callable[[Job, str], None],
) -> None:
    """Run `jobs()` (then the `followups` their outcomes add) as tasks on the cluster
    `where`; `settle` each outcome, `crashed` each job of a task that killed its workers."""
    specs = tuple(f"{s.name}:{s.argument}" for s in sources)
    shared = [staging, *(f for s in sources for f in s.shared_files())]
    batcher = HostBatcher(
        sources=specs, staging=staging, settings=settings, ia_base_url=ia_base_url
    )
    with make_executor(
        jobs=settings.concurrency, kind="threads", where=where, shared=shared
    ) as pool:
        source = jobs()
        while True:
            for result in pool.run(fetch_batch, batcher.tasks(source), split=split_task):
                batcher.done(result.task)
                if result.crashed is not None:
                    for job in result.task.jobs:
                        crashed(job, f"the download killed its workers ({result.crashed})")
                    continue
                for outcome in result.result or []:
                    batcher.hold(result.task.host, outcome.pause)
                    settle(outcome)
            if not followups:
                break
            source = iter(list(followups))
            followups.clear()


def offer_host(offer: Offer) -> str:
    """The host whose limits an offer counts against ("" for a file on a shared path)."""
    return urlsplit(offer.url).netloc.lower() if offer.url else ""


@dataclass(frozen=True)
class FetchTask:
    host: str
    jobs: tuple[Job, ...]
    sources: tuple[str, ...]  # NAME:ARGUMENT of every source of the run
    staging: str
    settings: HttpSettings  # this task's share of the limits (see `share`)
    ia_base_url: str
    share: int  # tasks of this host that may run at once
    pause: float = 0.0  # seconds to wait before the first request (the host's Retry-After)


def fetch_batch(task: FetchTask) -> list[Outcome]:
    """On a worker: fetch each job of `task` (its offers of `task.host`, in order)."""
    stop = threading.Event()  # a task runs to its end; the coordinator cancels whole tasks
    with make_client(task.settings) as client:
        downloader = Downloader(client, task.settings, stop, share=task.share)
        if task.pause > 0:
            downloader.gate.pause(task.host, task.pause)
        context = SourceContext(downloader=downloader, ia_base_url=task.ia_base_url)
        sources: dict[str, BaseSource] = {}
        for spec in task.sources:
            name, _, argument = spec.partition(":")
            if name not in sources:
                sources[name] = _open(name, argument, spec, context)
        worker = Worker(sources, downloader, Path(task.staging), clean=False)
        outcomes = []
        for job in task.jobs:
            out = worker.run(job, host=task.host, host_of=offer_host)
            out.pause = downloader.gate.pause_left(task.host)
            outcomes.append(out)
        return outcomes


def _open(name: str, argument: str, spec: str, context: SourceContext) -> BaseSource:
    """A source for fetching: one that fetches `offer.url` / `offer.path` alone needs not
    be opened again (a `urls:` list need not be on a shared path, only what it names)."""
    cls = source_classes().get(name)
    if cls is None or cls.fetch is BaseSource.fetch:
        return BaseSource(argument, context=context)
    return open_source(spec, context=context)


def split_task(task: FetchTask) -> list[FetchTask]:
    """Halves of a task whose worker died, to find the one download that kills it."""
    half = len(task.jobs) // 2
    if half == 0:
        return [task]
    return [replace(task, jobs=task.jobs[:half]), replace(task, jobs=task.jobs[half:])]


class HostBatcher:
    """Hands out `FetchTask`s per host within the limits (module docstring), or `WAIT`."""

    def __init__(
        self,
        *,
        sources: tuple[str, ...],
        staging: Path,
        settings: HttpSettings,
        ia_base_url: str,
    ) -> None:
        self.sources = sources
        self.staging = str(staging)
        self.settings = settings
        self.ia_base_url = ia_base_url
        self.queues: dict[str, deque[Job]] = {}
        self.held = 0
        self.running: Counter[str] = Counter()
        self.paused: dict[str, float] = {}  # host -> monotonic time its pause ends

    def limit(self, host: str) -> int:
        """Tasks of `host` at once: --per-host (files on a shared path: --concurrency)."""
        s = self.settings
        return s.concurrency if host == "" else min(s.per_host, s.concurrency)

    def done(self, task: FetchTask) -> None:
        self.running[task.host] -= 1

    def hold(self, host: str, seconds: float) -> None:
        """The host asked for a pause (Retry-After): later tasks of it start with it."""
        if seconds > 0:
            until = time.monotonic() + seconds
            self.paused[host] = max(self.paused.get(host, 0.0), until)

    def tasks(self, jobs: Iterator[Job]) -> Iterator[Any]:
        """Tasks for `jobs`, lazily; `WAIT` while every host with work is at its limit."""
        exhausted = False
        while True:
            task = self._next(exhausted)
            if task is not None:
                self.running[task.host] += 1
                yield task
            elif exhausted or self.held >= HOLD:
                if not self.held:
                    return
                yield WAIT
            else:
                job = next(jobs, None)
                if job is None:
                    exhausted = True
                else:
                    self.queues.setdefault(offer_host(job.offers[0]), deque()).append(job)
                    self.held += 1

    def _next(self, exhausted: bool) -> FetchTask | None:
        if sum(self.running.values()) >= self.settings.concurrency:
            return None
        for host, queue in self.queues.items():
            free = self.limit(host) - self.running[host]
            if not queue or free <= 0:
                continue
            if len(queue) < BATCH and not exhausted and self.held < HOLD:
                continue  # a fuller batch may come
            # at the end, spread what is left over the host's free slots
            size = min(BATCH, -(-len(queue) // free))
            jobs = tuple(queue.popleft() for _ in range(size))
            self.held -= size
            return self._task(host, jobs)
        return None

    def _task(self, host: str, jobs: tuple[Job, ...]) -> FetchTask:
        share = self.limit(host)
        rate = self.settings.rate_limit / share if self.settings.rate_limit else 0.0
        settings = replace(self.settings, concurrency=1, per_host=1, rate_limit=rate)
        pause = max(0.0, self.paused.get(host, 0.0) - time.monotonic())
        return FetchTask(
            host, jobs, self.sources, self.staging, settings, self.ia_base_url, share, pause
        )
