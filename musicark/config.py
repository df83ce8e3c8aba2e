"""Archive settings: `musicark.toml`, read once and passed explicitly to every stage.

`SETTINGS` is the one source of truth: each `Setting` has its name as written in the file
(`section.key`), its default as written, what it does, and how its text is parsed. The file
`musicark init` writes (`default_toml`), docs/settings.md (a test compares) and the typed
`Config` all come from it. Sizes and bit rates are parsed here, when the file is loaded, so
a stage gets bytes and bits per second and a bad value is reported before anything runs.
"""

from __future__ import annotations

import textwrap
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from musicark.errors import ArchiveError, MusicarkError
from musicark.units import parse_bitrate, parse_size

CONFIG_NAME = "musicark.toml"


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"must be one of: {', '.join(allowed)}")
        return value

    return parse


def _rights(value: str) -> str:
    from musicark.catalog.rights import normalize_rights

    return normalize_rights(value)


def _at_least(minimum: int) -> Callable[[int], int]:
    def parse(value: int) -> int:
        if value < minimum:
            raise ValueError(f"must be at least {minimum}")
        return value

    return parse


def _where(value: str) -> str:
    from musicark.executor import parse_where

    return parse_where(value)


def _piece_size(value: str) -> int | None:
    return None if value.strip().lower() == "auto" else parse_size(value, what="piece size")


@dataclass(frozen=True)
class Setting:
    name: str  # "section.key", as in musicark.toml
    default: Any  # as written in the file
    help: str
    parse: Callable[[Any], Any] | None = None  # the file's value -> the value stages use

    @property
    def section(self) -> str:
        return self.name.partition(".")[0]

    @property
    def key(self) -> str:
        return self.name.partition(".")[2]


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "catalog.default_rights",
        "unknown",
        "rights given to imported records that carry none (see docs/catalogue-format.md)",
        _rights,
    ),
    Setting(
        "catalog.batch_rows",
        200000,
        "rows per import transaction: a crash loses at most one batch, never half of one",
        _at_least(1),
    ),
    Setting(
        "catalog.bulk_min_rows",
        500000,
        "a file of at least this many rows loaded into an empty catalogue is appended with the "
        "indexes dropped and built once at the end (much faster than keeping them up to date)",
        _at_least(0),
    ),
    Setting(
        "catalog.max_line_bytes",
        "16MiB",
        "the longest line (one JSONL row, one CSV line) an import reads; a longer JSONL row is "
        "refused with that reason, a longer CSV line stops that file's import",
        lambda v: parse_size(v, what="catalog.max_line_bytes"),
    ),
    Setting(
        "plan.strategy",
        "per-byte",
        "per-byte (most expected listens per byte) or popularity (highest first)",
        _choice("per-byte", "popularity"),
    ),
    Setting(
        "plan.bitrate",
        "160k",
        "assumed bit rate of audio not yet held",
        lambda v: parse_bitrate(v, what="bit rate"),
    ),
    Setting(
        "plan.bitrate_zero_popularity",
        "75k",
        "assumed bit rate of the popularity-0 tier",
        lambda v: parse_bitrate(v, what="bit rate"),
    ),
    Setting(
        "plan.listens_scale",
        1.0,
        "expected listens from a 0-100 popularity p when no play count is known:\n"
        "  listens = listens_scale * listens_base ** (p / 100) - listens_scale",
    ),
    Setting("plan.listens_base", 1000000.0, "see listens_scale"),
    Setting(
        "plan.listens_calibrate",
        True,
        "fit listens_scale / listens_base to the catalogue's tracks that have both a popularity "
        "and a play count (when at least 1000 do), so estimates and real counts share one scale",
    ),
    Setting(
        "plan.one_per_isrc",
        True,
        "keep one track per ISRC (the others: skipped_isrc_has_download)",
    ),
    Setting(
        "plan.min_zero_score",
        0.0,
        "skip tracks with no expected listens whose secondary score (0-100) is below this",
    ),
    Setting(
        "store.fanout",
        2,
        "levels of two-hex-digit sub-folders under store/ (2: store/ab/cd/abcd...; 0: none)",
        _at_least(0),
    ),
    Setting("ingest.jobs", 0, "parallel worker processes; 0 means one per core", _at_least(0)),
    Setting(
        "ingest.executor",
        "local",
        "where the per-file work of ingest, audit --level full, pack's piece hashing, verify,"
        " transcode and acquire's downloads runs: "
        "local (this machine's cores) or "
        "dask://HOST:PORT (a Dask cluster's workers; store, staging and sources at the same "
        "path on every worker, see docs/scaling.md); --executor overrides it",
        _where,
    ),
    Setting(
        "ingest.duration_tolerance_ms",
        3000,
        "artist + title matches accept this difference in duration",
        _at_least(0),
    ),
    Setting(
        "release.target_size",
        "100GB",
        "data per torrent: a folder is closed when the next file would pass this size",
        lambda v: parse_size(v, what="target size"),
    ),
    Setting(
        "release.max_files",
        10000,
        "files per torrent (clients stall on torrents of tens of thousands of files)",
        _at_least(1),
    ),
    Setting(
        "release.format",
        "v1",
        "torrent format: v1, hybrid (v1 + v2) or v2",
        _choice("v1", "hybrid", "v2"),
    ),
    Setting(
        "release.piece_size",
        "auto",
        "torrent piece size such as 4MiB, or auto (chosen from the data's size)",
        _piece_size,
    ),
    Setting("release.trackers", [], "tracker announce URLs written into every torrent"),
    Setting("release.web_seeds", [], "web seed (BEP 19) URLs written into every torrent"),
    Setting("seed.listen", "127.0.0.1:6881", "address and port the seeder listens on"),
    Setting("serve.host", "127.0.0.1", "address the web server binds to"),
    Setting("serve.port", 8000, "port the web server listens on"),
    Setting(
        "search.follow_catalog",
        True,
        "bring the search index up to date after every catalogue import (off: run "
        "`musicark index update` when you want it)",
    ),
)


