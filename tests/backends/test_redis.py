"""Redis-specific guarantees: processes, outages, URLs, layout, errors, expiry bookkeeping.

Everything runs against a real server: the shared one (see
``tests/backends/__init__.py``) with a unique key prefix per test, or a
throwaway ``redis-server`` started on a free port where a test needs to stop,
hang, restart or reconfigure it. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import keyshelf
from keyshelf.backends import _redis_common as rc
from keyshelf.backends._redis_layout import glob_escape

from . import REDIS_SERVER, RedisServer, free_port, redis_store

redis = pytest.importorskip("redis")


@pytest.fixture
def where() -> Iterator[tuple[str, dict[str, Any]]]:
    """(url, {"prefix": unique}) on the session's server; keys deleted afterwards."""
    with redis_store() as found:
        yield found


@pytest.fixture
def kv(where: tuple[str, dict[str, Any]]) -> Iterator[keyshelf.Store]:
    url, options = where
    with keyshelf.open(url, **options) as store:
        yield store


@pytest.fixture
def raw(where: tuple[str, dict[str, Any]]) -> Iterator[Any]:
    client = redis.Redis.from_url(where[0])
    yield client
    client.close()


@pytest.fixture
def server() -> Iterator[RedisServer]:
    """A throwaway redis-server of our own (stopped, hung and restarted at will)."""
    if not os.path.exists(REDIS_SERVER):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{REDIS_SERVER} is needed on CI")
        pytest.skip(f"{REDIS_SERVER} is not installed")
    instance = RedisServer()
    instance.start()
    yield instance
    if instance.process is not None:
        instance.process.send_signal(signal.SIGCONT)
    instance.stop()


def keys_under(raw: Any, prefix: str) -> list[str]:
    return sorted(k.decode() for k in raw.scan_iter(match=glob_escape(prefix) + ":*"))


# -- processes ----------------------------------------------------------------


def _increment_many(url: str, prefix: str, count: int, api: str) -> None:
    if api == "sync":
        with keyshelf.open(url, prefix=prefix) as kv:
            for _ in range(count):
                kv.increment("counter")
        return

    async def run() -> None:
        async with keyshelf.open_async(url, prefix=prefix) as akv:
            for _ in range(count):
                await akv.increment("counter")

    asyncio.run(run())


def _race_setnx(url: str, prefix: str, who: int, rounds: int, barrier: Any, results: Any) -> None:
    with keyshelf.open(url, prefix=prefix) as kv:
        for number in range(rounds):
            barrier.wait()
            results.put((number, who, kv.setnx(f"lock{number}", who, ttl=30)))


def test_processes_incrementing_lose_nothing(where: tuple[str, dict[str, Any]]) -> None:
    url, options = where
    ctx = multiprocessing.get_context("spawn")
    apis = ["sync", "sync", "async", "async"]
    workers = [
        ctx.Process(target=_increment_many, args=(url, options["prefix"], 2000, api))
        for api in apis
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=240)
        assert worker.exitcode == 0
    with keyshelf.open(url, **options) as kv:
        assert kv.get("counter") == 8000
        assert kv.get_entry("counter").version == 8000


def test_processes_racing_setnx_have_one_winner(where: tuple[str, dict[str, Any]]) -> None:
    url, options = where
    rounds = 5
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    workers = [
        ctx.Process(
            target=_race_setnx, args=(url, options["prefix"], who, rounds, barrier, results)
        )
        for who in range(4)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in range(4 * rounds)]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    with keyshelf.open(url, **options) as kv:
        for number in range(rounds):
            winners = [who for n, who, won in outcomes if n == number and won]
            assert len(winners) == 1
            assert kv.get(f"lock{number}") == winners[0]


# -- outages ------------------------------------------------------------------


