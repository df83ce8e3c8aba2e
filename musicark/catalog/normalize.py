"""Interchange rows -> catalogue rows, vectorised over Arrow batches.

`normalize` checks what types cannot (ranges, rights, ISRCs), derives every id from
(source, external id), and splits each batch into the rows of the catalogue tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from musicark.catalog.formats.interchange import LINE
from musicark.catalog.ids import SEP, hash_strings
from musicark.catalog.rights import ALIASES, RIGHTS

NUL = "\x00"  # stands for a null value inside row hashes


@dataclass
class Normalized:
    tracks: pa.Table
    artists: pa.Table
    albums: pa.Table
    links: pa.Table
    external_ids: pa.Table
    rejected: pa.Table  # the rows refused here, with LINE and `_reason`
    duplicates: int  # rows repeating an earlier row's id in the same batch


def _arr(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _offsets(lists: pa.Array) -> pa.Array:
    """Zero-based offsets matching `pc.list_flatten(lists)` (null lists count as empty)."""
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    out = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=out[1:])
    return pa.array(out)


def _text(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    return pc.fill_null(pc.cast(arr, pa.string()), NUL)


def _ids(source: pa.Array, kind: str, external: pa.Array) -> pa.Array:
    keys = pc.binary_join_element_wise(source, kind, external, SEP)
    return pa.array(hash_strings(keys))


def _json_escape(values: pa.Array) -> pa.Array:
    values = pc.replace_substring(values, "\\", "\\\\")
    values = pc.replace_substring(values, '"', '\\"')
    for code in range(0x20):
        ch = chr(code)
        esc = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch, f"\\u{code:04x}")
        values = pc.replace_substring(values, ch, esc)
    return values


def _has_control(values: pa.Array) -> bool:
    return bool(pc.any(pc.match_substring_regex(values, r"[\x00-\x1f\\\"]")).as_py())


def json_string_list(lists: pa.Array) -> pa.Array:
    """list<string> -> JSON array text (null stays null), without Python per row."""
    flat = pc.list_flatten(lists)
    if len(flat) and _has_control(flat):
        flat = _json_escape(flat)
    quoted = pc.binary_join_element_wise('"', flat, '"', "")
    rebuilt = pa.ListArray.from_arrays(_offsets(lists), quoted, mask=lists.is_null())
    joined = pc.binary_join(rebuilt, ",")
    return pc.binary_join_element_wise("[", joined, "]", "")


def json_string_map(maps: pa.Array) -> pa.Array:
    """list<struct<key, value>> -> JSON object text, in the list's order."""
    flat = pc.list_flatten(maps)
    fk, fv = flat.field("key"), flat.field("value")
    if len(fk) and (_has_control(fk) or _has_control(fv)):
        fk, fv = _json_escape(fk), _json_escape(fv)
    pairs = pc.binary_join_element_wise('"', fk, '":"', fv, '"', "")
    rebuilt = pa.ListArray.from_arrays(_offsets(maps), pairs, mask=maps.is_null())
    return pc.binary_join_element_wise("{", pc.binary_join(rebuilt, ","), "}", "")


def _reasons(t: pa.Table) -> pa.Array:
    """The first rule each row breaks, or null."""
    rules: list[tuple[pa.Array, str]] = [
        (pc.or_kleene(pc.is_null(t["id"]), pc.equal(pc.utf8_length(t["id"]), 0)), "missing id"),
        (
            pc.or_kleene(
                pc.is_null(t["title"]),
                pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(t["title"])), 0),
            ),
            "missing title",
        ),
        (pc.less(t["duration_ms"], 0), "duration_ms is negative"),
        (
            pc.or_(pc.less(t["popularity"], 0), pc.greater(t["popularity"], 100)),
            "popularity outside 0-100",
        ),
        (pc.less(t["play_count"], 0), "play_count is negative"),
        (pc.less(t["track_number"], 0), "track_number is negative"),
        (pc.less(t["disc_number"], 0), "disc_number is negative"),
        (pc.invert(pc.is_in(t["rights"], pa.array(RIGHTS))), "unknown rights value"),
        (
            pc.invert(pc.match_substring_regex(t["isrc"], r"^[A-Z]{2}[A-Z0-9]{3}[0-9]{7}$")),
            "malformed ISRC",
        ),
    ]
    names = pc.list_flatten(_arr(t["artists"])).field("name")
    bad_artist = pc.or_kleene(pc.is_null(names), pc.equal(pc.utf8_length(names), 0))
    if len(names) and pc.any(bad_artist).as_py():
        parents = pc.list_parent_indices(_arr(t["artists"]))
        bad_rows = np.zeros(t.num_rows, dtype=bool)
        bad_rows[parents.to_numpy()[bad_artist.to_numpy(zero_copy_only=False)]] = True
        rules.append((pa.array(bad_rows), "an artist without a name"))
    reason = pa.nulls(t.num_rows, pa.string())
    for mask, text in reversed(rules):
        reason = pc.if_else(pc.fill_null(mask, False), pa.scalar(text), reason)
    return reason


