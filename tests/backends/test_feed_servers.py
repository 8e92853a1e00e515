"""The change feed on the server backends: what the conformance suite cannot see.

PostgreSQL: revisions follow COMMIT order (a transaction that wrote first but
commits last gets the later revision), the feed's tables and trigger exist
only once it is switched on, purges record "expire", the log stays within its
bound. Redis: a writer opened before the feed was switched on records from its
next write, a key Redis expired is recorded when keyshelf tidies it, the
stream stays within its bound. (Redis Cluster: tests/backends/test_redis_cluster.py.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

import keyshelf
from keyshelf.errors import ChangesCompactedError

from . import redis_store
from .test_postgres_server import connect, drop_schema, fresh_schema, server_url

psycopg = pytest.importorskip("psycopg")
redis = pytest.importorskip("redis")


def _changes(kv: Any, after: int = 0) -> list[tuple[int, str, str]]:
    backend = kv._backend
    return [(c.revision, c.type, c.key) for c in backend.changes(None, after, 10_000, 0)]


# -- PostgreSQL ----------------------------------------------------------------


@pytest.fixture
def pg() -> Iterator[tuple[str, str]]:
    url = server_url()
    schema = fresh_schema()
    try:
        yield url, schema
    finally:
        drop_schema(schema)


def _pg_tables(url: str, schema: str) -> set[str]:
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r'",
            (schema,),
        ).fetchall()
    return {name for (name,) in rows}


def _pg_triggers(url: str, schema: str) -> list[str]:
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT t.tgname FROM pg_trigger t WHERE t.tgrelid = %s::regclass "
            "AND NOT t.tgisinternal ORDER BY 1",
            (f'"{schema}"."kv"',),
        ).fetchall()
    return [name for (name,) in rows]


def test_postgres_feed_exists_only_once_switched_on(pg: tuple[str, str]) -> None:
    url, schema = pg
    with keyshelf.open(url, schema=schema) as kv:
        kv.set("a", 1)
        assert _pg_tables(url, schema) == {"kv", "kv_meta"}
        assert _pg_triggers(url, schema) == []
        assert kv._backend.changes_enabled() is False
    with keyshelf.open(url, schema=schema, history=100) as kv:
        kv.set("a", 2)
        assert _pg_tables(url, schema) == {"kv", "kv_meta", "kv_feed", "kv_log"}
        assert _pg_triggers(url, schema) == ["kv_feed"]
    # Reopening (without history=) accepts the store with its trigger, and records.
    with keyshelf.open(url, schema=schema) as kv:
        kv.set("a", 3)
        assert kv._backend.changes_enabled() is True
        assert _changes(kv) == [(1, "set", "a"), (2, "set", "a")]
    # Switching on again only changes the retention.
    with keyshelf.open(url, schema=schema, history="1h") as kv:
        assert _pg_triggers(url, schema) == ["kv_feed"]
        assert kv.revision() == 2


def test_postgres_revisions_follow_commit_order(pg: tuple[str, str]) -> None:
    """A transaction that wrote first but commits last gets the later revision.

    With a sequence, A would take revision 1 at its INSERT and B revision 2;
    a watcher that read B's change (after=2) would never see A's. Here the
    revision is taken at COMMIT, so the feed is exactly the commit order.
    """
    url, schema = pg
    with keyshelf.open(url, schema=schema, history=100) as kv:
        with connect(url) as other:
            with other.transaction():
                other.execute(
                    f'INSERT INTO "{schema}".kv (ns, key, tag, ival, created_at, updated_at, '
                    "version) VALUES ('default', 'a', 'i', 1, 0, 0, 1)"
                )
                kv.set("b", 2)  # commits while A is still open
                assert kv.revision() == 1
                assert _changes(kv) == [(1, "set", "b")]
            assert kv.revision() == 2
        assert _changes(kv) == [(1, "set", "b"), (2, "set", "a")]
        assert _changes(kv, 1) == [(2, "set", "a")]


def test_postgres_a_writer_open_before_switching_on_records(pg: tuple[str, str]) -> None:
    url, schema = pg
    with keyshelf.open(url, schema=schema) as writer:
        writer.set("before", 1)
        with keyshelf.open(url, schema=schema, history=100):
            pass
        writer.set("after", 2)  # the trigger is in the database: no reopen needed
        writer.delete("before")
        assert _changes(writer) == [(1, "set", "after"), (2, "delete", "before")]


def test_postgres_purge_records_expire(pg: tuple[str, str]) -> None:
    url, schema = pg
    with keyshelf.open(url, schema=schema, history=100) as kv:
        kv.set("soon", 1, ttl=0.001)
        kv.set("also", 2, ttl=0.001)
        kv.set("kept", 3)
        time.sleep(0.05)  # the server's clock expires them
        kv.delete("also")  # removed by a delete: "delete", with no prev (it had expired)
        assert kv.delete_expired() == 1
        assert _changes(kv)[3:] == [(4, "delete", "also"), (5, "expire", "soon")]
        removed = kv._backend.changes(None, 3, 10, 0)
        assert [c.prev for c in removed] == [None, None]


def test_postgres_log_stays_within_its_count_bound(pg: tuple[str, str]) -> None:
    url, schema = pg
    with keyshelf.open(url, schema=schema, history=50) as kv:
        for i in range(1000):
            kv.set(f"k{i % 7}", i)
        with connect(url) as conn:
            (kept,) = conn.execute(f'SELECT count(*) FROM "{schema}".kv_log').fetchone()
        assert 50 <= kept <= 50 + 100  # the bound plus the documented slack
        with pytest.raises(ChangesCompactedError) as caught:
            kv._backend.changes(None, 0, 10, 0)
        oldest = caught.value.oldest
        tail = kv._backend.changes(None, oldest - 1, 10_000, 0)
        assert tail[0].revision == oldest and tail[-1].revision == 1000
        assert len(tail) == kept


def test_postgres_rings_the_doorbell_only_while_a_watcher_waits(pg: tuple[str, str]) -> None:
    """NOTIFY costs each commit a lock: it is sent only while a watcher keeps the bell on."""
    url, schema = pg
    with keyshelf.open(url, schema=schema, history=100) as kv, connect(url) as ear:
        backend = kv._backend
        ear.execute(f"LISTEN {backend._feed.channel}")
        kv.set("quiet", 1)  # committed before set() returned: a NOTIFY would be queued now
        assert list(ear.notifies(timeout=0.2, stop_after=1)) == []
        backend.wait_changes(kv.revision(), 0.01)  # a waiting watcher turns the bell on
        kv.set("heard", 2)
        assert len(list(ear.notifies(timeout=5, stop_after=1))) == 1


def test_postgres_duration_bound_prunes_old_changes(pg: tuple[str, str]) -> None:
    url, schema = pg
    with keyshelf.open(url, schema=schema, history="20ms") as kv:
        for i in range(10):
            kv.set("old", i)
        time.sleep(0.1)  # older than the bound now
        for i in range(64):
            kv.set("new", i)  # the 64th revision applies the duration bound
        with pytest.raises(ChangesCompactedError) as caught:
            kv._backend.changes(None, 0, 10, 0)
        assert caught.value.oldest > 10
        assert {key for _, _, key in _changes(kv, caught.value.oldest - 1)} == {"new"}


def test_postgres_a_transaction_shares_one_revision_per_feed(pg: tuple[str, str]) -> None:
    """One revision per transaction and per table, even when it writes two feeds' tables."""
    url, schema = pg
    other_schema = fresh_schema()
    try:
        with (
            keyshelf.open(url, schema=schema, history=100) as kv,
            keyshelf.open(url, schema=other_schema, history=100) as other,
        ):
            other.set("first", 0)
            with connect(url) as conn, conn.transaction():
                for target, key in ((schema, "a"), (other_schema, "x"), (schema, "b")):
                    conn.execute(
                        f'INSERT INTO "{target}".kv (ns, key, tag, ival, created_at, '
                        f"updated_at, version) VALUES ('default', '{key}', 'i', 1, 0, 0, 1)"
                    )
            kv.set("c", 3)
            assert _changes(kv) == [(1, "set", "a"), (1, "set", "b"), (3, "set", "c")]
            assert _changes(other) == [(1, "set", "first"), (2, "set", "x")]
            assert kv.revision() == 3 and other.revision() == 2
            assert _changes(kv, 1) == [(3, "set", "c")]  # after a revision: none of it again
    finally:
        drop_schema(other_schema)


