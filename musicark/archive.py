"""An archive on disk: its settings, its catalogue and its folders.

Layout (see docs/architecture.md)::

    ARCHIVE/
      musicark.toml      settings
      catalog.sqlite     the catalogue (tracks, albums, artists, ...)
      state.sqlite       what the archive holds and did: store, ledger, releases, swarm
      store/             audio blobs named by sha256, fanned out: store/ab/cd/abcd...
      staging/           files being acquired or written (never read as stored)
      releases/          one folder per release: data folders, .torrent files, manifests
      rejects/           rows an import refused, with file, line and reason
      index/             search index
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from musicark.config import CONFIG_NAME, DEFAULT_TOML, Config, load_config, with_settings
from musicark.errors import ArchiveError, UsageError

ENV_VAR = "MUSICARK_ARCHIVE"
FOLDERS = ("store", "staging", "releases", "rejects", "index")


@dataclass(frozen=True)
class Archive:
    root: Path
    config: Config

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.sqlite"

    @property
    def state_path(self) -> Path:
        return self.root / "state.sqlite"

    @property
    def store_dir(self) -> Path:
        return self.root / "store"

    @property
    def staging_dir(self) -> Path:
        return self.root / "staging"

    @property
    def releases_dir(self) -> Path:
        return self.root / "releases"

    @property
    def rejects_dir(self) -> Path:
        return self.root / "rejects"

    @property
    def index_dir(self) -> Path:
        return self.root / "index"

    def with_settings(self, values: dict[str, Any]) -> Archive:
        """This archive with some settings changed for this process only (the file stays)."""
        return replace(self, config=with_settings(self.config, values))

    def connect_catalog(self, *, readonly: bool = False) -> sqlite3.Connection:
        from musicark.catalog.db import connect

        return connect(self.catalog_path, readonly=readonly)

    def connect_state(self, *, readonly: bool = False) -> sqlite3.Connection:
        from musicark.state import connect_state

        return connect_state(self.state_path, readonly=readonly)


def is_archive(path: Path) -> bool:
    return (path / CONFIG_NAME).is_file()


def init_archive(path: Path) -> Archive:
    """Create an archive at `path` (an empty or missing folder); idempotent on an archive."""
    from musicark.catalog.db import connect

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path} exists and is not a folder")
    if not is_archive(path) and path.is_dir() and any(path.iterdir()):
        raise ArchiveError(f"{path} is not empty and not an archive; choose an empty folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        for name in FOLDERS:
            (path / name).mkdir(exist_ok=True)
        config_file = path / CONFIG_NAME
        if not config_file.exists():
            tmp = config_file.with_suffix(".tmp")
            tmp.write_text(DEFAULT_TOML, encoding="utf-8")
            tmp.replace(config_file)
    except OSError as exc:
        raise ArchiveError(f"cannot create an archive at {path}: {exc.strerror}") from exc
    archive = open_archive(path)
    connect(archive.catalog_path).close()  # creates the catalogue and runs migrations
    return archive


def find_archive(path: Path | str | None = None) -> Path:
    """The archive to act on: `path`, else $MUSICARK_ARCHIVE, else the current folder."""
    if path is None or str(path) == "":
        env = os.environ.get(ENV_VAR)
        candidate = Path(env) if env else Path.cwd()
        origin = f"${ENV_VAR}" if env else "the current folder"
    else:
        candidate, origin = Path(path), str(path)
    if not is_archive(candidate):
        where = origin if origin == str(candidate) else f"{origin} ({candidate})"
        raise ArchiveError(
            f"no musicark archive at {where}; "
            "create one with `musicark init DIR` or pass --archive DIR"
        )
    return candidate


def open_archive(path: Path | str | None = None) -> Archive:
    root = find_archive(path)
    return Archive(root=root.resolve(), config=load_config(root / CONFIG_NAME))
