"""The track search index (tantivy): full builds, incremental updates, and its layout.

Layout under `ARCHIVE/index/tracks/`::

    current.json     {"generation": "g000002", "seq": 1234, ...}: the live index and the last
                     `track_changes.seq` it includes, replaced atomically
    g000002/         the tantivy index of that generation
    .lock            held (flock) by whoever writes: one writer per index

A full build writes a new generation beside the live one and switches `current.json`
when it is committed, so searches never see half an index and a crash leaves the old
one in place. An update applies the catalogue's `track_changes` after `seq` in batches,
each committed before `seq` moves on: a crash repeats at most one batch, and applying
a change twice gives the same index (delete by id, then add).
"""

from __future__ import annotations

import gc
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import tantivy

from musicark.archive import Archive
from musicark.catalog.reader import CatalogReader
from musicark.errors import Cancelled, MusicarkError, SearchError
from musicark.locks import exclusive
from musicark.progress import Progress, ProgressCallback, report
from musicark.search.analysis import (
    ANALYZER,
    KEYS_ANALYZER,
    normalize_text,
    register_analyzer,
)
from musicark.search.scan import Row as Row  # re-exported: the rows `write_index` takes
from musicark.search.scan import rows_for, scan_catalog
from musicark.search.tiers import tier_of
from musicark.units import now

SCHEMA_VERSION = 4
WRITER_HEAP = 1_000_000_000  # split over the indexing threads; fewer segments to merge
CHANGE_BATCH = 20_000
# An update with more pending changes than this (or a quarter of the index) rebuilds.
REBUILD_THRESHOLD = 200_000


def build_schema() -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    sb.add_integer_field("id", stored=True, indexed=True, fast=True)
    # title + artists + album: every query word must match here
    sb.add_text_field("all", stored=False, tokenizer_name=ANALYZER, index_option="freq")
    # the title again, so that matches in it count extra
    sb.add_text_field("title", stored=False, tokenizer_name=ANALYZER, index_option="freq")
    sb.add_text_field("keys", stored=False, tokenizer_name=KEYS_ANALYZER, index_option="basic")
    sb.add_integer_field("popularity", stored=True, fast=True)
    # the popularity band (see tiers.py): queries score the popular bands first and stop
    # once no track of a lower band can reach the page
    sb.add_integer_field("tier", stored=False, indexed=True)
    # what a result shows, as one JSON value: [title, artists, album, album_id, isrc, duration_ms]
    sb.add_bytes_field("show", stored=True, indexed=False)
    return sb.build()


def index_root(archive: Archive) -> Path:
    return archive.index_dir / "tracks"


@dataclass(frozen=True, slots=True)
class IndexState:
    generation: str
    seq: int
    built: str
    schema: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "seq": self.seq,
            "built": self.built,
            "schema": self.schema,
        }


def read_state(root: Path) -> IndexState | None:
    """The live generation, or None when no index was ever completed."""
    try:
        data = orjson.loads((root / "current.json").read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError) as exc:
        raise SearchError(
            f"{root / 'current.json'} is unreadable ({exc}); run `musicark index rebuild`"
        ) from exc
    try:
        state = IndexState(
            generation=str(data["generation"]),
            seq=int(data["seq"]),
            built=str(data.get("built", "")),
            schema=int(data.get("schema", 0)),
        )
    except (KeyError, TypeError, ValueError):
        raise SearchError(
            f"{root / 'current.json'} is damaged; run `musicark index rebuild`"
        ) from None
    if not state.generation.startswith("g") or not state.generation[1:].isdigit():
        raise SearchError(
            f"{root / 'current.json'} names no generation; run `musicark index rebuild`"
        )
    if state.schema != SCHEMA_VERSION:
        return None  # an index from another version of musicark: rebuild it
    return state


def _write_state(root: Path, state: IndexState) -> None:
    tmp = root / "current.json.tmp"
    with open(tmp, "wb") as fh:
        fh.write(orjson.dumps(state.to_dict(), option=orjson.OPT_INDENT_2))
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(root / "current.json")
    dir_fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Python's cycle collector off while rows are turned into documents: the rows hold
    no cycles, and its passes over the millions of objects made meanwhile cost a third of
    reading the catalogue."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _writer_lock(root: Path) -> AbstractContextManager[None]:
    return exclusive(
        root / ".lock",
        lambda pid: SearchError(
            f"another process (pid {pid}) is updating the search index at {root};"
            " try again when it ends"
        ),
    )


