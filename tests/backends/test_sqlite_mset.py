"""SQLite ``mset``: multi-row statements that write exactly what one row at a time wrote.

``put_many`` writes a batch with statements of up to ``ROWS_MAX`` rows
(``ROWS_MAX``, then a multiple of ``ROWS_STEP``, then the rest) inside one
transaction. These tests cross the statements' boundaries: every value comes
back with its exact type, a live key keeps its metadata and ``created_at``
and gets ``version + 1``, an expired one starts again, the change feed
records the keys in the batch's order with consecutive revisions, a batch
refused in a later statement leaves nothing of the earlier ones, and every
table ends as ``executemany`` of the one-row upsert left it.
"""

from __future__ import annotations

import sqlite3
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest

import keyshelf
from keyshelf.backends.sqlite import ROWS_MAX, _chunks
from keyshelf.errors import StoreFullError


def test_chunks_cover_the_batch_with_few_distinct_sizes() -> None:
    seen: set[int] = set()
    for n in [*range(0, 2 * ROWS_MAX + 3), 10_000, 123_457]:
        sizes = _chunks(n)
        assert sum(sizes) == n
        assert all(0 < size <= ROWS_MAX for size in sizes)
        assert len(sizes) <= n // ROWS_MAX + 2
        seen.update(sizes)
    assert len(seen) == 31  # ROWS_MAX, the multiples of ROWS_STEP below it, 1 to 15
    assert (_chunks(3), _chunks(100), _chunks(300)) == ((3,), (96, 4), (256, 32, 12))


def _value(i: int) -> Any:
    """Values of every payload type, so each statement binds ints, floats, text, blobs, NULL."""
    kinds: list[Any] = [
        i,
        2**70 + i,
        i + 0.5,
        f"text {i}",
        str(i),
        b"\x00bytes" + bytes([i % 256]),
        None,
        i % 2 == 0,
        (i, "t"),
        {"n": i, "s": {i}},
        -0.0,
        float("inf"),
    ]
    return kinds[i % len(kinds)]


@pytest.mark.parametrize("size", [1, 3, ROWS_MAX - 1, ROWS_MAX, ROWS_MAX + 1, 700])
def test_values_versions_metadata_and_times_across_statements(tmp_path: Path, size: int) -> None:
    with keyshelf.open(f"sqlite:///{tmp_path / 'm.db'}") as kv:
        # Every third key exists already, with metadata; every seventh of those
        # has expired (a new life: version 1, no metadata, a new created_at).
        for i in range(0, size, 3):
            kv.set(f"k{i}", "old", metadata={"m": i})
            kv.set(f"k{i}", "older")  # version 2, metadata kept
        for i in range(0, size, 21):
            kv.expire(f"k{i}", 0.001)
        before = {f"k{i}": kv.get_entry(f"k{i}") for i in range(0, size, 3)}
        time.sleep(0.01)
        batch = {f"k{i}": _value(i) for i in range(size)}
        assert kv.mset(batch, ttl=3600) is True
        got = kv.mget(list(batch))
        for key, value in batch.items():
            assert type(got[key]) is type(value)
            assert repr(got[key]) == repr(value)
        for i in range(size):
            key = f"k{i}"
            entry = kv.get_entry(key)
            assert entry is not None and entry.expires_at is not None
            old = before.get(key)
            if old is not None and i % 21 != 0:  # live before the batch
                assert (entry.version, entry.metadata) == (3, {"m": i})
                assert entry.created_at == old.created_at < entry.updated_at
            else:
                assert (entry.version, entry.metadata) == (1, {})
                assert entry.created_at == entry.updated_at
                assert old is None or entry.created_at > old.created_at


def test_the_feed_records_the_batch_in_its_order(tmp_path: Path) -> None:
    size = 2 * ROWS_MAX + 37
    with keyshelf.open(f"sqlite:///{tmp_path / 'f.db'}", history=10_000) as kv:
        kv.set("first", 0)
        start = kv.revision()
        # Keys out of code-point order: the feed follows the mapping's order.
        keys = [f"k{(i * 7919) % size:05d}" for i in range(size)]
        kv.mset({key: i for i, key in enumerate(keys)})
        changes = kv.backend.changes(None, start, 10_000, 0)
        assert [(c.type, c.key) for c in changes] == [("set", key) for key in keys]
        assert [c.revision for c in changes] == list(range(start + 1, start + 1 + size))
        assert [c.value for c in changes] == [("i", i) for i in range(size)]


