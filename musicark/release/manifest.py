"""Per-folder manifests: seekable zstd JSONL (one record per file) and BagIt-style sha256.

`<folder>.jsonl.zst` is in the Zstandard seekable format (pyzstd, 4 MiB frames), so a
reader fetches any record's neighbourhood without decompressing the whole file; records
are in path order with sorted keys, so the same files give the same bytes.
`<folder>.manifest-sha256.txt` holds `sha256  path` lines, paths relative to the data
folder (`cd FOLDER && sha256sum -c ../FOLDER.manifest-sha256.txt` checks it).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pyzstd

from musicark.errors import ReleaseError

FRAME = 4 * 2**20
LEVEL = 9
FIELDS = (
    "path",
    "size",
    "sha256",
    "track_id",
    "isrc",
    "artists",
    "title",
    "album",
    "rights",
    "offset",
    "first_piece",
    "last_piece",
    "serial",
)


def jsonl_name(folder: str) -> str:
    return f"{folder}.jsonl.zst"


def bagit_name(folder: str) -> str:
    return f"{folder}.manifest-sha256.txt"


def write_jsonl_zst(records: Iterable[dict[str, Any]], path: Path) -> None:
    """Seekable zstd JSONL of `records` (keys sorted), written to `path` in one go."""
    with pyzstd.SeekableZstdFile(
        str(path), "w", level_or_option=LEVEL, max_frame_content_size=FRAME
    ) as fh:
        for rec in records:
            fh.write(orjson.dumps(rec, option=orjson.OPT_SORT_KEYS) + b"\n")


def read_jsonl_zst(path: Path) -> Iterator[dict[str, Any]]:
    try:
        with pyzstd.SeekableZstdFile(str(path), "r") as fh:
            for line in fh:
                if line.strip():
                    yield orjson.loads(line)
    except (OSError, pyzstd.ZstdError, orjson.JSONDecodeError) as exc:
        raise ReleaseError(f"{path}: not a readable manifest ({exc})") from exc


def write_manifests(records: Sequence[dict[str, Any]], folder: str, out_dir: Path) -> list[Path]:
    """Write both manifests of `folder` into `out_dir`; returns their paths."""
    ordered = sorted(records, key=lambda r: r["path"])
    jsonl = out_dir / jsonl_name(folder)
    write_jsonl_zst([{k: r.get(k) for k in FIELDS} for r in ordered], jsonl)
    bagit = out_dir / bagit_name(folder)
    bagit.write_bytes("".join(f"{r['sha256']}  {r['path']}\n" for r in ordered).encode("ascii"))
    for p in (jsonl, bagit):
        with open(p, "rb") as fh:
            os.fsync(fh.fileno())
    return [jsonl, bagit]
