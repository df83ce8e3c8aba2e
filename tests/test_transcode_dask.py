"""`musicark --executor dask://... transcode` on a real local cluster (a scheduler and two
single-threaded workers on 127.0.0.1): the derived bytes and rows are those of a local
run; a worker killed mid-task loses nothing and leaves nothing partial; a lost scheduler
is one line and the next run resumes; a worker that cannot see the archive is named
before any work."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from musicark.archive import Archive, init_archive, open_archive
from tests.audio import import_catalog_rows, make_file, track
from tests.cluster import (
    Cluster,
    cluster,
    hide_from_worker,
    kill_a_busy_worker,
    kill_scheduler_when_busy,
    local_cluster,
    musicark,
    start_musicark,
    store_files,
)
from tests.runner import Runner

pytest.importorskip("distributed")

TRACKS = 8  # long-tail tracks (popularity 0), plus one popular track left alone
__all__ = ["cluster"]  # a fixture


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An archive whose plan puts TRACKS ingested tracks in the zero tier."""
    base = tmp_path_factory.mktemp("tier")
    archive = init_archive(base / "archive")
    src = base / "in"
    src.mkdir()
    rows = []
    for i in range(TRACKS + 1):
        title, isrc = f"Field {i}", f"USDSK240{i:04d}"
        row = track(f"t{i}", title, "Dee Ask", isrc=isrc, duration_ms=8000)
        row["popularity"] = 0 if i < TRACKS else 70
        rows.append(row)
        tags = {"title": title, "artist": "Dee Ask", "isrc": isrc}
        make_file(src / f"t{i}.ogg", seed=700 + i, seconds=8, tags=tags)
    import_catalog_rows(archive, rows, base)
    run = Runner(archive)
    run("ingest", src, "--jobs", "1")
    run("plan", "--budget", "1GB")
    return archive.root


def copy(template: Path, tmp_path: Path, name: str) -> Archive:
    shutil.copytree(template, tmp_path / name)
    return open_archive(tmp_path / name)


def records(archive: Archive) -> dict[str, list[tuple[object, ...]]]:
    """What transcode records, without the columns that name a time."""
    conn = sqlite3.connect(archive.state_path)
    try:
        queries = {
            "derived": "SELECT sha256, source_sha256, codec, bitrate, settings_key, settings,"
            " encoder, libraries, duration_ms, source_duration_ms, ber FROM derived",
            "blobs": "SELECT sha256, size, container, codec, duration_ms, bitrate, sample_rate,"
            " channels, lossless, damaged, tags FROM blobs",
            "failures": "SELECT source_sha256, settings_key, reason FROM transcode_failures",
        }
        return {k: sorted(conn.execute(q).fetchall(), key=repr) for k, q in queries.items()}
    finally:
        conn.close()


def leftovers(archive: Archive) -> list[str]:
    return sorted(p.name for p in (archive.staging_dir / "transcode").iterdir() if p.name[0] != ".")


@pytest.fixture(scope="module")
def local(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Archive:
    """The archive after a local run: what every cluster run must equal."""
    archive = copy(template, tmp_path_factory.mktemp("local"), "local")
    out = musicark(archive, "transcode", "--jobs", "2", "--json")
    assert out.returncode == 0, out.stderr
    assert len(records(archive)["derived"]) == TRACKS
    return archive


def test_cluster_transcode_derives_what_a_local_run_derives(
    cluster: Cluster, template: Path, local: Archive, tmp_path: Path
) -> None:
    remote = copy(template, tmp_path, "remote")
    out = musicark(remote, "--executor", cluster.where, "transcode", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["transcoded"] == TRACKS and data["jobs"] == 2  # the cluster's width
    assert records(remote) == records(local)
    assert store_files(remote) == store_files(local)
    assert leftovers(remote) == []  # no probe, part or temporary file stays
    again = json.loads(musicark(remote, "--executor", cluster.where, "transcode", "--json").stdout)
    assert again["transcoded"] == 0 and again["already"] == TRACKS


def test_a_worker_killed_mid_transcode_loses_nothing(
    cluster: Cluster, template: Path, local: Archive, tmp_path: Path
) -> None:
    remote = copy(template, tmp_path, "remote")
    proc = start_musicark(remote, "--executor", cluster.where, "transcode")
    killed = kill_a_busy_worker(cluster, proc)  # encoding into a .part in staging
    _, err = proc.communicate(timeout=180)
    assert killed is not None, "no task was seen running"
    assert proc.returncode == 0, err
    assert records(remote) == records(local)
    assert store_files(remote) == store_files(local)  # nothing partial, nothing untracked
    assert leftovers(remote) == []
    cluster.wait_workers(2)  # the nanny restarted the killed worker


@pytest.mark.slow
def test_a_lost_scheduler_mid_transcode_is_one_line_and_the_next_run_resumes(
    template: Path, local: Archive, tmp_path: Path
) -> None:
    remote = copy(template, tmp_path, "remote")
    with local_cluster(tmp_path / "dask") as c:
        proc = start_musicark(remote, "--executor", c.where, "transcode")
        kill_scheduler_when_busy(c)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert err.count("\n") == 1 and "lost the Dask scheduler" in err, err
    derived = records(remote)["derived"]
    assert len(derived) < TRACKS and set(derived) <= set(records(local)["derived"])
    with local_cluster(tmp_path / "dask2") as c:
        out = musicark(remote, "--executor", c.where, "transcode")
    assert out.returncode == 0, out.stderr
    assert records(remote) == records(local)
    assert store_files(remote) == store_files(local)
    assert leftovers(remote) == []


@pytest.mark.slow
def test_a_worker_that_cannot_see_the_store_is_named_before_any_transcode(
    cluster: Cluster, template: Path, tmp_path: Path
) -> None:
    hide = hide_from_worker(tmp_path)
    archive = copy(template, tmp_path, "a")
    before = store_files(archive)
    blind = cluster.add_worker(name="blind", prefix=hide)
    try:
        cluster.wait_workers(3)
        out = musicark(archive, "--executor", cluster.where, "transcode")
    finally:
        cluster.stop(blind)
        cluster.wait_workers(2)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1, out.stderr
    assert "cannot see the shared folder" in out.stderr and "Dask worker tcp://" in out.stderr
    assert records(archive)["derived"] == [] and store_files(archive) == before
