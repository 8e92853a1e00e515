"""S3 batches: all or nothing, visible at once through one commit object.

A multi-key batch (``mset``, ``delete_many``, ``delete_pattern``, ``clear``,
import) writes a pending object per key, holding the new and the prior body,
then creates ``b/<batch>`` with ``If-None-Match: *`` (docs/s3.md). These
tests stop real writer processes at each step (``os._exit``: no cleanup runs,
as in a crash), race batches from four processes, and check what every other
client sees.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

import keyshelf
from keyshelf.backends._s3_io import COMMITTED

from . import s3_server


@pytest.fixture
def where() -> Iterator[tuple[str, dict[str, Any]]]:
    with s3_server.s3_store() as found:
        yield found


def _raw_store(options: dict[str, Any]) -> Any:
    """A plain obstore client of the test bucket, for looking behind keyshelf."""
    from obstore.store import S3Store

    config: dict[str, Any] = {"endpoint": options["endpoint_url"], "region": "us-east-1"}
    config["virtual_hosted_style_request"] = False
    if "aws_access_key_id" in options:
        config["access_key_id"] = options["aws_access_key_id"]
        config["secret_access_key"] = options["aws_secret_access_key"]
    return S3Store(s3_server.BUCKET, config=config, client_options={"allow_http": True})  # type: ignore[arg-type]


def _raw_names(url: str, options: dict[str, Any], under: str) -> list[str]:
    import obstore

    store = _raw_store(options)
    prefix = url.removeprefix(f"s3://{s3_server.BUCKET}/")
    return [
        str(meta["path"]).removeprefix(prefix + "/")
        for page in obstore.list(store, f"{prefix}/{under}", chunk_size=1000)
        for meta in page
    ]


def _leftovers(url: str, options: dict[str, Any]) -> list[str]:
    """Commit objects and markers: none is left once a batch has finished."""
    return _raw_names(url, options, "b") + _raw_names(url, options, "x")


def _is_commit(kv: Any, name: str) -> bool:
    return str(name).startswith(kv._backend._layout.root + "b/")


def _crash(url: str, options: dict[str, Any], when: str, call: str, ahead: float) -> None:
    """Run one batch and die (os._exit) just before or just after its commit.

    ``ahead``: seconds the process's clock runs ahead (a batch another
    process left undecided is then stale at once, instead of after 10 s).
    """
    with keyshelf.open(url, clock=lambda: time.time() + ahead, **options) as kv:
        io = kv._backend._io
        real_put = io.put

        def put(name: str, body: bytes, **conditions: Any) -> str:
            # Its own commit, not the abort of a batch a dead process left.
            committing = _is_commit(kv, name) and body == COMMITTED
            if when == "before commit" and committing:
                os._exit(3)
            etag = real_put(name, body, **conditions)
            if when == "after commit" and committing:
                os._exit(3)
            return str(etag)

        io.put = put
        if call == "mset":
            kv.mset({"a": "new", "b": "new", "c": "new"})
        elif call == "delete_pattern":
            kv.delete_pattern("*")
        else:
            kv.delete_many(["a", "b"])
    raise AssertionError("the batch should have stopped the process")


def _run_and_crash(
    where: tuple[str, dict[str, Any]], when: str, call: str, ahead: float = 0
) -> None:
    url, options = where
    context = multiprocessing.get_context("spawn")
    worker = context.Process(target=_crash, args=(url, options, when, call, ahead))
    worker.start()
    worker.join(120)
    assert worker.exitcode == 3


def _pending(url: str, options: dict[str, Any]) -> list[str]:
    """Names of the objects still holding a batch's pending write."""
    import obstore

    store = _raw_store(options)
    prefix = url.removeprefix(f"s3://{s3_server.BUCKET}/")
    return [
        name
        for name in _raw_names(url, options, "d")
        if bytes(obstore.get(store, f"{prefix}/{name}").bytes()).startswith(b"KSP\n")
    ]


