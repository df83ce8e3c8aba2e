"""Repair from the swarm: fetch damaged files back from a release's peers and web seeds.

A release is a torrent with a per-file sha256 in its manifest, so any seeder (or web seed)
of it can heal a damaged copy, as LOCKSS peers repair each other. `fetch_files` adds the
torrent to a private libtorrent session with only the wanted files' priority raised, in a
scratch folder, and waits until their pieces are downloaded; libtorrent checks every piece
against the torrent's piece hashes. Each fetched file must then hash to the sha256 the
manifest gives before it is renamed over the damaged copy (after an fsync, on the same
filesystem: atomic). Nothing unverified is ever written where the damaged file was.

- `repair_blobs` heals the store (`audit --repair`): a blob found changed or missing is
  looked up in `release_files`; a blob no release holds is reported unrepairable. Release
  data folders that hard-link the damaged blob are linked to the repaired one.
- `repair_folder` heals a downloaded release folder (`verify --repair`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from musicark.archive import Archive
from musicark.errors import SwarmError
from musicark.progress import Progress, ProgressCallback, report
from musicark.store.blobs import blob_path, hash_file, replace_durably

FETCH_TIMEOUT = 300.0  # seconds to wait for the swarm, per torrent


@dataclass(frozen=True)
class RepairOutcome:
    sha256: str | None
    status: str  # repaired | unrepairable | failed
    torrent: str | None = None
    path: str | None = None  # inside the torrent
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _storage(ti: Any) -> Any:
    """The torrent's file storage (the binding marks `files()` deprecated, with no
    replacement that lists pad files)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return ti.files()


def _file_indexes(ti: Any, torrent_name: str, single: bool) -> dict[str, int]:
    """path inside the torrent ('/'-separated, under its root folder) -> libtorrent index."""
    fs = _storage(ti)
    out: dict[str, int] = {}
    for i in range(fs.num_files()):
        if fs.file_flags(i) & 1:  # a BEP 47 padding file
            continue
        path = fs.file_path(i).replace(os.sep, "/")
        prefix = f"{torrent_name}/"
        out[path if single else path.removeprefix(prefix)] = i
    return out


def fetch_files(
    torrent_data: bytes,
    paths: Sequence[str],
    work: Path,
    *,
    listen_host: str = "127.0.0.1",
    timeout: float = FETCH_TIMEOUT,
    progress: ProgressCallback | None = None,
) -> tuple[dict[str, Path], str]:
    """Download only `paths` (inside the torrent) into `work`: ({path: fetched file whose
    pieces all passed their hash checks}, why the others were not fetched)."""
    import libtorrent as lt

    from musicark.swarm.seed import torrent_info
    from musicark.swarm.session import SessionOptions, open_session

    ti = torrent_info(torrent_data, what="repair")
    name = ti.name()
    single = ti.num_files() == 1 and "/" not in _storage(ti).file_path(0).replace(os.sep, "/")
    index = _file_indexes(ti, name, single)
    wanted = {p: index[p] for p in paths if p in index}
    if not wanted:
        return {}, "the torrent holds none of these files"
    work.mkdir(parents=True, exist_ok=True)
    session = open_session(SessionOptions(listen=f"{listen_host}:0"))
    try:
        atp = lt.add_torrent_params()
        atp.ti = ti
        atp.save_path = str(work)
        priorities = [0] * ti.num_files()
        for i in wanted.values():
            priorities[i] = 4
        atp.file_priorities = priorities
        atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
        handle = session.add_torrent(atp)
        sizes = {p: _storage(ti).file_size(i) for p, i in wanted.items()}
        deadline = time.monotonic() + timeout
        problems: list[str] = []
        done: set[str] = set()
        while True:
            have = handle.file_progress()
            done = {p for p, i in wanted.items() if have[i] >= sizes[p]}
            report(progress, Progress("repair", len(done), len(wanted), "files"))
            if len(done) == len(wanted) or time.monotonic() >= deadline:
                break
            session.wait_for_alert(200)
            for alert in session.pop_alerts():
                if isinstance(alert, (lt.tracker_error_alert, lt.file_error_alert)):
                    problems.append(alert.message())
        status = handle.status()
        session.remove_torrent(handle)
    finally:
        del session  # closes the files libtorrent wrote
    fetched = {p: work / name / p if not single else work / name for p in done}
    why = ""
    if len(done) < len(wanted):
        why = (
            f"not fetched within {timeout:.0f} s ({status.num_peers} peers,"
            f" {status.num_seeds} seeds{'; ' + problems[-1] if problems else ''})"
        )
    return fetched, why


