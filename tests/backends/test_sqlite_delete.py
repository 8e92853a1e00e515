"""SQLite ``delete`` of one key: a counted DELETE of the live row, then the expired one.

The live row is removed by a statement whose ``rowcount`` says it was live;
only when there was none does a read look for an expired row, removed by a
statement that deletes it only while it is still expired. These tests pin
what the single ``DELETE ... RETURNING`` gave: the count of live keys, the
expired row removed (recorded as a ``"delete"``), nothing recorded for a
missing key, and a key set by another writer between the statements kept.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import keyshelf

NS = "default"
VALUE = ("s", "v")


def _rows(path: Path) -> list[tuple[str, Any]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT key, expires_at FROM keyshelf ORDER BY key").fetchall()
    finally:
        conn.close()


def test_live_expired_and_missing_keys(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    with keyshelf.open(f"sqlite:///{path}", history=100) as kv:
        backend = kv.backend
        backend.put(NS, "live", VALUE, None, None, 1000)
        backend.put(NS, "ttl", VALUE, 5000, None, 1000)
        backend.put(NS, "expired", VALUE, 2000, None, 1000)
        start = kv.revision()
        assert backend.delete(NS, ["live"], 3000) == ["live"]
        assert backend.delete(NS, ["ttl"], 3000) == ["ttl"]
        assert backend.delete(NS, ["expired"], 3000) == []  # removed, but it was not live
        assert backend.delete(NS, ["missing"], 3000) == []
        assert backend.delete(NS, ["live", "live"], 3000) == []
        assert _rows(path) == []
        changes = backend.changes(None, start, 100, 0)
        assert [(c.type, c.key) for c in changes] == [
            ("delete", "live"),
            ("delete", "ttl"),
            ("delete", "expired"),
        ]


def test_an_expiry_exactly_now_is_expired(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    with keyshelf.open(f"sqlite:///{path}") as kv:
        kv.backend.put(NS, "k", VALUE, 3000, None, 1000)
        assert kv.backend.delete(NS, ["k"], 3000) == []
        assert _rows(path) == []


class _SetAfterFirst:
    """A connection whose first statement is followed by another writer's set of the key."""

    def __init__(self, conn: sqlite3.Connection, other: Any, expires: int | None) -> None:
        self.conn, self.other, self.expires, self.calls = conn, other, expires, 0

    def execute(self, sql: str, params: Any) -> Any:
        cursor = self.conn.execute(sql, params)
        self.calls += 1
        if self.calls == 1:
            self.other.backend.put(NS, "k", ("s", "new"), self.expires, None, 3000)
        return cursor


def test_a_key_set_between_the_statements_stays(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    url = f"sqlite:///{path}"
    with keyshelf.open(url) as kv, keyshelf.open(url) as other:
        backend = kv.backend
        for before in (None, 2000):  # missing, or stored but expired, at the first statement
            if before is not None:
                backend.put(NS, "k", VALUE, before, None, 1000)
            conn = _SetAfterFirst(backend._connection(), other, None)
            assert backend._delete_one(conn, (NS, "k", 3000)) is False  # type: ignore[arg-type]
            assert other.get("k") == "new"
            other.delete("k")
        # Set again, but already expired when the expired row is looked for: removed.
        backend.put(NS, "k", VALUE, 2000, None, 1000)
        conn = _SetAfterFirst(backend._connection(), other, 2500)
        assert backend._delete_one(conn, (NS, "k", 3000)) is False  # type: ignore[arg-type]
        assert _rows(path) == []