def test_a_batch_whose_writer_died_before_its_commit_is_invisible(
    where: tuple[str, dict[str, Any]],
) -> None:
    url, options = where
    with keyshelf.open(url, **options) as kv:
        kv.mset({"a": "old", "b": "old"})
    _run_and_crash(where, "before commit", "mset")
    assert sorted(_pending(url, options)) == ["d/default/a", "d/default/b", "d/default/c"]
    with keyshelf.open(url, readonly=True, **options) as reader:
        # Reads, listings, counts and namespaces all see the state before the batch.
        assert reader.dump() == {"a": "old", "b": "old"}
        assert reader.keys() == ["a", "b"] and reader.key_count() == 2
        assert reader.get("c") is None and reader.exists("c") is False
        assert reader.get_many(["a", "b", "c"]) == {"a": "old", "b": "old"}
        assert reader.stats()["total_keys"] == 2
    # A writer of one of its keys waits for the batch; once the batch is stale
    # (here: the writer's clock is past its start by more than 10 s) the writer
    # aborts it, and every key of the batch keeps its prior value.
    later = time.time() + 60
    with keyshelf.open(url, clock=lambda: later, **options) as kv:
        assert kv.increment("n") == 1  # another key: no wait at all
        assert kv.append("a", "!") == "old!"
        assert kv.dump() == {"a": "old!", "b": "old", "n": 1}
        entry = kv.get_entry("b")
        assert entry is not None and entry.version == 1
        # A new batch over the same keys settles them and commits.
        assert kv.mset({"b": 2, "c": 3}) is True
        assert kv.dump() == {"a": "old!", "b": 2, "c": 3, "n": 1}
    assert _raw_names(url, options, "b") != []  # the dead batch's "aborted"
    # An hour on, the sweep removes what the dead batch left: intents, commit object.
    later = time.time() + 2 * 3600
    with keyshelf.open(url, clock=lambda: later, **options) as kv:
        assert kv.delete_expired() == 0
        assert kv.dump() == {"a": "old!", "b": 2, "c": 3, "n": 1}
    assert _pending(url, options) == [] and _leftovers(url, options) == []


def test_a_batch_whose_writer_died_after_its_commit_is_visible_whole(
    where: tuple[str, dict[str, Any]],
) -> None:
    url, options = where
    with keyshelf.open(url, **options) as kv:
        kv.mset({"a": "old", "b": "old"})
    _run_and_crash(where, "after commit", "mset")
    assert len(_pending(url, options)) == 3  # nobody rolled it forward
    with keyshelf.open(url, readonly=True, **options) as reader:
        assert reader.dump() == {"a": "new", "b": "new", "c": "new"}
        assert reader.keys() == ["a", "b", "c"] and reader.key_count() == 3
    with keyshelf.open(url, **options) as kv:
        # A writer settles the key it writes (no waiting: the batch is decided).
        assert kv.append("a", "!") == "new!"
        entry = kv.get_entry("b")
        assert entry is not None and entry.version == 2
        assert kv.dump() == {"a": "new!", "b": "new", "c": "new"}
    # The cleanup sweep settles the rest once the intents are an hour old.
    later = time.time() + 2 * 3600
    with keyshelf.open(url, clock=lambda: later, **options) as kv:
        assert kv.delete_expired() == 0
        assert _pending(url, options) == []
        assert kv.dump() == {"a": "new!", "b": "new", "c": "new"}
    assert _leftovers(url, options) == []


@pytest.mark.parametrize("call", ["delete_pattern", "delete_many"])
def test_a_delete_batch_is_all_or_nothing_across_a_crash(
    where: tuple[str, dict[str, Any]], call: str
) -> None:
    url, options = where
    with keyshelf.open(url, **options) as kv:
        kv.mset({"a": 1, "b": 2, "c": 3})
    _run_and_crash(where, "before commit", call)
    with keyshelf.open(url, **options) as kv:
        assert kv.dump() == {"a": 1, "b": 2, "c": 3}
    _run_and_crash(where, "after commit", call, ahead=60)
    with keyshelf.open(url, **options) as kv:
        assert kv.dump() == ({} if call == "delete_pattern" else {"c": 3})
        assert kv.list_namespaces() == ([] if call == "delete_pattern" else ["default"])


