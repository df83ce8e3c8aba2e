"""`musicark --executor dask://HOST:PORT verify`: the full check's piece hashing on a real
local Dask cluster (a scheduler and two one-thread workers on 127.0.0.1) reports exactly
what a local run reports, for good and damaged data; a worker killed mid-task costs
nothing; a worker that cannot see the data is named before any work; a lost scheduler and
Ctrl-C stop the command with one line."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from musicark.errors import ClusterError
from musicark.executor import make_executor
from musicark.progress import Progress
from musicark.swarm.pieces import UNIT_BYTES, batch_bytes
from musicark.swarm.targets import Selection, VerifyTarget, verify_selection
from musicark.torrent.create import create_torrent
from musicark.torrent.metainfo import Torrent, load_torrent
from tests.cluster import ROOT, Cluster, cluster, hide_from_worker, local_cluster

pytest.importorskip("distributed")

__all__ = ["cluster"]  # a fixture

PIECE = 256 * 1024
NAME = "Demo Release"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~24 MB of seeded files: smaller than a piece, exactly one, many."""
    root = tmp_path_factory.mktemp("data") / NAME
    rng = random.Random(14)
    sizes = [
        1,
        5_000,
        PIECE,
        3 * PIECE + 17,
        100_003,
        *(rng.randint(1, 4 * 2**20) for _ in range(9)),
    ]
    for i, size in enumerate(sizes):
        path = root / f"disc{i % 2}" / f"{i:02d} track.ogg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
    return root


def _sparse(folder: Path, *, files: int, size: int, piece: int) -> tuple[Path, Path]:
    """`files` sparse files of `size` bytes (no disk, but hashing them takes the time of
    real data) and their v1 torrent: (torrent, the folder holding the data)."""
    root = folder / NAME
    root.mkdir(parents=True)
    for i in range(files):
        with open(root / f"{i}.flac", "wb") as fh:
            fh.truncate(size)
            fh.write(bytes([i + 1]) * 100)  # the files differ
    torrent = folder / "sparse.torrent"
    torrent.write_bytes(create_torrent(root, format="v1", piece_size=piece).data)
    return torrent, folder


