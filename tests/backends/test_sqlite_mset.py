"""SQLite ``mset``: multi-row statements that write exactly what one row at a time wrote.

``put_many`` writes a batch with statements of up to ``ROWS_MAX`` rows
(sizes ``ROWS_MAX`` then powers of two) inside one transaction. These tests
cross the statements' boundaries: every value comes back with its exact type,
a live key keeps its metadata and ``created_at`` and gets ``version + 1``, an
expired one starts again, the change feed records the keys in the batch's
order with consecutive revisions, and a batch refused in a later statement
leaves nothing of the earlier ones.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import keyshelf
from keyshelf.backends.sqlite import ROWS_MAX, _chunks
from keyshelf.errors import StoreFullError


def test_chunks_cover_the_batch_with_few_distinct_sizes() -> None:
    for n in [*range(0, 2 * ROWS_MAX + 3), 10_000, 123_457]:
        sizes = _chunks(n)
        assert sum(sizes) == n
        assert all(0 < size <= ROWS_MAX for size in sizes)
        assert len(set(sizes)) <= 9  # ROWS_MAX and the powers of two below it
    assert _chunks(100) == [64, 32, 4]


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
