"""keyshelf.migrate between every pair of backends (docs/transfer.md).

It is also what dataknobs-kv's ``migrate_store`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

import keyshelf

from .conftest import BACKENDS, FakeClock

# Every kind of value the codec keeps, by name.
VALUES: dict[str, Any] = {
    "none": None,
    "true": True,
    "false": False,
    "int": 42,
    "negative": -7,
    "int64max": 2**63 - 1,
    "bigint": 2**80,
    "float": 3.0,
    "pi": 3.14159,
    "negzero": -0.0,
    "inf": float("inf"),
    "nan": float("nan"),
    "str": "Hello World",
    "emoji": "émoji 🚀",
    "empty": "",
    "bytes": b"raw\x00\xffbytes",
    "list": [1, "a", None, True, 2.5],
    "dict": {"nested": {"data": [1, 2, 3]}},
    "tuple": (1, 2, (3, b"x")),
    "set": {1, 2, 3},
    "frozenset": frozenset({"a", "b"}),
    "intkeys": {1: "one", (1, 2): "pair"},
    "taglike": {"$set": [1]},
    "datetime": datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    "date": date(2024, 2, 29),
    "decimal": Decimal("1.10"),
    "uuid": UUID("12345678-1234-5678-1234-567812345678"),
}


def fill(kv: Any) -> None:
    """Several namespaces; every type; metadata, TTLs and both together."""
    for name, value in VALUES.items():
        kv.set(f"v:{name}", value)
    kv.set("meta", {"a": 1}, metadata={"owner": "ops", "tags": ["x", "y"]})
    kv.set("meta:ext", "v", metadata={"when": date(2024, 1, 1), "n": {1, 2}})
    kv.set("ttl", "soon", ttl=3600)
    kv.set("ttl+meta", [1], ttl=7200, metadata={"k": "v"})
    kv.set("counter", 0)
    kv.increment("counter", 5)
    tenant = kv.namespace("tenant:1")
    tenant.mset({"a": 1, "b": "two", "c": b"3"})
    tenant.set("session", {"user": 1}, ttl=600, metadata={"ip": "127.0.0.1"})
    kv.namespace("app.config").set("db.host", "localhost", metadata={"env": "dev"})


def snapshot(kv: Any) -> dict[str, dict[str, tuple[Any, ...]]]:
    """Every live record of every namespace: type, exact encoding, metadata, expiry."""
    result: dict[str, dict[str, tuple[Any, ...]]] = {}
    for ns in kv.list_namespaces():
        view = kv.namespace(ns)
        records = result[ns] = {}
        for key in view.keys():
            entry = view.get_entry(key)
            assert entry is not None
            expires = None if entry.expires_at is None else entry.expires_at.timestamp()
            records[key] = (type(entry.value).__name__, entry.checksum, entry.metadata, expires)
    return result


def assert_same(got: dict[str, Any], expected: dict[str, Any], tolerance: float = 0.0) -> None:
    assert sorted(got) == sorted(expected)
    for ns, records in expected.items():
        assert sorted(got[ns]) == sorted(records), ns
        for key, (kind, checksum, metadata, expires) in records.items():
            g_kind, g_checksum, g_metadata, g_expires = got[ns][key]
            assert (g_kind, g_checksum, g_metadata) == (kind, checksum, metadata), (ns, key)
            if expires is None:
                assert g_expires is None, (ns, key)
            else:
                assert g_expires is not None and abs(g_expires - expires) <= tolerance, (ns, key)


def assert_values_equal(got: Any, expected: Any) -> None:
    for name, value in VALUES.items():
        stored = got.get(f"v:{name}")
        assert type(stored) is type(value), name
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(stored)
        else:
            assert stored == value and repr(stored) == repr(value), name


STORAGE = [name for name in BACKENDS if "+" not in name]


@contextlib.contextmanager
def store_on(name: str, tmp_path: Path, tag: str, **options: Any) -> Iterator[Any]:
    """A fresh store on backend ``name`` (real clock: migrations mix backends)."""
    factory = BACKENDS[name][0]
    directory = tmp_path / tag
    directory.mkdir()
    with factory(directory) as (url, base):
        kv = keyshelf.open(url, **{**base, **options})
        try:
            yield kv
        finally:
            kv.close()


@pytest.mark.parametrize("target", [*BACKENDS])
@pytest.mark.parametrize("source", [*BACKENDS])
def test_migrate_every_pair(source: str, target: str, tmp_path: Path) -> None:
    with store_on(source, tmp_path, "src") as src, store_on(target, tmp_path, "dst") as dst:
        fill(src)
        dst.namespace("tenant:1").set("untouched", "stays")
        dst.namespace("tenant:1").set("a", "overwritten")
        expected = snapshot(src)
        copied = keyshelf.migrate(src, dst)
        assert copied == sum(len(records) for records in expected.values())
        got = snapshot(dst)
        untouched = got["tenant:1"].pop("untouched")
        assert untouched[0] == "str"
        # Server clocks (Redis, PostgreSQL) and ms rounding: a little slack.
        assert_same(got, expected, tolerance=1.0)
        assert_values_equal(dst, src)
        assert dst.namespace("tenant:1").get("a") == 1
        assert snapshot(src) == expected  # the source is left alone


def test_system_metadata_is_that_of_a_fresh_write() -> None:
    clock = FakeClock()
    src = keyshelf.open("memory://", clock=clock)
    src.set("k", 1)
    src.set("k", 2)
    clock.advance(100)
    dst = keyshelf.open("memory://", clock=clock)
    keyshelf.migrate(src, dst)
    before, after = src.get_entry("k"), dst.get_entry("k")
    assert before is not None and after is not None
    assert before.version == 2 and after.version == 1
    assert after.created_at.timestamp() == pytest.approx(clock.now, abs=0.001)
    assert after.checksum == before.checksum


def test_expired_keys_are_not_copied() -> None:
    clock = FakeClock()
    src = keyshelf.open("memory://", clock=clock)
    dst = keyshelf.open("memory://", clock=clock)
    src.set("gone", 1, ttl=1)
    src.set("stays", 2, ttl=100)
    clock.advance(2)
    assert keyshelf.migrate(src, dst) == 1
    assert dst.keys() == ["stays"]
    assert dst.ttl("stays") == pytest.approx(98, abs=0.01)


def test_expired_between_read_and_write_is_skipped() -> None:
    clock = FakeClock()
    src = keyshelf.open("memory://", clock=clock)
    target_clock = FakeClock()
    target_clock.now = clock.now + 10  # the target's "now" is later
    dst = keyshelf.open("memory://", clock=target_clock)
    src.set("short", 1, ttl=5)
    src.set("long", 2, ttl=50)
    assert keyshelf.migrate(src, dst) == 1
    assert dst.keys() == ["long"]


def test_selected_namespaces(tmp_path: Path) -> None:
    src = keyshelf.open("memory://")
    fill(src)
    dst = keyshelf.open("memory://")
    copied = keyshelf.migrate(src, dst, namespaces=["tenant:1", "missing"])
    assert copied == 4
    assert dst.list_namespaces() == ["tenant:1"]
    dst2 = keyshelf.open("memory://")
    assert keyshelf.migrate(src, dst2, namespaces="app.config") == 1  # one name, not letters
    with pytest.raises(keyshelf.InvalidKeyError):
        keyshelf.migrate(src, dst2, namespaces=["__reserved"])


def test_urls_are_opened_and_closed(tmp_path: Path) -> None:
    source = tmp_path / "src.db"
    with keyshelf.open(source) as kv:
        fill(kv)
        expected = snapshot(kv)
    target = f"file://{tmp_path / 'dst.json'}"
    count = sum(len(records) for records in expected.values())
    assert keyshelf.migrate(str(source), target) == count
    with keyshelf.open(target) as kv:
        assert_same(snapshot(kv), expected)
    # Both files are closed: a second migration back works on fresh stores.
    assert keyshelf.migrate(target, f"sqlite:///{tmp_path / 'back.db'}") == count


def test_progress_and_batches() -> None:
    src = keyshelf.open("memory://")
    src.mset({f"k{i:03d}": i for i in range(25)})
    src.namespace("other").mset({f"k{i}": i for i in range(5)})
    dst = keyshelf.open("memory://")
    calls: list[tuple[int, int | None]] = []
    assert keyshelf.migrate(src, dst, batch_size=10, progress=lambda *a: calls.append(a)) == 30
    assert calls == [(0, 30), (10, 30), (20, 30), (25, 30), (30, 30)]


def test_bad_arguments() -> None:
    src = keyshelf.open("memory://")
    for bad in (0, -1, 1.5, True, "10"):
        with pytest.raises(keyshelf.InvalidArgumentError, match="batch_size"):
            keyshelf.migrate(src, "memory://", batch_size=bad)
    with pytest.raises(keyshelf.InvalidArgumentError, match="Store or a URL"):
        keyshelf.migrate(src, 42)  # type: ignore[arg-type]


def test_target_max_value_size_is_honoured() -> None:
    src = keyshelf.open("memory://")
    src.set("a", "small")
    src.set("b", "x" * 1000)
    dst = keyshelf.open("memory://", max_value_size=100)
    with pytest.raises(keyshelf.ValueTooLargeError, match="'b'"):
        keyshelf.migrate(src, dst)


def test_migrate_async(tmp_path: Path) -> None:
    async def main() -> None:
        async with keyshelf.open_async("memory://") as src:
            await src.set("k", (1, 2), ttl=60, metadata={"m": 1})
            await src.namespace("n").set("x", {1})
            target = f"sqlite:///{tmp_path / 'a.db'}"
            assert await keyshelf.migrate_async(src, target) == 2
        async with keyshelf.open_async(target) as dst:
            assert await dst.get("k") == (1, 2)
            assert await dst.get_metadata("k") == {"m": 1}
            assert 59 < (await dst.ttl("k") or 0) <= 60.001
            assert await dst.namespace("n").get("x") == {1}

    asyncio.run(main())


class Counting:
    """Wraps a backend and records the size of every bulk call."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.reads: list[int | None] = []
        self.writes: list[int] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if name in ("scan", "scan_records", "get_many", "put_many", "put_records"):

            def call(*args: Any) -> Any:
                if name == "scan":
                    self.reads.append(args[4])  # limit
                elif name == "scan_records":
                    self.reads.append(args[3])
                elif name == "get_many":
                    self.reads.append(len(args[1]))
                else:
                    self.writes.append(len(args[1]))
                return attribute(*args)

            return call
        return attribute


