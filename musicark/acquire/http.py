"""HTTP downloads done carefully, with httpx (sync client shared by worker threads).

Why httpx: it is already a dependency, its sync client is thread-safe with one connection
pool, it streams bodies, bounds redirects, verifies TLS and reads proxies from the
environment by default; a thread per transfer keeps resumption, hashing and file writes
plain blocking code (the GIL is released while waiting on sockets and hashing).

One transfer (`Downloader.download`) goes into a `.part` file next to a `.part.json`
holding the validators (ETag, Last-Modified) of what the part holds. A later attempt, in
this run or after a crash, asks for the rest with `Range` + `If-Range`; a server whose
file changed answers 200 with the whole new file, which then replaces the part; a 206
with another ETag is refused the same way. Failed attempts are retried with exponential
backoff and full jitter; 429 and 503 with `Retry-After` pause the whole host. A body is
never read past the size the source promised (plus slack), and an HTML page served with
200 is recognised as not audio.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import urllib.robotparser
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from musicark import __version__
from musicark.acquire.model import FetchFailed, Offer

USER_AGENT = f"musicark/{__version__}"
CHUNK = 1 << 20
# Bodies without a promised size are still bounded.
MAX_UNKNOWN_SIZE = 8 << 30
_HTML_HEADS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml", b"<!--")


class Stopped(Exception):
    """The run is stopping (Ctrl-C): the `.part` stays for the next run."""


@dataclass(frozen=True, slots=True)
class HttpSettings:
    concurrency: int = 8
    per_host: int = 4
    rate_limit: float = 0.0  # requests per second per host; 0 = unlimited
    retries: int = 5
    backoff: float = 0.5  # seconds, doubled per attempt (full jitter)
    max_backoff: float = 60.0
    max_retry_after: float = 900.0  # a longer Retry-After gives up on the offer for this run
    connect_timeout: float = 15.0
    read_timeout: float = 60.0
    max_redirects: int = 5
    slack: float = 0.01  # fraction of the promised size a body may exceed it by (+64 KiB)


@dataclass(slots=True)
class Transfer:
    size: int
    etag: str | None
    last_modified: str | None
    url: str
    resumed: bool


class _Retry(Exception):
    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


class HostGate:
    """Per-host concurrency, request rate and pauses (Retry-After, Crawl-delay).

    `share`: how many gates (cluster tasks) fetch from one host at once; a Crawl-delay is
    multiplied by it so that together they keep it (the rate is divided by the caller)."""

    def __init__(self, per_host: int, rate_limit: float, share: int = 1) -> None:
        self.per_host = per_host
        self.share = share
        self.interval = 1.0 / rate_limit if rate_limit > 0 else 0.0
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._next: dict[str, float] = {}
        self._paused: dict[str, float] = {}  # until when a host asked us to wait
        self._interval: dict[str, float] = {}

    def set_interval(self, host: str, seconds: float) -> None:
        with self._lock:
            self._interval[host] = max(self.interval, seconds * self.share)

    def pause(self, host: str, seconds: float) -> None:
        with self._lock:
            until = time.monotonic() + seconds
            self._next[host] = max(self._next.get(host, 0.0), until)
            self._paused[host] = max(self._paused.get(host, 0.0), until)

    def pause_left(self, host: str) -> float:
        """Seconds left of the longest pause (Retry-After) `host` asked for, or 0."""
        with self._lock:
            return max(0.0, self._paused.get(host, 0.0) - time.monotonic())

    @contextmanager
    def slot(self, host: str, stop: threading.Event) -> Iterator[None]:
        with self._lock:
            sem = self._slots.setdefault(host, threading.BoundedSemaphore(self.per_host))
        while not sem.acquire(timeout=0.2):
            if stop.is_set():
                raise Stopped
        try:
            while True:
                with self._lock:
                    now = time.monotonic()
                    start = max(now, self._next.get(host, 0.0))
                    if start <= now:
                        self._next[host] = now + self._interval.get(host, self.interval)
                        break
                if stop.wait(min(start - now, 1.0)):
                    raise Stopped
            yield
        finally:
            sem.release()


def make_client(settings: HttpSettings) -> httpx.Client:
    """TLS verified, proxies from the environment (trust_env), bounded redirects."""
    limits = httpx.Limits(
        max_connections=settings.concurrency * 2, max_keepalive_connections=settings.concurrency
    )
    timeout = httpx.Timeout(
        connect=settings.connect_timeout, read=settings.read_timeout, write=30.0, pool=None
    )
    return httpx.Client(
        headers={"User-Agent": USER_AGENT},
        follow_redirects=True,
        max_redirects=settings.max_redirects,
        timeout=timeout,
        limits=limits,
        verify=True,
        trust_env=True,
    )


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def crawl_delay(lines: list[str]) -> float | None:
    """Crawl-delay for us (our group, else `*`), decimals included (robotparser takes
    only whole seconds)."""
    found: dict[str, float] = {}
    agents: list[str] = []
    in_rules = False
    for raw in lines:
        key, _, value = raw.split("#", 1)[0].partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "user-agent":
            if in_rules:
                agents, in_rules = [], False
            agents.append(value.lower())
        elif key:
            in_rules = True
            if key == "crawl-delay":
                try:
                    delay = float(value)
                except ValueError:
                    continue
                for agent in agents:
                    found.setdefault(agent, delay)
    ours = next((d for a, d in found.items() if a != "*" and a in USER_AGENT.lower()), None)
    return ours if ours is not None else found.get("*")


def looks_like_html(head: bytes) -> bool:
    return head.lstrip()[:16].lower().startswith(_HTML_HEADS)


class Downloader:
    def __init__(
        self,
        client: httpx.Client,
        settings: HttpSettings,
        stop: threading.Event,
        *,
        share: int = 1,
    ) -> None:
        self.client = client
        self.settings = settings
        self.stop = stop
        self.gate = HostGate(settings.per_host, settings.rate_limit, share)
        self._robots: dict[str, urllib.robotparser.RobotFileParser | None] = {}
        self._robots_lock = threading.Lock()

    # ---- robots.txt (crawled sources only)

    def allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with self._robots_lock:
            if origin not in self._robots:
                self._robots[origin] = self._fetch_robots(origin, parts.netloc)
            parser = self._robots[origin]
        return parser is None or parser.can_fetch(USER_AGENT, url)

    def _fetch_robots(self, origin: str, host: str) -> urllib.robotparser.RobotFileParser | None:
        parser = urllib.robotparser.RobotFileParser()
        try:
            with self.gate.slot(host, self.stop):
                r = self.client.get(f"{origin}/robots.txt")
        except httpx.HTTPError:
            return None  # unreachable robots.txt: nothing to honour
        if r.status_code >= 500:
            parser.parse(["User-agent: *", "Disallow: /"])  # RFC 9309: treat as disallowed
            return parser
        if r.status_code != 200:
            return None
        lines = r.text.splitlines()
        parser.parse(lines)
        delay = crawl_delay(lines)
        if delay:
            self.gate.set_interval(host, delay)
        return parser

    # ---- small API requests (search, metadata), retried like transfers

    def get_json(self, url: str, *, params: dict[str, str] | None = None) -> object:
        s = self.settings
        host = urlsplit(url).netloc
        for failures in range(1, s.retries + 2):
            delay: float | None = None
            try:
                with self.gate.slot(host, self.stop):
                    r = self.client.get(url, params=params)
                if r.status_code in (429, 503) or r.status_code >= 500:
                    delay = retry_after(r.headers.get("retry-after"))
                    if delay is not None:
                        self.gate.pause(host, delay)
                    reason = f"HTTP {r.status_code}"
                elif r.status_code != 200:
                    raise FetchFailed("error_http", f"{url}: HTTP {r.status_code}")
                else:
                    try:
                        return r.json()
                    except ValueError:
                        raise FetchFailed("error_http", f"{url}: not JSON") from None
            except httpx.TooManyRedirects:
                raise FetchFailed("error_http", f"{url}: too many redirects") from None
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            if failures > s.retries or (delay is not None and delay > s.max_retry_after):
                break
            if delay is None:
                delay = random.uniform(0, min(s.max_backoff, s.backoff * 2 ** (failures - 1)))
            if self.stop.wait(delay):
                raise Stopped
        raise FetchFailed("error_http", f"{url}: {reason}")

    # ---- one transfer

    def download(self, offer: Offer, part: Path) -> Transfer:
        """Fetch `offer.url` into `part` (resuming what it holds); raises FetchFailed."""
        assert offer.url is not None
        if offer.crawled and not self.allowed(offer.url):
            raise FetchFailed("error_robots", "robots.txt disallows this URL")
        s = self.settings
        cap = (
            offer.size + int(offer.size * s.slack) + 65536
            if offer.size is not None
            else MAX_UNKNOWN_SIZE
        )
        failures = 0
        restarts = 0
        resumed = part.exists() and part.stat().st_size > 0
        while True:
            if self.stop.is_set():
                raise Stopped
            before = _part_size(part)
            try:
                done = self._attempt(offer, part, cap)
                if done is not None:
                    done.resumed = resumed
                    return done
                restarts += 1  # the file changed under us: the part was dropped
                if restarts > 3:
                    raise FetchFailed("error_changed", "the file kept changing between requests")
                continue
            except _Retry as exc:
                if _part_size(part) > before:
                    failures = 0  # progress: a cut connection is not the server failing
                failures += 1
                if failures > s.retries:
                    raise FetchFailed(
                        "error_http", f"{exc.reason} (after {s.retries} retries)"
                    ) from exc
                delay = exc.delay
                if delay is not None and delay > s.max_retry_after:
                    raise FetchFailed(
                        "error_http", f"{exc.reason}; Retry-After {delay:.0f} s"
                    ) from exc
                if delay is None:
                    delay = random.uniform(0, min(s.max_backoff, s.backoff * 2 ** (failures - 1)))
                if self.stop.wait(delay):
                    raise Stopped from exc

    def _attempt(self, offer: Offer, part: Path, cap: int) -> Transfer | None:
        assert offer.url is not None
        meta_path = part.with_name(part.name + ".json")
        have = _part_size(part)
        meta = _read_meta(meta_path) if have else {}
        validator = meta.get("etag") or meta.get("last_modified")
        if have and offer.size is not None and have == offer.size and meta.get("complete"):
            url = meta.get("url", offer.url)
            return Transfer(have, meta.get("etag"), meta.get("last_modified"), url, True)
        if have and (not validator or (offer.size is not None and have > offer.size)):
            _truncate(part, meta_path)  # nothing to resume safely from
            have, meta = 0, {}
        # identity: a compressed transfer would not be the file's bytes, nor resumable by offset
        headers = {"Accept-Encoding": "identity"}
        if have:
            headers.update({"Range": f"bytes={have}-", "If-Range": str(validator)})
        host = urlsplit(offer.url).netloc
        try:
            with (
                self.gate.slot(host, self.stop),
                self.client.stream("GET", offer.url, headers=headers) as r,
            ):
                return self._receive(offer, r, part, meta_path, meta, have, cap, host)
        except httpx.TooManyRedirects:
            raise FetchFailed("error_http", "too many redirects (a redirect loop?)") from None
        except httpx.TransportError as exc:
            raise _Retry(f"{type(exc).__name__}: {exc}") from exc

    def _receive(
        self,
        offer: Offer,
        r: httpx.Response,
        part: Path,
        meta_path: Path,
        meta: dict[str, str],
        have: int,
        cap: int,
        host: str,
    ) -> Transfer | None:
        code = r.status_code
        if code in (429, 503) or code >= 500:
            delay = retry_after(r.headers.get("retry-after"))
            if delay is not None:
                self.gate.pause(host, delay)
            raise _Retry(f"HTTP {code}", delay)
        if code in (404, 410):
            raise FetchFailed("error_not_available", f"HTTP {code}")
        if code == 416 and have:
            if offer.size is None or have == offer.size:
                meta["complete"] = "1"
                _write_meta(meta_path, meta)
                return Transfer(have, meta.get("etag"), meta.get("last_modified"), str(r.url), True)
            _truncate(part, meta_path)
            return None
        if code not in (200, 206):
            raise FetchFailed("error_http", f"HTTP {code}")
        etag = r.headers.get("etag")
        last_modified = r.headers.get("last-modified")
        offset = 0
        if code == 206:
            offset = _range_start(r.headers.get("content-range"))
            same = (not meta.get("etag") or etag == meta.get("etag")) and (
                meta.get("etag")
                or not meta.get("last_modified")
                or last_modified == meta.get("last_modified")
            )
            if offset != have or not same:
                _truncate(part, meta_path)
                return None
        length = r.headers.get("content-length")
        if length is not None and length.isdigit() and offset + int(length) > cap:
            raise FetchFailed(
                "error_size",
                f"the server announced {offset + int(length)} bytes, the source promised"
                f" {offer.size if offer.size is not None else 'less'}",
            )
        if "text/html" in r.headers.get("content-type", "").lower():
            raise FetchFailed("error_not_audio", "the server sent an HTML page, not audio")
        meta = {"url": str(r.url)}
        if etag:
            meta["etag"] = etag
        if last_modified:
            meta["last_modified"] = last_modified
        _write_meta(meta_path, meta)
        written = offset
        mode = "ab" if offset else "wb"
        with open(part, mode) as out:
            if not offset:
                out.truncate(0)
            first = not offset
            try:
                for chunk in r.iter_bytes():  # as received: a cut keeps what came
                    if first and looks_like_html(chunk):
                        raise FetchFailed("error_not_audio", "the server sent an HTML page")
                    first = False
                    written += len(chunk)
                    if written > cap:
                        raise FetchFailed(
                            "error_size", f"the body ran past {cap} bytes (promised {offer.size})"
                        )
                    out.write(chunk)
                    if self.stop.is_set():
                        raise Stopped
            except httpx.TransportError as exc:
                raise _Retry(f"transfer cut at {written} bytes: {type(exc).__name__}") from exc
        meta["complete"] = "1"
        _write_meta(meta_path, meta)
        return Transfer(written, etag, last_modified, str(r.url), bool(offset))


def _part_size(part: Path) -> int:
    try:
        return part.stat().st_size
    except FileNotFoundError:
        return 0


def _range_start(value: str | None) -> int:
    # "bytes START-END/TOTAL"
    try:
        return int((value or "").split()[1].split("-")[0])
    except (IndexError, ValueError):
        return -1


def _truncate(part: Path, meta_path: Path) -> None:
    part.unlink(missing_ok=True)
    meta_path.unlink(missing_ok=True)


def _read_meta(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_meta(path: Path, meta: dict[str, str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(meta), encoding="utf-8")
    os.replace(tmp, path)