def _opener(api: str) -> Any:
    """open() for the sync API; for async, a sync-looking wrapper over one loop."""
    if api == "sync":
        return keyshelf.open

    def open_async(url: str, **options: Any) -> Any:
        loop = asyncio.new_event_loop()
        store = keyshelf.open_async(url, **options)

        class Driver:
            def __getattr__(self, name: str) -> Any:
                method = getattr(store, name)
                return lambda *a, **k: loop.run_until_complete(method(*a, **k))

            def close(self) -> None:
                loop.run_until_complete(store.aclose())
                loop.close()

        return Driver()

    return open_async


@pytest.mark.parametrize("api", ["sync", "async"])
def test_server_stopped_then_restarted(server: RedisServer, api: str) -> None:
    kv = _opener(api)(server.url, socket_timeout=1, socket_connect_timeout=1)
    try:
        for i in range(20):  # several pooled connections
            kv.set(f"k{i}", i)
        assert kv.get("k1") == 1
        server.stop()
        for call in (
            lambda: kv.get("k1"),
            lambda: kv.set("k1", 2),
            lambda: kv.increment("n"),
            lambda: kv.keys("*"),
            lambda: kv.mget(["k1"]),
        ):
            started = time.monotonic()
            with pytest.raises(keyshelf.BackendUnavailableError) as info:
                call()
            assert time.monotonic() - started < 5
            assert f"127.0.0.1:{server.port}" in str(info.value)
            assert isinstance(info.value.__cause__, redis.RedisError | OSError)
        server.start()  # same port, empty (no persistence)
        assert kv.get("k1") is None
        assert kv.set("k1", "back") is True
        assert kv.get("k1") == "back"
        assert kv.increment("n") == 1
    finally:
        kv.close()


