"""Bounded stores across processes and store objects (SQLite and file backends).

The conformance suite (keyshelf.testing.conformance.test_bounded) covers each
operation on every backend; these tests cover what needs real files: a second
process writing without naming the limits, a store opened before the limits
were set, reopening with other limits, the SQLite shape check and the file
format. Deterministic: no sleeps.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import keyshelf
from keyshelf.backends import _sqlite_bounds
from keyshelf.backends._sqlite_bounds import FLUSH_KEYS, trigger_sql
from keyshelf.backends.sqlite import _SIZE, _data_table_sql, _Statements, _tokens

WRITER = """
import sys, keyshelf
kv = keyshelf.open(sys.argv[1])
for i in range(int(sys.argv[2])):
    kv.set(f"child{i}", i)
    kv.increment(f"counter{i % 7}")
print(kv.stats()["max_keys"])
kv.close()
"""


def _urls(tmp_path: Path) -> list[str]:
    return [f"sqlite:///{tmp_path / 'bounded.db'}", f"file://{tmp_path / 'bounded.json'}"]


def _counters(kv: Any) -> tuple[int, int]:
    """(keys, bytes) as a bounded SQLite store's totals row holds them."""
    row = kv._backend._one("test", "SELECT keys, bytes FROM keyshelf_bounds", ())
    return int(row[0]), int(row[1])