@pytest.mark.parametrize("api", ["sync", "async"])
def test_a_batch_failing_part_way_changes_nothing(
    where: tuple[str, dict[str, Any]], api: str
) -> None:
    # An object another program wrote in keyshelf's place cannot be read: the
    # batch raises, and the keys it had already prepared keep their values.
    import asyncio

    import obstore

    url, options = where
    store = _raw_store(options)
    prefix = url.removeprefix(f"s3://{s3_server.BUCKET}/")
    with keyshelf.open(url, **options) as kv:
        kv.mset({"a": 1, "z": 26})
    obstore.put(store, f"{prefix}/d/default/m", b"not a keyshelf record")

    def sync_call() -> None:
        with keyshelf.open(url, **options) as kv:
            kv.mset({"a": 10, "b": 20, "m": 0, "y": 25, "z": 260})

    async def async_call() -> None:
        async with keyshelf.open_async(url, **options) as kv:
            await kv.mset({"a": 10, "b": 20, "m": 0, "y": 25, "z": 260})

    with pytest.raises(keyshelf.BackendError, match="Corrupt S3 object"):
        sync_call() if api == "sync" else asyncio.run(async_call())
    with keyshelf.open(url, **options) as kv:
        assert kv.get_many(["a", "b", "y", "z"]) == {"a": 1, "z": 26}
    assert _pending(url, options) == []
    assert _leftovers(url, options) == []


def test_a_commit_whose_reply_was_lost_is_not_undone(where: tuple[str, dict[str, Any]]) -> None:
    # The client retries a commit PUT whose connection dropped; the retry is
    # refused (412) because the first one landed. The batch is committed.
    from keyshelf.backends._s3_io import ConflictError

    url, options = where
    with keyshelf.open(url, **options) as kv:
        io = kv._backend._io
        real_put = io.put

        def put(name: str, body: bytes, **conditions: Any) -> str:
            etag = real_put(name, body, **conditions)
            if _is_commit(kv, name):
                raise ConflictError(name)
            return str(etag)

        io.put = put
        assert kv.mset({"a": 1, "b": 2}) is True
        assert kv.dump() == {"a": 1, "b": 2}
    assert _pending(url, options) == [] and _leftovers(url, options) == []


def test_a_batch_aborted_by_another_writer_is_started_afresh(
    where: tuple[str, dict[str, Any]],
) -> None:
    # Another client aborts the batch just before its commit (as a writer that
    # waited on it too long would): the commit is refused, the batch is undone
    # and written again under a new id, and applied exactly once.
    from keyshelf.backends._s3_io import ABORTED

    url, options = where
    with keyshelf.open(url, **options) as kv, keyshelf.open(url, **options) as other:
        kv.mset({"a": 1, "b": 1})
        io = kv._backend._io
        real_put = io.put
        aborted: list[str] = []

        def put(name: str, body: bytes, **conditions: Any) -> str:
            if _is_commit(kv, name) and not aborted:
                aborted.append(name)
                other._backend._io.put(name, ABORTED, create=True)
            return str(real_put(name, body, **conditions))

        io.put = put
        kv.mset({"a": 2, "b": 2})
        assert aborted and kv.dump() == {"a": 2, "b": 2}
        for key in ("a", "b"):
            entry = kv.get_entry(key)
            assert entry is not None and entry.version == 2
    assert _pending(url, options) == [] and _leftovers(url, options) == []


# -- four processes ------------------------------------------------------------------


def _batches(url: str, options: dict[str, Any], me: int, rounds: int, start: Any) -> None:
    keys = ["a", "b", "c", "d"]
    order = keys[me:] + keys[:me]  # every process meets the others' keys in another order
    if me % 2:  # half of the processes through the async API
        asyncio.run(_batches_async(url, options, me, rounds, start, order))
        return
    with keyshelf.open(url, **options) as kv:
        start.wait()
        for i in range(rounds):
            kv.mset({key: f"{me}-{i}" for key in order})
            if i % 3 == 2:
                kv.increment("single")


