"""`musicark --executor dask://... acquire` on a real local cluster (a scheduler and two
single-threaded workers on 127.0.0.1) against a real HTTP server on 127.0.0.1: the store
and the ledger are those of a local run; the per-host limits hold across workers; a worker
killed mid-download loses nothing; a lost scheduler is one line and the next run resumes;
a worker that cannot see staging is named before any download."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from musicark.acquire import HttpSettings, acquire
from musicark.archive import Archive, init_archive, open_archive
from musicark.catalog.ids import entity_id
from tests.acquire_server import FaultServer, Running
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

pytest.importorskip("distributed")

SONGS = 8
FAST = HttpSettings(concurrency=4, per_host=4, backoff=0.01, read_timeout=5.0, retries=4)
__all__ = ["cluster"]  # a fixture


@pytest.fixture(scope="module")
def songs(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    folder = tmp_path_factory.mktemp("songs")
    return [
        make_file(folder / f"s{i}.mp3", seed=900 + i, seconds=3.0).read_bytes()
        for i in range(SONGS)
    ]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An archive whose catalogue holds the SONGS tracks."""
    base = tmp_path_factory.mktemp("acq")
    archive = init_archive(base / "archive")
    rows = [
        track(f"t{i}", f"Song {i}", "Artist", isrc=f"USDSK000000{i}", duration_ms=3000)
        for i in range(SONGS)
    ]
    import_catalog_rows(archive, rows, base)
    return archive.root


@pytest.fixture
def server() -> Iterator[FaultServer]:
    app = FaultServer()
    with Running(app):
        yield app


def listing(server: FaultServer, songs: list[bytes], folder: Path) -> Path:
    """A `urls:` list of every song, each tied to its track, with size and sha256."""
    import hashlib

    lines = ["url,track_id,size,sha256,licence"]
    for i, body in enumerate(songs):
        url = server.add(f"/s{i}.mp3", body)
        tid = entity_id("test", "track", f"t{i}")
        sha = hashlib.sha256(body).hexdigest()
        lines.append(f"{url},{tid},{len(body)},{sha},cc-by")
    path = folder / "list.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def copy(template: Path, tmp_path: Path, name: str) -> Archive:
    shutil.copytree(template, tmp_path / name)
    return open_archive(tmp_path / name)


def on(archive: Archive, where: str) -> Archive:
    return archive.with_settings({"ingest.executor": where})


def records(archive: Archive, server: FaultServer) -> dict[str, list[tuple[object, ...]]]:
    """What acquire (and the ingest it runs) records, without times, runs and the port."""
    conn = sqlite3.connect(archive.state_path)
    try:
        queries = {
            "ledger": "SELECT offer_key, source, track_id, url, size, sha256, status, reason"
            " FROM acquire_ledger",
            "provenance": "SELECT sha256, offer_key, source, url, etag, last_modified, licence,"
            " rights, track_id FROM acquire_provenance",
            "blobs": "SELECT sha256, size, container, codec, duration_ms, tags FROM blobs",
            "renditions": "SELECT sha256, track_id, match_method, preferred FROM renditions",
        }
        port = str(server.port)
        return {
            k: sorted(
                (tuple(str(v).replace(port, "PORT") for v in row) for row in conn.execute(q)),
                key=repr,
            )
            for k, q in queries.items()
        }
    finally:
        conn.close()


def staged(archive: Archive) -> list[str]:
    """Files left in staging/acquire/parts and ready (nothing, after a finished run)."""
    root = archive.staging_dir / "acquire"
    return sorted(
        str(p.relative_to(root)) for folder in ("parts", "ready") for p in (root / folder).glob("*")
    )


def test_cluster_acquire_stores_and_records_what_a_local_run_does(
    cluster: Cluster, template: Path, server: FaultServer, songs: list[bytes], tmp_path: Path
) -> None:
    urls = f"urls:{listing(server, songs, tmp_path)}"
    local, remote = copy(template, tmp_path, "local"), copy(template, tmp_path, "remote")
    here = acquire(local, [urls], plan="none", http=FAST, fingerprint=False)
    assert here.counts["success"] == SONGS, here.to_dict()
    server.max_active = 0
    server.rate_per_second = 400_000  # bodies slow enough for two workers' to overlap
    settings = HttpSettings(concurrency=4, per_host=1, backoff=0.01, read_timeout=5.0)
    there = acquire(
        on(remote, cluster.where), [urls], plan="none", http=settings, fingerprint=False
    )
    assert there.counts == here.counts and there.ok
    assert server.max_active == 1  # --per-host 1 held across both workers
    assert records(remote, server) == records(local, server)
    assert store_files(remote) == store_files(local)
    assert staged(remote) == []
    again = acquire(on(remote, cluster.where), [urls], plan="none", http=FAST, fingerprint=False)
    assert again.unchanged == SONGS and not again.counts