@pytest.mark.parametrize("backend", ["sqlite", "file"])
def test_a_second_process_honours_the_limits_without_naming_them(
    tmp_path: Path, backend: str
) -> None:
    url = _urls(tmp_path)[backend == "file"]
    kv = keyshelf.open(url, max_keys=20, eviction="lru")
    kv.set("parent", 1)
    done = subprocess.run(
        [sys.executable, "-c", WRITER, url, "60"], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "20"
    assert kv.stats()["total_keys"] <= 20
    assert kv.stats()["evictions"] >= 60 + 7 + 1 - 20
    assert kv.get("child59") == 59  # the child's latest writes are kept
    kv.close()


def test_sqlite_totals_stay_exact_through_every_write_path(tmp_path: Path) -> None:
    path = tmp_path / "exact.db"
    early = keyshelf.open(path)  # opened before the store was bounded
    kv = keyshelf.open(path, max_keys=50, max_bytes=10_000)
    for store in (early, kv):
        for i in range(40):
            store.set(f"s{i}", "x" * (i % 9))
            store.increment(f"n{i % 5}")  # a missing key: update(), INSERT OR REPLACE
            store.append(f"a{i % 3}", "yz")
            store.set_metadata(f"s{i}", {"i": i})
        store.mset({f"m{i}": i for i in range(10)})
        store.atomic().set("c1", 1).delete("m1").increment("c2").commit()
        store.delete("s3", "s39")
        store.expire("m2", 100)
    keys, size = _counters(kv)
    assert keys == kv.stats()["total_keys"] <= 50
    assert size == kv.storage_size()["total"] <= 10_000
    early.close()
    kv.close()


def test_reopening_with_other_limits_replaces_them(tmp_path: Path) -> None:
    for url in _urls(tmp_path):
        kv = keyshelf.open(url, max_keys=10, eviction="fifo")
        kv.mset({f"k{i}": i for i in range(10)})
        again = keyshelf.open(url, max_keys=5, eviction="lru")
        assert kv.stats()["total_keys"] == 10  # nothing evicted at open
        again.set("new", 1)
        assert again.stats()["max_keys"] == 5 and again.stats()["total_keys"] <= 5
        same = keyshelf.open(url)
        assert same.stats()["max_keys"] == 5
        for store in (kv, again, same):
            store.close()


def test_a_plain_file_store_refuses_to_drop_limits_set_after_it_opened(tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'late.json'}"
    early = keyshelf.open(url)
    early.set("a", 1)
    bounded = keyshelf.open(url, max_keys=2)
    with pytest.raises(keyshelf.IncompatibleStoreError, match="bounded"):
        early.set("b", 2)
    document = json.loads((tmp_path / "late.json").read_text())
    assert document["format_version"] == 2 and document["bounds"]["max_keys"] == 2
    assert sorted(document["namespaces"]["default"]) == ["a"]
    early.close()
    reopened = keyshelf.open(url)
    reopened.mset({"b": 2, "c": 3})
    assert reopened.stats()["total_keys"] == 2
    reopened.close()
    bounded.close()


def test_a_corrupt_bounds_member_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    keyshelf.open(f"file://{path}", max_keys=3).close()
    document = json.loads(path.read_text())
    document["bounds"]["max_keys"] = -1
    path.write_text(json.dumps(document))
    before = path.read_bytes()
    with pytest.raises(keyshelf.IncompatibleStoreError, match="bounds"):
        keyshelf.open(f"file://{path}")
    assert path.read_bytes() == before


def test_sqlite_shape_check_accepts_exactly_the_bounds_triggers(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "shape.db"
    keyshelf.open(path, max_keys=3).close()
    keyshelf.open(path).close()  # accepted: exactly keyshelf's triggers
    name = next(iter(trigger_sql("keyshelf", "lru")))
    conn = sqlite3.connect(path)
    conn.execute(f"DROP TRIGGER {name}")
    conn.execute(f"CREATE TRIGGER {name} AFTER INSERT ON keyshelf BEGIN SELECT 1; END")
    conn.commit()
    conn.close()
    with pytest.raises(keyshelf.IncompatibleStoreError, match=name):
        keyshelf.open(path)


def test_limits_cannot_be_set_on_a_readonly_store(tmp_path: Path) -> None:
    for url in _urls(tmp_path):
        keyshelf.open(url, max_keys=3).close()
        with pytest.raises(keyshelf.InvalidURLError, match="readonly"):
            keyshelf.open(url, readonly=True, max_keys=4)
        ro = keyshelf.open(url, readonly=True)
        assert ro.stats()["max_keys"] == 3
        ro.close()


@pytest.mark.parametrize("api", ["sync", "async"])
def test_reads_of_an_lru_store_never_fail_or_lose_their_ranking_on_a_locked_file(
    tmp_path: Path, api: str
) -> None:
    # Enough distinct reads to flush the ranking while another connection holds
    # the write lock: the reads must succeed at once (not wait out the timeout
    # and fail) and the ranking they make must reach the file once it is free
    # (the async fast path used to drop it with the WouldBlock that moved the
    # call to a worker thread).
    path = tmp_path / "lru.db"
    keys = [f"k{i:05d}" for i in range(FLUSH_KEYS + 10)]
    url = f"sqlite:///{path}"
    with keyshelf.open(url, max_keys=10 * FLUSH_KEYS) as kv:
        kv.mset({key: 1 for key in keys})
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        if api == "sync":
            kv = keyshelf.open(url, timeout=60)
            holder.execute("BEGIN IMMEDIATE")
            assert all(kv.get(key) == 1 for key in keys)
            holder.execute("COMMIT")
            kv.set("after", 2)  # a write flushes what is pending
            kv.close()
        else:

            async def run() -> None:
                async with keyshelf.open_async(url, timeout=60) as akv:
                    await akv.get(keys[0])  # opened (the bounds are read) before the lock
                    holder.execute("BEGIN IMMEDIATE")
                    for key in keys:
                        assert await akv.get(key) == 1
                    holder.execute("COMMIT")
                    await akv.set("after", 2)

            asyncio.run(run())
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()
    check = sqlite3.connect(path)
    try:
        ranked = {row[0] for row in check.execute("SELECT key FROM keyshelf_reads")}
    finally:
        check.close()
    assert ranked == set(keys)


def _shape1(path: Path, max_keys: int, max_bytes: int | None, policy: str) -> None:
    """A bounded store of shape 1, exactly as keyshelf before shape 2 made it.

    (Its SQL is kept in _sqlite_bounds for the upgrade; at the time shape 2
    was written it was checked token for token against the previous release's.)
    """
    with keyshelf.open(path) as kv:
        kv.mset({f"k{i:02d}": "v" * i for i in range(max_keys)})
        kv.get("k00")  # nothing to rank yet: the store is not bounded
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        t = "keyshelf"
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(_sqlite_bounds._v1_bounds_table_sql(t))
        conn.execute(_sqlite_bounds.reads_table_sql(t))
        conn.execute(_sqlite_bounds._v1_evicted_table_sql(t))
        conn.execute(
            f"INSERT INTO {t}_bounds SELECT 0, ?, ?, ?, count(*), "
            f"coalesce(sum({_SIZE}), 0), 7, 0 FROM {t}",
            (max_keys, max_bytes, policy),
        )
        for sql in _sqlite_bounds._v1_trigger_sql(t).values():
            conn.execute(sql)
        conn.execute("INSERT INTO keyshelf_reads VALUES ('default', 'k00', 9e12, 5)")
        conn.execute("COMMIT")
    finally:
        conn.close()


def _schema(path: Path) -> dict[str, str]:
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL"))
    finally:
        conn.close()


@pytest.mark.parametrize("policy", ["lru", "lfu", "fifo", "none"])
def test_a_shape1_sqlite_store_is_upgraded_at_open(tmp_path: Path, policy: str) -> None:
    path = tmp_path / "shape1.db"
    _shape1(path, 40, 10_000, policy)
    before = path.read_bytes()
    with keyshelf.open(f"sqlite:///{path}?readonly=true") as ro:  # reads it as it is
        assert ro.stats()["max_keys"] == 40 and ro.stats()["evictions"] == 7
        assert ro.get("k01") == "v"
    assert path.read_bytes() == before
    kv = keyshelf.open(path)
    schema = _schema(path)
    assert "keyshelf_evicted" not in schema
    shape2 = _sqlite_bounds.bounds_table_sql("keyshelf")
    assert _tokens(schema["keyshelf_bounds"]) == _tokens(shape2)
    for name, sql in trigger_sql("keyshelf", policy).items():
        assert _tokens(schema[name]) == _tokens(sql), name
    stats = kv.stats()
    assert (stats["max_keys"], stats["max_bytes"], stats["evictions"]) == (40, 10_000, 7)
    assert _counters(kv) == (40, kv.storage_size()["total"])
    if policy == "none":
        with pytest.raises(keyshelf.StoreFullError):
            kv.set("more", 1)
    else:
        for i in range(30):
            kv.set(f"new{i}", i)
            assert kv.stats()["total_keys"] <= 40
        assert kv.get("new29") == 29
        # The upgrade kept the flushed reads: LRU and LFU keep the key read most
        # (and last), FIFO evicts it with the oldest.
        assert (kv.get("k00") is not None) == (policy != "fifo")
        assert kv.stats()["evictions"] > 7
    assert _counters(kv) == (kv.stats()["total_keys"], kv.storage_size()["total"])
    kv.close()
    keyshelf.open(path).close()  # shape 2 opens as it is


def test_sqlite_triggers_follow_a_change_of_policy(tmp_path: Path) -> None:
    path = tmp_path / "policy.db"
    kv = keyshelf.open(path, max_keys=10, eviction="lru")
    kv.mset({f"k{i}": i for i in range(10)})
    kv.get("k0")
    kv.close()  # the read is flushed: under LRU, k0 would be kept
    kv = keyshelf.open(path, max_keys=10, eviction="fifo")
    schema = _schema(path)
    for name, sql in trigger_sql("keyshelf", "fifo").items():
        assert _tokens(schema[name]) == _tokens(sql), name
    for i in range(3):
        kv.set(f"new{i}", i)  # each write is counted before it evicts
        assert kv.stats()["total_keys"] == 10
    assert sorted(kv.keys()) == sorted([f"k{i}" for i in range(3, 10)] + ["new0", "new1", "new2"])
    kv.close()


def test_bytes_are_counted_again_when_max_bytes_is_set(tmp_path: Path) -> None:
    path = tmp_path / "bytes.db"
    kv = keyshelf.open(path, max_keys=40)
    for i in range(100):  # evictions: the bytes are not counted without max_bytes
        kv.set(f"k{i}", "x" * 50)
    kv.close()
    kv = keyshelf.open(path, max_keys=40, max_bytes=1_000)
    assert _counters(kv)[1] == kv.storage_size()["total"] > 1_000
    kv.set("last", "y" * 10)
    assert kv.storage_size()["total"] <= 1_000
    assert _counters(kv) == (kv.stats()["total_keys"], kv.storage_size()["total"])
    assert kv.get("last") == "y" * 10
    kv.close()


@pytest.mark.parametrize("policy", ["lru", "lfu", "fifo"])
@pytest.mark.parametrize("max_bytes", [None, 900])
def test_shape2_evicts_exactly_what_shape1_evicted(
    tmp_path: Path, policy: str, max_bytes: int | None
) -> None:
    # The same writes, deletions and flushed reads (seeded, with ties of
    # instants) on a table under shape 1's triggers and one under shape 2's:
    # after every write both hold the same rows and count the same evictions.
    # Reads are flushed only in the middle third, so both of shape 2's victim
    # queries (with and without the lookup in t_reads) run.
    put = _Statements("keyshelf").put_by_flags[(False, False, False)]
    conns = []
    for shape in (1, 2):
        conn = sqlite3.connect(tmp_path / f"shape{shape}.db", isolation_level=None)
        conn.execute("PRAGMA recursive_triggers = ON")
        conn.execute("PRAGMA synchronous = OFF")  # the triggers' logic, not durability
        conn.execute(_data_table_sql("keyshelf"))
        if shape == 2:
            conn.execute(_sqlite_bounds.bounds_table_sql("keyshelf"))
        else:
            conn.execute(_sqlite_bounds._v1_bounds_table_sql("keyshelf"))
        conn.execute(_sqlite_bounds.reads_table_sql("keyshelf"))
        conn.execute(
            "INSERT INTO keyshelf_bounds VALUES (0, 40, ?, ?, 0, 0, 0, 0)", (max_bytes, policy)
        )
        if shape == 1:
            conn.execute(_sqlite_bounds._v1_evicted_table_sql("keyshelf"))
            triggers = _sqlite_bounds._v1_trigger_sql("keyshelf")
        else:
            triggers = trigger_sql("keyshelf", policy)
        for sql in triggers.values():
            conn.execute(sql)
        conns.append(conn)
    rng = random.Random(16)
    now = 1_000
    for step in range(600):
        now += rng.choice((0, 0, 1, 2))  # instants tie often
        ns = rng.choice(("a", "b"))
        key = f"k{rng.randrange(90)}"
        value = "x" * rng.randrange(1, 40)
        deleting = rng.random() < 0.05
        for conn in conns:
            if deleting:
                conn.execute("DELETE FROM keyshelf WHERE ns = ? AND key = ?", (ns, key))
            else:
                conn.execute(put, (ns, key, "s", value, None, None, now))
        if 200 <= step < 400 and step % 7 == 0:  # a flush of reads of keys present
            rows = conns[0].execute("SELECT ns, key FROM keyshelf ORDER BY ns, key").fetchall()
            picked = rng.sample(rows, min(5, len(rows)))
            for conn in conns:
                for r_ns, r_key in picked:
                    conn.execute(
                        "INSERT INTO keyshelf_reads VALUES (?, ?, ?, 1) ON CONFLICT (ns, key) "
                        "DO UPDATE SET at = max(at, excluded.at), hits = hits + 1",
                        (r_ns, r_key, now),
                    )
        if step == 400:  # the keys read are deleted: no flushed read from here on
            for conn in conns:
                conn.execute(
                    "DELETE FROM keyshelf WHERE (ns, key) IN (SELECT ns, key FROM keyshelf_reads)"
                )
                assert conn.execute("SELECT count(*) FROM keyshelf_reads").fetchone()[0] == 0
        held = [
            conn.execute("SELECT ns, key FROM keyshelf ORDER BY ns, key").fetchall()
            for conn in conns
        ]
        assert held[0] == held[1], step
        counts = [
            conn.execute("SELECT keys, evictions FROM keyshelf_bounds").fetchone() for conn in conns
        ]
        assert counts[0] == counts[1], step
    assert counts[0][1] > 50  # it evicted all along
    for conn in conns:
        conn.close()