def _canonical(t: pa.Table, *, source: str, default_rights: str) -> pa.Table:
    def setcol(name: str, values: pa.Array | pa.ChunkedArray) -> None:
        nonlocal t
        t = t.set_column(t.schema.get_field_index(name), name, values)

    setcol("source", pc.fill_null(pc.if_else(pc.equal(t["source"], ""), None, t["source"]), source))
    setcol("id", pc.utf8_trim_whitespace(t["id"]))
    rights = pc.utf8_lower(pc.utf8_trim_whitespace(pc.fill_null(t["rights"], default_rights)))
    rights = pc.replace_substring(pc.replace_substring(rights, "_", "-"), " ", "-")
    for alias, canonical in ALIASES.items():
        rights = pc.if_else(pc.equal(rights, alias), canonical, rights)
    setcol("rights", rights)
    isrc = pc.utf8_upper(pc.replace_substring_regex(t["isrc"], r"[\s-]", ""))
    setcol("isrc", pc.if_else(pc.equal(isrc, ""), None, isrc))
    setcol("artists", pc.fill_null(t["artists"], pa.scalar([], t.schema.field("artists").type)))
    return t


def _dedupe_last(t: pa.Table, key: str) -> tuple[pa.Table, int]:
    """Keep the last row of each key (a later row in a file supersedes an earlier one)."""
    keys = t[key].to_numpy()
    _, first_of_reversed = np.unique(keys[::-1], return_index=True)
    if len(first_of_reversed) == len(keys):
        return t, 0
    keep = np.sort(len(keys) - 1 - first_of_reversed)
    return t.take(pa.array(keep)), len(keys) - len(keep)


_MUL = np.uint64(0xBF58476D1CE4E5B9)
_NULL = np.uint64(0x6A09E667F3BCC909)  # stands for a null value in row hashes