def _sha256(path: Path) -> str:
    return hash_file(path)[0]


def repair_blobs(
    archive: Archive,
    shas: Sequence[str],
    *,
    timeout: float = FETCH_TIMEOUT,
    progress: ProgressCallback | None = None,
) -> list[RepairOutcome]:
    """Fetch each changed or missing blob back from a release that holds it."""
    out: list[RepairOutcome] = []
    by_torrent: dict[str, list[tuple[str, str]]] = {}  # torrent -> [(sha, path)]
    torrents: dict[str, tuple[Path, Path]] = {}  # torrent -> (.torrent, data folder)
    for sha in dict.fromkeys(shas):
        found = _holders(archive, sha)
        usable = [h for h in found if h[2].is_file()]
        if not usable:
            why = "no release holds it" if not found else "its release's .torrent is gone"
            out.append(RepairOutcome(sha, "unrepairable", detail=why))
            continue
        torrent, path, torrent_path, data_path = usable[0]
        by_torrent.setdefault(torrent, []).append((sha, path))
        torrents[torrent] = (torrent_path, data_path)
    for torrent, items in by_torrent.items():
        torrent_path, data_path = torrents[torrent]
        work = archive.staging_dir / "repair" / hashlib.sha1(torrent.encode()).hexdigest()
        shutil.rmtree(work, ignore_errors=True)  # a crashed repair's leftovers
        try:
            fetched, why = fetch_files(
                torrent_path.read_bytes(),
                [p for _, p in items],
                work,
                listen_host=_host(archive),
                timeout=timeout,
                progress=progress,
            )
            for sha, path in items:
                got = fetched.get(path)
                if got is None:
                    out.append(RepairOutcome(sha, "failed", torrent, path, why))
                    continue
                actual = _sha256(got)
                if actual != sha:
                    detail = f"the fetched file hashes to {actual}, the manifest says {sha}"
                    out.append(RepairOutcome(sha, "failed", torrent, path, detail))
                    continue
                _restore_blob(archive, sha, got, data_path / path)
                out.append(RepairOutcome(sha, "repaired", torrent, path, "from the swarm"))
        except SwarmError as exc:
            out.extend(RepairOutcome(sha, "failed", torrent, p, str(exc)) for sha, p in items)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return out


def _host(archive: Archive) -> str:
    from musicark.swarm.session import parse_listen

    return parse_listen(archive.config.seed.listen)[0]


def _holders(archive: Archive, sha: str) -> list[tuple[str, str, Path, Path]]:
    """(torrent, path inside it, .torrent file, data folder) of each release file `sha` is."""
    if not archive.state_path.exists():
        return []
    conn = archive.connect_state(readonly=True)
    try:
        rows = conn.execute(
            "SELECT f.torrent, f.path, t.torrent_path, t.data_path FROM release_files f"
            " JOIN torrents t ON t.name = f.torrent"
            " WHERE f.sha256 = ? AND t.kind = 'audio' ORDER BY t.obsolete, t.created DESC",
            (sha,),
        ).fetchall()
    except sqlite3.OperationalError:  # no release tables yet
        return []
    finally:
        conn.close()
    return [
        (torrent, path.removeprefix(f"{torrent}/"), _in(archive, tp), _in(archive, dp))
        for torrent, path, tp, dp in rows
    ]


