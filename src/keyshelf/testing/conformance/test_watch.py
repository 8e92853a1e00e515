"""The change feed (``kv.revision()``, ``kv.watch()``), on every backend and both APIs.

A backend whose ``change_feed`` flag is False must refuse ``revision()`` and
``watch()`` with :class:`UnsupportedOperationError` naming itself, and
``history=`` at open; every other test then checks exactly that refusal.

On a backend with a feed: which operations record what (type, key, value,
version, expiry, prev), that a write that changes nothing (or a refused bad
input) records nothing, that one multi-key commit is one revision, order, that
replaying the whole feed into a dict gives ``dump()``, that resuming from the
middle gives exactly the tail, that pruned history raises
:class:`ChangesCompactedError` with a usable ``.oldest``, that patterns and
namespaces filter, that a writer opened without ``history=`` records too, and
that closing a watch or its store ends it.

Watches are read up to a sentinel key written last (:func:`_until`), so no
test waits for a change that never comes and none depends on timing.
"""

from __future__ import annotations

import asyncio
import io
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import keyshelf
from keyshelf.changes import ChangeEvent

from .. import AsyncDriver

#: Written last by a test, so that a watch read up to it has seen everything before.
END = "~end"


def _backend(kv: Any) -> Any:
    return kv._store.backend if isinstance(kv, AsyncDriver) else kv.backend


def _open(opener: Any, **options: Any) -> Any:
    """A store with the feed on; None on a backend without one (after checking the refusal)."""
    try:
        kv = opener(history=options.pop("history", 10_000), **options)
    except keyshelf.UnsupportedOperationError as exc:
        assert "change feed" in str(exc)
        return None
    if isinstance(kv, AsyncDriver):
        # open_async does no I/O: history= applies on the first feed call.
        try:
            kv.revision()
        except keyshelf.UnsupportedOperationError as exc:
            assert "change feed" in str(exc)
            assert not _backend(kv).change_feed
            return None
    assert _backend(kv).change_feed
    return kv


def _watch(kv: Any, pattern: str | None = None, **options: Any) -> Any:
    """Open a watch; the async one is entered at once, so "from now" is now."""
    watch = kv.watch(pattern, **options)
    if isinstance(kv, AsyncDriver):
        kv._loop.run_until_complete(watch.__aenter__())
    return watch


def _next(kv: Any, watch: Any) -> ChangeEvent:
    if isinstance(kv, AsyncDriver):
        event: ChangeEvent = kv._loop.run_until_complete(watch.__anext__())
        return event
    return next(watch)  # type: ignore[no-any-return]


def _until(kv: Any, watch: Any, end: str = END) -> list[ChangeEvent]:
    """Every change the watch delivers before the change of key ``end``."""
    events: list[ChangeEvent] = []
    while True:
        event = _next(kv, watch)
        if event.key == end:
            return events
        events.append(event)


def _close(kv: Any, watch: Any) -> None:
    if isinstance(kv, AsyncDriver):
        kv._loop.run_until_complete(watch.aclose())
    else:
        watch.close()


def _changes(kv: Any, since: int, pattern: str | None = None, **options: Any) -> list[Any]:
    """The changes after ``since`` up to a sentinel written now, as tuples."""
    kv.set(END if pattern is None else pattern.replace("*", END), 0)
    watch = _watch(kv, pattern, since=since, **options)
    try:
        end = END if pattern is None else pattern.replace("*", END)
        return [_short(event) for event in _until(kv, watch, end)]
    finally:
        _close(kv, watch)


def _short(event: ChangeEvent) -> tuple[Any, ...]:
    return (event.type, event.key, event.value)


@contextmanager
def _records_nothing(kv: Any) -> Iterator[None]:
    before = kv.revision()
    yield
    assert kv.revision() == before


# -- the refusal and the switch -----------------------------------------------------