def test_streams_in_batches_never_more_than_a_batch(tmp_path: Path) -> None:
    src = keyshelf.open("memory://")
    for ns in ("a", "b"):
        src.namespace(ns).mset({f"key:{i:05d}": {"i": i} for i in range(10_000)})
    dst = keyshelf.open(tmp_path / "big.db")
    src._backend = reads = Counting(src._backend)
    dst._backend = writes = Counting(dst._backend)
    progress: list[tuple[int, int | None]] = []
    copied = keyshelf.migrate(src, dst, batch_size=500, progress=lambda *a: progress.append(a))
    assert copied == 20_000
    assert reads.reads and all(limit is not None and limit <= 500 for limit in reads.reads)
    assert writes.writes and max(writes.writes) == 500
    assert sum(writes.writes) == 20_000
    assert progress[0] == (0, 20_000) and progress[-1] == (20_000, 20_000)
    assert len(progress) == 1 + 40
    assert all(b[0] - a[0] == 500 for a, b in itertools.pairwise(progress))
    assert dst.namespace("b").get("key:09999") == {"i": 9999}
    dst.close()


# -- expiry instants travel exactly ------------------------------------------------------

#: The storage backends whose expiry instants must survive every copy to the millisecond.
EXACT = [
    name for name in ("memory", "sqlite", "file", "redis", "postgres", "s3") if name in BACKENDS
]