def test_a_batch_refused_in_a_later_statement_writes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    with keyshelf.open(url, max_keys=ROWS_MAX + 10, eviction="none") as kv:
        kv.set("kept", 1)
        # The first statement (ROWS_MAX rows) fits; the next one exceeds max_keys.
        with pytest.raises(StoreFullError):
            kv.mset({f"k{i}": i for i in range(ROWS_MAX + 20)})
        assert kv.keys() == ["kept"]
        assert kv.get_entry("kept").version == 1  # type: ignore[union-attr]
        kv.mset({f"k{i}": i for i in range(ROWS_MAX + 9)})  # fits exactly
        assert kv.stats()["total_keys"] == ROWS_MAX + 10


def test_async_mset_across_statements(tmp_path: Path) -> None:
    import asyncio

    async def main() -> dict[str, Any]:
        async with keyshelf.open_async(f"sqlite:///{tmp_path / 'a.db'}") as kv:
            await kv.mset({f"k{i}": _value(i) for i in range(ROWS_MAX + 5)})
            return await kv.mget([f"k{i}" for i in range(ROWS_MAX + 5)])

    got = asyncio.run(main())
    assert [repr(got[f"k{i}"]) for i in range(ROWS_MAX + 5)] == [
        repr(_value(i)) for i in range(ROWS_MAX + 5)
    ]


def _state(path: Path) -> dict[str, list[Any]]:
    """Every row of keyshelf's tables but the change times SQLite's own clock gives removals."""
    conn = sqlite3.connect(path)
    try:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        state = {}
        for table in tables:
            columns = [c[1] for c in conn.execute(f"PRAGMA table_info({table})")]
            kept = [c for c in columns if not (table.endswith("_changes") and c == "at")]
            state[table] = conn.execute(
                f"SELECT {', '.join(kept)} FROM {table} ORDER BY 1, 2"
            ).fetchall()
        return state
    finally:
        conn.close()


def _one_row_at_a_time(backend: Any, ns: str, items: Any, expires: Any, now: int) -> None:
    """What put_many ran before multi-row statements: executemany of the one-row upsert."""
    rows = [(ns, key, tag, payload, expires, now) for key, (tag, payload) in items]
    conn = backend._connection()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(backend._sql.put_many, rows)
    conn.execute("COMMIT")


@pytest.mark.parametrize(
    "options",
    [
        {"history": 10_000},
        {"history": 10_000, "max_keys": 150, "eviction": "lru"},
        {"history": 10_000, "max_keys": 150, "max_bytes": 3000, "eviction": "fifo"},
        {"max_keys": 200, "eviction": "lfu"},
    ],
)
def test_same_rows_changes_and_evictions_as_one_row_at_a_time(
    tmp_path: Path, options: dict[str, Any]
) -> None:
    """Multi-row statements leave every table (data, feed, bounds) as executemany did."""
    paths = [tmp_path / "multi.db", tmp_path / "single.db"]
    stores = [keyshelf.open(f"sqlite:///{path}", **options) for path in paths]
    try:
        for n, store in enumerate(stores):
            backend = store.backend
            put = backend.put_many if n == 0 else partial(_one_row_at_a_time, backend)
            now = 1_000_000
            for step in range(6):
                # Overlapping batches of new and present keys, some with a TTL that
                # has run out by the next batch, some with metadata kept.
                keys = [f"k{(step * 97 + i * 31) % 400:03d}" for i in range(60 + 70 * step)]
                items = [(key, ("s", f"{key}-{step}" * (1 + i % 3))) for i, key in enumerate(keys)]
                expires = now + 500 if step % 2 else None
                put("default", items, expires, now)
                backend.put("default", keys[0], ("i", step), None, b"{}", now + 1)
                now += 1000
        assert _state(paths[0]) == _state(paths[1])
    finally:
        for store in stores:
            store.close()
