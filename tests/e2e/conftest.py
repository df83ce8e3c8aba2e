"""Fixtures for end-to-end swarm tests: real tracker and clients on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Opentracker, QBittorrent, need


@pytest.fixture
def tracker(tmp_path: Path) -> Iterator[Opentracker]:
    need("opentracker")
    t = Opentracker(tmp_path).start()
    try:
        yield t
    finally:
        t.stop()


@pytest.fixture
def qbittorrent(tmp_path: Path) -> Iterator[QBittorrent]:
    need("qbittorrent-nox")
    q = QBittorrent(tmp_path).start()
    try:
        yield q
    finally:
        q.stop()
