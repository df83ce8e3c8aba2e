"""The full matrix (slow): v1, v2 and hybrid torrents of a larger release, downloaded by
qbittorrent-nox (all three) and aria2c (v1) from one `musicark seed`, through opentracker;
verified whole, partially and damaged; scraped while peers come and go."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from harness import Aria2, Opentracker, QBittorrent, SeedProcess, make_release, wait_for

from musicark.archive import Archive
from musicark.torrent.create import create_torrent
from musicark.torrent.metainfo import Torrent, load_torrent
from tests.runner import Runner

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
PIECES = {"v1": 64 * 1024, "v2": 256 * 1024, "hybrid": 256 * 1024}


def _make(root: Path, out: Path, fmt: str, tracker: Opentracker) -> Torrent:
    made = create_torrent(root, format=fmt, piece_size=PIECES[fmt], trackers=[tracker.announce])
    out.write_bytes(made.data)
    t = load_torrent(made.data)
    tracker.allow(*[h for h in (t.info_hash_v1, (t.info_hash_v2 or "")[:40]) if h])
    return t


def test_full_matrix(
    run: Runner, archive: Archive, tmp_path: Path, tracker: Opentracker, qbittorrent: QBittorrent
) -> None:
    seed_dir = tmp_path / "seed"
    root = make_release(seed_dir / "Matrix Release", files=80, size=200_000, seed=3)
    paths = {fmt: tmp_path / f"matrix-{fmt}.torrent" for fmt in PIECES}
    torrents = {fmt: _make(root, paths[fmt], fmt, tracker) for fmt in PIECES}
    args: list[str | Path] = []
    for p in paths.values():
        args += ["--torrent", p]
    seeder = SeedProcess(archive.root, *args, "--data", seed_dir)
    try:

        def seeders() -> dict[str, int]:
            sl = ["seedlist", "--max-size", "1GB", "--json", "--timeout", "5"]
            for p in paths.values():
                sl += ["--torrent", str(p)]
            data = orjson.loads(run(*sl).stdout)
            return {c["infohash"]: c["seeders"] or 0 for c in data["chosen"] + data["passed_over"]}

        wait_for(lambda: min(seeders().values()) >= 1, timeout=90, what="seeders in the scrape")
        for fmt, p in paths.items():
            qbittorrent.add(p, tmp_path / f"qbt-{fmt}")
        result = Aria2(tmp_path).download(paths["v1"], tmp_path / "aria", timeout=120)
        assert result.returncode == 0, result.stdout[-2000:]
        qbittorrent.wait_complete(count=3, timeout=120)
        # qbittorrent-nox keeps seeding: the tracker now counts two seeders of each torrent
        wait_for(
            lambda: min(seeders().values()) >= 2,
            timeout=120,
            what="qbittorrent in the scrape",
            step=1,
        )
    finally:
        code, out, err = seeder.stop()
    assert code == 0, err
    assert "3 seeding" in out

    for fmt, p in paths.items():
        for data in (tmp_path / f"qbt-{fmt}", tmp_path / f"qbt-{fmt}" / root.name):
            assert run("verify", p, "--data", data).output.startswith("OK Matrix Release")
    assert run("verify", paths["v1"], "--data", tmp_path / "aria").output.startswith("OK")

    # a partial copy: half the files gone, one damaged in its last piece, one extra
    for fmt in ("v2", "hybrid"):
        t = torrents[fmt]
        data = tmp_path / f"qbt-{fmt}" / root.name
        for f in t.files[::2]:
            data.joinpath(*f.path).unlink()
        damaged = t.files[1]
        path = data.joinpath(*damaged.path)
        raw = bytearray(path.read_bytes())
        raw[-1] ^= 0xFF
        path.write_bytes(bytes(raw))
        (data / "extra.txt").write_text("x")
        rep = orjson.loads(run("verify", paths[fmt], "--data", data, "--json", check=False).stdout)
        files = {f["path"]: f for f in rep["torrents"][0]["files"]}
        assert rep["ok"] is False
        assert files[damaged.path_str]["status"] == "corrupt"
        assert files[damaged.path_str]["bad_pieces"] == [damaged.last_piece]
        assert files["extra.txt"]["status"] == "unexpected"
        counts = rep["torrents"][0]["counts"]
        assert counts["missing"] == len(t.files[::2])
        assert counts["ok"] == len(t.files) - len(t.files[::2]) - 1
