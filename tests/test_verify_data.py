"""`verify_torrent` against real data folders and torrents made by libtorrent (v1, v2, hybrid)."""

from __future__ import annotations

import hashlib
import itertools
import random
from pathlib import Path

import libtorrent as lt
import pytest

from musicark.errors import SwarmError
from musicark.swarm.verify import verify_torrent
from musicark.torrent.create import create_torrent
from musicark.torrent.metainfo import Torrent, load_torrent

FLAGS = {"v1": 64, "v2": 32, "hybrid": 0}
PIECE = 32 * 1024


def make_release(root: Path, *, seed: int = 1, sizes: tuple[int, ...] = ()) -> Path:
    """A folder of files with awkward sizes (smaller than, equal to, larger than a piece)."""
    rng = random.Random(seed)
    sizes = sizes or (100_003, 5_000, PIECE, 70_001, 1, 250_000)
    for i, size in enumerate(sizes):
        path = root / f"disc{i % 2}" / f"{i:02d} track.ogg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
    return root


def make_torrent(
    root: Path, version: str, creator: str = "musicark", piece: int = PIECE
) -> Torrent:
    if creator == "musicark":
        return load_torrent(create_torrent(root, format=version, piece_size=piece).data)
    fs = lt.file_storage()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        fs.add_file(path.relative_to(root.parent).as_posix(), path.stat().st_size)
    ct = lt.create_torrent(fs, piece, FLAGS[version])
    lt.set_piece_hashes(ct, str(root.parent))
    return load_torrent(bytes(lt.bencode(ct.generate())))


@pytest.fixture(
    params=[(v, c) for v in ("v1", "v2", "hybrid") for c in ("musicark", "libtorrent")],
    ids=lambda p: "-".join(p),
)
def release(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Torrent, Path]:
    root = make_release(tmp_path / "data" / "Demo Release")
    return make_torrent(root, *request.param), root


def test_intact_data_passes_at_every_level(release: tuple[Torrent, Path]) -> None:
    torrent, root = release
    for level in ("presence", "size", "full"):
        for data in (root, root.parent):  # its own folder, or the folder holding it
            rep = verify_torrent(torrent, data, level=level)
            assert rep.ok, rep.problems()
            assert len(rep.files) == 6
            assert rep.data == str(root)
    full = verify_torrent(torrent, root, level="full", jobs=2)
    assert full.pieces_checked == torrent.num_pieces
    assert full.pieces_failed == 0
    assert full.bytes_hashed >= torrent.total_size