def test_the_rate_limit_holds_across_workers(
    cluster: Cluster, template: Path, server: FaultServer, songs: list[bytes], tmp_path: Path
) -> None:
    urls = f"urls:{listing(server, songs, tmp_path)}"
    remote = on(copy(template, tmp_path, "remote"), cluster.where)
    rate = 8.0  # requests per second to the host, for the whole cluster
    settings = HttpSettings(concurrency=4, per_host=2, rate_limit=rate, backoff=0.01)
    out = acquire(remote, [urls], plan="none", http=settings, fingerprint=False)
    assert out.counts["success"] == SONGS
    starts = sorted(server.starts)
    assert len(starts) == SONGS
    # two tasks of the host, each at rate/2: never more than two requests in 2/rate seconds
    gaps = [b - a for a, b in zip(starts, starts[2:], strict=False)]
    assert min(gaps) >= 0.9 * 2 / rate, gaps
    assert server.max_active <= 2


def test_a_worker_killed_mid_download_loses_nothing(
    cluster: Cluster, template: Path, server: FaultServer, songs: list[bytes], tmp_path: Path
) -> None:
    urls = f"urls:{listing(server, songs, tmp_path)}"
    local, remote = copy(template, tmp_path, "local"), copy(template, tmp_path, "remote")
    acquire(local, [urls], plan="none", http=FAST, fingerprint=False)
    server.rate_per_second = 150_000  # ~0.3 s a file: a task is mid-download when killed
    proc = start_musicark(
        remote, "--executor", cluster.where, "acquire", urls, "--plan", "none",
        "--no-fingerprint", "--concurrency", "2",
    )  # fmt: skip
    parts = remote.staging_dir / "acquire" / "parts"
    half = min(len(s) for s in songs) // 2

    def halfway() -> bool:  # (a worker's first task also imports musicark and httpx)
        sizes = []
        for part in parts.glob("*.part"):
            with contextlib.suppress(FileNotFoundError):  # renamed: verified meanwhile
                sizes.append(part.stat().st_size)
        return any(size > half for size in sizes)

    killed = kill_a_busy_worker(cluster, proc, after=0, when=halfway)
    _, err = proc.communicate(timeout=180)
    assert killed is not None, "no task was seen running"
    assert proc.returncode == 0, err
    assert any(h.get("range") for _, h in server.requests)  # the .part it left was resumed
    assert records(remote, server) == records(local, server)
    assert store_files(remote) == store_files(local)  # nothing partial, nothing untracked
    assert staged(remote) == []  # the killed task's .part was resumed, then stored
    cluster.wait_workers(2)  # the nanny restarted the killed worker


def test_a_fallback_offer_on_another_host_is_fetched_as_locally(
    cluster: Cluster, template: Path, server: FaultServer, songs: list[bytes], tmp_path: Path
) -> None:
    """A plan-ordered job holds every offer of its track: a task tries only its host's and
    hands the others back, which go to their own host's queue."""
    from tests.runner import Runner

    other = FaultServer()
    with Running(other):
        gone = server.url("/gone.mp3")  # 404 on the first host
        lines = ["url,track_id,size"]
        for i in range(3):
            tid = entity_id("test", "track", f"t{i}")
            if i == 0:
                lines.append(f"{gone},{tid},{len(songs[0])}")
                url = other.add("/alt0.mp3", songs[0])
            else:
                url = server.add(f"/s{i}.mp3", songs[i])
            lines.append(f"{url},{tid},{len(songs[i])}")
        path = tmp_path / "list.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        rows = {}
        for name, where in (("local", "local"), ("remote", cluster.where)):
            archive = copy(template, tmp_path, name)
            Runner(archive)("plan", "--budget", "1GB")
            out = acquire(on(archive, where), [f"urls:{path}"], limit=3, http=FAST,
                          fingerprint=False)  # fmt: skip
            assert out.mode == "plan" and out.counts["success"] == 3, out.to_dict()
            conn = sqlite3.connect(archive.state_path)
            rows[name] = sorted(
                conn.execute(
                    "SELECT replace(offer_key, ?, 'A'), track_id, sha256, status FROM"
                    " acquire_ledger", (str(server.port),)
                )
            )  # fmt: skip
            conn.close()
    assert rows["remote"] == rows["local"]
    assert ("urls:http://127.0.0.1:A/gone.mp3", entity_id("test", "track", "t0"), None,
            "error_has_replacement") in rows["local"]  # fmt: skip
    assert other.hits["/alt0.mp3"] == 2  # once by each run