@pytest.fixture(scope="module")
def medium(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """96 MB: a dozen batches on two workers."""
    return _sparse(tmp_path_factory.mktemp("medium"), files=6, size=16 * 2**20, piece=2**20)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """1.5 GB: seconds of hashing for two workers, long enough to interrupt from outside."""
    return _sparse(tmp_path_factory.mktemp("big"), files=6, size=256 * 2**20, piece=4 * 2**20)


def _selection(torrent: Torrent, folder: Path, manifest: dict[str, str] | None) -> Selection[Any]:
    return Selection(targets=[VerifyTarget(torrent, folder, manifest, "test.torrent")])


def _report(selection: Selection[Any], where: str, **options: Any) -> dict[str, Any]:
    """The verify outcome as JSON would show it, without the time taken."""
    seen: list[Progress] = []
    outcome = verify_selection(selection, where=where, progress=seen.append, **options)
    assert seen and seen[-1].done == seen[-1].total  # progress reaches the end, in order
    assert all(a.done <= b.done for a, b in itertools.pairwise(seen))
    out = outcome.to_dict()
    for report in out["torrents"]:
        report.pop("seconds")
    return out


def _damage(root: Path) -> None:
    """A flipped byte, a file cut short, one gone, one the torrent does not list."""
    first = root / "disc1" / "05 track.ogg"
    raw = bytearray(first.read_bytes())
    raw[len(raw) // 2] ^= 0x40
    first.write_bytes(bytes(raw))
    cut = root / "disc0" / "06 track.ogg"
    cut.write_bytes(cut.read_bytes()[:-1000])
    (root / "disc1" / "01 track.ogg").unlink()
    (root / "disc0" / "stray.txt").write_text("not in the torrent")


def verify_cli(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "musicark", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.parametrize("fmt", ["v1", "hybrid", "v2"])
def test_cluster_verify_reports_what_a_local_run_reports(
    cluster: Cluster, data: Path, tmp_path: Path, fmt: str
) -> None:
    root = tmp_path / NAME
    shutil.copytree(data, root)
    torrent = load_torrent(create_torrent(root, format=fmt, piece_size=PIECE).data)
    # whole-file sha256s for some files, as an archive's release manifest gives them
    manifest = {
        f.path_str: hashlib.sha256(root.joinpath(*f.path).read_bytes()).hexdigest()
        for f in torrent.files[::3]
    }
    selection = _selection(torrent, tmp_path, manifest)
    good = _report(selection, "local")
    assert good["ok"] and good["torrents"][0]["pieces_checked"] == torrent.num_pieces
    assert _report(selection, cluster.where) == good
    _damage(root)
    bad = _report(selection, "local")
    counts = bad["torrents"][0]["counts"]
    assert not bad["ok"] and counts["corrupt"] == 2 and counts["missing"] == 1
    assert counts["unexpected"] == 1 and bad["torrents"][0]["pieces_failed"] >= 1
    assert _report(selection, cluster.where) == bad


def test_cli_verify_on_a_cluster_prints_what_a_local_run_finds(
    cluster: Cluster, data: Path, tmp_path: Path
) -> None:
    root = tmp_path / NAME
    shutil.copytree(data, root)
    torrent = tmp_path / "r.torrent"
    torrent.write_bytes(create_torrent(root, format="hybrid", piece_size=PIECE).data)
    _damage(root)
    local = _report(_selection(load_torrent(torrent), tmp_path, None), "local")
    out = verify_cli("--executor", cluster.where, "verify", torrent, "--data", tmp_path, "--json")
    assert out.returncode == 1 and not out.stderr, out.stderr  # 1: damage found
    printed = json.loads(out.stdout)
    for report in printed["torrents"]:
        report.pop("seconds")
    assert printed == local and local["torrents"][0]["pieces_failed"] >= 1


def test_batches_are_sized_to_the_cluster(cluster: Cluster) -> None:
    with make_executor(jobs=1, where=cluster.where) as ex:
        assert ex.jobs == 2  # two one-thread workers: about eight batches each
        assert batch_bytes(2 * 2**30, ex) == 2**27
        assert batch_bytes(10**14, ex) == 2**30  # at most a GiB: a retried batch costs little
        assert batch_bytes(10**8, ex) == UNIT_BYTES  # at least 8 MiB: scheduling stays small
    with make_executor(jobs=4, kind="threads") as local:
        assert batch_bytes(10**14, local) == UNIT_BYTES


def test_presence_and_size_need_no_cluster(data: Path) -> None:
    torrent = load_torrent(create_torrent(data, format="v1", piece_size=PIECE).data)
    for level in ("presence", "size"):
        outcome = verify_selection(
            _selection(torrent, data, None), level=level, where="dask://127.0.0.1:1"
        )
        assert outcome.ok
    with pytest.raises(ClusterError, match="cannot reach"):
        verify_selection(_selection(torrent, data, None), where="dask://127.0.0.1:1")


def test_a_worker_killed_mid_task_loses_nothing(
    cluster: Cluster, medium: tuple[Path, Path]
) -> None:
    torrent_path, folder = medium
    torrent = load_torrent(torrent_path.read_bytes())
    selection = _selection(torrent, folder, None)
    pids = cluster.worker_pids()
    client = cluster.client()
    killed: list[str] = []

    def kill_a_busy_worker(p: Progress) -> bool:
        if not killed:
            busy = [w for w, keys in client.processing().items() if keys and w in pids]
            if busy:  # it holds a batch it is hashing, and one queued behind it
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(busy[0])
        return True

    try:
        outcome = verify_selection(selection, where=cluster.where, progress=kill_a_busy_worker)
    finally:
        client.close()
    assert killed, "no worker was seen hashing"
    report = outcome.reports[0]
    assert outcome.ok and report.pieces_checked == torrent.num_pieces
    assert report.bytes_hashed == torrent.total_size  # each piece counted once
    cluster.wait_workers(2)  # the nanny restarted the killed worker


@pytest.mark.slow
def test_a_worker_that_cannot_see_the_data_is_named_before_any_work(
    cluster: Cluster, data: Path, tmp_path: Path
) -> None:
    hide = hide_from_worker(tmp_path)  # the worker's tmp_path: an empty filesystem of its own
    root = tmp_path / NAME
    shutil.copytree(data, root)
    torrent = tmp_path / "r.torrent"
    torrent.write_bytes(create_torrent(root, format="v1", piece_size=PIECE).data)
    blind = cluster.add_worker(name="blind", prefix=hide)
    try:
        cluster.wait_workers(3)
        result = verify_cli("--executor", cluster.where, "verify", torrent, "--data", tmp_path)
    finally:
        cluster.stop(blind)
        cluster.wait_workers(2)
    assert result.returncode == 1 and not result.stdout
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Dask worker tcp://127.0.0.1:" in result.stderr
    assert f"cannot see the shared file {root}" in result.stderr


def _when_hashing(cluster: Cluster, proc: subprocess.Popen[str]) -> bool:
    """Wait until the cluster's workers hold tasks of `proc`; False if it ended first."""
    client = cluster.client()
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if any(client.processing().values()):
                return True
            time.sleep(0.01)
        return False
    finally:
        client.close()


def _start_verify(where: str, big: tuple[Path, Path]) -> subprocess.Popen[str]:
    torrent, folder = big
    return subprocess.Popen(
        [sys.executable, "-m", "musicark", "--executor", where, "verify", str(torrent),
         "--data", str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


@pytest.mark.slow
def test_ctrl_c_stops_the_cluster_work_with_one_line(
    cluster: Cluster, big: tuple[Path, Path]
) -> None:
    proc = _start_verify(cluster.where, big)
    assert _when_hashing(cluster, proc), proc.communicate()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.count("\n") == 1 and "interrupted" in err and not out
    client = cluster.client()  # the batches it had queued are dropped, not hashed for nobody
    try:
        deadline = time.monotonic() + 20
        while any(client.processing().values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(client.processing().values())
    finally:
        client.close()


@pytest.mark.slow
def test_ctrl_c_stops_a_local_verify_the_same_way(big: tuple[Path, Path]) -> None:
    proc = _start_verify("local", big)
    deadline = time.monotonic() + 60
    workers: set[int] = set()
    while proc.poll() is None and time.monotonic() < deadline:
        workers = _children(proc.pid)
        # its hashing runs: on worker processes (64 MiB and more), else on threads
        if workers or len(os.listdir(f"/proc/{proc.pid}/task")) >= 4:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the verify ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.count("\n") == 1 and "interrupted" in err and not out
    deadline = time.monotonic() + 10  # and its workers are gone with it
    while any(os.path.exists(f"/proc/{w}") for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(os.path.exists(f"/proc/{w}") for w in workers)


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found.update(int(c) for c in f.read().split())
        except OSError:
            pass
    return found


@pytest.mark.slow
def test_a_lost_scheduler_is_one_line(big: tuple[Path, Path], tmp_path: Path) -> None:
    with local_cluster(tmp_path / "dask") as c:
        proc = _start_verify(c.where, big)
        assert _when_hashing(c, proc), proc.communicate()
        os.killpg(c.procs[0].pid, signal.SIGKILL)  # the scheduler
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and not out
    assert err.count("\n") == 1 and "lost the Dask scheduler" in err, err


@pytest.mark.slow
def test_a_lost_scheduler_stops_every_torrent_not_just_one(
    medium: tuple[Path, Path], tmp_path: Path
) -> None:
    """The library: a lost cluster is the run's error, not the failure of one torrent
    followed by the next."""
    torrent_path, folder = medium
    torrent = load_torrent(torrent_path.read_bytes())
    target = VerifyTarget(torrent, folder, None, "test.torrent")
    selection = Selection(targets=[target, target])
    with local_cluster(tmp_path / "dask") as c:
        scheduler = c.procs[0]

        def kill_the_scheduler(p: Progress) -> bool:
            if scheduler.poll() is None:
                os.killpg(scheduler.pid, signal.SIGKILL)
            return True

        with pytest.raises(ClusterError, match="lost the Dask scheduler") as caught:
            verify_selection(selection, where=c.where, progress=kill_the_scheduler)
    assert "\n" not in str(caught.value)