def test_the_feed_is_off_until_history_is_given(opener: Any) -> None:
    kv = opener()
    backend = _backend(kv)
    if not backend.change_feed:
        with pytest.raises(keyshelf.UnsupportedOperationError, match="change feed"):
            kv.revision()
        with pytest.raises(keyshelf.UnsupportedOperationError, match="change feed"):
            _next(kv, _watch(kv))
        assert _open(opener) is None
        return
    kv.set("a", 1)
    assert kv.revision() == 0
    with pytest.raises(keyshelf.UnsupportedOperationError, match="history="):
        _watch(kv)
    on = _open(opener)
    assert on is not None
    if not opener.shared:  # a second open() is another store (memory://)
        return
    start = on.revision()
    kv.set("b", 2)  # the handle opened without history= records from its next write
    assert on.revision() > start
    assert _changes(on, start) == [("set", "b", 2)]
    assert kv.revision() == on.revision()


@pytest.mark.parametrize("history", [0, -1, "soon", 1.5, True, "0s"])
def test_a_bad_history_is_refused(opener: Any, history: Any) -> None:
    with pytest.raises(keyshelf.InvalidURLError, match="history"):
        opener(history=history)


# -- what each operation records ------------------------------------------------------


def test_every_write_records_what_it_did(opener: Any, clock: Any) -> None:
    kv = _open(opener)
    if kv is None:
        return
    start = kv.revision()
    kv.set("a", 1)
    kv.set("a", 2, xx=True)
    kv.set("a", 3, ttl=100)
    kv.set("a", 4, keep_ttl=True)
    assert kv.setnx("b", "x")
    kv.mset({"c": 1.5, "d": [1, 2]})
    kv.set_many({"e": b"\x00", "f": None})
    kv.increment("g")
    kv.decrement("g", 3)
    kv.append("b", "y")
    assert kv.compare_and_swap("c", 1.5, 2.5)
    kv.set_metadata("d", {"owner": "me"})
    kv.expire("e", 60)
    kv.persist("e")
    kv.delete("f")
    kv.delete_many(["e"])
    kv.delete_pattern("d*")
    assert kv.getdel("c") == 2.5
    assert kv.getset("b", "z") == "xy"
    assert kv.delete_if("b", "z")
    expected = [
        ("set", "a", 1),
        ("set", "a", 2),
        ("set", "a", 3),
        ("set", "a", 4),
        ("set", "b", "x"),
        ("set", "c", 1.5),
        ("set", "d", [1, 2]),
        ("set", "e", b"\x00"),
        ("set", "f", None),
        ("set", "g", 1),
        ("set", "g", -2),
        ("set", "b", "xy"),
        ("set", "c", 2.5),
        ("set", "d", [1, 2]),  # metadata only: a set with the same value
        ("set", "e", b"\x00"),  # expire: TTL only
        ("set", "e", b"\x00"),  # persist
        ("delete", "f", None),
        ("delete", "e", None),
        ("delete", "d", None),
        ("delete", "c", None),
        ("set", "b", "z"),
        ("delete", "b", None),
    ]
    got = _changes(kv, start)
    # mset/set_many record one change per key, in either order.
    assert sorted(got[5:7]) == sorted(expected[5:7])
    assert sorted(got[7:9], key=repr) == sorted(expected[7:9], key=repr)
    assert got[:5] + got[9:] == expected[:5] + expected[9:]
    kv.delete(END)
    middle = kv.revision()
    kv.clear()
    kv.set("h", 1)
    kv.import_(io.BytesIO(_export_of({"i": 1, "j": "two"})))
    tail = _changes(kv, middle)
    assert sorted(tail[:2]) == [("delete", "a", None), ("delete", "g", None)]
    assert tail[2] == ("set", "h", 1)
    assert sorted(tail[3:], key=repr) == sorted([("set", "i", 1), ("set", "j", "two")], key=repr)


def _export_of(data: dict[str, Any]) -> bytes:
    with keyshelf.open("memory://") as source:
        source.mset(data)
        out = io.BytesIO()
        source.export(out)
    return out.getvalue()


