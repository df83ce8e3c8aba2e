"""Ingest under real process deaths: a worker killed while it holds a file, the whole run
killed with SIGKILL. Nothing is lost, nothing is left untracked, the run (or the next)
goes on."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from musicark.archive import Archive
from tests.audio import make_file

ROOT = Path(__file__).parents[1]


def musicark(archive: Archive, *args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "musicark", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "MUSICARK_ARCHIVE": str(archive.root), "PYTHONPATH": str(ROOT)},
    )


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (workers, a fork server and its children)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def holds(pid: int, path: Path) -> bool:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                return True
        except OSError:
            continue
    return False


def ledger(archive: Archive) -> dict[str, tuple[str, str]]:
    conn = sqlite3.connect(archive.state_path)
    try:
        rows = conn.execute("SELECT path, status, reason FROM ledger").fetchall()
    finally:
        conn.close()
    return {Path(p).name: (s, r) for p, s, r in rows}


def assert_store_clean(archive: Archive) -> None:
    from musicark.store.audit import audit

    result = audit(archive, level="full", jobs=1)
    assert result.ok, result.to_dict()
    assert not list((archive.staging_dir / "ingest").iterdir())


def test_a_worker_killed_while_holding_a_file_costs_only_that_file(archive, tmp_path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i in range(4):
        make_file(src / f"good{i}.ogg", seed=40 + i, seconds=2)
    big = src / "big.wav"
    with open(big, "wb") as f:  # sparse: long to hash, nothing on disk
        f.truncate(512 * 1024 * 1024)
    proc = musicark(archive, "ingest", src, "--jobs", "2", "--mode", "hardlink", "--json")
    kills = 0

    def killer() -> None:
        # the OOM killer's way: SIGKILL to whichever worker holds the big file, every time
        nonlocal kills
        while proc.poll() is None:
            for pid in descendants(proc.pid):
                if holds(pid, big):
                    os.kill(pid, signal.SIGKILL)
                    kills += 1
            time.sleep(0.005)

    watcher = threading.Thread(target=killer)
    watcher.start()
    out, err = proc.communicate(timeout=120)
    watcher.join()
    assert kills >= 1
    assert proc.returncode == 1, err  # a file ended in an error; the run itself finished
    summary = json.loads(out)
    assert summary["counts"] == {"unmatched": 4, "error_crashed": 1}, summary
    assert "Traceback" not in err
    status, reason = ledger(archive)["big.wav"]
    assert status == "error_crashed"
    assert "SIGKILL" in reason
    assert all(ledger(archive)[f"good{i}.ogg"][0] == "unmatched" for i in range(4))
    assert_store_clean(archive)


def test_killing_the_ingest_leaves_nothing_behind(archive, tmp_path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    bigs = []
    for i in range(2):  # sparse: long to hash, nothing on disk
        bigs.append(src / f"big{i}.wav")
        with open(bigs[-1], "wb") as f:
            f.truncate(256 * 1024 * 1024)
    for i in range(8):
        make_file(src / f"f{i:02d}.flac", seed=60 + i, seconds=3)
    proc = musicark(archive, "ingest", src, "--jobs", "2", "--mode", "hardlink", "--json")
    deadline = time.monotonic() + 60
    workers: list[int] = []
    # SIGKILL the run while a worker is busy with a big file
    while time.monotonic() < deadline and proc.poll() is None:
        workers = descendants(proc.pid)
        if any(holds(p, b) for p in workers for b in bigs):
            break
        time.sleep(0.002)
    assert proc.poll() is None, "the ingest ended before it could be killed"
    proc.kill()
    proc.wait()  # (not communicate: live workers would hold its pipes open)
    for pipe in (proc.stdout, proc.stderr):
        assert pipe is not None
        pipe.close()
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline and any(_running(p) for p in workers):
        time.sleep(0.01)
    assert not [p for p in workers if _running(p)], "workers outlived their parent"
    # the next run, over other files, leaves no untracked blob and no staging leftovers
    other = tmp_path / "other"
    other.mkdir()
    make_file(other / "x.ogg", seed=99, seconds=2)
    rerun = musicark(archive, "ingest", other, "--jobs", "1", "--json")
    _out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert_store_clean(archive)
    # and the killed run's files all get their outcome when it is run again
    again = musicark(archive, "ingest", src, "--jobs", "2", "--mode", "hardlink", "--json")
    again.communicate(timeout=120)
    statuses = {name: s for name, (s, _) in ledger(archive).items()}
    assert all(statuses[f"f{i:02d}.flac"] == "unmatched" for i in range(8)), statuses
    assert all(statuses[b.name] == "error_not_audio" for b in bigs), statuses
    assert_store_clean(archive)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_blob_placed_but_never_recorded_is_removed_by_the_next_run(run, archive, tmp_path):
    # what a kill between the rename into the store and the commit leaves: a blob without
    # rows, and its pending mark from a process that is gone
    from musicark.store import schema
    from musicark.store.blobs import blob_path

    orphan = b"bytes of a blob nobody recorded"
    digest = __import__("hashlib").sha256(orphan).hexdigest()
    target = blob_path(archive, digest)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(orphan)
    gone = subprocess.Popen(["true"])
    gone.wait()
    conn = schema.connect(archive)
    conn.execute("INSERT INTO ingest_pending (sha256, pid) VALUES (?, ?)", (digest, gone.pid))
    conn.close()
    src = tmp_path / "in"
    src.mkdir()
    make_file(src / "x.ogg", seed=5, seconds=2)
    assert json.loads(run("ingest", src, "--json").output)["counts"] == {"unmatched": 1}
    assert not target.exists()
    assert_store_clean(archive)
    conn = sqlite3.connect(archive.state_path)
    assert conn.execute("SELECT count(*) FROM ingest_pending").fetchone()[0] == 0
    conn.close()
