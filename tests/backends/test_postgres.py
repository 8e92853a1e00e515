"""PostgreSQL-specific guarantees: processes, schema races, outages, URLs, errors, layout.

Everything runs against a real server: the test server (see
``test_postgres_server.py``) with a schema of the test's own, or a throwaway
cluster of our own (``initdb`` + ``pg_ctl`` on a free port) where a test stops
and restarts the server. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import multiprocessing
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

import keyshelf

from .test_postgres_server import (
    Cluster,
    admin,
    drop_schema,
    free_port,
    fresh_schema,
    server_binaries,
    server_url,
)

psycopg = pytest.importorskip("psycopg")


@pytest.fixture
def where() -> Iterator[tuple[str, str]]:
    """(url, schema) on the test server; the schema is dropped afterwards."""
    url = server_url()
    schema = fresh_schema()
    try:
        yield url, schema
    finally:
        drop_schema(schema)


@pytest.fixture
def kv(where: tuple[str, str]) -> Iterator[Any]:
    url, schema = where
    with keyshelf.open(url, schema=schema) as store:
        yield store


def table(schema: str, name: str = "kv") -> str:
    return f'"{schema}"."{name}"'


# -- processes -----------------------------------------------------------------------


def _increment_many(url: str, schema: str, count: int) -> None:
    with keyshelf.open(url, schema=schema) as kv:
        for _ in range(count):
            kv.increment("counter")


def _race_setnx(url: str, schema: str, who: int, barrier: Any, results: Any) -> None:
    with keyshelf.open(url, schema=schema) as kv:
        barrier.wait()
        results.put((who, kv.setnx("lock", who, ttl=30)))


def _open_fresh(url: str, schema: str, who: int, barrier: Any, results: Any) -> None:
    barrier.wait()
    try:
        with keyshelf.open(url, schema=schema) as kv:
            kv.set(f"opened-by-{who}", who)
        results.put((who, "ok"))
    except Exception as exc:  # reported to the parent, which fails the test
        results.put((who, f"{type(exc).__name__}: {exc}"))


def test_processes_incrementing_lose_nothing(where: tuple[str, str]) -> None:
    url, schema = where
    keyshelf.open(url, schema=schema).close()
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_increment_many, args=(url, schema, 2000)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=240)
        assert worker.exitcode == 0
    with keyshelf.open(url, schema=schema) as kv:
        assert kv.get("counter") == 8000
        assert kv.get_entry("counter").version == 8000


def test_processes_racing_setnx_have_one_winner(where: tuple[str, str]) -> None:
    url, schema = where
    keyshelf.open(url, schema=schema).close()
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    workers = [
        ctx.Process(target=_race_setnx, args=(url, schema, i, barrier, results)) for i in range(4)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    winners = [who for who, won in outcomes if won]
    assert len(winners) == 1
    with keyshelf.open(url, schema=schema) as kv:
        assert kv.get("lock") == winners[0]


def test_processes_creating_the_schema_at_once_all_succeed(where: tuple[str, str]) -> None:
    url, schema = where  # the schema does not exist yet
    ctx = multiprocessing.get_context("spawn")
    count = 4
    barrier, results = ctx.Barrier(count), ctx.Queue()
    workers = [
        ctx.Process(target=_open_fresh, args=(url, schema, i, barrier, results))
        for i in range(count)
    ]
    for worker in workers:
        worker.start()
    outcomes = dict(results.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
    assert outcomes == dict.fromkeys(range(count), "ok")
    with keyshelf.open(url, schema=schema) as kv:
        assert kv.keys() == [f"opened-by-{i}" for i in range(count)]
    rows = admin().execute(f"SELECT name, value FROM {table(schema, 'kv_meta')}").fetchall()
    assert rows == [("schema_version", "1")]


def test_threads_and_tasks_share_a_bounded_pool(where: tuple[str, str]) -> None:
    url, schema = where
    with keyshelf.open(url, schema=schema, max_size=3) as kv:

        def work() -> None:
            for _ in range(100):
                kv.increment("counter")

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert kv.get("counter") == 800

    async def tasks() -> int:
        async with keyshelf.open_async(url, schema=schema, max_size=3) as akv:
            await asyncio.gather(*(akv.increment("counter") for _ in range(300)))
            return int(await akv.get("counter"))

    assert asyncio.run(tasks()) == 1100


# -- opening: URLs, options, schema ------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"bogus": "1"},
        {"schema": "no-dashes"},
        {"schema": "x" * 59},
        {"table": "kv; DROP TABLE x"},
        {"table": ""},
        {"min_size": "lots"},
        {"min_size": -1},
        {"max_size": 0},
        {"min_size": 5, "max_size": 2},
        {"connect_timeout": "0"},
        {"connect_timeout": "soon"},
        {"statement_timeout": -1},
        {"statement_timeout": "nan"},
        {"timeout": 0},
        {"timeout": -1},
        {"timeout": "nan"},
        {"timeout": "inf"},
        {"timeout": float("inf")},
        {"timeout": "soon"},
        {"timeout": True},
        {"timeout": 1e10},
    ],
)
def test_unusable_options_are_refused_at_open(options: dict[str, Any]) -> None:
    with pytest.raises(keyshelf.InvalidURLError):
        keyshelf.open("postgresql://postgres@127.0.0.1:1/test", **options)
    with pytest.raises(keyshelf.InvalidURLError):
        keyshelf.open_async("postgresql://postgres@127.0.0.1:1/test", **options)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:notaport/test",
        "postgresql://postgres@127.0.0.1/test?bogus=1",
        "postgresql://postgres@127.0.0.1/test#fragment",
    ],
)
def test_unusable_urls_are_refused_at_open(url: str) -> None:
    with pytest.raises(keyshelf.InvalidURLError):
        keyshelf.open(url)


def _open_async_first_call(url: str, **options: Any) -> None:
    """open_async() does no I/O (it must not block the event loop): its checks
    run on the first call, which raises what open() raises."""

    async def run() -> None:
        akv = keyshelf.open_async(url, **options)
        try:
            await akv.get("k")
        finally:
            await akv.aclose()

    asyncio.run(run())


def test_unreachable_server_is_refused_at_open_naming_it() -> None:
    port = free_port()
    started = time.monotonic()
    for opener in (keyshelf.open, _open_async_first_call):
        with pytest.raises(keyshelf.BackendUnavailableError) as info:
            opener(f"postgresql://postgres@127.0.0.1:{port}/somedb", connect_timeout=2)
        assert f"127.0.0.1:{port}/somedb" in str(info.value)
        assert isinstance(info.value.__cause__, psycopg.Error)
    assert time.monotonic() - started < 10


def test_missing_database_is_refused_at_open() -> None:
    url = server_url().rsplit("/", 1)[0] + "/keyshelf_no_such_database"
    with pytest.raises(keyshelf.BackendUnavailableError, match="keyshelf_no_such_database"):
        keyshelf.open(url)


def test_url_query_options_and_libpq_parameters(where: tuple[str, str]) -> None:
    url, schema = where
    name = f"keyshelf-test-{schema[-8:]}"
    full = f"{url}?schema={schema}&table=things&min_size=2&max_size=4&application_name={name}"
    with keyshelf.open(full) as kv:
        kv.set("k", 1)
        backend: Any = kv.backend
        parts = urlsplit(url)
        assert backend.location == f"{parts.hostname}:{parts.port or 5432}{parts.path}"
        found = admin().execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)
        )
        assert found.fetchone()[0] >= 1
    assert admin().execute(f"SELECT key FROM {table(schema, 'things')}").fetchall() == [("k",)]


def test_postgres_scheme_alias(where: tuple[str, str]) -> None:
    url, schema = where
    alias = "postgres://" + url.split("://", 1)[1]
    with keyshelf.open(alias, schema=schema) as kv:
        kv.set("k", "v")
    with keyshelf.open(url, schema=schema) as kv:
        assert kv.get("k") == "v"


def test_schema_layout(kv: Any, where: tuple[str, str]) -> None:
    _, schema = where
    columns = (
        admin()
        .execute(
            "SELECT column_name, data_type, collation_name FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = 'kv' ORDER BY ordinal_position",
            (schema,),
        )
        .fetchall()
    )
    assert columns == [
        ("ns", "text", "C"),
        ("key", "text", "C"),
        ("tag", "text", None),
        ("ival", "bigint", None),
        ("fval", "double precision", None),
        ("tval", "text", None),
        ("bval", "bytea", None),
        ("meta", "bytea", None),
        ("expires_at", "bigint", None),
        ("created_at", "bigint", None),
        ("updated_at", "bigint", None),
        ("version", "integer", None),
    ]
    indexes = {
        name: definition
        for name, definition in admin().execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s", (schema,)
        )
    }
    assert "(ns, key)" in indexes["kv_pkey"]
    assert "(expires_at)" in indexes["kv_expires_at"]


def test_payloads_land_in_typed_columns(kv: Any, where: tuple[str, str]) -> None:
    _, schema = where
    kv.mset({"i": 42, "f": 1.5, "s": "text", "y": b"\x00\xff", "big": 2**70, "nan": float("nan")})
    kv.set("nul", "a\x00b")
    rows = {
        key: rest
        for key, *rest in admin().execute(
            f"SELECT key, tag, ival, fval, tval, bval FROM {table(schema)}"
        )
    }
    assert rows["i"] == ["i", 42, None, None, None]
    assert rows["f"] == ["f", None, 1.5, None, None]
    assert rows["s"] == ["s", None, None, "text", None]
    assert rows["y"] == ["y", None, None, None, b"\x00\xff"]
    assert rows["big"] == ["I", None, None, str(2**70), None]
    assert rows["nan"] == ["F", None, None, "nan", None]
    # PostgreSQL text cannot hold NUL: such a str is stored as UTF-8 bytes.
    assert rows["nul"] == ["s", None, None, None, b"a\x00b"]
    assert kv.get("nul") == "a\x00b"
    assert kv.append("nul", "\x00c") == "a\x00b\x00c"
    assert kv.compare_and_swap("nul", "a\x00b\x00c", "plain") is True
    assert kv.storage_size("nul", "big") == {"nul": 5, "big": len(str(2**70))}


def test_newer_schema_version_is_refused(where: tuple[str, str]) -> None:
    url, schema = where
    with keyshelf.open(url, schema=schema) as kv:
        kv.set("k", 1)
    admin().execute(
        f"UPDATE {table(schema, 'kv_meta')} SET value = '99' WHERE name = 'schema_version'"
    )
    with pytest.raises(keyshelf.IncompatibleStoreError, match="schema version 99"):
        keyshelf.open(url, schema=schema)
    with pytest.raises(keyshelf.IncompatibleStoreError, match="schema version 99"):
        _open_async_first_call(url, schema=schema)
    assert admin().execute(f"SELECT key FROM {table(schema)}").fetchall() == [("k",)]


def test_foreign_table_is_refused_untouched(where: tuple[str, str]) -> None:
    url, schema = where
    admin().execute(f'CREATE SCHEMA "{schema}"')
    admin().execute(f"CREATE TABLE {table(schema)} (id int)")
    with pytest.raises(keyshelf.IncompatibleStoreError, match="not a keyshelf table"):
        keyshelf.open(url, schema=schema)
    names = (
        admin()
        .execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        )
        .fetchall()
    )
    assert names == [("kv",)]


def test_tables_in_one_schema_are_separate_stores(where: tuple[str, str]) -> None:
    url, schema = where
    with (
        keyshelf.open(url, schema=schema, table="one") as one,
        keyshelf.open(url, schema=schema, table="two") as two,
    ):
        one.set("k", 1)
        two.set("k", 2)
        assert (one.get("k"), two.get("k")) == (1, 2)
        one.clear()
        assert two.get("k") == 2


# -- failures: no driver exception escapes --------------------------------------------------


def test_statement_timeout_raises_backend_error(where: tuple[str, str]) -> None:
    url, schema = where
    with keyshelf.open(url, schema=schema, statement_timeout=0.3) as kv:
        kv.set("busy", 1)
        blocker = psycopg.connect(url)
        try:
            blocker.execute(f"SELECT * FROM {table(schema)} WHERE key = 'busy' FOR UPDATE")
            started = time.monotonic()
            with pytest.raises(keyshelf.BackendUnavailableError, match="statement timeout") as info:
                kv.set("busy", 2)
            assert time.monotonic() - started < 5
            assert isinstance(info.value.__cause__, psycopg.errors.QueryCanceled)
            assert "127.0.0.1" in str(info.value) or "localhost" in str(info.value)
        finally:
            blocker.rollback()
            blocker.close()
        assert kv.set("busy", 3) is True
        assert kv.get("busy") == 3


def test_dropped_table_raises_backend_error(kv: Any, where: tuple[str, str]) -> None:
    _, schema = where
    kv.set("k", 1)
    admin().execute(f"DROP TABLE {table(schema)}")
    for call in (lambda: kv.get("k"), lambda: kv.set("k", 2), lambda: kv.keys("k*")):
        with pytest.raises(keyshelf.BackendError) as info:
            call()
        assert isinstance(info.value.__cause__, psycopg.Error)


def _pids(name: str) -> set[int]:
    """Server process ids of the connections whose application_name is ``name``."""
    rows = (
        admin()
        .execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", (name,))
        .fetchall()
    )
    return {pid for (pid,) in rows}


def _kill_all(name: str) -> set[int]:
    """Terminate every connection named ``name``; return their pids once they are gone."""
    rows = (
        admin()
        .execute(
            "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s",
            (name,),
        )
        .fetchall()
    )
    killed = {pid for pid, done in rows if done}
    assert killed and len(killed) == len(rows), f"nothing or not everything was killed: {rows}"
    # pg_terminate_backend signals the process; wait until the server lists it no more.
    deadline = time.monotonic() + 30
    while _pids(name) & killed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _pids(name) & killed, "the terminated connections are still listed"
    return killed


@pytest.mark.parametrize("api", ["sync", "async"])
def test_killed_connections_are_replaced(where: tuple[str, str], api: str) -> None:
    # Every connection of the store's pool is terminated by the server; the
    # next calls still succeed, through connections with new server pids.
    url, schema = where
    name = f"keyshelf-kill-{api}-{schema[-8:]}"
    full = f"{url}?schema={schema}&min_size=2&max_size=4&application_name={name}"

    def check_replaced(killed: set[int]) -> None:
        now = _pids(name)
        assert now and not now & killed, (now, killed)

    if api == "sync":
        with keyshelf.open(full) as kv:
            kv.set("k", 1)
            killed = _kill_all(name)
            # The dead connection is noticed when taken, before any statement is sent.
            assert kv.get("k") == 1
            kv.set("k", 2)
            assert kv.get("k") == 2
            check_replaced(killed)
        return

    async def run() -> None:
        async with keyshelf.open_async(full) as akv:
            await akv.set("k", 1)
            killed = await asyncio.to_thread(_kill_all, name)
            assert await akv.get("k") == 1
            await akv.set("k", 2)
            assert await akv.get("k") == 2
            await asyncio.to_thread(check_replaced, killed)

    asyncio.run(run())


def test_closed_store_raises_store_closed(where: tuple[str, str]) -> None:
    url, schema = where
    kv = keyshelf.open(url, schema=schema)
    kv.close()
    kv.close()
    with pytest.raises(keyshelf.StoreClosedError):
        kv.get("k")

    async def run() -> None:
        akv = keyshelf.open_async(url, schema=schema)
        await akv.set("k", 1)
        await akv.aclose()
        with pytest.raises(keyshelf.StoreClosedError):
            await akv.get("k")

    asyncio.run(run())


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A throwaway server of our own, to stop and start."""
    if server_binaries() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) are needed on CI")
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) to start a throwaway server")
    try:
        own = Cluster()
        own.start()
    except RuntimeError as exc:
        pytest.skip(f"cannot start a throwaway PostgreSQL server: {exc}")
    try:
        yield own
    finally:
        own.destroy()


