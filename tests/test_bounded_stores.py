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
from keyshelf.backends._bounds import Limits
from keyshelf.backends._sqlite_bounds import FLUSH_KEYS, trigger_names, trigger_sql
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


def _counters(kv: Any) -> tuple[int, int | None]:
    """(keys, bytes) as a bounded SQLite store's totals row holds them (None: not counted)."""
    row = kv._backend._one("test", "SELECT keys, bytes FROM keyshelf_bounds", ())
    return int(row[0]), None if row[1] is None else int(row[1])


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


@pytest.mark.parametrize(
    "limits", [{"max_keys": 50, "max_bytes": 10_000}, {"max_keys": 50}, {"max_bytes": 900}]
)
def test_sqlite_totals_stay_exact_through_every_write_path(
    tmp_path: Path, limits: dict[str, int]
) -> None:
    path = tmp_path / "exact.db"
    early = keyshelf.open(path)  # opened before the store was bounded
    kv = keyshelf.open(path, **limits)
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
    assert keys == kv.stats()["total_keys"] <= limits.get("max_keys", 10**9)
    if "max_bytes" in limits:
        assert size == kv.storage_size()["total"] <= limits["max_bytes"]
    else:  # not counted without a max_bytes (shape 3)
        assert size is None
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
    name = next(iter(trigger_sql("keyshelf", Limits(3, None, "lru"))))
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


def _assert_triggers(schema: dict[str, str], limits: Limits) -> None:
    """The file holds exactly the bounds triggers of ``limits``' layout (shape 3), no other."""
    want = trigger_sql("keyshelf", limits)
    held = {name for name in schema if name in trigger_names("keyshelf")}
    assert held == set(want)
    for name, sql in want.items():
        assert _tokens(schema[name]) == _tokens(sql), name


def _check_upgraded(kv: Any, path: Path, policy: str, max_bytes: int | None) -> None:
    """A store of 40 keys (7 evicted) just upgraded to shape 3 at open: what it holds and does.

    Its triggers are shape 3's for its limits, its totals and eviction count
    carried over; it goes on evicting (or refusing, under "none") with the
    flushed reads kept; it closes, and opens again unchanged.
    """
    _assert_triggers(_schema(path), Limits(40, max_bytes, policy))
    stats = kv.stats()
    assert (stats["max_keys"], stats.get("max_bytes"), stats["evictions"]) == (40, max_bytes, 7)
    size = None if max_bytes is None else kv.storage_size()["total"]
    assert _counters(kv) == (40, size)
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
    size = None if max_bytes is None else kv.storage_size()["total"]
    assert _counters(kv) == (kv.stats()["total_keys"], size)
    kv.close()
    upgraded = _schema(path)
    keyshelf.open(path).close()  # shape 3 opens as it is
    assert _schema(path) == upgraded


def _check_read_only_leaves_it(path: Path) -> None:
    """A read-only open reads an old-shape store as it is and changes no byte of it."""
    before = path.read_bytes()
    with keyshelf.open(f"sqlite:///{path}?readonly=true") as ro:
        assert ro.stats()["max_keys"] == 40 and ro.stats()["evictions"] == 7
        assert ro.get("k01") == "v"
    assert path.read_bytes() == before


@pytest.mark.parametrize("policy", ["lru", "lfu", "fifo", "none"])
def test_a_shape1_sqlite_store_is_upgraded_at_open(tmp_path: Path, policy: str) -> None:
    path = tmp_path / "shape1.db"
    _shape1(path, 40, 10_000, policy)
    _check_read_only_leaves_it(path)
    kv = keyshelf.open(path)
    schema = _schema(path)
    assert "keyshelf_evicted" not in schema
    shape3 = _sqlite_bounds.bounds_table_sql("keyshelf")
    assert _tokens(schema["keyshelf_bounds"]) == _tokens(shape3)
    _check_upgraded(kv, path, policy, 10_000)