def test_a_change_carries_version_expiry_and_prev(opener: Any, clock: Any) -> None:
    kv = _open(opener)
    if kv is None:
        return
    start = kv.revision()
    kv.set("k", "v1")
    kv.set("k", "v2", ttl=3600)
    kv.set_metadata("k", {"m": 1})
    kv.delete("k")
    kv.set(END, 0)
    entry_free = _until(kv, _watch(kv, since=start, prev=True))
    assert [e.type for e in entry_free] == ["set", "set", "set", "delete"]
    assert [e.version for e in entry_free] == [1, 2, 3, None]
    assert [e.prev for e in entry_free] == [None, "v1", "v2", "v2"]
    assert entry_free[0].expires_at is None
    expires = entry_free[1].expires_at
    assert expires is not None and abs(expires.timestamp() - (clock() + 3600)) < 5
    assert entry_free[2].expires_at == expires  # metadata keeps the TTL
    assert all(e.namespace == kv.namespace_name for e in entry_free)
    assert [e.revision for e in entry_free] == sorted({e.revision for e in entry_free})
    plain = _until(kv, _watch(kv, since=start))
    assert [e.prev for e in plain] == [None] * 4  # prev only when asked


def test_writes_that_change_nothing_record_nothing(opener: Any) -> None:
    kv = _open(opener)
    if kv is None:
        return
    kv.set("a", 1)
    kv.set("n", "text")
    with _records_nothing(kv):
        assert not kv.set("a", 2, nx=True)
        assert not kv.set("missing", 2, xx=True)
        assert not kv.setnx("a", 5)
        assert kv.delete("missing") == 0
        assert kv.delete_many(["missing"]) == {"missing": False}
        assert kv.delete_pattern("zz*") == 0
        assert not kv.compare_and_swap("a", 99, 2)
        assert not kv.persist("a")  # no TTL to remove
        assert not kv.expire("missing", 10)
        assert not kv.delete_if("a", 99)
        assert kv.delete_expired() == 0
        assert kv.getdel("missing") is None
        assert kv.clear_namespace("nobody") == 0
        # Refused bad input.
        with pytest.raises(keyshelf.InvalidKeyError):
            kv.set("", 1)
        with pytest.raises(keyshelf.NotNumericError):
            kv.increment("n")
        with pytest.raises(keyshelf.AppendTypeError):
            kv.append("a", "x")
        with pytest.raises(keyshelf.SerializationError):
            kv.set("a", object())
        with pytest.raises(keyshelf.InvalidTTLError):
            kv.set("a", 3, ttl=-1)
        with pytest.raises(keyshelf.ExportFormatError):
            kv.import_(io.BytesIO(b"not an export\n"))


def test_expiry_removals_are_expire_changes(opener: Any, clock: Any) -> None:
    kv = _open(opener)
    if kv is None:
        return
    start = kv.revision()
    kv.set("t", "short", ttl=0.5)
    kv.set("u", "stays")
    clock.advance(1.1)
    removed = kv.delete_expired()
    # A server that purges by itself may have removed (and recorded) it already.
    assert removed <= 1
    got = _changes(kv, start)
    assert got == [("set", "t", "short"), ("set", "u", "stays"), ("expire", "t", None)]
    assert kv.get("t") is None


def test_a_commit_is_one_revision(opener: Any) -> None:
    kv = _open(opener)
    if kv is None:
        return
    if not _backend(kv).multi_key_atomic:
        return
    kv.set("x", 1)
    start = kv.revision()
    assert kv.atomic().set("x", 2).set("y", 3).delete("z").commit().ok
    assert kv.atomic().set("x", 4).delete("y").commit().ok
    kv.set(END, 0)
    events = _until(kv, _watch(kv, since=start))
    assert sorted(_short(e) for e in events[:2]) == [("set", "x", 2), ("set", "y", 3)]
    assert events[0].revision == events[1].revision > start
    assert {e.revision for e in events[2:]} == {events[2].revision}
    assert events[2].revision > events[0].revision
    assert sorted(_short(e) for e in events[2:]) == [("delete", "y", None), ("set", "x", 4)]
    with _records_nothing(kv):
        assert not kv.atomic().check("x", 1).set("x", 9).commit().ok  # refused: nothing


# -- order, replay, resume, compaction --------------------------------------------------


def _random_ops(kv: Any, seed: int, count: int) -> None:
    rng = random.Random(seed)
    for _ in range(count):
        key = f"k{rng.randrange(12)}"
        op = rng.randrange(8)
        try:
            if op < 3:
                kv.set(key, rng.choice([rng.randrange(100), "s" * rng.randrange(4), [1, 2]]))
            elif op == 3:
                kv.delete(key)
            elif op == 4:
                kv.increment(key, rng.randrange(1, 5))
            elif op == 5:
                kv.mset({key: 1, f"k{rng.randrange(12)}": rng.random()})
            elif op == 6:
                kv.set_metadata(key, {"n": rng.randrange(3)})
            else:
                kv.delete_pattern(f"k{rng.randrange(3)}*")
        except keyshelf.NotNumericError:
            pass


