"""The record table shared by the memory and file backends (backends/_table.py).

Its sorted index against a model under random adds and removes (with tiny
chunks, so that splits and merges happen), the live filter, range scans
bounded by a prefix and by the last key of the previous page, counts, stats
and purge; and the work a page of a listing costs, counted rather than timed:
key comparisons and hashes (keys that count them), sort calls (a profile
hook) and matcher calls. A page after a write must not sort, nor touch all
``n`` keys, on the table, the memory backend and the file backend.
"""

from __future__ import annotations

import dataclasses
import random
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keyshelf.backends import _table
from keyshelf.backends._table import RecordTable, SortedKeys, live_namespaces
from keyshelf.backends.file import FileBackend
from keyshelf.backends.memory import MemoryBackend
from keyshelf.patterns import Matcher, compile_pattern
from keyshelf.records import Record

NOW = 1_000_000


def record(value: int, expires_at: int | None = None) -> Record:
    return Record("i", value, expires_at, None, 0, 0, 1)


def check_invariants(index: SortedKeys) -> None:
    chunks = index._chunks
    assert all(chunks), "an empty chunk"
    assert index._lasts == [chunk[-1] for chunk in chunks]
    assert all(len(chunk) <= 2 * _table.CHUNK for chunk in chunks)
    flat = list(index)
    assert flat == sorted(set(flat))
    assert len(index) == len(flat)


# -- the sorted index ----------------------------------------------------------------

KEYS = st.text(alphabet="abc", min_size=1, max_size=4)
OPS = st.lists(st.tuples(st.booleans(), KEYS), max_size=300)
BOUNDS = st.tuples(st.text(alphabet="abc", max_size=2), st.none() | KEYS)


@settings(max_examples=150, derandomize=True, deadline=None)
@given(initial=st.sets(KEYS, max_size=40), ops=OPS, bounds=st.lists(BOUNDS, max_size=5))
def test_sorted_keys_follow_a_model(
    initial: set[str], ops: list[tuple[bool, str]], bounds: list[tuple[str, str | None]]
) -> None:
    saved = _table.CHUNK
    _table.CHUNK = 4  # tiny chunks: every few operations split or merge one
    try:
        index = SortedKeys(list(initial))
        model = set(initial)
        for add, key in ops:
            if add and key not in model:
                index.add(key)
                model.add(key)
            elif not add:
                index.discard(key)  # absent keys too: a no-op
                model.discard(key)
            check_invariants(index)
        assert list(index) == sorted(model)
        for prefix, after in bounds:
            expected = [k for k in sorted(model) if k >= prefix and (after is None or k > after)]
            assert list(index.iter_from(prefix, after)) == expected
    finally:
        _table.CHUNK = saved


def test_sorted_keys_stay_in_chunks_of_bounded_length() -> None:
    # Loading keys in random order, then deleting most of them, keeps about
    # n / CHUNK chunks: no chunk grows past 2 x CHUNK, and deletes merge.
    keys = [f"k{i:06}" for i in range(20_000)]
    random.Random(7).shuffle(keys)
    index = SortedKeys()
    for key in keys:
        index.add(key)
    check_invariants(index)
    assert len(index._chunks) <= 2 * 20_000 // _table.CHUNK + 1
    for key in keys[:19_000]:
        index.discard(key)
    check_invariants(index)
    assert list(index) == sorted(keys[19_000:])
    assert len(index._chunks) <= 2 * 1000 // _table.CHUNK + 2


# -- the table -------------------------------------------------------------------------


def table_of(**records: Record) -> RecordTable:
    table = RecordTable()
    for key, rec in records.items():
        table.put(key.replace("_", ":"), rec)
    return table


def keys(rows: list[tuple[str, Any]]) -> list[str]:
    return [key for key, _ in rows]