def test_sqlite_triggers_follow_a_change_of_policy(tmp_path: Path) -> None:
    path = tmp_path / "policy.db"
    # 7 keys: no headroom (7 // 8), every eviction is exact.
    kv = keyshelf.open(path, max_keys=7, eviction="lru")
    kv.mset({f"k{i}": i for i in range(7)})
    kv.get("k0")
    kv.close()  # the read is flushed: under LRU, k0 would be kept
    kv = keyshelf.open(path, max_keys=7, eviction="fifo")
    _assert_triggers(_schema(path), Limits(7, None, "fifo"))
    for i in range(3):
        kv.set(f"new{i}", i)  # each write is counted before it evicts
        assert kv.stats()["total_keys"] == 7
    assert sorted(kv.keys()) == sorted([f"k{i}" for i in range(3, 7)] + ["new0", "new1", "new2"])
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
def test_shapes_1_2_and_3_evict_exactly_the_same(
    tmp_path: Path, policy: str, max_bytes: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same writes, deletions and flushed reads (seeded, with ties of
    # instants) on a table under shape 1's triggers, one under shape 2's and
    # one under shape 3's: after every write all hold the same rows and count
    # the same evictions. Reads are flushed only in the middle third, so both
    # victim queries of shapes 2 and 3 (with and without the lookup in
    # t_reads) run.
    # Shape 3's triggers are written here with the headroom of shapes 1 and 2
    # (1/16; shape 3 uses 1/8): the same batches, so the same rows after
    # every write. test_shape3_evicts_down_to_its_headroom checks 1/8.
    monkeypatch.setattr(_sqlite_bounds, "HEADROOM_DIVISOR", 16)
    put = _Statements("keyshelf").put_by_flags[(False, False, False)]
    conns = []
    for shape in (1, 2, 3):
        conn = sqlite3.connect(tmp_path / f"shape{shape}.db", isolation_level=None)
        conn.execute("PRAGMA recursive_triggers = ON")
        conn.execute("PRAGMA synchronous = OFF")  # the triggers' logic, not durability
        conn.execute(_data_table_sql("keyshelf"))
        if shape == 1:
            conn.execute(_sqlite_bounds._v1_bounds_table_sql("keyshelf"))
        else:
            conn.execute(_sqlite_bounds.bounds_table_sql("keyshelf"))
        conn.execute(_sqlite_bounds.reads_table_sql("keyshelf"))
        # Shape 3 counts the bytes only under a max_bytes (NULL otherwise).
        counted = 0 if shape < 3 or max_bytes is not None else None
        conn.execute(
            "INSERT INTO keyshelf_bounds VALUES (0, 40, ?, ?, 0, ?, 0, 0)",
            (max_bytes, policy, counted),
        )
        if shape == 1:
            conn.execute(_sqlite_bounds._v1_evicted_table_sql("keyshelf"))
            triggers = _sqlite_bounds._v1_trigger_sql("keyshelf")
        elif shape == 2:
            triggers = _sqlite_bounds._v2_trigger_sql("keyshelf", policy)
        else:
            triggers = trigger_sql("keyshelf", Limits(40, max_bytes, policy))
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
        assert held[0] == held[1] == held[2], step
        counts = [
            conn.execute("SELECT keys, evictions FROM keyshelf_bounds").fetchone() for conn in conns
        ]
        assert counts[0] == counts[1] == counts[2], step
    assert counts[0][1] > 50  # it evicted all along
    for conn in conns:
        conn.close()


def _shape2(path: Path, max_keys: int, max_bytes: int | None, policy: str) -> None:
    """A bounded store of shape 2, exactly as keyshelf before shape 3 made it.

    (Its SQL is kept in _sqlite_bounds for the upgrade; it was checked token
    for token against the code that wrote shape 2 when shape 3 was written.)
    Shape 2 counted the bytes until its first eviction even without a
    max_bytes: the row holds them.
    """
    with keyshelf.open(path) as kv:
        kv.mset({f"k{i:02d}": "v" * i for i in range(max_keys)})
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        t = "keyshelf"
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(_sqlite_bounds.bounds_table_sql(t))
        conn.execute(_sqlite_bounds.reads_table_sql(t))
        conn.execute(
            f"INSERT INTO {t}_bounds SELECT 0, ?, ?, ?, count(*), "
            f"coalesce(sum({_SIZE}), 0), 7, 0 FROM {t}",
            (max_keys, max_bytes, policy),
        )
        for sql in _sqlite_bounds._v2_trigger_sql(t, policy).values():
            conn.execute(sql)
        conn.execute("INSERT INTO keyshelf_reads VALUES ('default', 'k00', 9e12, 5)")
        conn.execute("COMMIT")
    finally:
        conn.close()


@pytest.mark.parametrize("policy", ["lru", "lfu", "fifo", "none"])
@pytest.mark.parametrize("max_bytes", [None, 10_000])
def test_a_shape2_sqlite_store_is_upgraded_at_open(
    tmp_path: Path, policy: str, max_bytes: int | None
) -> None:
    path = tmp_path / "shape2.db"
    _shape2(path, 40, max_bytes, policy)
    _check_read_only_leaves_it(path)
    kv = keyshelf.open(path)
    _check_upgraded(kv, path, policy, max_bytes)


@pytest.mark.parametrize("policy", ["lru", "fifo", "none"])
def test_sqlite_triggers_follow_a_change_of_layout(tmp_path: Path, policy: str) -> None:
    # Each reopen that sets or drops one of the limits recreates the triggers
    # for the new layout (and only then); the totals stay exact throughout,
    # the bytes counted exactly while a max_bytes is set and NULL otherwise.
    path = tmp_path / "layout.db"
    steps = [(30, None), (30, 4_000), (None, 4_000), (20, None), (25, None)]
    for step, (max_keys, max_bytes) in enumerate(steps):
        kwargs = {"max_keys": max_keys, "max_bytes": max_bytes}
        kv = keyshelf.open(path, eviction=policy, **{k: v for k, v in kwargs.items() if v})
        _assert_triggers(_schema(path), Limits(max_keys, max_bytes, policy))
        # Under "none" nothing is evicted: a store left above lowered limits
        # only refuses what adds.
        held = (
            (kv.stats()["total_keys"], kv.storage_size()["total"]) if policy == "none" else (0, 0)
        )
        for i in range(40):
            try:
                kv.set(f"s{step}-{i}", "x" * (i % 90))
            except keyshelf.StoreFullError:
                assert policy == "none"
            if i % 4 == 0:
                kv.delete(f"s{step}-{i - 2}")
        total = kv.stats()["total_keys"]
        size = kv.storage_size()["total"]
        assert max_keys is None or total <= max(max_keys, held[0])
        assert max_bytes is None or size <= max(max_bytes, held[1])
        assert _counters(kv) == (total, None if max_bytes is None else size)
        kv.close()


def test_a_trigger_of_another_layout_is_refused(tmp_path: Path) -> None:
    # A store without max_bytes has no UPDATE totals trigger: one left there
    # (here: the one of the layout with a max_bytes) is refused as damage.
    path = tmp_path / "extra.db"
    keyshelf.open(path, max_keys=10).close()
    extra = trigger_sql("keyshelf", Limits(10, 100, "lru"))["keyshelf_bounds_update"]
    conn = sqlite3.connect(path)
    conn.execute(extra)
    conn.commit()
    conn.close()
    with pytest.raises(keyshelf.IncompatibleStoreError, match="keyshelf_bounds_update"):
        keyshelf.open(path)


@pytest.mark.parametrize("policy", ["lru", "lfu", "fifo"])
def test_shape3_evicts_down_to_its_headroom(tmp_path: Path, policy: str) -> None:
    # The batch of shape 3: a write that takes the store above max_keys
    # evicts down to max_keys - max_keys // 8, then the next max_keys // 8
    # new keys evict nothing (the same for max_bytes, 1/8 of it).
    kv = keyshelf.open(tmp_path / "batch.db", max_keys=80, eviction=policy)
    kv.mset({f"k{i}": i for i in range(80)})
    kv.set("over", 1)
    assert kv.stats()["total_keys"] == 70 and kv.stats()["evictions"] == 11
    for i in range(10):
        kv.set(f"room{i}", i)
        assert kv.stats()["evictions"] == 11
    kv.set("over again", 1)
    assert kv.stats()["total_keys"] == 70 and kv.stats()["evictions"] == 22
    kv.close()
    kv = keyshelf.open(tmp_path / "bytes.db", max_bytes=800, eviction=policy)
    kv.mset({f"k{i}": "x" * 10 for i in range(80)})
    kv.set("over", "x" * 10)
    assert kv.storage_size()["total"] == 700  # 800 - 800 // 8
    kv.close()
