"""`audit --repair` from a release's web seed (BEP 19): a real HTTP server on 127.0.0.1 and
libtorrent, no tracker. A damaged web seed copy never reaches the store."""

from __future__ import annotations

import functools
import http.server
import io
import json
import shutil
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from musicark.archive import Archive
from musicark.store.blobs import blob_path, hash_file
from musicark.swarm.repair import repair_blobs
from tests import release_data
from tests.runner import Runner

template, arc, cli = release_data.template, release_data.arc, release_data.cli


class _Ranges(http.server.SimpleHTTPRequestHandler):
    """A static server that honours `Range: bytes=A-B`, as web seeds must (BEP 19)."""

    def log_message(self, *args: object) -> None:
        pass

    def send_head(self):  # type: ignore[no-untyped-def]
        wanted = self.headers.get("Range", "")
        path = Path(self.translate_path(self.path))
        if not wanted.startswith("bytes=") or not path.is_file():
            return super().send_head()
        first, _, last = wanted[len("bytes=") :].partition("-")
        size = path.stat().st_size
        start, end = int(first), min(int(last) if last else size - 1, size - 1)
        with open(path, "rb") as f:
            f.seek(start)
            body = f.read(end - start + 1)
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return io.BytesIO(body)


@pytest.fixture
def web_seed(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, folder it serves)."""
    root = tmp_path / "webseed"
    root.mkdir()
    server = socketserver.ThreadingTCPServer(
        ("127.0.0.1", 0), functools.partial(_Ranges, directory=str(root))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", root
    finally:
        server.shutdown()
        server.server_close()


def _release_files(arc: Archive) -> list[tuple[str, str, str]]:
    conn = arc.connect_state(readonly=True)
    try:
        return conn.execute(
            "SELECT f.sha256, f.torrent, f.path FROM release_files f ORDER BY f.path"
        ).fetchall()
    finally:
        conn.close()


def test_audit_repairs_from_the_web_seed(
    cli: Runner, arc: Archive, web_seed: tuple[str, Path]
) -> None:
    url, served = web_seed
    cli("pack", "r1", "--piece-size", "16KiB", "--web-seed", url)
    # the web seed holds its own copy (the archive's data folder hard-links the store)
    shutil.copytree(arc.releases_dir / "r1" / "data", served, dirs_exist_ok=True)
    files = _release_files(arc)
    (flip, _t, _p), (gone, torrent, gone_path) = files[0], files[-1]
    raw = bytearray(blob_path(arc, flip).read_bytes())
    raw[100] ^= 0x01
    blob_path(arc, flip).write_bytes(bytes(raw))
    blob_path(arc, gone).unlink()
    (arc.releases_dir / "r1" / "data" / torrent / gone_path.removeprefix(f"{torrent}/")).unlink()

    result = cli("audit", "--repair")
    assert f"repaired {flip} ({torrent}:" in result.output
    assert f"repaired {gone} ({torrent}:" in result.output
    assert hash_file(blob_path(arc, flip))[0] == flip and hash_file(blob_path(arc, gone))[0] == gone
    assert json.loads(cli("audit", "--json").output)["ok"]
    # the release folder's link to the damaged blob now points at the repaired one
    assert cli("verify", "--release", "r1").output.startswith("OK ")


def test_a_bad_copy_in_the_swarm_is_never_written(
    cli: Runner, arc: Archive, web_seed: tuple[str, Path]
) -> None:
    url, served = web_seed
    cli("pack", "r1", "--piece-size", "16KiB", "--web-seed", url)
    shutil.copytree(arc.releases_dir / "r1" / "data", served, dirs_exist_ok=True)
    sha, torrent, path = _release_files(arc)[1]
    # the store's blob and the web seed's copy are both damaged
    for target in (blob_path(arc, sha), served / torrent / path.removeprefix(f"{torrent}/")):
        raw = bytearray(target.read_bytes())
        raw[len(raw) // 2] ^= 0x08
        target.unlink()  # the store's copy is a hard link of the release folder's
        target.write_bytes(bytes(raw))
    damaged = blob_path(arc, sha).read_bytes()
    (outcome,) = repair_blobs(arc, [sha], timeout=3)
    assert outcome.status == "failed" and "not fetched within 3 s" in outcome.detail
    assert blob_path(arc, sha).read_bytes() == damaged  # nothing unverified written
    assert not any((arc.staging_dir / "repair").iterdir())