@pytest.mark.parametrize("listed_first", [False, True])
def test_live_filter_counts_stats_size_and_purge(listed_first: bool) -> None:
    table = table_of(
        a_1=record(1),
        a_2=record(2, expires_at=NOW),  # expires_at == now: gone
        a_3=record(3, expires_at=NOW + 1),
        b_1=record(4, expires_at=NOW - 5),
    )
    if listed_first:  # with and without the index
        table.scan(compile_pattern("*"), NOW, None, 1, False)
    everything, prefix_a = compile_pattern("*"), compile_pattern("a:*")
    assert table.live("a:2", NOW) is None and table.live("a:3", NOW) is not None
    assert keys(table.scan(everything, NOW, None, None, False)) == ["a:1", "a:3"]
    assert table.scan(prefix_a, NOW, None, None, True) == [("a:1", ("i", 1)), ("a:3", ("i", 3))]
    assert table.count(everything, NOW) == 2
    assert table.count(prefix_a, NOW) == 2
    assert table.count(compile_pattern("b:*"), NOW) == 0
    assert table.count(compile_pattern("a:2"), NOW) == 0
    assert table.stats(NOW) == {
        "total_keys": 4,  # expired records not purged yet count here
        "active_keys": 2,
        "expired_keys": 2,
        "keys_with_ttl": 1,
    }
    assert table.total_size(NOW) == 16
    assert table.has_live(NOW) and not table_of(x=record(1, NOW)).has_live(NOW)
    assert sorted(table.expired(NOW)) == ["a:2", "b:1"]
    assert sorted(table.purge(NOW)) == ["a:2", "b:1"]
    assert sorted(table.records) == ["a:1", "a:3"]
    assert keys(table.scan_records(NOW, None, 10)) == ["a:1", "a:3"]
    assert table.stats(NOW)["total_keys"] == 2


def test_scans_seek_from_the_larger_of_prefix_and_after() -> None:
    table = RecordTable()
    for key in ["a", "b:1", "b:2", "b:3", "b:4", "c"]:
        table.put(key, record(0))
    b = compile_pattern("b:*")
    assert keys(table.scan(b, NOW, None, 2, False)) == ["b:1", "b:2"]
    assert keys(table.scan(b, NOW, "b:2", 2, False)) == ["b:3", "b:4"]
    assert keys(table.scan(b, NOW, "b:4", 2, False)) == []
    assert keys(table.scan(b, NOW, "a", None, False)) == ["b:1", "b:2", "b:3", "b:4"]
    assert keys(table.scan(b, NOW, "b:25", None, False)) == ["b:3", "b:4"]
    assert keys(table.scan(b, NOW, "z", None, False)) == []
    assert keys(table.scan(b, NOW, None, 0, False)) == []
    # A filtered prefix, a literal, and a literal before / after the bound.
    assert keys(table.scan(compile_pattern("b:*[24]"), NOW, "b:2", None, False)) == ["b:4"]
    assert keys(table.scan(compile_pattern("b:3"), NOW, None, None, True)) == ["b:3"]
    assert keys(table.scan(compile_pattern("b:3"), NOW, "b:3", None, False)) == []
    assert keys(table.scan(compile_pattern("b:3"), NOW, "b:2", None, False)) == ["b:3"]
    assert keys(table.scan_records(NOW, "b:3", 2)) == ["b:4", "c"]
    # The hierarchical dialect: "**" under "b:" is the prefix range.
    assert keys(table.scan(compile_pattern("b:**", ":"), NOW, "b:1", 1, False)) == ["b:2"]


@pytest.mark.parametrize("listed_first", [False, True])
def test_remove_matching_counts_live_and_keeps_the_index(listed_first: bool) -> None:
    table = RecordTable()
    for i in range(10):
        table.put(f"k:{i}", record(i, expires_at=NOW - 1 if i % 2 else None))
    table.put("other", record(0))
    if listed_first:
        table.scan(compile_pattern("*"), NOW, None, 1, False)
    removed, live = table.remove_matching(compile_pattern("k:*[0-4]"), NOW)
    assert sorted(removed) == ["k:0", "k:1", "k:2", "k:3", "k:4"] and live == 3
    assert table.matching(compile_pattern("k:*")) == ["k:5", "k:6", "k:7", "k:8", "k:9"]
    assert keys(table.scan(compile_pattern("*"), NOW, None, None, False)) == [
        "k:6",
        "k:8",
        "other",
    ]
    removed, live = table.remove_matching(compile_pattern("*"), NOW)
    assert len(removed) == 6 and live == 3
    assert not table and table.scan(compile_pattern("*"), NOW, None, None, False) == []
    table.put("again", record(1))
    assert keys(table.scan(compile_pattern("*"), NOW, None, None, False)) == ["again"]