def _column_hash(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A 64-bit hash per value; integers are mixed directly, strings hashed by content."""
    values = _arr(values)
    valid = pc.is_valid(values).to_numpy(zero_copy_only=False)
    if pa.types.is_integer(values.type) or pa.types.is_boolean(values.type):
        raw = pc.fill_null(pc.cast(values, pa.int64()), 0).to_numpy(zero_copy_only=False)
        h = raw.astype(np.uint64)
        with np.errstate(over="ignore"):
            h = (h ^ (h >> np.uint64(33))) * _MUL
            h ^= h >> np.uint64(29)
    else:
        h = hash_strings(pc.cast(values, pa.string())).astype(np.uint64)
    return np.where(valid, h, _NULL)


def _row_hash(t: pa.Table, columns: list[str | pa.Array]) -> pa.Array:
    """Hash of a row's values in `columns` (names of `t`, or arrays of its length)."""
    h = np.full(t.num_rows, 0x9E3779B97F4A7C15, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for c in columns:
            h = (h ^ _column_hash(t[c] if isinstance(c, str) else c)) * _MUL
            h ^= h >> np.uint64(31)
    return pa.array((h >> np.uint64(1)).astype(np.int64))


@dataclass(frozen=True)
class _Credits:
    links: pa.Table
    artists: pa.Table
    external: pa.Array  # each credit's artist external id (artist id, else name:NAME)
    lists: pa.Array  # the batch's artists column


def _credits(t: pa.Table, src: pa.Array, track_id: pa.Array, source_id: pa.Array) -> _Credits:
    """Artists: one row per credit, ids from (source, artist id or name)."""
    artists_col = _arr(t["artists"])
    flat = pc.list_flatten(artists_col)
    parent = pc.list_parent_indices(artists_col)
    a_src = pc.take(src, parent)
    a_ext = pc.if_else(
        pc.is_valid(flat.field("id")),
        flat.field("id"),
        pc.binary_join_element_wise("name:", flat.field("name"), ""),
    )
    a_id = _ids(a_src, "artist", a_ext)
    offsets = _offsets(artists_col).to_numpy()
    counts = np.diff(offsets)
    position = np.arange(len(flat)) - np.repeat(offsets[:-1], counts)
    links = pa.table(
        {
            "track_id": pc.take(track_id, parent),
            "position": pa.array(position, pa.int64()),
            "artist_id": a_id,
            "role": pc.fill_null(flat.field("role"), "main"),
        }
    )
    artists = pa.table(
        {
            "id": a_id,
            "source_id": pc.take(source_id, parent),
            "external_id": a_ext,
            "name": flat.field("name"),
            "popularity": flat.field("popularity"),
            "followers": flat.field("followers"),
        }
    )
    artists = artists.append_column(
        "row_hash", _row_hash(artists, ["external_id", "name", "popularity", "followers"])
    )
    artists, _ = _dedupe_last(artists, "id")
    return _Credits(links, artists, a_ext, artists_col)


def _albums(t: pa.Table, src: pa.Array, source_id: pa.Array) -> tuple[pa.Table, Any, Any]:
    """(album rows, each track's album id or null, each track's album external id)."""
    has_album = pc.or_(pc.is_valid(t["album_id"]), pc.is_valid(t["album_title"]))
    al_ext = pc.if_else(
        pc.is_valid(t["album_id"]),
        t["album_id"],
        pc.binary_join_element_wise("title:", t["album_title"], ""),
    )
    al_id_all = _ids(src, "album", _arr(pc.fill_null(al_ext, "")))
    album_id = pc.if_else(has_album, al_id_all, pa.nulls(len(al_id_all), pa.int64()))
    albums = pa.table(
        {
            "id": al_id_all,
            "source_id": source_id,
            "external_id": al_ext,
            "title": t["album_title"],
            "album_type": t["album_type"],
            "upc": t["album_upc"],
            "label": t["album_label"],
            "release_date": t["album_release_date"],
            "release_date_precision": t["album_release_date_precision"],
            "popularity": t["album_popularity"],
            "total_tracks": t["album_total_tracks"],
        }
    ).filter(has_album)
    albums = albums.append_column(
        "row_hash",
        _row_hash(albums, [c for c in albums.column_names if c not in ("id", "source_id")]),
    )
    albums, _ = _dedupe_last(albums, "id")
    return albums, album_id, al_ext


def _tracks(
    t: pa.Table,
    track_id: pa.Array,
    source_id: pa.Array,
    album_id: Any,
    al_ext: Any,
    credits: _Credits,
) -> pa.Table:
    """Track rows: the row hash covers the whole record, album and artists included."""
    genres = json_string_list(_arr(t["genres"]))
    xids = json_string_map(_arr(t["external_ids"]))
    # Track rows hash their own fields and which artists and album they point to; the
    # artists' and album's own fields are hashed in their rows (last write wins there).
    credit_text = pc.binary_join_element_wise(
        _text(credits.external), _text(_arr(credits.links["role"])), SEP
    )
    joined = pc.binary_join(pa.ListArray.from_arrays(_offsets(credits.lists), credit_text), "\x1e")
    skip = {"artists", "genres", "external_ids", LINE, "_tid"}
    hashed = [c for c in t.column_names if c not in skip and not c.startswith("album_")]
    row_hash = _row_hash(t, [*hashed, _text(al_ext), genres, xids, joined])
    return pa.table(
        {
            "id": track_id,
            "source_id": source_id,
            "external_id": t["id"],
            "title": t["title"],
            "album_id": album_id,
            "isrc": t["isrc"],
            "duration_ms": t["duration_ms"],
            "popularity": t["popularity"],
            "play_count": t["play_count"],
            "track_number": t["track_number"],
            "disc_number": t["disc_number"],
            "explicit": pc.cast(t["explicit"], pa.int64()),
            "rights": t["rights"],
            "license_url": t["license_url"],
            "genres": genres,
            "external_ids": xids,
            "extra": t["extra"],
            "row_hash": row_hash,
        }
    )


def _track_external_ids(t: pa.Table, track_id: pa.Array) -> pa.Table:
    """External ids of tracks, for look-ups by MusicBrainz id and the like."""
    xmaps = _arr(t["external_ids"])
    x_parent = pc.list_parent_indices(xmaps)
    return pa.table(
        {
            "kind": pc.list_flatten(xmaps).field("key"),
            "value": pc.list_flatten(xmaps).field("value"),
            "entity": pa.repeat(pa.scalar("track"), len(x_parent)),
            "entity_id": pc.take(track_id, x_parent),
        }
    )


def normalize(batch: pa.Table, *, source: str, default_rights: str) -> Normalized:
    t = _canonical(batch, source=source, default_rights=default_rights).combine_chunks()
    reason = _reasons(t)
    bad = pc.is_valid(reason)
    rejected = batch.filter(bad).append_column("_reason", reason.filter(bad))
    t = t.filter(pc.invert(bad))

    track_id = _ids(_arr(t["source"]), "track", _arr(t["id"]))
    t = t.append_column("_tid", track_id)
    t, duplicates = _dedupe_last(t, "_tid")
    t = t.combine_chunks()
    src = _arr(t["source"])
    track_id = _arr(t["_tid"])
    source_id = pa.array(hash_strings(src))

    credits = _credits(t, src, track_id, source_id)
    albums, album_id, al_ext = _albums(t, src, source_id)
    tracks = _tracks(t, track_id, source_id, album_id, al_ext, credits)
    external_ids = _track_external_ids(t, track_id)
    sources = pc.unique(src)
    tracks = tracks.replace_schema_metadata({"sources": "\x1f".join(s.as_py() for s in sources)})
    return Normalized(
        tracks, credits.artists, albums, credits.links, external_ids, rejected, duplicates
    )