def open_index(root: Path, generation: str) -> tantivy.Index:
    path = root / generation
    if not path.is_dir():
        raise SearchError(f"search index {path} is missing; run `musicark index rebuild`")
    try:
        index = tantivy.Index.open(str(path))
    except (OSError, ValueError) as exc:
        raise SearchError(
            f"search index {path} cannot be opened ({exc}); run `musicark index rebuild`"
        ) from exc
    register_analyzer(index)
    return index


# ---------------------------------------------------------------- documents


def make_document(row: Row) -> tantivy.Document:
    tid, title, artists, album_id, album, pop, isrc, duration, keys = row
    doc = tantivy.Document()  # add_* calls: several times cheaper than keyword arguments
    doc.add_integer("id", tid)
    # NFKC before tantivy's analyzer, as queries are (see analysis.normalize_text)
    folded = normalize_text(title)
    doc.add_text("all", f"{folded}\n{normalize_text(artists)}\n{normalize_text(album)}")
    doc.add_text("title", folded)
    if keys:
        doc.add_text("keys", " ".join(keys))
    doc.add_integer("popularity", pop)
    doc.add_integer("tier", tier_of(pop))
    doc.add_bytes("show", orjson.dumps([title, artists, album, album_id, isrc, duration]))
    return doc


# ---------------------------------------------------------------- building


@dataclass(frozen=True, slots=True)
class IndexSummary:
    action: str  # "rebuilt" | "updated" | "unchanged"
    documents: int  # documents written
    seq: int
    seconds: float

    def describe(self) -> str:
        if self.action == "unchanged":
            return "search index already up to date"
        return (
            f"search index {self.action}: {self.documents} tracks written"
            f" in {self.seconds:.1f} s (changes up to #{self.seq})"
        )


def write_index(
    path: Path,
    batches: Iterable[list[Row]],
    *,
    total: int | None = None,
    progress: ProgressCallback | None = None,
) -> int:
    """Create a fresh tantivy index at `path` from row batches; returns the rows written."""
    path.mkdir(parents=True, exist_ok=False)
    # documents in descending popularity, so a band is one run of doc ids per segment
    index = tantivy.Index(
        build_schema(),
        path=str(path),
        reuse=False,
        sort_by_field="popularity",
        sort_order=tantivy.Order.Desc,
    )
    register_analyzer(index)
    writer = index.writer(heap_size=WRITER_HEAP)
    done = 0
    try:
        report(progress, Progress("index", 0, total, "tracks"))
        with _no_cycle_collection():
            for rows in batches:
                for row in rows:
                    writer.add_document(make_document(row))
                done += len(rows)
                report(progress, Progress("index", done, total, "tracks"))
        writer.commit()
        writer.wait_merging_threads()
    except BaseException:
        writer.rollback()
        raise
    return done


def rebuild_index(archive: Archive, *, progress: ProgressCallback | None = None) -> IndexSummary:
    """Build the whole index again from the catalogue and make it the live one."""
    root = index_root(archive)
    with _writer_lock(root):
        return _rebuild_locked(archive, root, progress)


def _next_generation(root: Path) -> str:
    numbers = [int(p.name[1:]) for p in root.glob("g*") if p.name[1:].isdigit()]
    return f"g{max(numbers, default=0) + 1:06d}"


def _rebuild_locked(
    archive: Archive, root: Path, progress: ProgressCallback | None
) -> IndexSummary:
    started = time.monotonic()
    generation = _next_generation(root)
    path = root / generation
    if not archive.catalog_path.exists():
        raise SearchError(f"no catalogue at {archive.catalog_path} to index")
    try:
        with scan_catalog(archive) as scan:
            seq = scan.seq
            written = write_index(path, scan.batches, total=scan.total, progress=progress)
    except BaseException as exc:
        shutil.rmtree(path, ignore_errors=True)
        if isinstance(exc, Exception) and not isinstance(exc, MusicarkError):
            raise SearchError(f"cannot read the catalogue to index it ({exc})") from exc
        raise
    built = now()
    _write_state(root, IndexState(generation=generation, seq=int(seq), built=built))
    for old in root.glob("g*"):
        if old.name != generation and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    return IndexSummary("rebuilt", written, int(seq), time.monotonic() - started)