def test_writes_after_a_listing_are_listed() -> None:
    table = RecordTable()
    everything = compile_pattern("*")
    for key in ["m", "c", "x"]:
        table.put(key, record(0))
    assert keys(table.scan(everything, NOW, None, None, False)) == ["c", "m", "x"]
    table.put("a", record(0))
    table.put("m", record(1))  # replaced: listed once
    assert table.remove("x") is not None and table.remove("x") is None
    table.put("z", record(0))
    assert keys(table.scan(everything, NOW, None, None, False)) == ["a", "c", "m", "z"]


def test_live_namespaces() -> None:
    tables = {"b": table_of(k=record(1)), "a": table_of(k=record(1, NOW)), "c": RecordTable()}
    assert live_namespaces(tables, NOW) == ["b"]
    assert live_namespaces(tables, NOW - 1) == ["a", "b"]


# -- work per page, counted ----------------------------------------------------------


class Tally:
    """How many comparisons, hashes and prefix tests the counting keys made."""

    ops = 0


class Key(str):
    """A key that counts every comparison, hash and startswith made with it."""

    __slots__ = ()

    def __lt__(self, other: object) -> bool:
        Tally.ops += 1
        return str.__lt__(self, other)  # type: ignore[operator]

    def __le__(self, other: object) -> bool:
        Tally.ops += 1
        return str.__le__(self, other)  # type: ignore[operator]

    def __gt__(self, other: object) -> bool:
        Tally.ops += 1
        return str.__gt__(self, other)  # type: ignore[operator]

    def __ge__(self, other: object) -> bool:
        Tally.ops += 1
        return str.__ge__(self, other)  # type: ignore[operator]

    def __eq__(self, other: object) -> bool:
        Tally.ops += 1
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        Tally.ops += 1
        return str.__ne__(self, other)

    def __hash__(self) -> int:
        Tally.ops += 1
        return str.__hash__(self)

    def startswith(self, *args: Any) -> bool:
        Tally.ops += 1
        return str.startswith(self, *args)


def counted(pattern: str) -> tuple[Matcher, list[int]]:
    """``pattern`` compiled, with a counter of the keys its matcher tests."""
    calls = [0]
    matcher = compile_pattern(pattern)
    test = matcher.match

    def counting(key: str) -> bool:
        calls[0] += 1
        return test(key)

    return dataclasses.replace(matcher, _test=counting), calls


N = 20_000


def key(i: int) -> Key:
    return Key(f"k:{i:06}")