def test_postgres_concurrent_writers_reach_a_poller_once_in_order(pg: tuple[str, str]) -> None:
    """Four writers commit at once; a reader following changes() misses and repeats nothing.

    Revisions are drawn under a lock held until the commit is visible, so a
    reader that moved past revision r never sees a change below r appear later.
    """
    import threading

    url, schema = pg
    with keyshelf.open(url, schema=schema, history=100_000) as kv:
        done = threading.Event()
        errors: list[BaseException] = []

        def write(w: int) -> None:
            try:
                with keyshelf.open(url, schema=schema) as mine:
                    for i in range(120):
                        if i % 10 == 0:
                            mine.mset({f"w{w}:m{i}": i, f"w{w}:n{i}": i})
                        else:
                            mine.set(f"w{w}:k{i % 7}", i)
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        seen: list[tuple[int, str, str]] = []
        after = 0
        while True:
            finished = done.is_set()
            batch = kv._backend.changes(None, after, 25, 0)
            seen += [(c.revision, c.type, c.key) for c in batch]
            after = batch[-1].revision if batch else after
            if finished and not batch:
                break
            if not any(thread.is_alive() for thread in threads):
                done.set()
        for thread in threads:
            thread.join()
        assert errors == []
        assert seen == _changes(kv)
        assert len(seen) == 4 * (108 + 12 * 2)
        assert [r for r, _, _ in seen] == sorted(r for r, _, _ in seen)