def update_index(archive: Archive, *, progress: ProgressCallback | None = None) -> IndexSummary:
    """Bring the index up to date with the catalogue's `track_changes`.

    Builds the index when there is none, and rebuilds it when more tracks changed than
    an update handles faster. Safe to interrupt and to run again.
    """
    root = index_root(archive)
    with _writer_lock(root):
        state = read_state(root)
        if state is None or not (root / state.generation).is_dir():
            return _rebuild_locked(archive, root, progress)
        reader = CatalogReader.open(archive.catalog_path)
        try:
            pending = reader.pending_changes(state.seq)
            if pending == 0:
                return IndexSummary("unchanged", 0, state.seq, 0.0)
            index = open_index(root, state.generation)
            docs = index.searcher().num_docs
            if pending > max(REBUILD_THRESHOLD, docs // 4):
                reader.close()
                return _rebuild_locked(archive, root, progress)
            return _apply_changes(reader, root, index, state, pending, progress)
        except sqlite3.DatabaseError as exc:
            raise SearchError(f"cannot read the catalogue's changes ({exc})") from exc
        finally:
            reader.close()


def _apply_changes(
    reader: CatalogReader,
    root: Path,
    index: tantivy.Index,
    state: IndexState,
    pending: int,
    progress: ProgressCallback | None,
) -> IndexSummary:
    started = time.monotonic()
    try:
        writer = index.writer(heap_size=WRITER_HEAP // 4, num_threads=1)
    except ValueError as exc:
        raise SearchError(f"the search index is locked by another writer ({exc})") from exc
    seq, seen, written = state.seq, 0, 0
    report(progress, Progress("index update", 0, pending, "changes"))
    try:
        while True:
            changes = reader.changes_since(seq, limit=CHANGE_BATCH)
            if not changes:
                break
            ids = sorted({t for _, t in changes})
            rows = rows_for(reader, ids)
            for tid in ids:  # deleted tracks just go; changed ones come back below
                writer.delete_documents_by_term("id", tid)
            for row in rows:
                writer.add_document(make_document(row))
            writer.commit()
            seq = int(changes[-1][0])
            written += len(rows)
            seen += len(changes)
            state = IndexState(state.generation, seq, state.built)
            _write_state(root, state)
            report(progress, Progress("index update", seen, pending, "changes"))
    except Cancelled:
        writer.rollback()
        raise
    finally:
        writer.wait_merging_threads()
    return IndexSummary("updated", written, seq, time.monotonic() - started)


@dataclass(frozen=True, slots=True)
class IndexStatus:
    """What the index holds and how far behind the catalogue it is."""

    path: str
    state: IndexState | None = None  # None: no index yet
    documents: int = 0
    pending_changes: int | None = None  # None: the catalogue could not be read

    @property
    def exists(self) -> bool:
        return self.state is not None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "exists": self.exists}
        if self.state is None:
            return out
        out.update(self.state.to_dict())
        out["documents"] = self.documents
        if self.pending_changes is not None:
            out["pending_changes"] = self.pending_changes
        return out


def index_status(archive: Archive) -> IndexStatus:
    """What the index holds and how far behind the catalogue it is."""
    root = index_root(archive)
    state = read_state(root)
    if state is None or not (root / state.generation).is_dir():
        return IndexStatus(str(root))
    documents = open_index(root, state.generation).searcher().num_docs
    try:
        reader = CatalogReader.open(archive.catalog_path)
    except MusicarkError:
        return IndexStatus(str(root), state, documents)
    try:
        return IndexStatus(str(root), state, documents, reader.pending_changes(state.seq))
    except sqlite3.DatabaseError:
        return IndexStatus(str(root), state, documents)
    finally:
        reader.close()