@pytest.mark.parametrize("api", ["sync", "async"])
def test_hung_server_times_out_then_recovers(server: RedisServer, api: str) -> None:
    kv = _opener(api)(server.url, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        kv.set("k", 1)
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(keyshelf.BackendUnavailableError) as info:
            kv.get("k")
        assert time.monotonic() - started < 3
        assert "Timeout" in type(info.value.__cause__).__name__
        server.process.send_signal(signal.SIGCONT)
        assert kv.get("k") == 1
    finally:
        kv.close()


def test_unreachable_server_is_refused_at_open() -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(keyshelf.BackendUnavailableError) as info:
        keyshelf.open(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=1)
    assert time.monotonic() - started < 5
    assert f"127.0.0.1:{port}" in str(info.value)
    # open_async() does no I/O (it must not block the event loop): the same
    # error comes from entering the store or its first call.
    store = keyshelf.open_async(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=1)

    async def first_call() -> None:
        try:
            with pytest.raises(keyshelf.BackendUnavailableError) as info:
                await store.get("k")
            assert f"127.0.0.1:{port}" in str(info.value)
            with pytest.raises(keyshelf.BackendUnavailableError):  # tried again, not cached
                await store.set("k", 1)
        finally:
            await store.aclose()

    asyncio.run(first_call())


def test_scripts_lost_by_the_server_are_reloaded(
    server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = redis.Redis.from_url(server.url)
    with keyshelf.open(server.url) as kv:
        kv.set("a", 1)
        raw.script_flush()
        assert kv.set("a", 2) is True
        # NOSCRIPT reloaded every script, not just the one that was missing.
        assert all(raw.script_exists(*(script.sha for script in rc.SCRIPTS)))
        assert kv.increment("a") == 3
        assert kv.keys() == ["a"]
        raw.script_flush()
        assert kv.mget(["a"]) == {"a": 3}  # NOSCRIPT, reload, retried once
        _assert_one_round_trip_each(kv, monkeypatch)
    raw.close()


# -- URLs and options -----------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "options"),
    [
        ("redis://127.0.0.1:6379/abc", {}),
        ("redis://127.0.0.1:6379/-1", {}),
        ("redis://127.0.0.1:99999/0", {}),
        ("redis://127.0.0.1:6379/0?bogus=1", {}),
        ("redis://127.0.0.1:6379/0", {"bogus": 1}),
        ("redis://127.0.0.1:6379/0", {"prefix": "a{b}"}),
        ("redis://127.0.0.1:6379/0", {"prefix": ""}),
        ("redis://127.0.0.1:6379/0", {"prefix": "bad\nprefix"}),
        ("redis://127.0.0.1:6379/0", {"socket_timeout": 0}),
        ("redis://127.0.0.1:6379/0?socket_timeout=soon", {}),
        ("redis://127.0.0.1:6379/0", {"db": -1}),
        ("redis://127.0.0.1:6379/0", {"max_connections": 0}),
        ("redis://127.0.0.1:6379/0", {"ssl_ca_certs": "/etc/ca.pem"}),
        ("rediss://127.0.0.1:6379/0", {"ssl_cert_reqs": "maybe"}),
        ("unix://", {}),
        ("unix://host/tmp/redis.sock", {}),
    ],
)
def test_unusable_urls_and_options_are_refused(url: str, options: dict[str, Any]) -> None:
    with pytest.raises(keyshelf.InvalidURLError):
        keyshelf.open(url, **options)
    with pytest.raises(keyshelf.InvalidURLError):
        keyshelf.open_async(url, **options)


def test_missing_database_is_refused(where: tuple[str, dict[str, Any]]) -> None:
    base = where[0].rsplit("/", 1)[0]
    with pytest.raises(keyshelf.InvalidURLError, match="no database 9999"):
        keyshelf.open(f"{base}/9999")


def test_password_and_database_from_url_and_options() -> None:
    if not os.path.exists(REDIS_SERVER):
        pytest.skip(f"{REDIS_SERVER} is not installed")
    server = RedisServer()
    server.extra_args = ["--requirepass", "s3cret:/@"]
    server.url = f"redis://:s3cret%3A%2F%40@127.0.0.1:{server.port}/3"
    server.start()
    try:
        with keyshelf.open(server.url) as kv:
            kv.set("k", "in db 3")
            assert kv.backend.location == f"redis://127.0.0.1:{server.port}/3"
        raw = redis.Redis(port=server.port, password="s3cret:/@", db=3)
        assert raw.exists("keyshelf:{default}:k") == 1
        raw.close()
        plain = f"redis://127.0.0.1:{server.port}/0"
        with keyshelf.open(plain, password="s3cret:/@", db=3) as kv:
            assert kv.get("k") == "in db 3"
        with pytest.raises(keyshelf.InvalidURLError, match="credentials") as info:
            keyshelf.open(plain, password="wrong")
        assert "s3cret" not in str(info.value) and "wrong" not in str(info.value)
        with pytest.raises(keyshelf.InvalidURLError, match="credentials"):
            keyshelf.open(plain)
    finally:
        server.stop()


def test_unix_socket(tmp_path: Path) -> None:
    if not os.path.exists(REDIS_SERVER):
        pytest.skip(f"{REDIS_SERVER} is not installed")
    sock = tmp_path / "redis.sock"
    server = RedisServer()
    server.extra_args = ["--unixsocket", str(sock), "--unixsocketperm", "700"]
    server.start()
    try:
        with keyshelf.open(f"unix://{sock}", db=2) as kv:
            kv.set("k", 1)
            assert kv.get("k") == 1
            assert kv.backend.location == f"unix://{sock}?db=2"
        with keyshelf.open(f"unix://{sock}?db=2") as kv:
            assert kv.get("k") == 1
    finally:
        server.stop()


def _tls_files(folder: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 (openssl CLI)."""
    files = {name: folder / name for name in ("ca.key", "ca.crt", "srv.key", "srv.csr", "srv.crt")}
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
        "-keyout", str(files["ca.key"]), "-out", str(files["ca.crt"]))  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", str(files["srv.key"]), "-out", str(files["srv.csr"]))  # fmt: skip
    run("x509", "-req", "-in", str(files["srv.csr"]), "-CA", str(files["ca.crt"]),
        "-CAkey", str(files["ca.key"]), "-CAcreateserial", "-days", "1",
        "-extfile", str(ext), "-out", str(files["srv.crt"]))  # fmt: skip
    return files


def test_tls(tmp_path: Path) -> None:
    if not os.path.exists(REDIS_SERVER) or not shutil.which("openssl"):
        pytest.skip("needs redis-server and openssl")
    files = _tls_files(tmp_path)
    server = RedisServer()
    server.extra_args = [
        "--port", "0", "--tls-port", str(server.port), "--tls-auth-clients", "no",
        "--tls-cert-file", str(files["srv.crt"]), "--tls-key-file", str(files["srv.key"]),
        "--tls-ca-cert-file", str(files["ca.crt"]),
    ]  # fmt: skip
    url = f"rediss://127.0.0.1:{server.port}/0"
    server.url = url + "?ssl_cert_reqs=none"
    server.start()
    try:
        with keyshelf.open(url, ssl_ca_certs=str(files["ca.crt"])) as kv:
            kv.set("secret", b"\x00over tls")
            assert kv.get("secret") == b"\x00over tls"
            assert kv.backend.location == url
        with pytest.raises(keyshelf.BackendUnavailableError, match="certificate"):
            keyshelf.open(url)  # the test CA is not trusted by default
        with keyshelf.open(url, ssl_cert_reqs="none") as kv:
            assert kv.get("secret") == b"\x00over tls"
    finally:
        server.stop()


# -- layout -------------------------------------------------------------------


def test_layout_key_names(kv: Any, raw: Any, where: tuple[str, dict[str, Any]]) -> None:
    prefix = where[1]["prefix"]
    kv.namespace("odd{ns}%:x").set("user:1", 42)
    kv.set("plain", "v", ttl=100)
    assert keys_under(raw, prefix) == sorted(
        [
            f"{prefix}:{{default}}#keys",
            f"{prefix}:{{default}}#ttl",
            f"{prefix}:{{default}}:plain",
            f"{prefix}:{{odd%7Bns%7D%25:x}}#keys",
            f"{prefix}:{{odd%7Bns%7D%25:x}}:user:1",
        ]
    )
    record = raw.hgetall(f"{prefix}:{{odd%7Bns%7D%25:x}}:user:1")
    assert record[b"t"] == b"ii" and record[b"v"] == b"42" and record[b"n"] == b"1"
    assert set(record) == {b"t", b"v", b"c", b"u", b"n"}
    assert kv.list_namespaces() == ["default", "odd{ns}%:x"]


def test_packed_arguments_carry_any_key_and_value(kv: Any, raw: Any, where: Any) -> None:
    # set, increment and mset pack several fields into one argument (a
    # "now|px|flags|t" head, a batch's t/v items as struct '>Bc0I4c0'):
    # separators, NULs and every byte value must survive, in keys, values,
    # tags and metadata, and a batch above 255 keys too.
    prefix = where[1]["prefix"]
    every_byte = bytes(range(256))
    values: dict[str, Any] = {
        "a|b": every_byte,
        "|": "x|y|z",
        "nul-value": "\x00|\x00",
        "empty-str": "",
        "ключ": "ünïcödé|",
        "inf": float("inf"),
        "negzero": -0.0,
        "big": 2**63 - 1,
        "small": -(2**63),
        "none": None,
        "flag": True,
        "json": {"k|": [1, "|", None]},
        "empty": b"",
    }
    batch = {**values, **{f"k{i:03d}|": i * every_byte[:7] for i in range(300)}}
    kv.mset(batch)
    got = kv.mget(list(batch))
    assert got == batch
    assert all(type(got[k]) is type(v) for k, v in batch.items())
    assert raw.hget(f"{prefix}:{{default}}:a|b", "v") == every_byte
    kv.set("m|1", "v|1", metadata={"who": "a|b"}, ttl=50)
    assert kv.set("m|1", "v|2", nx=True) is False
    assert kv.set("m|1", "v|3", xx=True, keep_ttl=True) is True
    record = kv.get_entry("m|1")
    assert record.value == "v|3" and record.metadata == {"who": "a|b"}
    assert record.version == 2 and record.expires_at is not None
    assert kv.increment("c|1", 5) == 5 and kv.increment("c|1", -7) == -2
    assert kv.increment("c|1", 0.5) == -1.5
    assert kv.keys("*|*") == sorted(k for k in [*batch, "m|1", "c|1"] if "|" in k)


def test_a_namespace_lives_in_one_cluster_slot(kv: Any, raw: Any, where: Any) -> None:
    from redis.crc import key_slot

    prefix = where[1]["prefix"]
    space = kv.namespace("tenant}{x")
    space.mset({f"k{i}": i for i in range(50)}, ttl=100)
    names = keys_under(raw, prefix)
    assert len(names) == 52
    assert len({key_slot(name.encode()) for name in names}) == 1


def test_prefixes_isolate_stores(where: tuple[str, dict[str, Any]], raw: Any) -> None:
    url, options = where
    prefix = options["prefix"]
    with (
        keyshelf.open(url, prefix=prefix) as first,
        keyshelf.open(url, prefix=prefix + ":x*[?\\") as second,
    ):
        first.set("k", 1)
        second.set("k", 2)
        second.namespace("other").set("k", 3)
        assert first.get("k") == 1 and second.get("k") == 2
        assert first.keys() == ["k"] and first.list_namespaces() == ["default"]
        assert second.list_namespaces() == ["default", "other"]
        assert first.clear() == 1
        assert second.get("k") == 2
        raw.set(prefix, "an application's own key")
        raw.set(prefix + ":{default}", "another one")
        assert first.keys() == [] and first.size() == 0
    assert raw.get(prefix) == b"an application's own key"


def test_collision_with_foreign_data_raises_backend_error(kv: Any, raw: Any, where: Any) -> None:
    raw.set(f"{where[1]['prefix']}:{{default}}:k", "not a hash")
    calls = [
        lambda: kv.get("k"),
        lambda: kv.set("k", 1),
        lambda: kv.increment("k"),
        lambda: kv.append("k", "x"),
        lambda: kv.get_entry("k"),
        lambda: kv.compare_and_swap("k", 1, 2),
        lambda: kv.set_metadata("k", {"a": 1}),
        lambda: kv.mget(["k"]),
        lambda: kv.mset({"k": 1}),
        lambda: kv.storage_size("k"),
    ]
    for call in calls:
        with pytest.raises(keyshelf.BackendError) as info:
            call()
        assert isinstance(info.value.__cause__, redis.RedisError)
        assert "WRONGTYPE" in str(info.value)


# -- values and atomics -------------------------------------------------------------


class Money(keyshelf.codec.Codec):
    """A custom codec: its own tags, with str and int payloads."""

    def encode(self, value: object) -> tuple[str, Any]:
        if isinstance(value, Cents):
            return "cents", int(value)
        if isinstance(value, Label):
            return "label", str(value)
        return super().encode(value)

    def decode(self, tag: str, payload: Any) -> object:
        if tag == "cents":
            return Cents(payload)
        if tag == "label":
            return Label(payload)
        return super().decode(tag, payload)


class Cents(int):
    pass


class Label(str):
    pass


def test_custom_codec_tags_and_payloads(where: tuple[str, dict[str, Any]]) -> None:
    url, options = where
    with keyshelf.open(url, codec=Money(), **options) as kv:
        kv.mset({"price": Cents(250), "name": Label("tea")})
        assert kv.get("price") == 250 and type(kv.get("price")) is Cents
        assert kv.get("name") == "tea" and type(kv.get("name")) is Label
        with pytest.raises(keyshelf.NotNumericError):
            kv.increment("price")  # only the codec's own number tags are numeric
        assert kv.compare_and_swap("price", Cents(250), Cents(300)) is True
        assert kv.compare_and_swap("price", 300, 1) is False  # same number, other tag
        assert kv.storage_size("price", "name") == {"price": 8, "name": 3}


def test_float_increments_match_python_exactly(kv: Any) -> None:
    rng = random.Random(7)
    expected = 0.0
    kv.set("f", 0.0)
    for _ in range(300):
        delta = rng.choice([rng.uniform(-1e6, 1e6), rng.random() * 1e-9, 0.1, 1e300, 3])
        expected += delta
        assert kv.increment("f", delta) == expected
        got = kv.get("f")
        assert type(got) is float and repr(got) == repr(expected)
        expected = got
    kv.set("z", -0.0)
    assert math.copysign(1, kv.increment("z", -0.0)) == -1
    assert repr(kv.increment("z", 0.0)) == "0.0"
    kv.set("i", 2**62)
    assert kv.increment("i", 2.0**62) == float(2**62) + 2.0**62
    assert kv.compare_and_swap("i", float(2**63), "swapped") is True


def test_integers_beyond_64_bits_take_the_slow_path(kv: Any) -> None:
    kv.set("big", 2**80)
    assert kv.decrement("big", 2**80 - 5) == 5
    assert type(kv.get("big")) is int
    assert kv.increment("big", 2**63 - 6) == 2**63 - 1
    with pytest.raises(keyshelf.IncrementOverflowError):
        kv.increment("big")
    with pytest.raises(keyshelf.IncrementOverflowError):
        kv.increment("new", -(2**70))
    assert kv.exists("new") is False


def test_concurrent_async_tasks_share_a_bounded_pool(where: tuple[str, dict[str, Any]]) -> None:
    url, options = where

    async def run() -> list[Any]:
        async with keyshelf.open_async(url, max_connections=4, pool_timeout=0.2, **options) as akv:
            # 25 tasks per connection: each waits for at most ~25 round trips,
            # far inside pool_timeout even on a loaded machine.
            results = await asyncio.gather(*(akv.increment("n") for _ in range(100)))
            pool = akv.backend.client.connection_pool
            held = [await pool.get_connection() for _ in range(4)]
            started = time.monotonic()
            with pytest.raises(keyshelf.BackendUnavailableError, match="max_connections=4"):
                await akv.get("n")
            assert time.monotonic() - started < 2
            waiting = asyncio.ensure_future(akv.get("n"))
            await asyncio.sleep(0.05)
            await pool.release(held.pop())  # hands the slot to the waiting task
            assert await waiting == 100
            for connection in held:
                await pool.release(connection)
            return [sorted(results), await akv.get("n")]

    ordered, total = asyncio.run(run())
    assert ordered == list(range(1, 101)) and total == 100


def test_threads_share_a_bounded_pool(where: tuple[str, dict[str, Any]]) -> None:
    url, options = where
    # 8 threads over 2 connections: a generous wait, so that a loaded machine
    # cannot turn a slow turn into a lost increment.
    with keyshelf.open(url, max_connections=2, pool_timeout=30, **options) as kv:
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(100):
                    kv.increment("n")
            except BaseException as exc:  # reported below, not lost in the thread
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert kv.get("n") == 800
        assert kv.backend.client.connection_pool._created_connections <= 2
    # With every connection held, a caller gets a clear error after its wait.
    with keyshelf.open(url, max_connections=2, pool_timeout=0.2, **options) as kv:
        pool = kv.backend.client.connection_pool
        held = [pool.get_connection(), pool.get_connection()]
        started = time.monotonic()
        with pytest.raises(keyshelf.BackendUnavailableError, match="max_connections=2"):
            kv.get("n")
        assert time.monotonic() - started < 20  # bounded: never a hang
        for connection in held:
            pool.release(connection)
        assert kv.get("n") == 800


def test_sync_and_async_stores_share_data(where: tuple[str, dict[str, Any]]) -> None:
    url, options = where

    async def run() -> Any:
        async with keyshelf.open_async(url, **options) as akv:
            await akv.set("from_async", {"x": (1, 2)})
            return await akv.get("from_sync")

    with keyshelf.open(url, **options) as kv:
        kv.set("from_sync", b"\x00bytes")
        assert asyncio.run(run()) == b"\x00bytes"
        assert kv.get("from_async") == {"x": (1, 2)}


# -- expiry bookkeeping ---------------------------------------------------------------


def test_index_entries_of_expired_keys_are_tidied(kv: Any, raw: Any, where: Any) -> None:
    prefix = where[1]["prefix"]
    kv.mset({f"k{i}": i for i in range(200)}, ttl=0.05)
    kv.set("keep", 1)
    time.sleep(0.1)
    assert raw.zcard(f"{prefix}:{{default}}#keys") == 201  # Redis dropped the data only
    assert kv.delete_expired() == 200
    assert raw.zcard(f"{prefix}:{{default}}#keys") == 1
    assert not raw.exists(f"{prefix}:{{default}}#ttl")
    assert kv.delete_expired() == 0
    assert kv.keys() == ["keep"]


def test_churning_short_lived_keys_keeps_the_index_small(kv: Any, raw: Any, where: Any) -> None:
    prefix = where[1]["prefix"]
    for i in range(600):
        kv.set(f"session:{i}", i, ttl=0.005)
        if i % 50 == 0:
            time.sleep(0.01)
    time.sleep(0.01)
    kv.set("one more", 1, ttl=1)
    # Every write of a new key with a TTL forgets a few expired ones.
    assert raw.zcard(f"{prefix}:{{default}}#keys") < 150


def test_mset_without_ttl_removes_expiries(kv: Any, raw: Any, where: Any) -> None:
    kv.set("a", 1, ttl=100)
    kv.mset({f"k{i}": i for i in range(1200)}, ttl=100)
    kv.mset({"a": 2, "b": 3} | {f"k{i}": i for i in range(0, 1200, 2)})
    assert kv.ttl("a") is None and kv.ttl("b") is None and kv.ttl("k0") is None
    assert 99 < kv.ttl("k1") <= 100.001
    assert kv.stats()["keys_with_ttl"] == 600
    assert raw.zcard(f"{where[1]['prefix']}:{{default}}#ttl") == 600


def test_ttl_is_the_servers(kv: Any, raw: Any, where: Any) -> None:
    kv.set("k", 1, ttl=100)
    entry = kv.get_entry("k")
    name = f"{where[1]['prefix']}:{{default}}:k"
    assert entry.expires_at.timestamp() * 1000 == raw.pexpiretime(name)
    assert kv.get_entry("k") == entry  # reads report one stable instant
    assert 99 < kv.ttl("k") <= 100.001


# -- listings -----------------------------------------------------------------------


def test_streaming_in_code_point_order(kv: Any) -> None:
    keys = [f"{a}{b}" for a in "aé🚀Z" for b in ["", "x", "é", "\u00ff", "\u0100", "🙂"]]
    kv.mset(dict.fromkeys(keys, 1))
    assert kv.keys() == sorted(keys)
    assert list(kv.iter_keys(batch_size=4)) == sorted(keys)
    assert list(kv.iter_keys("é*", batch_size=2)) == sorted(k for k in keys if k[0] == "é")
    assert kv.key_count("🚀*") == 6
    assert kv.keys("?") == sorted(k for k in keys if len(k) == 1)


def test_pattern_delete_spares_other_keys(kv: Any) -> None:
    kv.mset({f"user:{i}:name": i for i in range(50)} | {f"user:{i}:mail": i for i in range(50)})
    assert kv.delete_pattern("user:*:mail") == 50
    assert kv.key_count("user:*") == 50
    assert kv.delete_pattern("user:*") == 50
    assert kv.size() == 0


# -- round trips and connections ------------------------------------------------------


def _assert_one_round_trip_each(kv: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every common operation sends exactly one command (one EVALSHA, never + EVAL)."""
    kv.set("a", 1)
    sent: list[str] = []
    original = redis.connection.Connection.send_command

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(args[0]))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(redis.connection.Connection, "send_command", counting)
    operations = {
        "get": lambda: kv.get("a"),
        "set": lambda: kv.set("a", 2),
        "set with ttl": lambda: kv.set("b", 2, ttl=10),
        "setnx": lambda: kv.setnx("c", 3),
        "increment": lambda: kv.increment("a"),
        "append": lambda: kv.append("s", "x"),
        "compare_and_swap": lambda: kv.compare_and_swap("a", 3, 4),
        "mget": lambda: kv.mget(["a", "b", "c"]),
        "mset": lambda: kv.mset({"x": 1, "y": 2}, ttl=5),
        "delete": lambda: kv.delete("x", "y"),
        "exists": lambda: kv.exists("a"),
        "get_entry": lambda: kv.get_entry("a"),
        "expire": lambda: kv.expire("a", 10),
    }
    for name, operation in operations.items():
        sent.clear()
        operation()
        assert len(sent) == 1, (name, sent)
    monkeypatch.undo()


def test_one_round_trip_per_operation(kv: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Opening loads every script, so this holds whatever the shared server's
    # script cache held before (it is emptied whenever that server restarts).
    _assert_one_round_trip_each(kv, monkeypatch)


def test_one_round_trip_per_operation_on_a_cold_server(
    server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = redis.Redis.from_url(server.url)
    raw.script_flush()  # a fresh server is cold already; make sure of it
    assert not any(raw.script_exists(*(script.sha for script in rc.SCRIPTS)))
    with keyshelf.open(server.url) as kv:
        assert all(raw.script_exists(*(script.sha for script in rc.SCRIPTS)))
        _assert_one_round_trip_each(kv, monkeypatch)
    raw.close()


def test_async_open_loads_every_script_on_first_use(server: RedisServer) -> None:
    raw = redis.Redis.from_url(server.url)
    raw.script_flush()

    shas = [script.sha for script in rc.SCRIPTS]

    async def run() -> None:
        akv = keyshelf.open_async(server.url)  # no I/O yet
        try:
            assert not any(raw.script_exists(*shas))
            assert await akv.get("k") is None  # HMGET: no script, but the first call connects
            assert all(raw.script_exists(*shas))
        finally:
            await akv.aclose()
        raw.script_flush()
        async with keyshelf.open_async(server.url):  # entering connects
            assert all(raw.script_exists(*shas))

    asyncio.run(run())
    raw.close()


def test_close_releases_connections(server: RedisServer) -> None:
    watcher = redis.Redis(port=server.port)

    def clients() -> int:
        return int(watcher.info("clients")["connected_clients"])

    baseline = clients()
    kv = keyshelf.open(server.url)
    for i in range(10):
        kv.set(f"k{i}", i)
    assert clients() > baseline
    kv.close()
    deadline = time.monotonic() + 5  # the server notices closed sockets asynchronously
    while clients() != baseline and time.monotonic() < deadline:
        time.sleep(0.01)
    assert clients() == baseline
    with pytest.raises(keyshelf.StoreClosedError):
        kv.get("k1")
    watcher.close()


# -- packaging --------------------------------------------------------------------------


def test_import_keyshelf_does_not_import_redis_and_missing_extra_is_named() -> None:
    code = (
        "import sys\n"
        "import keyshelf\n"
        "assert 'redis' not in sys.modules, 'import keyshelf pulled in redis'\n"
        "sys.modules['redis'] = None\n"
        "try:\n"
        "    keyshelf.open('redis://127.0.0.1:6379/0')\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "pip install 'keyshelf[redis]'" in out


def test_create_false_opens_as_usual_and_readonly_is_refused(
    where: tuple[str, dict[str, Any]],
) -> None:
    # Opening a Redis store creates nothing, so there is no missing store to refuse.
    url, options = where
    with keyshelf.open(url, create=False, **options) as kv:
        assert kv.get("k") is None
        kv.set("k", 1)
    with keyshelf.open(url, create="false", **options) as kv:
        assert kv.get("k") == 1
    for opener in (keyshelf.open, keyshelf.open_async):
        with pytest.raises(keyshelf.InvalidURLError, match="readonly"):
            opener(url, readonly=True, **options)