def _replay(events: list[ChangeEvent], into: dict[str, Any] | None = None) -> dict[str, Any]:
    state = {} if into is None else into
    for event in events:
        if event.type == "set":
            state[event.key] = event.value
        else:
            state.pop(event.key, None)
    return state


def test_replaying_the_feed_gives_dump_and_resuming_gives_the_tail(opener: Any) -> None:
    kv = _open(opener)
    if kv is None:
        return
    start = kv.revision()
    _random_ops(kv, 1, 150)
    middle = kv.revision()
    _random_ops(kv, 2, 150)
    kv.set(END, 0)
    everything = _until(kv, _watch(kv, since=start))
    revisions = [e.revision for e in everything]
    assert revisions == sorted(revisions)
    assert _replay(everything) == {k: v for k, v in kv.dump().items() if k != END}
    tail = _until(kv, _watch(kv, since=middle))
    assert tail == [e for e in everything if e.revision > middle]
    assert tail and tail[0].revision > middle


def test_a_live_watch_sees_writes_after_it_started(opener: Any) -> None:
    kv = _open(opener)
    if kv is None:
        return
    kv.set("before", 1)
    watch = _watch(kv)  # from now
    kv.set("after", 2)
    kv.delete("before")
    kv.set(END, 0)
    assert [_short(e) for e in _until(kv, watch)] == [
        ("set", "after", 2),
        ("delete", "before", None),
    ]
    kv.set("later", 3)  # the same watch follows on
    assert _short(_next(kv, watch)) == ("set", "later", 3)
    _close(kv, watch)


def test_pruned_history_raises_compacted_with_the_oldest_kept(opener: Any) -> None:
    kv = _open(opener, history=20)
    if kv is None:
        return
    start = kv.revision()
    for i in range(400):
        kv.set(f"k{i % 7}", i)
    with pytest.raises(keyshelf.ChangesCompactedError) as info:
        _next(kv, _watch(kv, since=start))
    oldest = info.value.oldest
    assert isinstance(info.value, keyshelf.KVError)
    assert start + 1 < oldest <= kv.revision()
    kept = _until_revision(kv, _watch(kv, since=oldest - 1), kv.revision())
    assert kept[0].revision >= oldest
    assert 20 <= len(kept) <= 400 - 20
    assert kept[-1].value == 399


def _until_revision(kv: Any, watch: Any, last: int) -> list[ChangeEvent]:
    events = [_next(kv, watch)]
    while events[-1].revision < last:
        events.append(_next(kv, watch))
    return events


# -- scope -------------------------------------------------------------------------------


def test_patterns_and_namespaces_filter(opener: Any) -> None:
    kv = _open(opener)
    if kv is None:
        return
    other = kv.namespace("other")
    start = kv.revision()
    kv.set("user:1", "a")
    other.set("user:1", "elsewhere")
    kv.set("order:1", "b")
    kv.set("user:2", "c")
    other.set(END, 0)
    kv.set("user:" + END, 0)
    assert _changes(kv, start, "user:*")[:2] == [("set", "user:1", "a"), ("set", "user:2", "c")]
    mine = [e for e in _until(kv, _watch(kv, since=start), "user:" + END)]
    assert [_short(e) for e in mine] == [
        ("set", "user:1", "a"),
        ("set", "order:1", "b"),
        ("set", "user:2", "c"),
    ]
    theirs = _until(other, _watch(other, since=start))
    assert [_short(e) for e in theirs] == [("set", "user:1", "elsewhere")]
    assert theirs[0].namespace == "other"


def test_since_must_be_a_revision(opener: Any) -> None:
    kv = _open(opener)
    if kv is None:
        return
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(keyshelf.InvalidArgumentError, match="since"):
            kv.watch(since=bad)


# -- ending a watch -------------------------------------------------------------------------


