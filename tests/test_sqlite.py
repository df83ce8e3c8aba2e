"""The one transaction helper: commits on success, rolls back on any exception."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from musicark.sqlite import open_sqlite, transaction


def _conn(tmp_path: Path) -> sqlite3.Connection:
    conn = open_sqlite(tmp_path / "t.sqlite", readonly=False, journal_mode="wal", busy_ms=100)
    conn.execute("CREATE TABLE t (x INTEGER)")
    return conn


def test_transaction_commits(tmp_path: Path) -> None:
    conn = _conn(tmp_path)
    with transaction(conn):
        conn.execute("INSERT INTO t VALUES (1)")
        assert conn.in_transaction
    assert not conn.in_transaction
    other = sqlite3.connect(tmp_path / "t.sqlite")
    assert other.execute("SELECT x FROM t").fetchall() == [(1,)]


@pytest.mark.parametrize("exc", [ValueError("boom"), KeyboardInterrupt()])
def test_transaction_rolls_back_on_any_exception(tmp_path: Path, exc: BaseException) -> None:
    conn = _conn(tmp_path)
    with pytest.raises(type(exc)), transaction(conn):
        conn.execute("INSERT INTO t VALUES (1)")
        raise exc
    assert not conn.in_transaction
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
    with transaction(conn):  # the connection is usable again
        conn.execute("INSERT INTO t VALUES (2)")
    assert conn.execute("SELECT x FROM t").fetchall() == [(2,)]


def test_immediate_transaction_takes_the_write_lock(tmp_path: Path) -> None:
    conn = _conn(tmp_path)
    other = open_sqlite(tmp_path / "t.sqlite", readonly=False, journal_mode="wal", busy_ms=0)
    with transaction(conn), pytest.raises(sqlite3.OperationalError, match="locked"):
        other.execute("BEGIN IMMEDIATE")
