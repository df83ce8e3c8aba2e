"""`--executor dask://HOST:PORT`: ingest on a real local Dask cluster (a scheduler and two
single-threaded workers on 127.0.0.1) records exactly what a local run records; a worker
killed mid-task loses nothing; a worker that cannot see the archive is named before any
work; a lost scheduler is one line and the next run resumes."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from musicark.archive import Archive, init_archive, open_archive
from musicark.executor import make_executor, parse_where
from musicark.store.ingest import ingest
from tests import release_data
from tests.audio import make_file
from tests.cluster import (
    ROOT,
    Cluster,
    cluster,
    die_on_negative,
    halves,
    hide_from_worker,
    kill_a_busy_worker,
    kill_scheduler_when_busy,
    local_cluster,
    musicark,
    start_musicark,
    store_files,
)

pytest.importorskip("distributed")

DOCS = ROOT / "docs" / "cli.md"
template = release_data.template  # an archive with a catalogue and audio to pack
__all__ = ["cluster"]  # a fixture


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("corpus")
    (src / "sub").mkdir()
    for i in range(20):
        ext = ("mp3", "ogg", "flac", "opus")[i % 4]
        folder = src / "sub" if i % 3 == 0 else src
        make_file(folder / f"t{i:02d}.{ext}", seed=300 + i, seconds=2, tags={"title": f"T{i}"})
    (src / "same.ogg").write_bytes((src / "t01.ogg").read_bytes())  # one blob, two paths
    (src / "junk.mp3").write_bytes(b"\x00not audio" * 50)
    return src


def fresh(tmp_path: Path, name: str) -> Archive:
    return init_archive(tmp_path / name)


def records(archive: Archive) -> dict[str, list[tuple[object, ...]]]:
    """Every row ingest writes, without the columns that name a time or a run."""
    conn = sqlite3.connect(archive.state_path)
    try:
        queries = {
            "blobs": "SELECT sha256, size, container, codec, duration_ms, bitrate, sample_rate,"
            " channels, lossless, damaged, tags FROM blobs",
            "renditions": "SELECT * FROM renditions",
            "provenance": "SELECT sha256, path_key, path, source, size, mtime_ns FROM provenance",
            "ledger": "SELECT path_key, path, size, mtime_ns, sha256, status, reason, source"
            " FROM ledger",
            "fingerprints": "SELECT sha256, duration_ms, fp FROM fingerprints",
        }
        return {k: sorted(conn.execute(q).fetchall(), key=repr) for k, q in queries.items()}
    finally:
        conn.close()


def test_parse_where() -> None:
    assert parse_where("local") == "local"
    assert parse_where("dask://10.0.0.5:8786") == "dask://10.0.0.5:8786"
    for bad in ("dask://host", "tcp://h:1", "dask://:1", "ray://h:1", "h:1"):
        with pytest.raises(Exception, match="local or dask://HOST:PORT"):
            parse_where(bad)


def test_cli_option_is_documented_and_checked(tmp_path: Path) -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert "`--executor local|dask://HOST:PORT`" in text
    archive = fresh(tmp_path, "a")
    result = musicark(archive, "--executor", "dask://nowhere", "ingest", tmp_path)
    assert result.returncode == 2 and "dask://HOST:PORT" in result.stderr


def test_cluster_ingest_records_what_a_local_run_records(
    cluster: Cluster, corpus: Path, tmp_path: Path
) -> None:
    local, remote = fresh(tmp_path, "local"), fresh(tmp_path, "remote")
    ingest(local, [corpus], jobs=2)
    result = musicark(remote, "--executor", cluster.where, "ingest", corpus, "--json")
    assert result.returncode == 1, result.stderr  # 1: junk.mp3 is a problem, as locally
    assert json.loads(result.stdout)["files"] == 22
    assert records(remote) == records(local)
    assert store_files(remote) == store_files(local)
    assert len(store_files(local)) == 20  # junk is not stored; `same` is one blob
    assert not list((remote.staging_dir / "ingest").glob("*"))  # no probe or temporary left
    again = musicark(remote, "--executor", cluster.where, "ingest", corpus, "--json")
    assert json.loads(again.stdout)["files"] == 22 and records(remote) == records(local)


def test_cluster_audit_full_finds_what_a_local_audit_finds(
    cluster: Cluster, corpus: Path, tmp_path: Path
) -> None:
    archive = fresh(tmp_path, "a")
    ingest(archive, [corpus], jobs=1, fingerprint=False)
    blobs = sorted(p for p in archive.store_dir.rglob("*") if p.is_file())
    blobs[0].write_bytes(b"changed")
    blobs[1].unlink()
    results = []
    for where in ("local", cluster.where):
        out = musicark(archive, "--executor", where, "audit", "--level", "full", "--json")
        assert out.returncode == 1, out.stderr  # damage found
        data = json.loads(out.stdout)
        results.append({k: data[k] for k in ("checked", "bytes", "changed", "missing")})
    assert results[0] == results[1]
    assert len(results[0]["changed"]) == 1 and len(results[0]["missing"]) == 1


def test_cluster_pack_writes_the_same_torrent_bytes(
    cluster: Cluster, template: Path, tmp_path: Path
) -> None:
    torrents = []
    for where in ("local", cluster.where):
        root = tmp_path / where.replace("/", "_").replace(":", "_")
        shutil.copytree(template, root)
        archive = open_archive(root)
        out = musicark(archive, "--executor", where, "pack", "r1", "--target-size", "160KB")
        assert out.returncode == 0, out.stderr
        folder = root / "releases" / "r1" / "torrents"
        torrents.append({p.name: p.read_bytes() for p in sorted(folder.glob("*.torrent"))})
    assert len(torrents[0]) >= 2
    assert torrents[0] == torrents[1]
    shutil.copytree(template, tmp_path / "c")  # pack's hashing does go to the executor:
    out = musicark(open_archive(tmp_path / "c"), "--executor", "dask://127.0.0.1:1", "pack", "r1")
    assert out.returncode == 1 and "cannot reach the Dask scheduler" in out.stderr


def test_executor_setting_in_musicark_toml(cluster: Cluster, corpus: Path, tmp_path: Path) -> None:
    archive = fresh(tmp_path, "a")
    conf = archive.root / "musicark.toml"
    conf.write_text(conf.read_text().replace('executor = "local"', f'executor = "{cluster.where}"'))
    result = musicark(archive, "ingest", corpus / "sub", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["counts"]  # something was recorded via the cluster
    bad = musicark(archive, "--executor", "dask://127.0.0.1:1", "ingest", corpus)
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1 and "cannot reach the Dask scheduler" in bad.stderr


@pytest.mark.slow
def test_a_worker_that_cannot_see_the_archive_is_named_before_any_work(
    cluster: Cluster, corpus: Path, tmp_path: Path
) -> None:
    hide = hide_from_worker(tmp_path)  # a worker whose tmp_path is an empty filesystem
    archive = fresh(tmp_path, "a")
    blind = cluster.add_worker(name="blind", prefix=hide)
    try:
        cluster.wait_workers(3)
        result = musicark(archive, "--executor", cluster.where, "ingest", corpus)
    finally:
        cluster.stop(blind)
        cluster.wait_workers(2)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert "blind" in result.stderr or "Dask worker tcp://127.0.0.1:" in result.stderr
    assert "cannot see the shared folder" in result.stderr
    conn = sqlite3.connect(archive.state_path)
    assert conn.execute("SELECT count(*) FROM ledger").fetchone()[0] == 0
    conn.close()
    assert store_files(archive) == {}


def test_a_worker_killed_mid_task_loses_nothing(
    cluster: Cluster, corpus: Path, tmp_path: Path
) -> None:
    local, remote = fresh(tmp_path, "local"), fresh(tmp_path, "remote")
    ingest(local, [corpus], jobs=2)
    proc = start_musicark(remote, "--executor", cluster.where, "ingest", corpus)
    killed = kill_a_busy_worker(cluster, proc, after=0.2)  # it has files open in staging
    _, err = proc.communicate(timeout=120)
    assert killed is not None, "no task was seen running"
    assert proc.returncode == 1 and "error" not in err, err  # 1: junk.mp3
    assert records(remote) == records(local)
    assert store_files(remote) == store_files(local)
    cluster.wait_workers(2)  # the nanny restarted the killed worker


def test_cluster_executor_runs_plain_tasks_and_reports_width(cluster: Cluster) -> None:
    with make_executor(jobs=1, where=cluster.where) as ex:
        assert ex.kind == "dask" and ex.jobs == 2
        out = sorted(o.result for o in ex.run(abs, range(-50, 0)) if o.result is not None)
    assert out == list(range(1, 51))


@pytest.mark.slow
def test_a_task_that_kills_its_workers_is_split_to_the_culprit(cluster: Cluster) -> None:
    with make_executor(jobs=1, where=cluster.where) as ex:
        outs = list(ex.run(die_on_negative, [(1, 2), (3, -4, 5, 6), (7,)], split=halves))
    done = sorted(x for o in outs if o.result is not None for x in o.result)
    crashed = [o.task for o in outs if o.crashed is not None]
    assert done == [2, 4, 6, 10, 12, 14]  # every other number, once
    assert crashed == [(-4,)]
    assert all("killed its Dask workers" in (o.crashed or "") for o in outs if o.crashed)
    cluster.wait_workers(2)  # the nannies restarted them


@pytest.mark.slow
def test_a_lost_scheduler_is_one_line_and_the_next_run_resumes(
    corpus: Path, tmp_path: Path
) -> None:
    local, remote = fresh(tmp_path, "local"), fresh(tmp_path, "remote")
    ingest(local, [corpus], jobs=2)
    with local_cluster(tmp_path / "dask") as c:
        proc = start_musicark(remote, "--executor", c.where, "ingest", corpus)
        kill_scheduler_when_busy(c)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert err.count("\n") == 1 and "lost the Dask scheduler" in err, err
    with local_cluster(tmp_path / "dask2") as c:
        result = musicark(remote, "--executor", c.where, "ingest", corpus)
    assert result.returncode == 1 and "error" not in result.stderr, result.stderr
    assert records(remote) == records(local)
    assert store_files(remote) == store_files(local)
