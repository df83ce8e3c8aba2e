"""Plan files: writing and reading plans, and where an archive keeps them.

Where plans are kept: ``ARCHIVE/plans/latest.parquet`` (the last plan made, in full) and
``ARCHIVE/plans/latest.json`` (its summary and coverage curve, for the web UI).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from musicark.archive import Archive
from musicark.errors import MusicarkError, UsageError
from musicark.plan.table import METADATA_KEY, Plan

PLANS_DIR = "plans"
LATEST_PLAN = "latest.parquet"
LATEST_SUMMARY = "latest.json"
ROW_GROUP = 1 << 20


# ---- plan files -----------------------------------------------------------------------


def plans_dir(archive: Archive) -> Path:
    return archive.root / PLANS_DIR


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def write_plan(plan: Plan, path: Path) -> None:
    """Write a plan's rows (by row groups) and summary as Parquet, atomically.

    The same plan gives the same bytes: no timestamps, fixed writer options.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(
            tmp,
            plan.schema(),
            compression="zstd",
            use_dictionary=["status", "tier", "size_source"],
            write_statistics=True,
            store_schema=True,
            memory_pool=pa.system_memory_pool(),
        ) as writer:
            for batch in _ahead(plan.batches(ROW_GROUP)):
                writer.write_batch(batch, row_group_size=ROW_GROUP)
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):  # no folder there: nothing to remove
            tmp.unlink(missing_ok=True)
        raise MusicarkError(f"cannot write the plan to {path}: {exc.strerror}") from exc


def _ahead(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """`batches`, the next one made on a thread while the caller writes the last one
    (both mostly outside the GIL: numpy gathers, Parquet encoding and zstd)."""
    done = object()
    box: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        box.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            box.put(done)
        except BaseException as exc:  # handed to the caller
            box.put(exc)

    thread = threading.Thread(target=produce, name="plan-batches", daemon=True)
    thread.start()
    try:
        while True:
            item = box.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:  # also when the caller stops early: let the thread finish, never block it
        stop.set()
        while thread.is_alive():
            with contextlib.suppress(queue.Empty):
                box.get(timeout=0.1)
        thread.join()


def copy_file(src: Path, dest: Path) -> None:
    """Copy a written plan to `dest` atomically."""
    import shutil

    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}.tmp")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, tmp)
        tmp.replace(dest)
    except OSError as exc:
        with contextlib.suppress(OSError):  # no folder there: nothing to remove
            tmp.unlink(missing_ok=True)
        raise MusicarkError(f"cannot write the plan to {dest}: {exc.strerror}") from exc


def write_json(data: dict[str, Any], path: Path) -> None:
    try:
        _atomic_write(Path(path), orjson.dumps(data, option=orjson.OPT_INDENT_2))
    except OSError as exc:
        raise MusicarkError(f"cannot write {path}: {exc.strerror}") from exc


def read_plan_metadata(path: Path) -> dict[str, Any]:
    """The summary (and curve) stored in a plan file, without reading its rows."""
    path = Path(path)
    try:
        schema = pq.read_schema(path)
    except FileNotFoundError:
        raise UsageError(f"no plan at {path}") from None
    except (OSError, pa.ArrowInvalid) as exc:
        raise MusicarkError(f"{path} is not a plan file ({exc})") from exc
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise MusicarkError(f"{path} is a Parquet file but not a musicark plan")
    data: dict[str, Any] = orjson.loads(raw)
    return data


def read_plan(path: Path, *, columns: list[str] | None = None) -> pa.Table:
    """The rows of a plan file, in rank order."""
    read_plan_metadata(path)
    return pq.read_table(path, columns=columns)


def selected_track_ids(path: Path) -> np.ndarray:
    """Track ids a plan selects, in acquisition (rank) order."""
    t = read_plan(path, columns=["track_id", "status"])
    mask = pc.equal(t.column("status").cast(pa.string()), "selected")
    return np.asarray(t.column("track_id").filter(mask).to_numpy(), dtype=np.int64)