@dataclass(frozen=True)
class CatalogSettings:
    default_rights: str
    batch_rows: int
    bulk_min_rows: int
    max_line_bytes: int  # bytes


@dataclass(frozen=True)
class PlanSettings:
    strategy: str
    bitrate: int  # bits per second
    bitrate_zero_popularity: int  # bits per second
    listens_scale: float
    listens_base: float
    listens_calibrate: bool
    one_per_isrc: bool
    min_zero_score: float


@dataclass(frozen=True)
class StoreSettings:
    fanout: int


@dataclass(frozen=True)
class IngestSettings:
    jobs: int
    executor: str  # "local" or dask://HOST:PORT
    duration_tolerance_ms: int


@dataclass(frozen=True)
class ReleaseSettings:
    target_size: int  # bytes
    max_files: int
    format: str
    piece_size: int | None  # bytes; None: chosen from the data's size
    trackers: tuple[str, ...]
    web_seeds: tuple[str, ...]


@dataclass(frozen=True)
class SeedSettings:
    listen: str


@dataclass(frozen=True)
class ServeSettings:
    host: str
    port: int


@dataclass(frozen=True)
class SearchSettings:
    follow_catalog: bool


S = TypeVar("S")


def _section(cls: type[S], data: Mapping[str, Any], where: str, base: S | None = None) -> S:
    """`cls` from the file's `data` for its section; keys not given keep `base` (or defaults)."""
    name = _SECTION_NAMES[cls]
    table = {s.key: s for s in SETTINGS if s.section == name}
    for key in data:
        if key not in table:
            raise ArchiveError(f"{where}: unknown setting [{name}] {key}")
    values: dict[str, Any] = {}
    for key, setting in table.items():
        if key in data:
            values[key] = _parse(setting, data[key], where)
        elif base is not None:
            values[key] = getattr(base, key)
        else:
            values[key] = _parse(setting, setting.default, where)
    return cls(**values)