class Recorder:
    """Runs one operation over and over in a thread, recording outcomes and durations."""

    def __init__(self, operation: Any) -> None:
        self.operation = operation
        self.outcomes: list[tuple[float, float, BaseException | None]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                self.operation()
                error = None
            except BaseException as exc:
                error = exc
            self.outcomes.append((started, time.monotonic() - started, error))
            time.sleep(0.01)

    def wait_for(self, failing: bool, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        seen = len(self.outcomes)
        while time.monotonic() < deadline:
            fresh = self.outcomes[seen:]
            if fresh and (fresh[-1][2] is not None) == failing:
                return
            time.sleep(0.02)
        raise AssertionError(f"no {'failing' if failing else 'working'} call within {timeout}s")


@pytest.mark.parametrize("api", ["sync", "async"])
def test_server_stopped_mid_run_then_restarted(cluster: Cluster, api: str) -> None:
    schema = fresh_schema()
    options = {"schema": schema, "connect_timeout": 2, "max_size": 4}
    loop = asyncio.new_event_loop()
    if api == "sync":
        kv: Any = keyshelf.open(cluster.url, **options)

        def operation() -> None:
            kv.increment("counter")

        def close() -> None:
            kv.close()
    else:
        akv = keyshelf.open_async(cluster.url, **options)
        lock = threading.Lock()

        def operation() -> None:
            with lock:
                loop.run_until_complete(akv.increment("counter"))

        def close() -> None:
            with lock:
                loop.run_until_complete(akv.aclose())

    recorder = Recorder(operation)
    recorder.thread.start()
    try:
        recorder.wait_for(failing=False, timeout=10)
        cluster.stop("fast")
        recorder.wait_for(failing=True, timeout=15)
        time.sleep(1)
        cluster.start()
        recorder.wait_for(failing=False, timeout=15)
    finally:
        recorder.stop.set()
        recorder.thread.join(timeout=30)
        if not cluster.running:
            cluster.start()
        close()
        loop.close()
    errors = [error for _, _, error in recorder.outcomes if error is not None]
    assert errors, "stopping the server made no call fail"
    for error in errors:
        # keyshelf errors only, naming the server, with the driver's exception chained.
        assert isinstance(error, keyshelf.BackendError), repr(error)
        assert f"127.0.0.1:{cluster.port}/postgres" in str(error)
        assert isinstance(error.__cause__, psycopg.Error)
    assert max(duration for _, duration, error in recorder.outcomes if error) < 10
    with keyshelf.open(cluster.url, schema=schema) as kv2:
        # Every increment that reported success is there (a failed one may or may not be).
        successes = sum(1 for _, _, error in recorder.outcomes if error is None)
        assert successes <= kv2.get("counter") <= successes + len(errors)


def test_open_fails_fast_while_server_is_down_and_works_after(cluster: Cluster) -> None:
    schema = fresh_schema()
    with keyshelf.open(cluster.url, schema=schema) as kv:
        kv.set("k", 1)
    cluster.stop("immediate")
    try:
        with pytest.raises(keyshelf.BackendUnavailableError, match=str(cluster.port)):
            keyshelf.open(cluster.url, schema=schema, connect_timeout=2)
    finally:
        cluster.start()
    with keyshelf.open(cluster.url, schema=schema) as kv:
        assert kv.get("k") == 1


# -- behaviour specific to this backend ---------------------------------------------------------


def test_expiry_follows_the_servers_clock(where: tuple[str, str]) -> None:
    url, schema = where
    skewed = lambda: time.time() + 3600  # noqa: E731 - a client clock an hour ahead
    with keyshelf.open(url, schema=schema, clock=skewed) as kv:
        kv.set("k", 1, ttl=0.5)
        assert kv.get("k") == 1  # the client thinks it expired long ago; the server does not
        time.sleep(0.7)
        assert kv.get("k") is None
        assert kv.delete_expired() == 1


def test_range_scans_use_the_primary_key(kv: Any) -> None:
    from keyshelf.backends._postgres_sql import key_range

    kv.mset({f"user:{i}": i for i in range(100)})
    backend: Any = kv.backend
    bound, params = key_range(kv._matcher("user:1*"))
    sql = backend._sql.select(bound, True, False, False)
    conn = psycopg.connect(server_url(), autocommit=True)
    try:
        conn.execute("SET enable_seqscan = off")
        plan = " ".join(
            row[0] for row in conn.execute("EXPLAIN " + sql, ("default", *params)).fetchall()
        )
    finally:
        conn.close()
    assert "Index Scan using kv_pkey" in plan
    assert "key >=" in plan and "key <" in plan
    assert kv.keys("user:1*") == sorted(f"user:{i}" for i in range(100) if str(i).startswith("1"))
    assert kv.key_count("user:1?") == 10


def test_bulk_mset_copy_path_and_its_fallback(kv: Any, where: tuple[str, str]) -> None:
    big = {f"k{i:05d}": i for i in range(3000)}
    kv.mset(big, ttl=100)  # new keys: COPY
    assert kv.size() == 3000
    assert 99 < kv.ttl("k00000") <= 100.001
    entry = kv.get_entry("k00001")
    assert entry.version == 1 and entry.created_at == entry.updated_at
    kv.set_metadata("k00002", {"owner": "x"})
    kv.mset({**big, "new": 1})  # existing keys: upsert, metadata kept
    assert kv.get_metadata("k00002") == {"owner": "x"}
    assert kv.get_entry("k00002").version == 3
    assert kv.ttl("k00003") is None
    assert kv.get("new") == 1
    kv.clear()
    kv.mset({f"x{i}": [i] for i in range(1500)})
    assert kv.get("x1499") == [1499]


#: Values (and keys) that read back exactly only if every field of a row is
#: written exactly: text with escapes and markers of COPY's text format,
#: every byte, doubles at their edges, integers at int64's.
AWKWARD: dict[str, object] = {
    "back\\slash": "a\\b\\\\c\\.\\N\\x41",
    "tab": "a\tb",
    "newline": "line 1\nline 2\r\nline 3",
    "end marker": "\\.",
    "null text": "\\N",
    "empty": "",
    "unicode": "é ☃ 😀",
    "nul in text": "a\x00b",
    "bytes": bytes(range(256)),
    "no bytes": b"",
    "minus zero": -0.0,
    "tiny": 5e-324,
    "huge": 1.7976931348623157e308,
    "tenth": 0.1,
    "nan": float("nan"),
    "inf": float("inf"),
    "-inf": float("-inf"),
    "int64 min": -(2**63),
    "int64 max": 2**63 - 1,
    "beyond int64": 2**70,
    "none": None,
    "true": True,
    "false": False,
    "json": {"k\t": ["v\n", 1.5, None, {"\\": True}]},
    "tuple": (1, "two"),
}


class Label(str):
    """A value of a custom codec tag whose text payload may hold anything."""


class Labels(keyshelf.codec.Codec):
    def encode(self, value: object) -> tuple[str, Any]:
        if isinstance(value, Label):
            return "label\t\\", str(value)
        return super().encode(value)

    def decode(self, tag: str, payload: Any) -> object:
        return Label(payload) if tag == "label\t\\" else super().decode(tag, payload)


def _same(a: object, b: object) -> bool:
    """Equal, of the same type, and for floats the same double (nan, -0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)  # type: ignore[arg-type]
    return a == b


@pytest.mark.parametrize("api", ["sync", "async"])
def test_bulk_copy_writes_every_value_exactly(
    where: tuple[str, str], api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A batch of new keys large enough for the COPY path, holding every
    # awkward value (and key) many times over: each reads back exactly.
    from keyshelf.backends import _postgres_async, _postgres_sync

    copied: list[bool] = []
    for cls in (_postgres_sync.PostgresBackend, _postgres_async.AsyncPostgresBackend):
        real = cls._copy_new

        def counted(self: Any, *args: Any, _real: Any = real) -> Any:
            done = _real(self, *args)
            if inspect.isawaitable(done):

                async def noted() -> bool:
                    copied.append(await done)
                    return copied[-1]

                return noted()
            copied.append(done)
            return done

        monkeypatch.setattr(cls, "_copy_new", counted)
    batch: dict[str, object] = {}
    for i in range(120):
        for name, value in AWKWARD.items():
            batch[f"{name}\\{i}"] = value
        batch[f"label\\{i}"] = Label(f"tab\there\\ {i}")
    url, schema = where

    async def load_async() -> dict[str, object]:
        async with keyshelf.open_async(url, schema=schema, codec=Labels()) as kv:
            await kv.mset(batch, ttl=1000)
            return await kv.mget(list(batch))

    if api == "sync":
        with keyshelf.open(url, schema=schema, codec=Labels()) as kv:
            kv.mset(batch, ttl=1000)
            got = kv.mget(list(batch))
            assert 999 < kv.ttl(next(iter(batch))) <= 1000
    else:
        got = asyncio.run(load_async())
    assert copied == [True]  # the batch went in by COPY
    wrong = [k for k, v in batch.items() if not _same(got.get(k, KeyError), v)]
    assert not wrong, [(k, batch[k], got.get(k)) for k in wrong[:5]]


def test_bulk_copy_refusal_writes_nothing(where: tuple[str, str]) -> None:
    # A payload PostgreSQL cannot hold (NUL in a custom tag's text) in the
    # middle of a COPY batch: the error names it and no key of the batch exists.
    url, schema = where
    with keyshelf.open(url, schema=schema, codec=Labels()) as store:
        batch: dict[str, object] = {f"k{i:05d}": i for i in range(2500)}
        batch["k01500"] = Label("a\x00b")
        with pytest.raises(keyshelf.SerializationError, match="NUL"):
            store.mset(batch)
        assert store.size() == 0


def test_a_bulk_mset_encodes_while_it_copies_and_stays_all_or_nothing(
    where: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sync API hands a large plain dict to the backend unencoded
    # (LazyItems): each value is encoded as COPY writes its row. A value that
    # cannot be encoded, met half-way, must still leave nothing written and
    # raise what the eager path raises; with a bad ttl too, the value's error
    # comes first, as when every value is encoded before anything else.
    from keyshelf.backends import _postgres_async, _postgres_sync
    from keyshelf.records import LazyItems

    seen: list[type] = []
    for cls in (_postgres_sync.PostgresBackend, _postgres_async.AsyncPostgresBackend):
        real = cls.put_many

        def noting(self: Any, ns: str, items: Any, *rest: Any, _real: Any = real) -> Any:
            seen.append(type(items))
            return _real(self, ns, items, *rest)

        monkeypatch.setattr(cls, "put_many", noting)
    url, schema = where
    batch: dict[str, object] = {f"k{i:05d}": {"n": i} for i in range(3000)}
    with keyshelf.open(url, schema=schema, max_value_size=64) as kv:
        kv.mset(batch)
        assert seen == [LazyItems]
        assert kv.size() == 3000 and kv.get("k02999") == {"n": 2999}
        kv.clear()
        for bad, error in (
            (object(), keyshelf.SerializationError),
            ("x" * 65, keyshelf.ValueTooLargeError),
        ):
            broken = {**batch, "k01500": bad}
            with pytest.raises(error):
                kv.mset(broken)
            assert kv.size() == 0
            with pytest.raises(error):
                kv.mset(broken, ttl=-5)
            assert kv.size() == 0
        with pytest.raises(keyshelf.InvalidTTLError):
            kv.mset(batch, ttl=-5)
        assert kv.size() == 0
        # Two bad values, the batch's first one last in key order (COPY's):
        # the error is the one encoding every value first gives, on any backend.
        two_bad = {"k02999": object(), **batch}
        two_bad["k02999"], two_bad["k00001"] = object(), "x" * 65
        assert next(iter(two_bad)) == "k02999"
        memory = keyshelf.open("memory://", max_value_size=64)
        with memory, pytest.raises(keyshelf.SerializationError) as eager:
            memory.mset(two_bad)
        with pytest.raises(keyshelf.SerializationError) as lazy:
            kv.mset(two_bad)
        assert str(lazy.value) == str(eager.value)
        assert kv.size() == 0
        kv.mset(dict(list(batch.items())[:999]))  # below the lazy size: encoded first
        assert seen[-1] is list and kv.size() == 999

    async def load_async() -> None:
        async with keyshelf.open_async(url, schema=schema) as akv:
            await akv.clear()
            await akv.mset(batch)
            assert await akv.size() == 3000

    asyncio.run(load_async())
    assert seen[-1] is list  # the async API encodes every value first


def test_auto_cleanup_purges_through_the_expiry_index(where: tuple[str, str]) -> None:
    url, schema = where
    with keyshelf.open(url, schema=schema, auto_cleanup=True, cleanup_interval=0.2) as kv:
        kv.mset({f"t{i}": i for i in range(20)}, ttl=0.1)
        kv.set("keep", 1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            (count,) = admin().execute(f"SELECT count(*) FROM {table(schema)}").fetchone()
            if count == 1:
                break
            time.sleep(0.1)
        assert count == 1


def test_values_beyond_a_few_megabytes(kv: Any) -> None:
    blob = bytes(range(256)) * 40_000
    kv.set("blob", blob)
    assert kv.get("blob") == blob
    assert kv.append("blob", b"!") == blob + b"!"
    assert kv.storage_size("blob") == {"blob": len(blob) + 1}


def test_import_keyshelf_does_not_import_psycopg() -> None:
    code = "import sys, keyshelf; print('psycopg' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_missing_extra_names_it() -> None:
    code = (
        "import sys; sys.modules['psycopg_pool'] = None\n"
        "import keyshelf\n"
        "try:\n"
        "    keyshelf.open('postgresql://postgres@127.0.0.1:1/test')\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "pip install 'keyshelf[postgres]'" in result.stdout


def test_async_errors_are_keyshelf_errors(where: tuple[str, str]) -> None:
    url, schema = where

    async def run() -> None:
        async with keyshelf.open_async(url, schema=schema, statement_timeout=0.3) as akv:
            await akv.set("busy", 1)
            blocker = await psycopg.AsyncConnection.connect(url)
            try:
                await blocker.execute(
                    f"SELECT * FROM {table(schema)} WHERE key = 'busy' FOR UPDATE"
                )
                with pytest.raises(keyshelf.BackendUnavailableError, match="statement timeout"):
                    await akv.increment("busy")
            finally:
                await blocker.rollback()
                await blocker.close()
            assert await akv.increment("busy") == 2
            admin().execute(f"DROP TABLE {table(schema)}")
            with pytest.raises(keyshelf.BackendError) as info:
                await akv.get("busy")
            assert isinstance(info.value.__cause__, psycopg.Error)

    asyncio.run(run())


def test_record_batches_for_export_and_import(kv: Any) -> None:
    from keyshelf.records import Write

    backend: Any = kv.backend
    now = kv._now()
    backend.put_records(
        "default",
        [
            ("a", Write("i", 1, None, None)),
            ("b", Write("s", "x\x00y", now + 60_000, b"meta")),
            ("c", Write("j", b"[1]", now - 1, None)),  # already expired: invisible
            ("a", Write("i", 2, None, None)),  # the last one wins
        ],
        now,
    )
    assert kv.get("a") == 2 and kv.get("b") == "x\x00y" and not kv.exists("c")
    assert 59 < kv.ttl("b") <= 60.001
    first = backend.scan_records("default", kv._now(), None, 1)
    rest = backend.scan_records("default", kv._now(), first[-1][0], 10)
    records = dict(first + rest)
    assert list(records) == ["a", "b"]
    assert records["b"].payload == "x\x00y" and records["b"].meta == b"meta"
    assert records["a"].version == 1 and records["a"].expires_at is None


def test_host_less_url_with_host_as_parameter(where: tuple[str, str]) -> None:
    # postgresql:///db (no host) is valid libpq; it once lost its "//" on the way.
    url, schema = where
    parts = urlsplit(url)
    user = f"&user={parts.username}" if parts.username else ""
    hostless = f"postgresql://{parts.path}?host={parts.hostname}&port={parts.port or 5432}{user}"
    with keyshelf.open(hostless, schema=schema) as kv:
        kv.set("k", "v")
    with keyshelf.open(url, schema=schema) as kv:
        assert kv.get("k") == "v"


# -- a server that stops answering ------------------------------------------------


def _server_processes(cluster: Cluster) -> list[int]:
    """The postmaster of ``cluster`` and every process it forked."""
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    found = [postmaster]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()  # noqa: SIM115
        except OSError:
            continue
        # Fields after the command name (which may hold spaces): state, ppid, ...
        if int(stat.rpartition(")")[2].split()[1]) == postmaster:
            found.append(int(entry))
    return found


class Frozen:
    """SIGSTOP every process of a throwaway server now, SIGCONT them ``seconds`` later."""

    def __init__(self, cluster: Cluster, seconds: float) -> None:
        self.pids = _server_processes(cluster)
        for pid in self.pids:
            os.kill(pid, signal.SIGSTOP)
        self.thawed = threading.Event()
        self._timer = threading.Timer(seconds, self.thaw)
        self._timer.start()

    def thaw(self) -> None:
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.thawed.set()

    def wait(self) -> None:
        self._timer.join()


# One plain statement on one API, a row-locking transaction on the other
# (the code of both APIs is generated from one source).
@pytest.mark.parametrize(("api", "operation"), [("sync", "get"), ("async", "set_metadata")])
def test_hung_server_times_out_then_recovers(cluster: Cluster, api: str, operation: str) -> None:
    # Every server process stopped (a frozen VM, a hung host): the server's own
    # statement_timeout cannot fire and the kernel still acknowledges the
    # packets, so only the client can bound the wait. The call must give up
    # with BackendUnavailableError while the server is still stopped (it is
    # stopped for 3 s, timeout=1), and the store must work again afterwards.
    schema = fresh_schema()
    options = {"schema": schema, "connect_timeout": 2, "timeout": 1}
    arguments: tuple[Any, ...] = ("k",) if operation == "get" else ("k", {"a": 1})
    frozen: Frozen | None = None
    try:
        if api == "sync":
            with keyshelf.open(cluster.url, **options) as kv:
                kv.set("k", 1)
                frozen = Frozen(cluster, 3.0)
                with pytest.raises(keyshelf.BackendUnavailableError) as info:
                    getattr(kv, operation)(*arguments)
                assert not frozen.thawed.is_set(), "the call waited for the server"
                frozen.wait()
                assert kv.get("k") == 1
                assert kv.set("k", 2) is True
        else:

            async def run() -> Any:
                nonlocal frozen
                async with keyshelf.open_async(cluster.url, **options) as akv:
                    await akv.set("k", 1)
                    frozen = Frozen(cluster, 3.0)
                    with pytest.raises(keyshelf.BackendUnavailableError) as info:
                        await getattr(akv, operation)(*arguments)
                    assert not frozen.thawed.is_set(), "the call waited for the server"
                    frozen.wait()
                    assert await akv.get("k") == 1
                    assert await akv.set("k", 2) is True
                    return info

            info = asyncio.run(run())
        assert "did not answer" in str(info.value)
        assert f"127.0.0.1:{cluster.port}/postgres" in str(info.value)
        assert isinstance(info.value.__cause__, psycopg.Error)
    finally:
        if frozen is not None:
            frozen.thaw()
        with keyshelf.open(cluster.url, schema=schema) as kv:
            kv.clear()


def test_create_false_refuses_a_missing_store_and_creates_nothing(where: tuple[str, str]) -> None:
    url, schema = where
    with pytest.raises(keyshelf.StoreNotFoundError, match=f"{schema}.kv"):
        keyshelf.open(url, schema=schema, create=False)
    with pytest.raises(keyshelf.StoreNotFoundError, match=f"{schema}.kv"):
        _open_async_first_call(url, schema=schema, create=False)
    assert (
        not admin().execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchall()
    )
    with keyshelf.open(url, schema=schema) as kv:
        kv.set("k", 1)
    with keyshelf.open(url, schema=schema, create=False) as kv:
        assert kv.get("k") == 1


def test_readonly_is_refused_with_a_clear_error() -> None:
    with pytest.raises(keyshelf.InvalidURLError, match="readonly"):
        keyshelf.open("postgresql://postgres@127.0.0.1:1/test", readonly=True)
    with pytest.raises(keyshelf.InvalidURLError, match="readonly"):
        keyshelf.open_async("postgresql://postgres@127.0.0.1:1/test", readonly=True)