def test_postgres_feed_of_the_earlier_layout_is_replaced(pg: tuple[str, str]) -> None:
    """A feed switched on by the earlier layout (a counter row) goes on from its revision."""
    url, schema = pg
    with keyshelf.open(url, schema=schema) as kv:
        kv.set("a", 1)
    with connect(url) as conn:
        conn.execute(
            f'CREATE TABLE "{schema}".kv_feed (id integer PRIMARY KEY, rev bigint NOT NULL, '
            "pruned bigint NOT NULL, kept bigint NOT NULL, history_count bigint, "
            "history_ms bigint, bell bigint NOT NULL DEFAULT 0, xid bigint NOT NULL DEFAULT 0, "
            "seq integer NOT NULL DEFAULT 0)"
        )
        conn.execute(f'INSERT INTO "{schema}".kv_feed VALUES (1, 42, 0, 0, 100, NULL)')
        conn.execute(f'CREATE TABLE "{schema}".kv_log (rev bigint, seq integer)')
    with keyshelf.open(url, schema=schema, history=100) as kv:
        assert kv.revision() == 42  # never goes down
        with pytest.raises(ChangesCompactedError) as caught:
            kv._backend.changes(None, 41, 10, 0)
        assert caught.value.oldest == 43
        kv.set("b", 2)
        assert _changes(kv, 42) == [(43, "set", "b")]
        assert _pg_triggers(url, schema) == ["kv_feed"]


# -- Redis ---------------------------------------------------------------------


@pytest.fixture
def rd() -> Iterator[tuple[str, str]]:
    with redis_store() as (url, options):
        yield url, options["prefix"]