def test_flipped_byte_names_exactly_that_file_and_piece(release: tuple[Torrent, Path]) -> None:
    torrent, root = release
    target = next(f for f in torrent.files if f.length == 250_000)
    offset_in_file = 3 * PIECE + 123  # well inside the file
    path = root.joinpath(*target.path)
    data = bytearray(path.read_bytes())
    data[offset_in_file] ^= 0x01
    path.write_bytes(bytes(data))
    rep = verify_torrent(torrent, root, level="full")
    assert not rep.ok
    problems = rep.problems()
    assert [p.path for p in problems] == [target.path_str]
    assert problems[0].status == "corrupt"
    assert problems[0].bad_pieces == ((target.offset + offset_in_file) // PIECE,)
    assert rep.pieces_failed == 1
    # size-level checking does not read the data, so it passes
    assert verify_torrent(torrent, root, level="size").ok


def test_missing_extra_and_wrong_size_files(release: tuple[Torrent, Path]) -> None:
    torrent, root = release
    missing, short = torrent.files[0], torrent.files[3]
    root.joinpath(*missing.path).unlink()
    with root.joinpath(*short.path).open("r+b") as fh:
        fh.truncate(short.length - 10)
    (root / "disc0" / "cover.jpg").write_bytes(b"x" * 10)
    (root / ".pad").mkdir()
    (root / ".pad" / "100").write_bytes(bytes(100))  # BEP 47 padding: not unexpected
    rep = verify_torrent(torrent, root, level="full")
    by_path = {f.path: f for f in rep.files}
    assert by_path[missing.path_str].status == "missing"
    assert by_path[short.path_str].status == "corrupt"
    assert "expected" in by_path[short.path_str].reason
    assert by_path["disc0/cover.jpg"].status == "unexpected"
    assert ".pad/100" not in by_path
    assert not rep.ok
    counts = rep.counts()
    assert counts["missing"] == 1 and counts["unexpected"] == 1
    # files that share no piece with a damaged one are reported ok: a partial download
    assert counts["ok"] + counts["unverified"] == 4
    if torrent.info_hash_v2:  # piece-aligned files: every other file is fully checkable
        assert counts["ok"] == 4
    presence = verify_torrent(torrent, root, level="presence")
    assert {f.path for f in presence.problems()} == {missing.path_str, "disc0/cover.jpg"}


def test_manifest_sha256_decides_shared_pieces(tmp_path: Path) -> None:
    root = make_release(tmp_path / "Rel", sizes=(10_000, 10_000, 10_000))
    torrent = make_torrent(root, "v1")  # all three files share the first piece
    manifest = {
        f.path_str: hashlib.sha256(root.joinpath(*f.path).read_bytes()).hexdigest()
        for f in torrent.files
    }
    victim = root.joinpath(*torrent.files[1].path)
    raw = bytearray(victim.read_bytes())
    raw[5] ^= 0xFF
    victim.write_bytes(bytes(raw))
    without = verify_torrent(torrent, root)
    assert {p.path for p in without.problems()} == {f.path_str for f in torrent.files}
    rep = verify_torrent(torrent, root, manifest=manifest)
    assert [(p.path, p.status) for p in rep.problems()] == [(torrent.files[1].path_str, "corrupt")]
    assert "sha256" in rep.problems()[0].reason


def test_single_file_torrent(tmp_path: Path) -> None:
    path = tmp_path / "one.flac"
    path.write_bytes(random.Random(3).randbytes(90_000))
    torrent = load_torrent(create_torrent(path, piece_size=PIECE).data)
    assert verify_torrent(torrent, tmp_path).ok
    assert verify_torrent(torrent, path).ok
    path.write_bytes(b"\0" * 90_000)
    rep = verify_torrent(torrent, path)
    assert rep.problems()[0].path == "one.flac" and rep.problems()[0].bad_pieces == (0, 1, 2)


def test_missing_data_folder_is_a_clear_error(release: tuple[Torrent, Path]) -> None:
    torrent, root = release
    with pytest.raises(SwarmError, match="does not exist"):
        verify_torrent(torrent, root / "nope")
    with pytest.raises(SwarmError, match="unknown level"):
        verify_torrent(torrent, root, level="quick")


def test_batches_are_plain_data_carrying_only_their_files(
    release: tuple[Torrent, Path],
) -> None:
    """What a cluster's worker gets: a pickled batch of piece runs with the expected hashes
    and the paths of the files those pieces touch, nothing else; back comes a small record."""
    import pickle

    from musicark.swarm.pieces import (
        FileBatch,
        PieceBatch,
        PiecePlan,
        batches,
        check_batch,
        files_of_piece,
        layout,
    )

    torrent, root = release
    paths = [root.joinpath(*f.path) for f in torrent.files]
    big = next(i for i, f in enumerate(torrent.files) if f.length == 250_000)
    piece_ok = [True] * torrent.num_pieces
    for p in range(torrent.files[0].first_piece, torrent.files[0].last_piece + 1):
        piece_ok[p] = False  # as if the first file were missing: its pieces are not sent
    sums = {big: hashlib.sha256(paths[big].read_bytes()).hexdigest()}
    plan = PiecePlan(torrent, layout(torrent, paths), piece_ok, sums)
    tasks = [pickle.loads(pickle.dumps(b)) for b in batches(plan, 3 * PIECE)]
    pieces = [b for b in tasks if isinstance(b, PieceBatch)]
    assert len(pieces) > 1 and [b for b in tasks if isinstance(b, FileBatch)]
    sent = [p for b in pieces for run in b.runs for p in range(run.first, run.last)]
    assert sent == [p for p, ok in enumerate(piece_ok) if ok]  # each checkable piece once
    for b in pieces:
        touched = {
            i
            for run in b.runs
            for p in range(run.first, run.last)
            for i in files_of_piece(torrent, p)
            if torrent.files[i].length
        }
        assert {s.source for s in b.plan.spans if s.length} == {str(paths[i]) for i in touched}
    results = [check_batch(b) for b in tasks]
    assert all(not r.bad and not r.error for r in results)
    assert sum(r.nbytes for r in results) == plan.total
    assert [d for r in results for d in r.digests] == [sums[big]]
    raw = bytearray(paths[big].read_bytes())
    raw[PIECE + 7] ^= 1
    paths[big].write_bytes(bytes(raw))
    bad = sorted(p for b in pieces for p in check_batch(b).bad)
    assert bad == [(torrent.files[big].offset + PIECE + 7) // torrent.piece_length]
    paths[big].write_bytes(b"short")  # changed under the check: an error, not an exception
    errors = {check_batch(b).error for b in tasks} - {""}
    assert errors and all(str(paths[big]) in e for e in errors)


def test_a_folder_where_a_file_should_be_and_an_inconsistent_manifest(
    release: tuple[Torrent, Path],
) -> None:
    torrent, root = release
    first, big = torrent.files[0], next(f for f in torrent.files if f.length == 250_000)
    root.joinpath(*first.path).unlink()
    root.joinpath(*first.path).mkdir()
    path = root.joinpath(*big.path)
    raw = bytearray(path.read_bytes())
    raw[3 * PIECE + 5] ^= 1
    path.write_bytes(bytes(raw))
    # a manifest that agrees with the damaged bytes cannot excuse a piece of the file's own
    manifest = {big.path_str: hashlib.sha256(bytes(raw)).hexdigest()}
    rep = verify_torrent(torrent, root, manifest=manifest)
    by_path = {f.path: f for f in rep.files}
    assert by_path[first.path_str].status == "missing"
    assert by_path[first.path_str].reason == "not a regular file"
    assert by_path[big.path_str].status == "corrupt"
    assert by_path[big.path_str].bad_pieces == ((big.offset + 3 * PIECE + 5) // PIECE,)
    assert "sha256 matches" in by_path[big.path_str].reason


def test_progress_and_cancel(release: tuple[Torrent, Path]) -> None:
    import threading

    from musicark.errors import Cancelled
    from musicark.progress import Progress

    torrent, root = release
    seen: list[Progress] = []
    verify_torrent(torrent, root, progress=seen.append)
    assert seen and seen[-1].done == seen[-1].total >= torrent.total_size
    assert all(a.done <= b.done for a, b in itertools.pairwise(seen))
    before = threading.active_count()
    with pytest.raises(Cancelled):
        verify_torrent(torrent, root, progress=lambda p: False)
    assert threading.active_count() == before  # the hashing threads are gone


def test_worker_processes_find_what_threads_find(release: tuple[Torrent, Path]) -> None:
    """A large local check hashes on worker processes (see `local_executor`): the same
    findings, manifest sha256s included, as the threads a small check uses."""
    from musicark.executor import make_executor

    torrent, root = release
    big = next(f for f in torrent.files if f.length == 250_000)
    path = root.joinpath(*big.path)
    raw = bytearray(path.read_bytes())
    raw[2 * PIECE + 9] ^= 1
    path.write_bytes(bytes(raw))
    other = next(f for f in torrent.files if f.length == 70_001)
    manifest = {
        other.path_str: hashlib.sha256(root.joinpath(*other.path).read_bytes()).hexdigest(),
        big.path_str: "0" * 64,
    }
    threads = verify_torrent(torrent, root, manifest=manifest, jobs=2)
    with make_executor(jobs=2, kind="processes") as workers:
        processes = verify_torrent(torrent, root, manifest=manifest, executor=workers)
    assert processes.files == threads.files
    assert (processes.pieces_checked, processes.pieces_failed) == (threads.pieces_checked, 1)
    corrupt = {p.path: p for p in processes.problems()}
    assert set(corrupt) == {big.path_str}
    assert corrupt[big.path_str].bad_pieces == ((big.offset + 2 * PIECE + 9) // PIECE,)


def test_local_checks_run_on_processes_unless_small() -> None:
    from musicark.executor import cpu_count
    from musicark.swarm.pieces import UNIT_BYTES, batch_bytes, local_executor
    from musicark.torrent.hashing import PROCESS_BYTES

    with local_executor(PROCESS_BYTES, 0) as big, local_executor(PROCESS_BYTES - 1, 0) as small:
        assert (big.kind, big.jobs) == ("processes", cpu_count())
        assert (small.kind, small.jobs) == ("threads", 2 * cpu_count())
    with local_executor(PROCESS_BYTES, 3) as three:
        assert three.jobs == 3
    # worker processes get batches of up to 32 MiB (a hand-off costs this process more
    # than a thread's), about eight per worker; threads 8 MiB
    with local_executor(PROCESS_BYTES, 2) as two:
        assert batch_bytes(2**30, two) == 32 * 2**20
        assert batch_bytes(256 * 2**20, two) == 16 * 2**20
        assert batch_bytes(PROCESS_BYTES, two) == UNIT_BYTES
    with local_executor(PROCESS_BYTES - 1, 2) as threads:
        assert batch_bytes(2**30, threads) == UNIT_BYTES