def fill_expiring(kv: Any) -> None:
    """Keys with TTLs of every shape (whole, fractional ms, via expire and metadata)."""
    kv.set("hour", 1, ttl=3600)
    kv.set("odd", "x", ttl=1234.5678)
    kv.set("fraction", b"y", ttl=7200.0005)
    kv.set("meta", [1], metadata={"ttl": 600, "owner": "me"})
    kv.set("later", 2)
    kv.expire("later", 86400.25)
    kv.set("forever", 3)
    kv.namespace("other").mset({"a": 1, "b": 2}, ttl=99.999)


def instants(kv: Any) -> dict[tuple[str, str], int | None]:
    """Every key's expiry instant in whole milliseconds (None: never expires)."""
    found: dict[tuple[str, str], int | None] = {}
    for ns in kv.list_namespaces():
        view = kv.namespace(ns)
        for key in view.keys():
            entry = view.get_entry(key)
            assert entry is not None
            expires = entry.expires_at
            found[ns, key] = None if expires is None else round(expires.timestamp() * 1000)
    return found


@pytest.mark.parametrize("target", EXACT)
@pytest.mark.parametrize("source", EXACT)
def test_expiry_instants_are_kept_exactly(source: str, target: str, tmp_path: Path) -> None:
    # The promise of migrate and import: each expiry is the same absolute instant,
    # never a duration re-applied later (which would land it a few ms late).
    with store_on(source, tmp_path, "src") as src:
        fill_expiring(src)
        expected = instants(src)
        assert len(expected) == 8 and expected["default", "forever"] is None
        with store_on(target, tmp_path, "migrated") as dst:
            assert keyshelf.migrate(src, dst) == 8
            assert instants(dst) == expected
        export = tmp_path / "export.jsonl"
        assert src.export(export, all_namespaces=True) == 8
        with store_on(target, tmp_path, "imported") as dst:
            assert dst.import_(export) == 8
            assert instants(dst) == expected
        assert instants(src) == expected  # reading never moves an instant