def test_redis_feed_keys_exist_only_once_switched_on(rd: tuple[str, str]) -> None:
    url, prefix = rd
    raw = redis.Redis.from_url(url)
    try:
        with keyshelf.open(url, prefix=prefix) as kv:
            kv.set("a", 1)
            kv.delete("a")
            assert not raw.exists(f"{prefix}:#feed", f"{prefix}:#log")
        with keyshelf.open(url, prefix=prefix, history=100) as kv:
            kv.set("a", 2)
            assert raw.hget(f"{prefix}:#feed", "rev") == b"1"
            assert raw.xlen(f"{prefix}:#log") == 1
    finally:
        raw.close()


def test_redis_a_writer_open_before_switching_on_records(rd: tuple[str, str]) -> None:
    url, prefix = rd
    with keyshelf.open(url, prefix=prefix) as writer:
        writer.set("before", 1)
        with keyshelf.open(url, prefix=prefix, history=100):
            pass
        writer.set("after", 2)  # the script reads the feed hash: no reopen needed
        writer.mset({"x": 1, "y": 2})
        writer.delete("before")
        assert _changes(writer) == [
            (1, "set", "after"),
            (2, "set", "x"),
            (2, "set", "y"),
            (3, "delete", "before"),
        ]


def test_redis_native_expiry_is_recorded_when_tidied(rd: tuple[str, str]) -> None:
    """Redis expires keys silently: the "expire" change comes when keyshelf tidies."""
    url, prefix = rd
    with keyshelf.open(url, prefix=prefix, history=100) as kv:
        kv.set("soon", 1, ttl=0.01)
        deadline = time.monotonic() + 5
        while kv._backend.client.exists(f"{prefix}:{{default}}:soon"):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert _changes(kv) == [(1, "set", "soon")]  # gone, not recorded yet
        assert kv.key_count() == 0  # counting tidies the index
        assert _changes(kv) == [(1, "set", "soon"), (2, "expire", "soon")]
        assert kv.delete_expired() == 0
        assert kv.revision() == 2  # recorded once


def test_redis_stream_stays_within_its_count_bound(rd: tuple[str, str]) -> None:
    url, prefix = rd
    with keyshelf.open(url, prefix=prefix, history=50) as kv:
        for i in range(1000):
            kv.set(f"k{i % 7}", i)
        kept = kv._backend.client.xlen(f"{prefix}:#log")
        assert 50 <= kept <= 50 + 100  # the bound plus the documented slack
        with pytest.raises(ChangesCompactedError) as caught:
            kv._backend.changes(None, 0, 10, 0)
        oldest = caught.value.oldest
        tail = kv._backend.changes(None, oldest - 1, 10_000, 0)
        assert tail[0].revision == oldest and tail[-1].revision == 1000
        assert len(tail) == kept


def test_redis_multi_key_transaction_is_one_revision(rd: tuple[str, str]) -> None:
    """update_many (WATCH/MULTI of several scripts) shares one revision."""
    url, prefix = rd
    with keyshelf.open(url, prefix=prefix, history=100) as kv:
        kv.mset({"a": 1, "b": 2})

        def move(tx: Any) -> None:
            tx.set("a", tx.get("a") - 1)
            tx.set("b", tx.get("b") + 1)
            tx.delete("c")

        kv.set("c", 0)
        kv.transaction(move)
        kv.set("d", 1)
        assert _changes(kv, 2) == [
            (3, "set", "a"),
            (3, "set", "b"),
            (3, "delete", "c"),
            (4, "set", "d"),
        ]
        raw = kv._backend.client
        assert raw.hget(f"{prefix}:#feed", "j") is None  # the MULTI's mark is gone


def test_redis_duration_bound_prunes_old_changes(rd: tuple[str, str]) -> None:
    url, prefix = rd
    with keyshelf.open(url, prefix=prefix, history="20ms") as kv:
        for i in range(10):
            kv.set("old", i)
        time.sleep(0.1)  # older than the bound now
        for i in range(54):
            kv.set("new", i)  # the 64th revision applies the duration bound
        with pytest.raises(ChangesCompactedError) as caught:
            kv._backend.changes(None, 0, 10, 0)
        assert caught.value.oldest > 10
        assert {key for _, _, key in _changes(kv, caught.value.oldest - 1)} == {"new"}