def _in(archive: Archive, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else archive.root / p


def _restore_blob(archive: Archive, sha: str, fetched: Path, release_copy: Path) -> None:
    """Put a verified blob back; link the release folder's copy to it where that copy is
    missing, damaged, or was a hard link of the damaged blob."""
    dest = blob_path(archive, sha)
    try:
        damaged_inode: int | None = dest.stat().st_ino
    except FileNotFoundError:
        damaged_inode = None
    replace_durably(fetched, dest)
    if not release_copy.parent.is_dir():
        return  # the release folder was removed: nothing to re-link
    try:
        st: os.stat_result | None = release_copy.stat()
    except FileNotFoundError:
        st = None
    if st is not None and st.st_ino == dest.stat().st_ino:
        return
    if st is None or st.st_ino == damaged_inode or _sha256(release_copy) != sha:
        tmp = release_copy.with_name(f".{release_copy.name}.repair")
        tmp.unlink(missing_ok=True)
        try:
            os.link(dest, tmp)
        except OSError:
            shutil.copyfile(dest, tmp)
        os.replace(tmp, release_copy)


def repair_folder(
    torrent_data: bytes,
    root: Path,
    files: Sequence[tuple[str, str | None]],
    *,
    timeout: float = FETCH_TIMEOUT,
    listen_host: str = "127.0.0.1",
    progress: ProgressCallback | None = None,
) -> list[RepairOutcome]:
    """Fetch damaged files of a downloaded release folder (`root`: the torrent's own
    folder) back from the swarm: `files` are (path inside the torrent, manifest sha256 or
    None when no manifest is known: then the piece hashes alone vouch for the file)."""
    work = root.parent / f".{root.name}.musicark-repair"
    shutil.rmtree(work, ignore_errors=True)
    out: list[RepairOutcome] = []
    try:
        fetched, why = fetch_files(
            torrent_data,
            [p for p, _ in files],
            work,
            listen_host=listen_host,
            timeout=timeout,
            progress=progress,
        )
        for path, sha in files:
            got = fetched.get(path)
            if got is None:
                out.append(RepairOutcome(sha, "failed", root.name, path, why))
                continue
            if sha is not None and (actual := _sha256(got)) != sha:
                detail = f"the fetched file hashes to {actual}, the manifest says {sha}"
                out.append(RepairOutcome(sha, "failed", root.name, path, detail))
                continue
            replace_durably(got, root / path)
            out.append(RepairOutcome(sha, "repaired", root.name, path, "from the swarm"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def repair_report(
    torrent_path: Path,
    data: Path,
    report: Any,
    manifest: dict[str, str] | None,
    *,
    listen_host: str = "127.0.0.1",
    timeout: float = FETCH_TIMEOUT,
    progress: ProgressCallback | None = None,
) -> list[RepairOutcome]:
    """Repair the missing and corrupt files a `verify_torrent` report lists."""
    from musicark.swarm.verify import data_root
    from musicark.torrent.metainfo import load_torrent

    torrent = load_torrent(torrent_path)
    bad = [f.path for f in report.problems() if f.status in ("missing", "corrupt")]
    if not bad:
        return []
    root = data_root(torrent, data)
    return repair_folder(
        torrent_path.read_bytes(),
        root,
        [(p, (manifest or {}).get(p)) for p in bad],
        timeout=timeout,
        listen_host=listen_host,
        progress=progress,
    )


def repair_selection(
    selection: Any,
    outcome: Any,
    *,
    listen_host: str = "127.0.0.1",
    level: str = "full",
    jobs: int = 0,
    timeout: float = FETCH_TIMEOUT,
    progress: ProgressCallback | None = None,
) -> tuple[list[RepairOutcome], Any]:
    """`verify --repair`: repair every target whose report has missing or corrupt files,
    then verify those targets again; (outcomes, the verify outcome after repair)."""
    from musicark.swarm.targets import Selection, VerifyOutcome, verify_selection

    reports = {r.torrent: r for r in outcome.reports}
    repaired: list[Any] = []
    done: list[RepairOutcome] = []
    for target in selection.targets:
        report = reports.get(target.torrent.name)
        if report is None or report.ok:
            continue
        done += repair_report(
            Path(target.source),
            target.data,
            report,
            target.manifest,
            listen_host=listen_host,
            timeout=timeout,
            progress=progress,
        )
        repaired.append(target)
    again = verify_selection(Selection(targets=repaired), level=level, jobs=jobs, progress=progress)
    fresh = {r.torrent: r for r in again.reports}
    merged = VerifyOutcome(
        reports=tuple(fresh.get(r.torrent, r) for r in outcome.reports),
        absent=outcome.absent,
        failures=outcome.failures + again.failures,
        warnings=outcome.warnings,
    )
    return done, merged