def _parse(setting: Setting, value: Any, where: str) -> Any:
    default = setting.default
    label = f"{where}: [{setting.section}] {setting.key}"
    if isinstance(default, list):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ArchiveError(f"{label} must be a list of strings")
        value = tuple(value)
    elif isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    elif not isinstance(value, type(default)) or isinstance(value, bool) != isinstance(
        default, bool
    ):
        raise ArchiveError(f"{label} must be {type(default).__name__}, not {value!r}")
    if setting.parse is None:
        return value
    try:
        return setting.parse(value)
    except (ValueError, MusicarkError) as exc:
        raise ArchiveError(f"{label} = {value!r}: {exc}") from exc


_SECTION_NAMES: dict[type, str] = {
    CatalogSettings: "catalog",
    PlanSettings: "plan",
    StoreSettings: "store",
    IngestSettings: "ingest",
    ReleaseSettings: "release",
    SeedSettings: "seed",
    ServeSettings: "serve",
    SearchSettings: "search",
}


def _defaults(cls: type[S]) -> Callable[[], S]:
    return lambda: _section(cls, {}, "defaults")


@dataclass(frozen=True)
class Config:
    catalog: CatalogSettings = field(default_factory=_defaults(CatalogSettings))
    plan: PlanSettings = field(default_factory=_defaults(PlanSettings))
    store: StoreSettings = field(default_factory=_defaults(StoreSettings))
    ingest: IngestSettings = field(default_factory=_defaults(IngestSettings))
    release: ReleaseSettings = field(default_factory=_defaults(ReleaseSettings))
    seed: SeedSettings = field(default_factory=_defaults(SeedSettings))
    serve: ServeSettings = field(default_factory=_defaults(ServeSettings))
    search: SearchSettings = field(default_factory=_defaults(SearchSettings))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def default_toml() -> str:
    """The file `musicark init` writes: every setting with its default and what it does."""
    out = ["# musicark archive settings. Every value shown is the default (docs/settings.md)."]
    section = ""
    for s in SETTINGS:
        if s.section != section:
            section = s.section
            out += ["", f"[{section}]"]
        for line in s.help.split("\n"):
            out += textwrap.wrap(line, 92, initial_indent="# ", subsequent_indent="# ")
        out.append(f"{s.key} = {_toml_value(s.default)}")
    return "\n".join(out) + "\n"


def settings_table() -> str:
    """The Markdown table of docs/settings.md."""
    rows = ["| setting | default | what it does |", "|---|---|---|"]
    for s in SETTINGS:
        text = " ".join(s.help.split())
        rows.append(f"| `[{s.section}] {s.key}` | `{_toml_value(s.default)}` | {text} |")
    return "\n".join(rows) + "\n"


DEFAULT_TOML = default_toml()


def load_config(path: Path) -> Config:
    """Read `musicark.toml`; a missing section or key takes its default."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArchiveError(f"{path} is missing") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ArchiveError(f"{path}: not valid TOML ({exc})") from exc
    kinds = {f.name: f.type for f in fields(Config)}
    default = Config()
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        if name not in kinds or not isinstance(value, dict):
            raise ArchiveError(f"{path}: unknown section [{name}]")
        kwargs[name] = _section(type(getattr(default, name)), value, str(path))
    return replace(default, **kwargs)


def with_settings(config: Config, values: Mapping[str, Any]) -> Config:
    """`config` with some settings replaced, written as in the file: {"plan.bitrate": "96k"}."""
    sections: dict[str, dict[str, Any]] = {}
    for dotted, value in values.items():
        section, _, key = dotted.partition(".")
        if not hasattr(config, section) or not key:
            raise ArchiveError(f"unknown setting {dotted}")
        sections.setdefault(section, {})[key] = value
    changed = {
        name: _section(type(getattr(config, name)), data, "settings", getattr(config, name))
        for name, data in sections.items()
    }
    return replace(config, **changed)
