"""Seed torrents from their data folders with one libtorrent session.

The seeder never downloads: torrents are added in upload mode, so a data folder is
only ever read (a damaged release is reported, not "repaired" from peers). Resume
data is saved after the first check and at shutdown, so a restart does not hash
everything again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import libtorrent as lt

from musicark.errors import SwarmError
from musicark.swarm.session import SessionOptions, open_session

# libtorrent refuses big torrents from a buffer by default (~300k bencoded items)
TORRENT_LIMITS = {
    "max_buffer_size": 100_000_000,
    "max_pieces": 0x800000,
    "max_decode_depth": 100,
    "max_decode_tokens": 20_000_000,
}

_STATES = {
    "checking_files": "checking",
    "checking_resume_data": "checking",
    "downloading_metadata": "metadata",
    "downloading": "incomplete",
    "finished": "incomplete",
    "seeding": "seeding",
}


class ResumeStore(Protocol):
    def load_resume(self, infohash: str) -> bytes | None: ...

    def save_resume(self, infohash: str, data: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class SeedItem:
    """One torrent to seed: its metainfo and the folder that holds its root."""

    name: str
    torrent: bytes
    save_path: Path


@dataclass(frozen=True, slots=True)
class TorrentState:
    name: str
    infohash: str
    state: str  # checking, seeding, incomplete, paused, error
    progress: float
    peers: int
    upload_rate: int
    uploaded: int
    error: str = ""


@dataclass(frozen=True, slots=True)
class SeedStatus:
    elapsed: float
    torrents: tuple[TorrentState, ...]
    listening: str = ""
    messages: tuple[str, ...] = ()

    @property
    def peers(self) -> int:
        return sum(t.peers for t in self.torrents)

    @property
    def upload_rate(self) -> int:
        return sum(t.upload_rate for t in self.torrents)

    @property
    def uploaded(self) -> int:
        return sum(t.uploaded for t in self.torrents)

    def count(self, state: str) -> int:
        return sum(1 for t in self.torrents if t.state == state)


def torrent_info(data: bytes, *, what: str = "torrent") -> Any:
    """A libtorrent `torrent_info` from .torrent bytes, with a clear error."""
    try:
        make: Any = lt.torrent_info  # the stubs miss the (buffer, limits) constructor
        return make(data, TORRENT_LIMITS)
    except (RuntimeError, ValueError) as exc:
        raise SwarmError(f"{what}: libtorrent cannot load it ({exc})") from exc


def infohash_of(ti: Any) -> str:
    """The hex v1 infohash, or the v2 one for a v2-only torrent."""
    hashes = ti.info_hashes()
    if hashes.has_v1():
        return str(hashes.v1)
    return str(hashes.v2)


@dataclass
class _Entry:
    item: SeedItem
    handle: Any
    infohash: str
    error: str = ""
    saved_after_check: bool = False


@dataclass
class Seeder:
    """A running seeding session; `run()` until told to stop, then `close()`."""

    options: SessionOptions
    resume: ResumeStore | None = None
    trackers: Sequence[str] = ()
    _session: Any = field(default=None, init=False)
    _entries: dict[str, _Entry] = field(default_factory=dict, init=False)
    _by_handle: dict[Any, _Entry] = field(default_factory=dict, init=False)
    _started: float = field(default=0.0, init=False)
    _listening: str = field(default="", init=False)
    _messages: list[str] = field(default_factory=list, init=False)
    _pending_saves: int = field(default=0, init=False)

    def start(self, items: Iterable[SeedItem]) -> None:
        self._session = open_session(self.options)
        self._started = time.monotonic()
        for item in items:
            self._add(item)
        self._wait_listen()

    def _wait_listen(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not self._listening and time.monotonic() < deadline:
            self._session.wait_for_alert(100)
            self._handle_alerts()

    def _add(self, item: SeedItem) -> None:
        ti = torrent_info(item.torrent, what=item.name)
        infohash = infohash_of(ti)
        if infohash in self._entries:
            return
        atp = lt.add_torrent_params()
        if self.resume is not None:
            blob = self.resume.load_resume(infohash)
            if blob:
                try:
                    atp = lt.read_resume_data(blob)
                except (RuntimeError, ValueError):
                    atp = lt.add_torrent_params()  # unreadable resume data: check again
        atp.ti = ti
        atp.save_path = str(item.save_path)
        atp.flags = (atp.flags | lt.torrent_flags.upload_mode) & ~lt.torrent_flags.paused
        atp.flags &= ~lt.torrent_flags.auto_managed
        if self.trackers:  # resume data may already list them
            atp.trackers = list(dict.fromkeys([*atp.trackers, *self.trackers]))
        try:
            handle = self._session.add_torrent(atp)
        except RuntimeError as exc:
            raise SwarmError(f"{item.name}: cannot seed it ({exc})") from exc
        entry = _Entry(item=item, handle=handle, infohash=infohash)
        self._entries[infohash] = entry
        self._by_handle[handle] = entry

    def _entry_for(self, handle: Any) -> _Entry | None:
        return self._by_handle.get(handle)

    def _handle_alerts(self) -> None:
        for alert in self._session.pop_alerts():
            if isinstance(alert, lt.listen_succeeded_alert):
                self._listening = f"{alert.address}:{alert.port}"
            elif isinstance(alert, lt.listen_failed_alert):
                raise SwarmError(f"cannot listen on {self.options.listen}: {alert.message()}")
            elif isinstance(alert, lt.save_resume_data_alert):
                self._pending_saves -= 1
                entry = self._entry_for(alert.handle)
                if entry is not None and self.resume is not None:
                    self.resume.save_resume(entry.infohash, lt.write_resume_data_buf(alert.params))
            elif isinstance(alert, lt.save_resume_data_failed_alert):
                self._pending_saves -= 1
            elif isinstance(alert, lt.torrent_checked_alert):
                entry = self._entry_for(alert.handle)
                if entry is not None and not entry.saved_after_check:
                    entry.saved_after_check = True
                    self._save(entry)
            elif isinstance(alert, (lt.torrent_error_alert, lt.file_error_alert)):
                entry = self._entry_for(alert.handle)
                if entry is not None:
                    entry.error = alert.message()
            elif isinstance(alert, lt.tracker_error_alert):
                self._messages.append(alert.message())
                del self._messages[:-20]

    def _save(self, entry: _Entry) -> None:
        if self.resume is None:
            return
        entry.handle.save_resume_data(lt.save_resume_flags_t.save_info_dict)
        self._pending_saves += 1

    def status(self) -> SeedStatus:
        self._handle_alerts()
        states = []
        for entry in self._entries.values():
            st = entry.handle.status()
            state = _STATES.get(str(st.state).rsplit(".", 1)[-1], "unknown")
            if st.state == lt.torrent_status.seeding or st.is_seeding:
                state = "seeding"
            error = entry.error or (st.errc.message() if st.errc.value() else "")
            if error:
                state = "error"
            states.append(
                TorrentState(
                    name=entry.item.name,
                    infohash=entry.infohash,
                    state=state,
                    progress=float(st.progress),
                    peers=int(st.num_peers),
                    upload_rate=int(st.upload_rate),
                    uploaded=int(st.all_time_upload),
                    error=error,
                )
            )
        return SeedStatus(
            elapsed=time.monotonic() - self._started,
            torrents=tuple(states),
            listening=self._listening,
            messages=tuple(self._messages[-3:]),
        )

    def run(
        self,
        *,
        seconds: float | None = None,
        stop: threading.Event | None = None,
        on_status: Callable[[SeedStatus], object] | None = None,
        interval: float = 1.0,
    ) -> SeedStatus:
        """Seed until `seconds` pass or `stop` is set; `on_status` gets a snapshot each tick."""
        deadline = None if seconds is None else time.monotonic() + seconds
        stop = stop or threading.Event()
        status = self.status()
        while not stop.is_set():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            stop.wait(interval if deadline is None else min(interval, deadline - now))
            status = self.status()
            if on_status is not None:
                on_status(status)
        return status

    def close(self, *, timeout: float = 10.0) -> None:
        """Stop seeding: save resume data (bounded by `timeout`) and end the session."""
        if self._session is None:
            return
        try:
            self._session.pause()
            for entry in self._entries.values():
                if entry.handle.is_valid() and entry.handle.need_save_resume_data():
                    self._save(entry)
            deadline = time.monotonic() + timeout
            while self._pending_saves > 0 and time.monotonic() < deadline:
                self._session.wait_for_alert(200)
                self._handle_alerts()
        except SwarmError:
            pass
        finally:
            self._session = None


def seed(
    items: Sequence[SeedItem],
    *,
    options: SessionOptions,
    resume: ResumeStore | None = None,
    trackers: Sequence[str] = (),
    seconds: float | None = None,
    stop: threading.Event | None = None,
    on_status: Callable[[SeedStatus], object] | None = None,
) -> SeedStatus:
    """Seed `items` until `seconds` pass or `stop` is set; returns the last status."""
    if not items:
        raise SwarmError("nothing to seed")
    seeder = Seeder(options=options, resume=resume, trackers=trackers)
    try:
        seeder.start(items)
        return seeder.run(seconds=seconds, stop=stop, on_status=on_status)
    finally:
        seeder.close()