async def _batches_async(
    url: str, options: dict[str, Any], me: int, rounds: int, start: Any, order: list[str]
) -> None:
    async with keyshelf.open_async(url, **options) as kv:
        start.wait()  # before any work of this process: nothing else runs on its loop
        for i in range(rounds):
            await kv.mset({key: f"{me}-{i}" for key in order})
            if i % 3 == 2:
                await kv.increment("single")


@pytest.mark.parametrize("rounds", [8, pytest.param(100, marks=pytest.mark.stress)])
def test_batches_from_four_processes_are_each_applied_whole(
    where: tuple[str, dict[str, Any]], rounds: int
) -> None:
    # Two processes through the sync API, two through the async one.
    url, options = where
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    workers = [
        context.Process(target=_batches, args=(url, options, me, rounds, start)) for me in range(4)
    ]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(600)
        assert worker.exitcode == 0
    with keyshelf.open(url, **options) as kv:
        values = kv.get_many(["a", "b", "c", "d"])
        # The last batch to commit wrote all four keys; every batch wrote every key once.
        assert len(set(values.values())) == 1
        for key in "abcd":
            entry = kv.get_entry(key)
            assert entry is not None and entry.version == 4 * rounds
        assert kv.get("single") == 4 * (rounds // 3)
    assert _pending(url, options) == [] and _leftovers(url, options) == []


# -- multi-key commits (update_many: atomic(), transaction()) -------------------------


def _moves(me: int, rounds: int) -> list[tuple[str, str, int]]:
    """(source, target, amount) of each transfer process ``me`` makes."""
    accounts = "abcd"
    return [(accounts[(me + i) % 4], accounts[(me + 1 + i) % 4], me + 1) for i in range(rounds)]


def _transfers(url: str, options: dict[str, Any], me: int, rounds: int, start: Any) -> None:
    with keyshelf.open(url, **options) as kv:
        start.wait()
        for source, target, amount in _moves(me, rounds):

            def move(
                tx: Any, source: str = source, target: str = target, amount: int = amount
            ) -> None:
                tx.set(source, tx.get(source) - amount)
                tx.set(target, tx.get(target) + amount)
                tx.increment("moves")

            kv.transaction(move, retries=1000)


@pytest.mark.parametrize("rounds", [7, pytest.param(101, marks=pytest.mark.stress)])
def test_transactions_from_four_processes_keep_the_total(
    where: tuple[str, dict[str, Any]], rounds: int
) -> None:
    # rounds is not a multiple of 4, so the balances move.
    url, options = where
    with keyshelf.open(url, **options) as kv:
        kv.mset({"a": 100, "b": 100, "c": 100, "d": 100, "moves": 0})
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    workers = [
        context.Process(target=_transfers, args=(url, options, me, rounds, start))
        for me in range(4)
    ]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(600)
        assert worker.exitcode == 0
    with keyshelf.open(url, **options) as kv:
        # Transfers commute: whatever the order, every one applied once gives these.
        expected = dict.fromkeys("abcd", 100)
        for me in range(4):
            for source, target, amount in _moves(me, rounds):
                expected[source] -= amount
                expected[target] += amount
        assert kv.get_many(["a", "b", "c", "d"]) == expected
        assert kv.get("moves") == 4 * rounds
    assert _pending(url, options) == [] and _leftovers(url, options) == []


def _crash_commit(url: str, options: dict[str, Any]) -> None:
    with keyshelf.open(url, **options) as kv:
        io = kv._backend._io
        real_put = io.put

        def put(name: str, body: bytes, **conditions: Any) -> str:
            if _is_commit(kv, name) and body == COMMITTED:
                os._exit(3)
            return str(real_put(name, body, **conditions))

        io.put = put
        kv.atomic().check("a", 1).check("absent", None).set("a", 2).delete("b").commit()
    raise AssertionError("the commit should have stopped the process")


def test_a_multi_key_commit_whose_writer_died_is_invisible_and_holds_its_keys(
    where: tuple[str, dict[str, Any]],
) -> None:
    # Even the keys a commit only checks are held (a pending object each) until
    # it is decided: a checked-absent key cannot be created behind its back.
    url, options = where
    with keyshelf.open(url, **options) as kv:
        kv.mset({"a": 1, "b": 1})
    context = multiprocessing.get_context("spawn")
    worker = context.Process(target=_crash_commit, args=(url, options))
    worker.start()
    worker.join(120)
    assert worker.exitcode == 3
    assert sorted(_pending(url, options)) == ["d/default/a", "d/default/absent", "d/default/b"]
    with keyshelf.open(url, readonly=True, **options) as reader:
        assert reader.dump() == {"a": 1, "b": 1}
    later = time.time() + 60  # the dead commit is stale for this writer
    with keyshelf.open(url, clock=lambda: later, **options) as kv:
        assert kv.setnx("absent", "mine") is True
        outcome = kv.atomic().check("a", 1).set("a", 3).delete("b").commit()
        assert outcome.ok
        assert kv.dump() == {"a": 3, "absent": "mine"}


@pytest.mark.parametrize("call", ["mset", "commit"])
def test_a_pending_write_whose_reply_was_lost_is_undone_with_the_batch(
    where: tuple[str, dict[str, Any]], call: str
) -> None:
    # The pending object of "b" lands but its reply is lost (the client gives
    # up): the batch raises, and the object it may have written is read back
    # and undone, so neither a read nor a listing ever shows "b".
    url, options = where
    with keyshelf.open(url, **options) as kv:
        kv.set("a", 1)
        io = kv._backend._io
        real_put = io.put
        lost: list[str] = []

        def put(name: str, body: bytes, **conditions: Any) -> str:
            etag = real_put(name, body, **conditions)
            if name.endswith("/d/default/b") and body.startswith(b"KSP\n") and not lost:
                lost.append(name)
                raise keyshelf.BackendUnavailableError("S3 test: the reply was lost")
            return str(etag)

        io.put = put
        with pytest.raises(keyshelf.BackendUnavailableError, match="reply was lost"):
            if call == "mset":
                kv.mset({"a": 10, "b": 20, "c": 30})
            else:
                kv.atomic().set("a", 10).set("b", 20).set("c", 30).commit()
        assert lost
        assert kv.dump() == {"a": 1} and kv.keys() == ["a"] and kv.key_count() == 1
    assert _pending(url, options) == [] and _leftovers(url, options) == []


def _snapshots(url: str, options: dict[str, Any], start: Any, seen: Any) -> None:
    with keyshelf.open(url, **options) as kv:
        start.wait()
        for _ in range(10):

            def look(tx: Any) -> list[Any]:
                values = [tx.get(key) for key in "abcd"]
                tx.set("seen", values[0])  # a mutation, so the reads are checked at commit
                return values

            seen.put(kv.transaction(look, retries=1000))


def test_a_transaction_never_sees_half_a_batch_of_another_process(
    where: tuple[str, dict[str, Any]],
) -> None:
    url, options = where
    with keyshelf.open(url, **options) as kv:
        kv.mset(dict.fromkeys("abcd", "start"))
    context = multiprocessing.get_context("spawn")
    start, seen = context.Event(), context.Queue()
    workers = [
        context.Process(target=_batches, args=(url, options, me, 6, start)) for me in range(3)
    ]
    workers.append(context.Process(target=_snapshots, args=(url, options, start, seen)))
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(600)
        assert worker.exitcode == 0
    views = [seen.get(timeout=5) for _ in range(10)]
    # Every batch writes one value to all four keys: a consistent view shows one value.
    assert all(len(set(view)) == 1 for view in views), views


# -- in-flight batches met by other clients ---------------------------------------


def test_a_writer_meeting_a_batch_in_flight_waits_for_its_commit(
    where: tuple[str, dict[str, Any]],
) -> None:
    # Another store (a thread here, so the batch can be held at its commit)
    # appends to a key the batch holds: it waits, and applies its append on
    # top of the batch's value once the batch commits; readers meanwhile see
    # the value from before the batch.
    import threading

    url, options = where
    with keyshelf.open(url, **options) as kv, keyshelf.open(url, **options) as other:
        kv.mset({"a": "old", "b": "old"})
        waiting = threading.Event()
        real_sleep = other._backend._io.sleep

        def sleep(seconds: float) -> None:
            waiting.set()  # the other writer polls the batch's commit object
            real_sleep(seconds)

        other._backend._io.sleep = sleep
        io = kv._backend._io
        real_put = io.put
        seen: list[Any] = []

        def put(name: str, body: bytes, **conditions: Any) -> str:
            if _is_commit(kv, name) and body == COMMITTED:
                assert waiting.wait(30)
                with keyshelf.open(url, readonly=True, **options) as reader:
                    seen.append(reader.get_many(["a", "b"]))
            return str(real_put(name, body, **conditions))

        result: list[Any] = []
        appender = threading.Thread(target=lambda: result.append(other.append("a", "!")))

        def start_appender(name: str, body: bytes, **conditions: Any) -> str:
            # Once the pending objects are written, before the commit.
            if _is_commit(kv, name) and not appender.is_alive() and not result:
                appender.start()
            return put(name, body, **conditions)

        io.put = start_appender
        kv.mset({"a": "new", "b": "new"})
        appender.join(30)
        assert seen == [{"a": "old", "b": "old"}]
        assert result == ["new!"]
        assert kv.dump() == {"a": "new!", "b": "new"}
        entry = kv.get_entry("a")
        assert entry is not None and entry.version == 3


def test_delete_pattern_spares_a_key_created_while_it_runs(
    where: tuple[str, dict[str, Any]],
) -> None:
    # The documented limit: delete_pattern deletes, all at once, the keys its
    # listing found; a key another client creates after the listing survives,
    # as if it had been written just after the call.
    url, options = where
    with keyshelf.open(url, **options) as kv, keyshelf.open(url, **options) as other:
        kv.mset({"p1": 1, "p2": 2, "q": 3})
        io = kv._backend._io
        real_put = io.put

        def put(name: str, body: bytes, **conditions: Any) -> str:
            if _is_commit(kv, name) and body == COMMITTED and not other.exists("p3"):
                other.set("p3", 3)
            return str(real_put(name, body, **conditions))

        io.put = put
        assert kv.delete_pattern("p*") == 2
        assert kv.dump() == {"p3": 3, "q": 3}


def _rewrite_forever(url: str, options: dict[str, Any], started: Any) -> None:
    with keyshelf.open(url, clock=lambda: time.time() + 3600, **options) as kv:
        started.set()
        i = 0
        while True:
            i += 1
            kv.mset({key: f"{os.getpid()}-{i}" for key in "abcdefgh"})


@pytest.mark.stress
def test_batches_killed_at_random_points_are_never_seen_in_part(
    where: tuple[str, dict[str, Any]],
) -> None:
    # SIGKILL a process rewriting eight keys in a loop, 20 times at random
    # moments; each time every reader must see one batch on all eight keys
    # (the moment of the kill only decides which), and a writer carries on.
    import random
    import signal

    url, options = where
    with keyshelf.open(url, **options) as kv:
        kv.mset(dict.fromkeys("abcdefgh", "start"))
    context = multiprocessing.get_context("spawn")
    later = time.time() + 7200  # dead batches are stale at once for the checker
    for _ in range(20):
        started = context.Event()
        worker = context.Process(target=_rewrite_forever, args=(url, options, started))
        worker.start()
        assert started.wait(60)
        time.sleep(random.uniform(0.05, 0.5))
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
        worker.join(30)
        with keyshelf.open(url, readonly=True, **options) as reader:
            values = reader.get_many(list("abcdefgh"))
            assert len(values) == 8 and len(set(values.values())) == 1, values
            assert len(set(reader.dump().values())) == 1
        with keyshelf.open(url, clock=lambda: later, **options) as kv:
            kv.set("a", kv.get("a"))  # a writer settles what the kill left on "a"
            assert len(set(kv.get_many(list("abcdefgh")).values())) == 1
