"""Hostile catalogue inputs and conditions: each class gives one line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from musicark.archive import Archive, init_archive
from musicark.catalog.ids import hash_strings, stable_hash
from musicark.catalog.synthetic import generate_catalog
from tests.catalog_data import track, write_jsonl


def _one_line_error(result, code: int = 1) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("musicark: error:"), result.output
    return str(lines[0])


def _set(archive: Archive, old: str, new: str) -> None:
    config = archive.root / "musicark.toml"
    text = config.read_text()
    assert old in text
    config.write_text(text.replace(old, new))


def test_overlong_jsonl_line_is_refused_with_its_reason(
    archive: Archive,
    run,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    _set(archive, 'max_line_bytes = "16MiB"', 'max_line_bytes = "2KiB"')
    src = write_jsonl(tmp_path / "cat.jsonl", [track(1), track(2, title="x" * 5000), track(3)])
    out = run("catalog", "import", src).output
    assert "2 imported" in out and "1 rejected" in out
    rejects = next((archive.root / "rejects").glob("*.rejects.jsonl")).read_text()
    assert '"line":2' in rejects and "longer than 2048 bytes" in rejects
    assert "max_line_bytes" in rejects


def test_overlong_csv_line_stops_with_one_line(
    archive: Archive,
    run,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    _set(archive, 'max_line_bytes = "16MiB"', 'max_line_bytes = "2KiB"')
    src = tmp_path / "cat.csv"
    src.write_text("id,title\nt1,One\nt2," + "y" * 5000 + "\nt3,Three\n")
    msg = _one_line_error(run("catalog", "import", src, check=False))
    assert "line 3" in msg and "longer than 2048 bytes" in msg


def _huge_line_gzip(path: Path, size: int) -> None:
    """A gzip of one valid row, then one line of `size` bytes, then another valid row."""
    z = zlib.compressobj(1, zlib.DEFLATED, 31)
    block = b"a" * (1 << 20)
    with path.open("wb") as f:
        f.write(z.compress(b'{"id": "t1", "title": "One"}\n{"id": "t2", "title": "'))
        for _ in range(size >> 20):
            f.write(z.compress(block))
        f.write(z.compress(b'"}\n{"id": "t3", "title": "Three"}\n'))
        f.write(z.flush())


@pytest.mark.parametrize(
    "size", [256 << 20, pytest.param(2 << 30, marks=pytest.mark.slow)], ids=["256MiB", "2GiB"]
)
def test_huge_line_in_a_small_gzip_takes_bounded_memory(tmp_path: Path, size: int) -> None:
    src = tmp_path / "bomb.jsonl.gz"
    _huge_line_gzip(src, size)
    assert src.stat().st_size < size // 200
    archive = init_archive(tmp_path / "ark")
    script = (
        "import re, sys\n"
        "from musicark.archive import open_archive\n"
        "from musicark.catalog.importer import import_catalog\n"
        "s = import_catalog(open_archive(sys.argv[1]), [sys.argv[2]])\n"
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent.
        "status = open('/proc/self/status').read()\n"
        "peak = int(re.search(r'VmHWM:\\s+(\\d+)', status).group(1))\n"
        "print(s.imported, s.rejected, peak // 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(archive.root), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout.split()
    imported, rejected, peak_mb = map(int, out)
    assert (imported, rejected) == (2, 1)
    assert peak_mb < 400, f"{peak_mb} MB to read past one {size >> 20} MiB line"


def test_long_values_hash_in_linear_time() -> None:
    import pyarrow as pa

    long_value = "ä" * (8 << 20)  # 16 MiB of UTF-8, the default line cap
    values = pa.array(["", "a", "short one", long_value, "b" * 1000])
    start = time.perf_counter()
    got = hash_strings(values)
    elapsed = time.perf_counter() - start
    short = [stable_hash(v) for v in ("", "a", "short one", "b" * 1000)]
    # stable_hash (the scalar definition) of the 16 MiB value, computed once
    assert got.tolist() == [*short[:3], 2012574825247917400, short[3]]
    # 2 M words: a numpy pass per word took minutes; a linear pass takes about a second.
    assert elapsed < 20, f"{elapsed:.1f} s to hash one 16 MiB value"


def test_hash_switches_from_columns_to_single_values_exactly() -> None:
    import random

    import pyarrow as pa

    rng = random.Random(5)
    values = ["".join(rng.choice("aé€𝄞") for _ in range(rng.randrange(0, 900))) for _ in range(300)]
    arr = pa.chunked_array([values[:100], [None], values[100:]])
    expected = [stable_hash(v) for v in values[:100]] + [stable_hash("")]
    expected += [stable_hash(v) for v in values[100:]]
    assert hash_strings(arr).tolist() == expected
    assert hash_strings(arr.combine_chunks().slice(7, 50)).tolist() == expected[7:57]


@pytest.mark.parametrize("damage", ["truncated", "scrambled"])
def test_damaged_parquet_gives_one_line(
    archive: Archive,
    run,
    tmp_path: Path,
    damage: str,  # type: ignore[no-untyped-def]
) -> None:
    good = tmp_path / "good.parquet"
    pq.write_table(generate_catalog(3000, seed=3), good, row_group_size=500)
    data = bytearray(good.read_bytes())
    bad = tmp_path / "bad.parquet"
    if damage == "truncated":
        bad.write_bytes(bytes(data[: len(data) // 2]))
    else:  # footer intact, pages garbage
        data[200 : len(data) // 2] = os.urandom(len(data) // 2 - 200)
        bad.write_bytes(bytes(data))
    msg = _one_line_error(run("catalog", "import", bad, check=False))
    assert str(bad) in msg


def test_non_files_are_named_for_what_they_are(
    archive: Archive,
    run,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.jsonl"
    folder.mkdir()
    cases = {
        fifo: "named pipe",
        folder: "folder",
        Path("/dev/zero"): "device",
        tmp_path / "missing.jsonl": "no such file",
    }
    for path, what in cases.items():
        for fmt in ("auto", "jsonl"):
            result = run("catalog", "import", "--format", fmt, path, check=False)
            msg = _one_line_error(result, code=2)  # a path named on the command line
            assert what in msg, msg
            if what != "no such file":
                assert "no such file" not in msg


@pytest.fixture
def small_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real 3 MiB filesystem (tmpfs); skipped where mounting is not permitted."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _leftovers(root: Path) -> list[str]:
    """Temporary exports, non-empty journals and import staging folders."""
    out = []
    for p in root.rglob("*"):
        journal = p.name.endswith("-journal") and p.is_file() and p.stat().st_size > 0
        if ".partial" in p.name or journal or p.name.startswith("import-"):
            out.append(str(p.relative_to(root)))
    return sorted(out)


@pytest.mark.parametrize("mode", ["upsert", "bulk"])
def test_full_disk_during_import_then_resume(small_disk: Path, tmp_path: Path, mode: str) -> None:
    from click.testing import CliRunner

    from musicark.archive import open_archive
    from musicark.catalog.importer import import_catalog
    from musicark.cli import cli
    from tests.catalog_data import dump_catalog

    archive = init_archive(small_disk / "ark")
    _set(archive, "batch_rows = 200000", "batch_rows = 400")
    if mode == "bulk":
        _set(archive, "bulk_min_rows = 500000", "bulk_min_rows = 1")
    src = write_jsonl(tmp_path / "cat.jsonl", [track(i) for i in range(5000)])
    filler = small_disk / "filler"
    filler.write_bytes(
        bytes(
            3_145_728
            - 900_000
            - sum(p.stat().st_size for p in archive.root.rglob("*") if p.is_file())
        )
    )
    env = {"MUSICARK_ARCHIVE": str(archive.root)}
    result = CliRunner().invoke(cli, ["catalog", "import", str(src)], env=env)
    msg = _one_line_error(result)
    assert "disk is full" in msg, msg
    assert _leftovers(archive.root) == []
    assert list((archive.root / "staging").iterdir()) == []
    conn = archive.connect_catalog(readonly=True)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    # With room again the same import finishes, giving what a fresh import gives.
    filler.unlink()
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    import_catalog(open_archive(archive.root), [src])
    fresh = init_archive(tmp_path / "fresh")
    import_catalog(fresh, [src])
    assert dump_catalog(open_archive(archive.root)) == dump_catalog(fresh)


@pytest.mark.parametrize("name", ["out.sqlite", "out.sqlite.zst", "out.jsonl", "out.parquet"])
def test_full_disk_during_export(
    archive: Archive,
    run,
    small_disk: Path,
    tmp_path: Path,
    name: str,  # type: ignore[no-untyped-def]
) -> None:
    from musicark.catalog.importer import import_catalog

    src = tmp_path / "cat.parquet"
    pq.write_table(generate_catalog(10_000, seed=4), src)
    import_catalog(archive, [src])
    (small_disk / "filler").write_bytes(bytes(2_800_000))  # leave ~300 kB
    msg = _one_line_error(run("catalog", "export", small_disk / name, check=False))
    assert "disk is full" in msg, msg
    assert [p.name for p in small_disk.iterdir()] == ["filler"]


def _descendants(pid: int) -> set[int]:
    out: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = (task / "children").read_text().split()
            except OSError:
                continue
            for k in map(int, kids):
                if k not in out:
                    out.add(k)
                    todo.append(k)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie waiting for its reaper is dead


def test_kill_9_of_an_import_takes_its_children_along(tmp_path: Path) -> None:
    src = tmp_path / "cat.parquet"
    pq.write_table(generate_catalog(60_000, seed=9), src)
    archive = init_archive(tmp_path / "ark")
    _set(archive, "batch_rows = 200000", "batch_rows = 1000")
    _set(archive, "bulk_min_rows = 500000", "bulk_min_rows = 1000000000")
    proc = subprocess.Popen(
        [sys.executable, "-m", "musicark", "catalog", "import", str(src)],
        env={**os.environ, "MUSICARK_ARCHIVE": str(archive.root)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    children: set[int] = set()
    while len(children) < 2:  # the staging process and the resource tracker
        assert proc.poll() is None, "the import ended before it could be killed"
        assert time.monotonic() < deadline, f"children seen: {children}"
        time.sleep(0.05)
        children = _descendants(proc.pid)
    time.sleep(0.3)
    children |= _descendants(proc.pid)
    os.kill(proc.pid, 9)
    proc.wait()
    deadline = time.monotonic() + 10
    while any(_alive(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [c for c in children if _alive(c)]
    for c in survivors:
        os.kill(c, 9)
    assert survivors == [], "children outlived the killed import"