def test_closing_a_watch_ends_it(opener: Any) -> None:
    kv = _open(opener)
    if kv is None:
        return
    watch = _watch(kv)
    kv.set("a", 1)
    assert _short(_next(kv, watch)) == ("set", "a", 1)
    _close(kv, watch)
    kv.set("b", 2)
    with pytest.raises((StopIteration, StopAsyncIteration)):
        _next(kv, watch)


def test_closing_the_store_ends_every_watch(opener: Any) -> None:
    kv = _open(opener)
    if kv is None:
        return
    if isinstance(kv, AsyncDriver):
        loop = kv._loop
        watch = kv.watch()

        async def follow() -> list[ChangeEvent]:
            return [event async for event in watch]

        async def scenario() -> list[ChangeEvent]:
            task = asyncio.ensure_future(follow())
            await asyncio.sleep(0)  # the watch starts and waits for changes
            await kv._store.aclose()
            return await asyncio.wait_for(task, 30)

        assert loop.run_until_complete(scenario()) == []
        return
    watch = kv.watch()
    done: list[list[ChangeEvent]] = []
    thread = threading.Thread(target=lambda: done.append(list(watch)))
    thread.start()
    kv.close()
    thread.join(30)
    assert not thread.is_alive()
    assert done == [[]]


def test_cancelling_an_async_watch_releases_it(opener: Any) -> None:
    kv = _open(opener)
    if kv is None or not isinstance(kv, AsyncDriver):
        return
    loop = kv._loop

    async def scenario() -> None:
        watch = kv._store.watch()
        task = asyncio.ensure_future(watch.__anext__())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The store still works, and a new watch sees the next write.
        again = kv._store.watch()
        async with again:
            await kv._store.set("z", 1)
            event = await again.__anext__()
        assert (event.type, event.key, event.value) == ("set", "z", 1)

    loop.run_until_complete(scenario())


def test_evictions_of_a_bounded_store_are_delete_changes(opener: Any) -> None:
    """Where a store can be bounded and have a feed (memory, SQLite), an eviction is a delete."""
    try:
        kv = opener(history=1000, max_keys=2)
    except keyshelf.InvalidURLError as exc:  # a backend that cannot bound a store says so
        assert "max_keys" in str(exc)
        return
    except keyshelf.UnsupportedOperationError as exc:  # no feed, or not with limits (file)
        assert "change feed" in str(exc)
        return
    if isinstance(kv, AsyncDriver):
        try:
            kv.revision()
        except keyshelf.UnsupportedOperationError as exc:
            assert "change feed" in str(exc)
            return
    start = kv.revision()
    kv.set("a", 1)
    kv.set("b", 2)
    kv.set("c", 3)  # evicts "a", the least recently used
    assert kv.keys() == ["b", "c"]
    got = _changes(kv, start, "*")
    assert got[:3] == [("set", "a", 1), ("set", "b", 2), ("set", "c", 3)] or got[:3] == [
        ("set", "a", 1),
        ("set", "b", 2),
        ("delete", "a", None),
    ]
    assert sorted(got[2:4], key=repr) == sorted([("set", "c", 3), ("delete", "a", None)], key=repr)


def test_a_duration_history_prunes_by_age(opener: Any, clock: Any) -> None:
    # On a server's clock the 100 new writes and the read must take less than
    # the history (3 s): ~30 ms per call, far above a loaded machine's. More
    # than 64 writes each way, so the amortised pruning runs among them.
    kv = _open(opener, history="3s")
    if kv is None:
        return
    start = kv.revision()
    for i in range(100):
        kv.set(f"old{i % 5}", i)
    clock.advance(3.5)  # the old changes are now beyond the history
    first_new = None
    for i in range(100):
        kv.set(f"new{i % 5}", i)
        if first_new is None:
            first_new = kv.revision()
    assert first_new is not None
    with pytest.raises(keyshelf.ChangesCompactedError) as info:
        _next(kv, _watch(kv, since=start))
    oldest = info.value.oldest
    # Every change younger than the history is still there.
    assert start < oldest <= first_new
    kept = _until_revision(kv, _watch(kv, since=oldest - 1), kv.revision())
    assert [e.value for e in kept if e.key.startswith("new")] == list(range(100))
