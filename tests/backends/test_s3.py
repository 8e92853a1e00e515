"""S3 backend specifics, against a real S3-compatible server (see s3_server.py).

The behaviour every backend shares is proved by the conformance suite, which
runs on S3 too; here: URL and options, the documented deviations (each
refused operation raises its documented error and changes nothing), races
between processes, an outage, and the layout users may rely on.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import keyshelf

from . import s3_server


@pytest.fixture
def where() -> Iterator[tuple[str, dict[str, Any]]]:
    with s3_server.s3_store() as found:
        yield found


# -- URL and options ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("s3:///prefix", {}, "needs a bucket"),
        ("s3://user@bucket/p", {}, "needs a bucket"),
        ("s3://bucket/a/../b", {}, "cannot be used"),
        ("s3://bucket/p", {"nonsense": 1}, "Unknown option"),
        ("s3://bucket/p", {"timeout": 0}, "timeout must be greater than 0"),
        ("s3://bucket/p", {"endpoint_url": "ftp://x"}, "must be an http"),
        ("s3://bucket/p", {"aws_access_key_id": "only-one"}, "go together"),
        ("s3://bucket/p", {"path_style": "maybe"}, "true or false"),
    ],
)
def test_unusable_urls_are_refused_at_open(url: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(keyshelf.InvalidURLError, match=message):
        keyshelf.open(url, **options)


def test_options_as_url_query_parameters(where: tuple[str, dict[str, Any]]) -> None:
    url, options = where
    query = "&".join(f"{name}={value}" for name, value in options.items())
    with keyshelf.open(f"{url}?{query}&timeout=5&conflict_retries=8") as kv:
        assert kv.set("k", 1) is True and kv.get("k") == 1
    with pytest.raises(keyshelf.InvalidURLError, match="fragment"):
        keyshelf.open(f"{url}#x", **options)


def test_without_obstore_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    for name in [m for m in sys.modules if m.startswith("keyshelf.backends.") and "s3" in m]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "obstore", None)  # import obstore -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'keyshelf\[s3\]'"):
        keyshelf.open("s3://bucket/prefix")


def test_a_missing_bucket_is_refused_and_not_created() -> None:
    url = s3_server.endpoint()
    bucket = f"missing-{uuid.uuid4().hex[:8]}"
    with pytest.raises(keyshelf.StoreNotFoundError, match="never creates buckets"):
        keyshelf.open(f"s3://{bucket}/p", **s3_server.options(url))


def test_an_unreachable_service_is_refused_at_open() -> None:
    options = {**s3_server.options(), "endpoint_url": f"http://127.0.0.1:{s3_server.free_port()}"}
    options.update(timeout=2, retries=0)
    start = time.monotonic()
    with pytest.raises(keyshelf.BackendUnavailableError):
        keyshelf.open(f"s3://{s3_server.BUCKET}/p", **options)
    assert time.monotonic() - start < 30  # bounded by the timeout, not minutes of retries


def _names_under(url: str, options: dict[str, Any]) -> list[str]:
    import obstore

    prefix = url.removeprefix(f"s3://{s3_server.BUCKET}/")
    return [
        str(meta["path"])
        for page in obstore.list(_raw_store(options), prefix, chunk_size=1000)
        for meta in page
    ]


@pytest.mark.parametrize("how", [{"create": False}, {"create": "false"}, {"readonly": True}])
def test_create_false_or_readonly_on_an_empty_prefix_creates_nothing(
    where: tuple[str, dict[str, Any]], how: dict[str, Any]
) -> None:
    url, options = where
    with pytest.raises(keyshelf.StoreNotFoundError, match="nothing created"):
        keyshelf.open(url, **options, **how)
    assert _names_under(url, options) == []
    with keyshelf.open(url, **options) as kv:
        kv.set("k", 1)
    with keyshelf.open(url, **options, create=False) as kv:
        assert kv.get("k") == 1


def test_readonly_reads_and_refuses_every_write(where: tuple[str, dict[str, Any]]) -> None:
    url, options = where
    clock = [time.time()]
    with keyshelf.open(url, clock=lambda: clock[0], **options) as kv:
        kv.mset({"a": 1, "b": "x"})
        kv.set("t", 2, ttl=5)
    before = sorted(_names_under(url, options))
    clock[0] += 10
    with keyshelf.open(url, clock=lambda: clock[0], readonly=True, **options) as ro:
        assert ro.dump() == {"a": 1, "b": "x"} and ro.keys("*") == ["a", "b"]
        for write in (
            lambda: ro.set("a", 2),
            lambda: ro.setnx("c", 1),
            lambda: ro.mset({"c": 1}),
            lambda: ro.increment("a"),
            lambda: ro.delete("a"),
            lambda: ro.delete_pattern("*"),
            lambda: ro.expire("a", 10),
            lambda: ro.set_metadata("a", {"m": 1}),
            ro.clear,
            ro.delete_expired,
        ):
            with pytest.raises(keyshelf.ReadOnlyStoreError, match="readonly=True"):
                write()
        assert ro.dump() == {"a": 1, "b": "x"}
    assert sorted(_names_under(url, options)) == before


# -- layout -----------------------------------------------------------------------


def test_layout_one_object_per_key_with_escaped_names(where: tuple[str, dict[str, Any]]) -> None:
    import obstore

    url, options = where
    with keyshelf.open(url, **options) as kv:
        kv.namespace("a:b").set("c", 1)
        kv.namespace("a").set("b:c", 2)
        kv.namespace("n/s").set("x.y/z", 3, ttl=60)
        store = _raw_store(options)
        prefix = url.removeprefix(f"s3://{s3_server.BUCKET}/")
        names = sorted(
            str(meta["path"])[len(prefix) + 1 :]
            for page in obstore.list(store, prefix, chunk_size=1000)
            for meta in page
        )
        assert names[:3] == ["d/a/b:c", "d/a:b/c", "d/n.1s/x.0y.1z"]
        assert len(names) == 4 and names[3].startswith("x/n.1s/x.0y.1z 0")
        assert kv.namespace("a:b").get("c") == 1 and kv.namespace("a").get("b:c") == 2


def _raw_store(options: dict[str, Any]) -> Any:
    from obstore.store import S3Store

    config: dict[str, Any] = {"endpoint": options["endpoint_url"], "region": "us-east-1"}
    config["virtual_hosted_style_request"] = False
    if "aws_access_key_id" in options:
        config["access_key_id"] = options["aws_access_key_id"]
        config["secret_access_key"] = options["aws_secret_access_key"]
    return S3Store(s3_server.BUCKET, config=config, client_options={"allow_http": True})  # type: ignore[arg-type]


def test_keys_list_in_code_point_order_across_pages(where: tuple[str, dict[str, Any]]) -> None:
    url, options = where
    keys = [f"k{i:04d}" for i in range(1100)] + ["k.", "k/", "k-", "k é", "k😀", "k\u00ff"]
    # U+10FFFF is a valid key character: a key just below a prefix may run past
    # the listing's starting point (docs/s3.md), and must still be left out.
    keys += ["j" + "\U0010ffff" * 5, "k\U0010ffff", "l", "\u200dz", "\ufffe"]
    with keyshelf.open(url, **options) as kv:
        kv.mset(dict.fromkeys(keys, 1))
        assert kv.keys() == sorted(keys)
        assert kv.keys("k0*") == sorted(k for k in keys if k.startswith("k0"))
        assert kv.keys("k*") == sorted(k for k in keys if k.startswith("k"))
        assert kv.key_count("k1???") == 100
        assert kv.keys("\U0010ffff*") == [] and kv.keys("\ufffe*") == ["\ufffe"]


def test_a_remembered_copy_never_decides_alone(where: tuple[str, dict[str, Any]]) -> None:
    # Each store remembers the objects it last read or wrote, to write them with
    # one conditional PUT; another store (another process) changing them meanwhile
    # must never make an operation decide on the stale copy.
    url, options = where
    with keyshelf.open(url, **options) as a, keyshelf.open(url, **options) as b:
        a.set("k", 1)
        b.set("k", 2)
        assert a.increment("k") == 3
        b.delete("k")
        assert a.setnx("k", 5) is True
        b.set("k", "x")
        assert a.compare_and_swap("k", 5, 6) is False
        assert a.get("k") == "x"
        b.delete("k")
        assert a.set("k", 1, xx=True) is False and a.exists("k") is False
        b.set("k", 7, metadata={"by": "b"})
        assert a.set_metadata("k", {"more": 1}) is True
        assert b.get_metadata("k") == {"by": "b", "more": 1}
        entry = b.get_entry("k")
        assert entry is not None and entry.version == 2


def test_listings_walk_the_expiry_markers_in_key_order(where: tuple[str, dict[str, Any]]) -> None:
    # Keys that extend one another by characters below "/" (space, "!", "-", ".")
    # are where a naive "<key>/<nonce>" marker name would sort out of key order.
    url, options = where
    clock = [time.time()]
    keys = ["a", "a b", "a!", "a-", "a.", "a/", "a b c", "b", " a", "a\u00e9"]
    with keyshelf.open(url, clock=lambda: clock[0], **options) as kv:
        for i, key in enumerate(keys):
            kv.set(key, i, ttl=5 if i % 2 else 500)
        kv.set("plain", 1)
        clock[0] += 10
        live = sorted([k for i, k in enumerate(keys) if not i % 2] + ["plain"])
        assert kv.keys() == live
        assert list(kv.iter_keys(batch_size=2)) == live
        assert kv.keys("a*") == [k for k in live if k.startswith("a")]
        assert kv.key_count() == len(live)


def test_a_write_whose_reply_was_lost_is_not_applied_twice(
    where: tuple[str, dict[str, Any]],
) -> None:
    # The client retries a PUT whose connection dropped; if the first one had
    # landed, the retry is refused (412) as if another writer had won. keyshelf
    # must find its own write, even under another process's newer one, and not
    # increment again. Simulated: the PUT lands, another store increments on top,
    # then the call reports a conflict.
    from keyshelf.backends._s3_io import ConflictError

    url, options = where
    with keyshelf.open(url, **options) as a, keyshelf.open(url, **options) as b:
        a.set("n", 0)
        io = a._backend._io
        real_put = io.put
        lost = {"left": 1}

        def put(name: str, body: bytes, **conditions: Any) -> str:
            etag = real_put(name, body, **conditions)
            if lost["left"] and name.endswith("/n"):
                lost["left"] -= 1
                b.increment("n", 10)
                raise ConflictError(name)
            return etag

        io.put = put
        assert a.increment("n") == 1
        assert a.get("n") == 11


# -- documented deviations ----------------------------------------------------------


def test_a_key_whose_object_name_is_too_long_is_refused(
    where: tuple[str, dict[str, Any]],
) -> None:
    url, options = where
    with keyshelf.open(url, **options) as kv:
        kv.set("kept", 1)
        long_key = "\U0001f600" * 255  # 1020 bytes of UTF-8, plus the prefix
        for call in (
            lambda: kv.set(long_key, 1),
            lambda: kv.get(long_key),
            lambda: kv.mset({"a": 1, long_key: 2}),
            lambda: kv.delete("kept", long_key),
        ):
            with pytest.raises(keyshelf.InvalidKeyError, match="too long for S3"):
                call()
        assert kv.dump() == {"kept": 1}


def test_deletes_leave_zero_byte_tombstones_that_no_operation_sees(
    where: tuple[str, dict[str, Any]],
) -> None:
    import obstore

    url, options = where
    with keyshelf.open(url, **options) as kv:
        kv.mset({"a": 1, "b": 2, "c": 3})
        assert kv.delete("a", "b") == 2
        assert kv.keys() == ["c"] and len(kv) == 1 and kv.stats()["total_keys"] == 1
        assert kv.setnx("a", 10) is True and kv.get("a") == 10
        entry = kv.get_entry("a")
        assert entry is not None and entry.version == 1  # a new key, not version 2
        prefix = url.removeprefix(f"s3://{s3_server.BUCKET}/")
        sizes = {
            str(meta["path"]).rpartition("/")[2]: meta["size"]
            for page in obstore.list(_raw_store(options), prefix, chunk_size=1000)
            for meta in page
        }
        assert sizes["b"] == 0 and sizes["a"] > 0


def test_expired_keys_are_invisible_and_purged_with_their_markers(
    where: tuple[str, dict[str, Any]],
) -> None:
    import obstore

    url, options = where
    clock = [time.time()]
    with keyshelf.open(url, clock=lambda: clock[0], **options) as kv:
        kv.set("short", 1, ttl=5)
        kv.set("long", 2, ttl=500)
        kv.set("plain", 3)
        clock[0] += 10
        assert kv.keys() == ["long", "plain"] and kv.key_count() == 2
        assert kv.stats() == {
            "total_keys": 3,
            "active_keys": 2,
            "expired_keys": 1,
            "keys_with_ttl": 1,
            "evictions": 0,
        }
        assert kv.delete_expired() == 1
        assert kv.stats()["total_keys"] == 2
        assert kv.persist("long") is True
        prefix = url.removeprefix(f"s3://{s3_server.BUCKET}/")
        markers = [
            str(meta["path"])
            for page in obstore.list(_raw_store(options), f"{prefix}/x", chunk_size=1000)
            for meta in page
        ]
        # "short" was purged and "long" no longer expires: no marker is left.
        assert markers == []


# -- races between processes --------------------------------------------------------


def _increment(url: str, options: dict[str, Any], count: int, start: Any) -> None:
    start.wait()
    with keyshelf.open(url, **options) as kv:
        for _ in range(count):
            kv.increment("counter")


def _setnx(url: str, options: dict[str, Any], me: int, start: Any, won: Any) -> None:
    with keyshelf.open(url, **options) as kv:
        start.wait()
        if kv.setnx("winner", me):
            won.put(me)


def _race_increments(where: tuple[str, dict[str, Any]], processes: int, each: int) -> None:
    url, options = where
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    workers = [
        context.Process(target=_increment, args=(url, options, each, start))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(600)
        assert worker.exitcode == 0
    with keyshelf.open(url, **options) as kv:
        assert kv.get("counter") == processes * each
        entry = kv.get_entry("counter")
        assert entry is not None and entry.version == processes * each


def test_increments_from_four_processes_lose_nothing(where: tuple[str, dict[str, Any]]) -> None:
    _race_increments(where, 4, 25)


@pytest.mark.stress
def test_four_processes_times_500_increments(where: tuple[str, dict[str, Any]]) -> None:
    _race_increments(where, 4, 500)


def test_setnx_race_between_four_processes_has_one_winner(
    where: tuple[str, dict[str, Any]],
) -> None:
    url, options = where
    context = multiprocessing.get_context("spawn")
    for _round in range(3):
        with keyshelf.open(url, **options) as kv:
            kv.delete("winner")
        start, won = context.Event(), context.Queue()
        workers = [
            context.Process(target=_setnx, args=(url, options, me, start, won)) for me in range(4)
        ]
        for worker in workers:
            worker.start()
        time.sleep(0.5)  # let every process open its store before the start signal
        start.set()
        for worker in workers:
            worker.join(120)
            assert worker.exitcode == 0
        winners = [won.get(timeout=5)]
        assert won.empty()
        with keyshelf.open(url, **options) as kv:
            assert kv.get("winner") == winners[0]


# -- outage ---------------------------------------------------------------------


def test_outage_raises_unavailable_within_the_timeout_then_recovers() -> None:
    server = s3_server.S3Server()
    try:
        server.start()
    except RuntimeError as exc:
        if s3_server.ON_CI:
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    try:
        options = {**s3_server.options(server.url), "timeout": 2, "retries": 1}
        url = f"s3://{s3_server.BUCKET}/outage"
        with keyshelf.open(url, **options) as kv:
            kv.set("k", 1)
            assert kv.increment("n") == 1
            server.stop()
            for call in (
                lambda: kv.get("k"),
                lambda: kv.increment("n"),
                kv.keys,
                lambda: kv.mset({"a": 1, "b": 2}),
                lambda: kv.delete_many(["a", "b"]),
            ):
                start = time.monotonic()
                with pytest.raises(keyshelf.BackendUnavailableError, match="unavailable"):
                    call()
                assert time.monotonic() - start < 20
            server.start()  # moto keeps nothing: the bucket is new and empty
            assert kv.get("k") is None
            assert kv.set("k", 2) is True and kv.get("k") == 2
            assert kv.increment("n") == 1
            assert kv.mset({"a": 1, "b": 2}) is True and kv.dump() == {
                "a": 1,
                "b": 2,
                "k": 2,
                "n": 1,
            }
    finally:
        server.stop()


async def test_async_api_outage_and_recovery() -> None:
    server = s3_server.S3Server()
    try:
        server.start()
    except RuntimeError as exc:
        if s3_server.ON_CI:
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    try:
        options = {**s3_server.options(server.url), "timeout": 2, "retries": 1}
        async with keyshelf.open_async(f"s3://{s3_server.BUCKET}/outage", **options) as kv:
            await kv.set("k", 1)
            server.stop()
            with pytest.raises(keyshelf.BackendUnavailableError):
                await kv.get("k")
            with pytest.raises(keyshelf.BackendUnavailableError):
                await kv.mset({"a": 1, "b": 2})
            server.start()
            assert await kv.set("k", 2) is True and await kv.get("k") == 2
            assert await kv.mset({"a": 1, "b": 2}) is True
            assert await kv.get_many(["a", "b"]) == {"a": 1, "b": 2}
    finally:
        server.stop()


# -- the benchmark ----------------------------------------------------------------


def test_benchmark_smoke(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import bench_s3

    # Each side runs whole blocks of BLOCK calls whatever `calls` asks: the
    # default 20 made this smoke test 20 batches of 100 keys (~15 s on moto).
    # Blocks of 2 still interleave both sides in every case.
    monkeypatch.setattr(bench_s3, "BLOCK", 2)
    url = s3_server.endpoint()
    rows = bench_s3.run(url, s3_server.BUCKET, s3_server.options(url), calls=4, keys=30)
    assert [row["case"] for row in rows] == ["get", "set", "mset 100 keys", "list 30 keys"]
    assert all(row["keyshelf_ms"] > 0 and row["raw_ms"] > 0 for row in rows)
    assert bench_s3.render(rows[0]).startswith("get")


def test_list_namespaces_costs_one_get_and_one_list_per_live_namespace(
    where: tuple[str, dict[str, Any]],
) -> None:
    # Namespaces emptied by deletes keep their tombstones (docs/s3.md); the
    # listing streams them 1000 per LIST page instead of one LIST per namespace.
    url, options = where
    with keyshelf.open(url, **options) as kv:
        for n in range(40):
            kv.namespace(f"ns{n:02d}").mset({"a": 1, "b": 2})
        for n in range(40):
            if n not in (3, 17, 39):
                kv.namespace(f"ns{n:02d}").clear()
        kv.namespace("ns17").delete("a")  # its first object is a tombstone now
        io = kv._backend._io
        calls = {"get": 0, "list": 0}
        real_get, real_pages = io.get, io.pages

        def get(name: str) -> Any:
            calls["get"] += 1
            return real_get(name)

        def pages(directory: str, after: str | None) -> Any:
            calls["list"] += 1
            return real_pages(directory, after)

        io.get, io.pages = get, pages
        assert kv.list_namespaces() == ["ns03", "ns17", "ns39"]
        assert calls == {"get": 3, "list": 4}