def test_a_page_of_the_table_costs_its_keys_and_a_search() -> None:
    table = RecordTable()
    for i in range(0, 2 * N, 2):  # even numbers: room for new keys between them
        table.put(key(i), record(i))
    prefix = compile_pattern("k:*")
    Tally.ops = 0
    assert len(table.scan(prefix, NOW, None, 10, False)) == 10
    assert Tally.ops >= N  # the first listing sorts, once
    for page in range(5):
        after = key(2 * (N // 2 + 100 * page))
        Tally.ops = 0
        table.put(key(int(after[2:]) + 1), record(0))  # a write between the pages
        table.remove(key(int(after[2:]) + 4))
        rows = table.scan(prefix, NOW, after, 10, False)
        assert keys(rows)[0] == key(int(after[2:]) + 1)
        # About log2(n) comparisons per search, a few per key walked: the old
        # memory backend merged the new key into a fresh sorted list, the old
        # file backend sorted the namespace again (both >= n).
        assert Tally.ops <= 300, Tally.ops
    # A filtered pattern tests only the keys it walks.
    filtered, calls = counted("k:*8")
    Tally.ops = 0
    rows = table.scan(filtered, NOW, key(N), 5, False)
    assert len(rows) == 5 and calls[0] <= 60 and Tally.ops <= 400, (calls[0], Tally.ops)


def test_a_memory_page_after_a_write_does_not_sort() -> None:
    backend = MemoryBackend()
    backend.put_many("", [(key(i), ("i", i)) for i in range(0, 2 * N, 2)], None, NOW)
    prefix = compile_pattern("k:*")
    assert len(backend.scan("", prefix, NOW, None, 10, False)) == 10
    after: str | None = key(N)
    for _ in range(5):
        assert after is not None
        backend.put("", Key(after + "x"), ("i", 0), None, None, NOW)
        backend.delete("", [key(int(after[2:]) + 6)], NOW)
        Tally.ops = 0
        rows = backend.scan("", prefix, NOW, after, 10, True)
        assert rows[0][0] == after + "x" and len(rows) == 10
        assert Tally.ops <= 300, Tally.ops  # the old backend merged: >= n
        after = rows[-1][0]
    Tally.ops = 0
    assert len(backend.scan_records("", NOW, after, 10)) == 10
    assert Tally.ops <= 300, Tally.ops


@pytest.fixture
def sorts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Count calls of ``sorted()`` and ``list.sort()`` while the test runs (profile hook)."""
    calls = [0]

    def hook(frame: Any, event: str, arg: Any) -> None:
        if event == "c_call" and getattr(arg, "__name__", "") in ("sorted", "sort"):
            calls[0] += 1

    previous = sys.getprofile()
    sys.setprofile(hook)
    try:
        yield calls
    finally:
        sys.setprofile(previous)


def test_a_file_stream_with_writes_between_pages_does_not_sort(
    tmp_path: Path, sorts: list[int]
) -> None:
    # The old file backend dropped a namespace's order whenever a key came
    # or went, and sorted the namespace again for the next page.
    backend = FileBackend(tmp_path / "store.json", durable=False)
    try:
        n = 3000
        model = {f"k:{i:05}" for i in range(0, 2 * n, 2)}
        backend.put_many("", [(k, ("i", 0)) for k in model], None, NOW)
        prefix = compile_pattern("k:*")
        rows = backend.scan("", prefix, NOW, None, 10, False)
        sorts[0] = 0
        seen = keys(rows)
        while rows:
            after = rows[-1][0]
            number = int(after[2:])
            if number < 2 * n - 10:  # a finite stream: nothing written past the end
                ahead, doomed = f"k:{number + 1:05}", f"k:{number + 4:05}"
                backend.put_many("", [(ahead, ("i", 0))], None, NOW)  # listed next
                backend.delete("", [doomed], NOW)  # never listed
                model.add(ahead)
                model.discard(doomed)
            rows = backend.scan("", prefix, NOW, after, 100, False)
            seen += keys(rows)
        sorted_calls = sorts[0]
        assert seen == sorted(model)
        assert sorted_calls == 0
    finally:
        backend.close()


def test_memory_streams_stay_ordered_while_threads_write() -> None:
    # Listings hold the backend's lock while they walk the index, so pages
    # stay strictly ordered and complete while other threads add and remove
    # keys (an unlocked walk of a changing index could skip or repeat keys).
    backend = MemoryBackend()
    stable = [f"s:{i:05}" for i in range(0, 4000, 2)]
    churn = [f"s:{i:05}" for i in range(1, 4000, 2)]
    backend.put_many("", [(k, ("i", 0)) for k in stable], None, NOW)
    everything = compile_pattern("*")
    stop = threading.Event()

    def write(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            batch = rng.sample(churn, 50)
            backend.put_many("", [(k, ("i", 1)) for k in batch], None, NOW)
            backend.delete("", rng.sample(churn, 50), NOW)

    writers = [threading.Thread(target=write, args=(seed,)) for seed in range(2)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, inside the walks too
    for thread in writers:
        thread.start()
    try:
        for _ in range(5):
            seen: list[str] = []
            after = None
            while rows := backend.scan("", everything, NOW, after, 97, False):
                seen += keys(rows)
                after = rows[-1][0]
            assert seen == sorted(set(seen))
            assert set(stable) <= set(seen) <= set(stable) | set(churn)
    finally:
        stop.set()
        for thread in writers:
            thread.join()
        sys.setswitchinterval(interval)
