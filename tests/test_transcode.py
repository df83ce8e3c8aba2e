"""`musicark transcode`: checked, deterministic derived renditions of the long-tail tier."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import av
import numpy as np
import pytest

from musicark.archive import Archive, open_archive
from musicark.store.blobs import blob_path, hash_file
from musicark.tier.check import MAX_BER, compare
from musicark.tier.encode import Job, Settings, render
from tests.audio import import_catalog_rows, make_file, track
from tests.runner import Runner

# (id, title, popularity, seconds): t1/t2 are the long tail, t3 is popular, t4 too short
TRACKS = [("t1", "Quiet Field", 0, 7.0), ("t2", "Low Tide", 0, 6.0), ("t3", "Big Hit", 80, 6.0)]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from musicark.archive import init_archive

    base = tmp_path_factory.mktemp("tier")
    archive = init_archive(base / "archive")
    rows = []
    src = base / "in"
    src.mkdir()
    for i, (tid, title, pop, seconds) in enumerate(TRACKS):
        isrc = f"USTIE240000{i}"
        row = track(tid, title, "Tess Ier", isrc=isrc, duration_ms=int(seconds * 1000))
        row["popularity"] = pop
        rows.append(row)
        make_file(
            src / f"{tid}.ogg",
            seed=300 + i,
            seconds=seconds,
            tags={"title": title, "artist": "Tess Ier", "isrc": isrc},
        )
    import_catalog_rows(archive, rows, base)
    run = Runner(archive)
    run("ingest", src, "--jobs", "1")
    run("plan", "--budget", "1GB")
    return archive.root


@pytest.fixture
def arc(template: Path, tmp_path: Path) -> Archive:
    root = tmp_path / "archive"
    shutil.copytree(template, root)
    return open_archive(root)


@pytest.fixture
def cli(arc: Archive) -> Runner:
    return Runner(arc)


def _sources(arc: Archive) -> dict[str, str]:
    """track id of TRACKS -> sha256 of its preferred rendition (by the title it was tagged with)."""
    conn = sqlite3.connect(arc.state_path)
    rows = conn.execute(
        "SELECT r.sha256, b.tags FROM renditions r JOIN blobs b ON b.sha256 = r.sha256"
        " WHERE r.preferred = 1"
    ).fetchall()
    conn.close()
    by_title = {tid: title for tid, title, _p, _s in TRACKS}
    out = {}
    for sha, tags in rows:
        title = json.loads(tags)["title"][0]
        out[next(t for t, name in by_title.items() if name == title)] = sha
    return out


def test_transcode_the_zero_tier(cli: Runner, arc: Archive) -> None:
    data = json.loads(cli("transcode", "--jobs", "1", "--json").output)
    assert data["selected"] == 2 and data["held"] == 2
    assert data["transcoded"] == 2 and data["failed"] == 0 and data["ok"]
    sources = _sources(arc)
    conn = sqlite3.connect(arc.state_path)
    rows = {
        r[1]: r
        for r in conn.execute(
            "SELECT sha256, source_sha256, codec, bitrate, settings_key, settings, encoder,"
            " libraries, duration_ms, source_duration_ms, ber FROM derived"
        )
    }
    assert set(rows) == {sources["t1"], sources["t2"]}  # the popular track is left alone
    for source, row in rows.items():
        sha, _src, codec, bitrate, key, settings, encoder, libraries, dur, src_dur, ber = row
        assert (codec, bitrate, key) == ("opus", 75000, "opus-75000")
        assert json.loads(settings)["options"]["compression_level"] == "10"
        assert encoder.startswith("libopus ") and "libavcodec" in json.loads(libraries)
        assert abs(dur - src_dur) <= 50 and ber <= MAX_BER
        path = blob_path(arc, sha)
        assert hash_file(path)[0] == sha  # stored by its own sha256
        blob = conn.execute(
            "SELECT codec, container, bitrate, tags FROM blobs WHERE sha256 = ?", (sha,)
        ).fetchone()
        assert blob[:3] == ("opus", "ogg", 75000)
        with av.open(str(path)) as c:
            st = c.streams.audio[0]
            assert st.codec_context.name == "opus"
            tags = {k.lower(): v for k, v in st.metadata.items()}
            assert tags["title"] in {"Quiet Field", "Low Tide"} and tags["isrc"].startswith("USTIE")
        assert source != sha
    conn.close()
    # derived renditions are in the store: a full audit is clean and covers them
    audit = json.loads(cli("audit", "--json").output)
    assert audit["ok"] and audit["checked"] == 5
    # dupes shows them with their source
    dupes = json.loads(cli("dupes", "--json").output)
    shown = {d["sha256"]: d["source_sha256"] for d in dupes["derived"]}
    assert shown == {row[0]: src for src, row in rows.items()}
    text = cli("dupes").output
    assert "2 derived renditions" in text and f"<- {sources['t1']}" in text
    # a second run does nothing
    again = json.loads(cli("transcode", "--jobs", "1", "--json").output)
    assert again["transcoded"] == 0 and again["already"] == 2


def test_same_input_same_bytes(arc: Archive, tmp_path: Path) -> None:
    sha = _sources(arc)["t1"]
    settings = Settings("opus", 75000)
    outs = [
        render(Job(sha, str(blob_path(arc, sha)), str(tmp_path / f"{n}.tmp"), settings))
        for n in range(2)
    ]
    assert all(o.ok for o in outs)
    assert outs[0].sha256 == outs[1].sha256
    assert (tmp_path / "0.tmp").read_bytes() == (tmp_path / "1.tmp").read_bytes()
    other = render(
        Job(sha, str(blob_path(arc, sha)), str(tmp_path / "x.tmp"), Settings("opus", 64000))
    )
    assert other.ok and other.sha256 != outs[0].sha256


def test_a_failed_check_is_recorded_and_nothing_stored(cli: Runner, arc: Archive) -> None:
    sources = _sources(arc)
    conn = sqlite3.connect(arc.state_path)
    # t1's stored fingerprint replaced by t3's: the check must see another recording
    conn.execute(
        "UPDATE fingerprints SET fp = (SELECT fp FROM fingerprints WHERE sha256 = ?)"
        " WHERE sha256 = ?",
        (sources["t3"], sources["t1"]),
    )
    conn.commit()
    blobs_before = {p.name for p in arc.store_dir.rglob("*") if p.is_file()}
    result = cli("transcode", "--jobs", "2", check=False)
    assert result.exit_code == 1
    assert f"failed {sources['t1']}: Chromaprint fingerprint differs" in result.output
    failures = conn.execute("SELECT source_sha256, reason FROM transcode_failures").fetchall()
    assert [f[0] for f in failures] == [sources["t1"]]
    derived = [r[0] for r in conn.execute("SELECT source_sha256 FROM derived")]
    assert derived == [sources["t2"]]
    blobs_after = {p.name for p in arc.store_dir.rglob("*") if p.is_file()}
    assert len(blobs_after - blobs_before) == 1  # only t2's rendition
    assert not list((arc.staging_dir / "transcode").glob("*.tmp"))
    # the failure is not tried again
    again = json.loads(cli("transcode", "--json", check=False).output)
    assert again["failed_before"] == 1 and again["already"] == 1 and again["ok"]
    conn.close()


def test_check_thresholds() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2**32, 200, dtype=np.uint64).astype(np.uint32)
    same = compare(source_seconds=10.0, derived_seconds=10.02, source_fp=a, derived_fp=a)
    assert same.ok and same.ber == 0.0
    shifted = compare(source_seconds=10.0, derived_seconds=10.0, source_fp=a[1:], derived_fp=a)
    assert shifted.ok and shifted.offset != 0
    short = compare(source_seconds=10.0, derived_seconds=9.9, source_fp=a, derived_fp=a)
    assert not short.ok and "decodes to 9.900 s" in str(short.reason)
    b = rng.integers(0, 2**32, 200, dtype=np.uint64).astype(np.uint32)
    other = compare(source_seconds=10.0, derived_seconds=10.0, source_fp=a, derived_fp=b)
    assert not other.ok and other.ber is not None and other.ber > 0.4
    tiny = compare(source_seconds=1.0, derived_seconds=1.0, source_fp=a[:5], derived_fp=a[:5])
    assert not tiny.ok and "too short" in str(tiny.reason)


def test_bad_input(cli: Runner, arc: Archive, tmp_path: Path) -> None:
    missing = cli("transcode", "--plan", tmp_path / "nope.parquet", check=False)
    assert missing.exit_code == 2 and "no plan at" in missing.output  # a usage error
    bad_rate = cli("transcode", "--bitrate", "fast", check=False)
    assert bad_rate.exit_code == 2
    low = cli("transcode", "--bitrate", "1k", check=False)
    assert low.exit_code == 2 and "--bitrate" in low.output
    (arc.root / "plans" / "latest.parquet").unlink()
    none = cli("transcode", check=False)
    assert none.exit_code == 1 and "musicark plan" in none.output


def test_pack_takes_the_rendition_the_plan_tier_asks_for(cli: Runner, arc: Archive) -> None:
    cli("transcode", "--jobs", "1")
    sources = _sources(arc)
    conn = sqlite3.connect(arc.state_path)
    derived = dict(conn.execute("SELECT source_sha256, sha256 FROM derived"))
    cli("pack", "r1", "--plan", arc.root / "plans" / "latest.parquet")
    packed = dict(conn.execute("SELECT sha256, path FROM release_files"))
    conn.close()
    # the long tail goes out as Opus, the popular track as its original; originals stay stored
    assert set(packed) == {derived[sources["t1"]], derived[sources["t2"]], sources["t3"]}
    assert packed[derived[sources["t1"]]].endswith(".opus")
    assert packed[sources["t3"]].endswith(".ogg")
    assert blob_path(arc, sources["t1"]).is_file()


def test_plan_counts_the_real_size_of_derived_renditions(cli: Runner, arc: Archive) -> None:
    import pyarrow.parquet as pq

    def sizes() -> dict[str, tuple[int, str]]:
        cli("plan", "--budget", "1GB")
        t = pq.read_table(arc.root / "plans" / "latest.parquet").to_pylist()
        return {r["track_id"]: (r["expected_bytes"], str(r["size_source"])) for r in t}

    before = sizes()
    cli("transcode", "--jobs", "1")
    after = sizes()
    conn = sqlite3.connect(arc.state_path)
    derived = dict(
        conn.execute(
            "SELECT r.track_id, b.size FROM derived d JOIN renditions r"
            " ON r.sha256 = d.source_sha256 JOIN blobs b ON b.sha256 = d.sha256"
        )
    )
    conn.close()
    assert len(derived) == 2
    for track_id, size in derived.items():
        assert after[track_id] == (size, "held") and before[track_id][0] > size
    unchanged = [t for t in after if t not in derived]
    assert unchanged and all(after[t] == before[t] for t in unchanged)


def test_a_run_that_crashed_resumes(cli: Runner, arc: Archive) -> None:
    first = json.loads(cli("transcode", "--jobs", "1", "--json").output)
    assert first["transcoded"] == 2
    conn = sqlite3.connect(arc.state_path)
    shas = sorted(r[0] for r in conn.execute("SELECT sha256 FROM derived"))
    # as if the run died after renaming its files into the store, before recording them,
    # with another file still being written
    conn.execute("DELETE FROM derived")
    conn.execute(f"DELETE FROM blobs WHERE sha256 IN ({','.join('?' * len(shas))})", shas)
    conn.commit()
    stray = arc.staging_dir / "transcode" / "dead.opus-75000.tmp"
    stray.write_bytes(b"half an Ogg page")
    again = json.loads(cli("transcode", "--jobs", "1", "--json").output)
    assert again["transcoded"] == 2 and again["ok"]
    assert sorted(r[0] for r in conn.execute("SELECT sha256 FROM derived")) == shas
    conn.close()
    assert not stray.exists()
    assert json.loads(cli("audit", "--json").output)["ok"]


def test_a_missing_source_is_counted_not_failed(cli: Runner, arc: Archive) -> None:
    blob_path(arc, _sources(arc)["t1"]).unlink()
    data = json.loads(cli("transcode", "--jobs", "1", "--json").output)
    assert data["missing_source"] == 1 and data["transcoded"] == 1 and data["ok"]
    assert "1 sources missing" in cli("transcode").output


def test_a_cut_rendition_fails_the_duration_check(arc: Archive, tmp_path: Path) -> None:
    from musicark.tier.encode import decode_fingerprint

    sha = _sources(arc)["t1"]
    out = render(
        Job(sha, str(blob_path(arc, sha)), str(tmp_path / "a.tmp"), Settings("opus", 75000))
    )
    assert out.ok
    whole = (tmp_path / "a.tmp").read_bytes()
    seconds, values = decode_fingerprint(tmp_path / "a.tmp")
    assert abs(seconds * 1000 - out.source_duration_ms) <= 50
    (tmp_path / "cut.opus").write_bytes(whole[: len(whole) * 2 // 3])
    cut_seconds, cut_values = decode_fingerprint(tmp_path / "cut.opus")
    verdict = compare(
        source_seconds=out.source_duration_ms / 1000,
        derived_seconds=cut_seconds,
        source_fp=values,
        derived_fp=cut_values,
    )
    assert not verdict.ok and "decodes to" in str(verdict.reason)
