"""Shared fixtures: real archives in tmp_path, the CLI through click's runner.

Helpers live in modules of their own (tests/runner.py, tests/audio.py, ...), imported as
`from tests.X import ...`; nothing is imported from this file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from musicark.archive import Archive, init_archive
from tests.runner import Runner

# Property tests (hypothesis, schemathesis): free exploration locally; in CI the same
# examples every run (derandomized, no example database), so a submission never fails on luck.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI", "").lower() in ("true", "1") else "default")


@pytest.fixture
def archive(tmp_path: Path) -> Archive:
    return init_archive(tmp_path / "archive")


@pytest.fixture
def run(archive: Archive) -> Runner:
    return Runner(archive)
