"""The swarm commands on a packed and published release: verify, seed, torrents."""

from __future__ import annotations

import json
from pathlib import Path

import orjson

from musicark.archive import Archive
from tests import release_data
from tests.runner import Runner

template, arc, cli = release_data.template, release_data.arc, release_data.cli


def _data_folders(arc: Archive) -> list[Path]:
    conn = arc.connect_state(readonly=True)
    try:
        rows = conn.execute(
            "SELECT data_path FROM torrents WHERE kind = 'audio' ORDER BY name"
        ).fetchall()
    finally:
        conn.close()
    return [arc.root / r[0] for r in rows]


def test_verify_seed_and_list_a_release(cli: Runner, arc: Archive) -> None:
    cli("pack", "r1", "--target-size", "160KB", "--format", "hybrid", "--piece-size", "16KiB")
    folders = _data_folders(arc)
    assert folders

    # every torrent of the archive, then one release by name
    result = cli("verify")
    assert result.output.count("OK r1") == len(folders), result.output
    out = orjson.loads(cli("verify", "--release", "r1", "--json").stdout)
    assert out["ok"] and len(out["torrents"]) == len(folders)

    # the manifest's sha256 is checked too: one flipped byte names the file, its piece
    # and the differing sha256
    victim = sorted(p for p in folders[0].rglob("*") if p.is_file())[0]
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 1
    victim.write_bytes(bytes(raw))
    out = orjson.loads(cli("verify", "--release", "r1", "--json", check=False).stdout)
    assert out["ok"] is False
    bad = [f for t in out["torrents"] for f in t["files"] if f["status"] != "ok"]
    assert len(bad) == 1
    assert bad[0]["path"] == victim.relative_to(folders[0]).as_posix()
    assert bad[0]["reason"] == "sha256 differs from the manifest" and len(bad[0]["bad_pieces"]) == 1
    raw[len(raw) // 2] ^= 1
    victim.write_bytes(bytes(raw))

    # a data folder that is gone entirely: its files are reported missing, others still ok
    assert len(folders) > 1
    moved = folders[-1].with_name("moved-away")
    folders[-1].rename(moved)
    out = orjson.loads(cli("verify", "--json", check=False).stdout)
    gone = [t for t in out["torrents"] if t["torrent"] == folders[-1].name]
    assert gone[0]["counts"]["missing"] == len(gone[0]["files"]) > 0
    assert sum(t["ok"] for t in out["torrents"]) == len(out["torrents"]) - 1
    moved.rename(folders[-1])

    # a published metadata release verifies downloaded data without the archive's tables
    published = json.loads(cli("publish", "r1", "--json").stdout)
    metadata = arc.root / published["data_path"]
    result = cli("verify", "--metadata", metadata, "--data", folders[0].parent)
    assert result.output.count("OK r1") == len(folders)

    # seeding every torrent of the release (audio and metadata) from its data folder
    result = cli("seed", "r1", "--listen", "127.0.0.1:0", "--seconds", "3")
    assert f"{len(folders) + 1} seeding" in result.stdout, result.output
    conn = arc.connect_state(readonly=True)
    try:
        saved = conn.execute("SELECT count(*) FROM seed_resume").fetchone()[0]
    finally:
        conn.close()
    assert saved == len(folders) + 1

    listing = orjson.loads(cli("torrents", "--json").stdout)
    assert len(listing) == len(folders) + 1
    assert all(row["seeders"] is None for row in listing)  # never scraped yet
    assert cli("seed", "nope", "--seconds", "1", check=False).exit_code == 1
