"""Archive settings: `musicark.toml`, read once and passed explicitly to every stage."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from musicark.errors import ArchiveError

CONFIG_NAME = "musicark.toml"

# The file `musicark init` writes: every setting with its default and what it does.
DEFAULT_TOML = """\
# musicark archive settings. Every value shown is the default.

[catalog]
# rights given to imported records that carry none (see docs/catalogue-format.md)
default_rights = "unknown"
# rows per import transaction: a crash loses at most one batch, never half of one
batch_rows = 200000
# a file of at least this many rows loaded into an empty catalogue is appended with the
# indexes dropped and built once at the end (much faster than keeping them up to date)
bulk_min_rows = 500000

[plan]
# per-byte (most expected listens per byte) or popularity (highest first)
strategy = "per-byte"
# assumed bit rate of audio not yet held, and of the popularity-0 tier
bitrate = "160k"
bitrate_zero_popularity = "75k"
# expected listens from a 0-100 popularity p when no play count is known:
#   listens = listens_scale * listens_base ** (p / 100) - listens_scale
listens_scale = 1.0
listens_base = 1000000.0
# fit listens_scale / listens_base to the catalogue's tracks that have both a popularity
# and a play count (when at least 1000 do), so estimates and real counts share one scale
listens_calibrate = true
# keep one track per ISRC (the others: skipped_isrc_has_download)
one_per_isrc = true
# skip tracks with no expected listens whose secondary score (0-100) is below this
min_zero_score = 0.0

[store]
# levels of two-hex-digit sub-folders under store/ (2: store/ab/cd/abcd...)
fanout = 2

[ingest]
# parallel worker processes; 0 means one per core
jobs = 0
# artist + title matches accept this difference in duration
duration_tolerance_ms = 3000

[release]
target_size = "100GB"
max_files = 10000
# v1, hybrid or v2
format = "v1"
piece_size = "auto"
trackers = []
web_seeds = []

[seed]
listen = "127.0.0.1:6881"

[serve]
host = "127.0.0.1"
port = 8000

[search]
# bring the search index up to date after every catalogue import (off: run
# `musicark index update` when you want it)
follow_catalog = true
"""


@dataclass(frozen=True)
class CatalogSettings:
    default_rights: str = "unknown"
    batch_rows: int = 200_000
    bulk_min_rows: int = 500_000


@dataclass(frozen=True)
class PlanSettings:
    strategy: str = "per-byte"
    bitrate: str = "160k"
    bitrate_zero_popularity: str = "75k"
    listens_scale: float = 1.0
    listens_base: float = 1_000_000.0
    listens_calibrate: bool = True
    one_per_isrc: bool = True
    min_zero_score: float = 0.0


@dataclass(frozen=True)
class StoreSettings:
    fanout: int = 2


@dataclass(frozen=True)
class IngestSettings:
    jobs: int = 0
    duration_tolerance_ms: int = 3000


@dataclass(frozen=True)
class ReleaseSettings:
    target_size: str = "100GB"
    max_files: int = 10_000
    format: str = "v1"
    piece_size: str = "auto"
    trackers: tuple[str, ...] = ()
    web_seeds: tuple[str, ...] = ()


@dataclass(frozen=True)
class SeedSettings:
    listen: str = "127.0.0.1:6881"


@dataclass(frozen=True)
class ServeSettings:
    host: str = "127.0.0.1"
    port: int = 8000


@dataclass(frozen=True)
class SearchSettings:
    follow_catalog: bool = True


@dataclass(frozen=True)
class Config:
    catalog: CatalogSettings = field(default_factory=CatalogSettings)
    plan: PlanSettings = field(default_factory=PlanSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    release: ReleaseSettings = field(default_factory=ReleaseSettings)
    seed: SeedSettings = field(default_factory=SeedSettings)
    serve: ServeSettings = field(default_factory=ServeSettings)
    search: SearchSettings = field(default_factory=SearchSettings)


def _section(
    cls: type, data: dict[str, Any], name: str, path: Path | str, base: Any = None
) -> Any:
    default = cls() if base is None else base
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise ArchiveError(f"{path}: unknown setting [{name}] {key}")
        expected = type(getattr(default, key))
        if expected is tuple:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ArchiveError(f"{path}: [{name}] {key} must be a list of strings")
            value = tuple(value)
        elif expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif not isinstance(value, expected) or isinstance(value, bool) != (expected is bool):
            raise ArchiveError(f"{path}: [{name}] {key} must be {expected.__name__}")
        values[key] = value
    return replace(default, **values)


def load_config(path: Path) -> Config:
    """Read `musicark.toml`; a missing section or key takes its default."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArchiveError(f"{path} is missing") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ArchiveError(f"{path}: not valid TOML ({exc})") from exc
    sections = {f.name: f.type for f in fields(Config)}
    kwargs: dict[str, Any] = {}
    default = Config()
    for name, value in data.items():
        if name not in sections or not isinstance(value, dict):
            raise ArchiveError(f"{path}: unknown section [{name}]")
        kwargs[name] = _section(type(getattr(default, name)), value, name, path)
    return replace(default, **kwargs)


def with_settings(config: Config, values: dict[str, Any]) -> Config:
    """`config` with some settings replaced, named as in the file: {"search.follow_catalog": False}."""
    sections: dict[str, dict[str, Any]] = {}
    for dotted, value in values.items():
        section, _, key = dotted.partition(".")
        if not hasattr(config, section) or not key:
            raise ArchiveError(f"unknown setting {dotted}")
        sections.setdefault(section, {})[key] = value
    changed = {
        name: _section(type(getattr(config, name)), data, name, "settings", getattr(config, name))
        for name, data in sections.items()
    }
    return replace(config, **changed)