@pytest.mark.parametrize(("source", "target"), [("redis", "postgres"), ("postgres", "redis")])
def test_expiry_instants_are_kept_exactly_async(source: str, target: str, tmp_path: Path) -> None:
    if source not in EXACT or target not in EXACT:
        pytest.skip(f"{source} or {target} is not in this run")

    async def entries(akv: Any) -> dict[str, int | None]:
        found: dict[str, int | None] = {}
        for key in await akv.keys():
            entry = await akv.get_entry(key)
            expires = entry.expires_at
            found[key] = None if expires is None else round(expires.timestamp() * 1000)
        return found

    async def main(src_url: str, src_options: Any, dst_url: str, dst_options: Any) -> None:
        async with (
            keyshelf.open_async(src_url, **src_options) as src,
            keyshelf.open_async(dst_url, **dst_options) as dst,
        ):
            await src.set("a", 1, ttl=3600.0005)
            await src.mset({"b": 2, "c": 3}, ttl=1.5)
            await src.set("d", 4)
            expected = await entries(src)
            assert await keyshelf.migrate_async(src, dst) == 4
            assert await entries(dst) == expected
            export = tmp_path / "async.jsonl"
            await src.export(export)
            await dst.clear()
            assert await dst.import_(export) == 4
            assert await entries(dst) == expected

    (src_dir := tmp_path / "src").mkdir()
    (dst_dir := tmp_path / "dst").mkdir()
    with (
        BACKENDS[source][0](src_dir) as (src_url, src_options),
        BACKENDS[target][0](dst_dir) as (dst_url, dst_options),
    ):
        asyncio.run(main(src_url, src_options, dst_url, dst_options))