@pytest.mark.slow
def test_a_mirror_on_a_shared_path_is_fetched_on_the_cluster_without_writing_into_it(
    cluster: Cluster, template: Path, songs: list[bytes], tmp_path: Path
) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for i, body in enumerate(songs[:4]):
        (mirror / f"m{i}.mp3").write_bytes(body)
    stamp = mirror.stat().st_mtime_ns
    local, remote = copy(template, tmp_path, "local"), copy(template, tmp_path, "remote")
    here = acquire(local, [f"dir:{mirror}"], plan="none", http=FAST, fingerprint=False)
    there = acquire(on(remote, cluster.where), [f"dir:{mirror}"], plan="none", http=FAST,
                    fingerprint=False)  # fmt: skip
    assert there.counts == here.counts and here.counts["success"] == 4
    conn = [sqlite3.connect(a.state_path) for a in (local, remote)]
    q = "SELECT offer_key, track_id, size, sha256, status, reason FROM acquire_ledger"
    assert sorted(conn[0].execute(q)) == sorted(conn[1].execute(q))
    for c in conn:
        c.close()
    assert store_files(remote) == store_files(local)
    assert mirror.stat().st_mtime_ns == stamp  # the probe wrote nothing into the mirror


@pytest.mark.slow
def test_a_lost_scheduler_mid_acquire_is_one_line_and_the_next_run_resumes(
    template: Path, server: FaultServer, songs: list[bytes], tmp_path: Path
) -> None:
    urls = f"urls:{listing(server, songs, tmp_path)}"
    local, remote = copy(template, tmp_path, "local"), copy(template, tmp_path, "remote")
    acquire(local, [urls], plan="none", http=FAST, fingerprint=False)
    server.rate_per_second = 150_000
    with local_cluster(tmp_path / "dask") as c:
        args = ["acquire", urls, "--plan", "none", "--no-fingerprint", "--concurrency", "2"]
        proc = start_musicark(remote, "--executor", c.where, *args)
        kill_scheduler_when_busy(c)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert err.count("\n") == 1 and "lost the Dask scheduler" in err, err
    assert len(records(remote, server)["blobs"]) < SONGS
    server.rate_per_second = 0
    with local_cluster(tmp_path / "dask2") as c:
        out = musicark(remote, "--executor", c.where, *args)
    assert out.returncode == 0, out.stderr
    assert records(remote, server) == records(local, server)
    assert store_files(remote) == store_files(local)
    assert staged(remote) == []


@pytest.mark.slow
def test_a_worker_that_cannot_see_staging_is_named_before_any_download(
    cluster: Cluster, template: Path, server: FaultServer, songs: list[bytes], tmp_path: Path
) -> None:
    hide = hide_from_worker(tmp_path)
    urls = f"urls:{listing(server, songs, tmp_path)}"
    archive = copy(template, tmp_path, "a")
    blind = cluster.add_worker(name="blind", prefix=hide)
    try:
        cluster.wait_workers(3)
        out = musicark(archive, "--executor", cluster.where, "acquire", urls, "--plan", "none")
    finally:
        cluster.stop(blind)
        cluster.wait_workers(2)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1, out.stderr
    assert "cannot see the shared folder" in out.stderr and "Dask worker tcp://" in out.stderr
    assert not server.starts  # nothing was downloaded
    assert records(archive, server)["ledger"] == [] and store_files(archive) == {}
