"""kill -9 in the middle of a download (a real subprocess), then resume: the final store is
identical to an uninterrupted run, nothing is fetched twice, and while the first run
lives a second one refuses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from musicark.acquire import HttpSettings, acquire
from musicark.archive import Archive, init_archive
from musicark.errors import ArchiveError
from tests.acquire_server import FaultServer, Running
from tests.audio import make_file

ROOT = Path(__file__).resolve().parents[1]
FAST = HttpSettings(concurrency=2, backoff=0.01, read_timeout=5.0)


def store_files(archive: Archive) -> dict[str, bytes]:
    return {
        str(p.relative_to(archive.store_dir)): p.read_bytes()
        for p in sorted(archive.store_dir.rglob("*"))
        if p.is_file()
    }


def test_kill_9_mid_download_then_resume(tmp_path: Path) -> None:
    bodies = [
        make_file(tmp_path / f"k{i}.mp3", seed=40 + i, seconds=6.0, bitrate=192000).read_bytes()
        for i in range(3)
    ]
    app = FaultServer(rate_per_second=60_000)  # ~2 s per file: time to be killed
    with Running(app):
        lines = ["url,size"]
        for i, body in enumerate(bodies):
            lines.append(f"{app.add(f'/k{i}.mp3', body)},{len(body)}")
        listing = tmp_path / "list.csv"
        listing.write_text("\n".join(lines) + "\n")

        killed = init_archive(tmp_path / "killed")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "MUSICARK_ARCHIVE": str(killed.root)}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "musicark",
                "acquire",
                f"urls:{listing}",
                "--plan",
                "none",
                "--no-fingerprint",
                "--concurrency",
                "2",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        parts = killed.staging_dir / "acquire" / "parts"
        deadline = time.monotonic() + 30
        try:
            while not any(p.stat().st_size > 20_000 for p in parts.glob("*.part")):
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "no download started"
                time.sleep(0.05)
            with pytest.raises(ArchiveError, match="another"):  # a second run refuses
                acquire(killed, [f"urls:{listing}"], plan="none", http=FAST)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        assert not list(killed.store_dir.rglob("*.mp3"))
        app.rate_per_second = 0
        seen = len(app.requests)
        summary = acquire(killed, [f"urls:{listing}"], plan="none", http=FAST, fingerprint=False)
        assert summary.counts["success"] + summary.unchanged == 3, summary.to_dict()
        resumed = [h for _, h in app.requests[seen:] if h.get("range")]
        assert resumed, "the .part files were not resumed"
        assert all(h.get("if-range") for h in resumed)
        assert not list(parts.glob("*.part"))

        clean = init_archive(tmp_path / "clean")
        acquire(clean, [f"urls:{listing}"], plan="none", http=FAST, fingerprint=False)
    assert store_files(killed) == store_files(clean)
    assert len(store_files(clean)) == 3
