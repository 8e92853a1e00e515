"""Defects the reliability suite found, each pinned on every backend through both APIs."""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

import pytest

import keyshelf

from . import helpers


def unchanged(kv: Any) -> Any:
    return kv.dump(), kv.stats()


# -- keys that are not hashable, or not exactly str ------------------------------------


class StrSubclass(str):
    pass


@pytest.mark.parametrize("key", [["k"], {"k": 1}, {"k"}, bytearray(b"k")])
def test_unhashable_keys_are_invalid_keys(kv: Any, key: Any) -> None:
    # Was: TypeError("unhashable type") from the valid-key cache, not InvalidKeyError.
    kv.set("k", 1)
    before = unchanged(kv)
    calls = [
        lambda: kv.get(key),
        lambda: kv.set(key, 1),
        lambda: kv.exists(key),
        lambda: kv.increment(key),
        lambda: kv.append(key, "x"),
        lambda: kv.delete(key),
        lambda: kv.delete_many([key]),
        lambda: kv.mget(["k", key]),
        lambda: kv.storage_size(key),
    ]
    for call in calls:
        with pytest.raises(keyshelf.InvalidKeyError, match="non-empty string"):
            call()
    assert unchanged(kv) == before


def test_str_subclass_is_refused_even_when_the_key_was_seen(kv: Any) -> None:
    # Was: accepted once the equal plain str had been used (the cache skipped the type rule).
    kv.set("seen", 1)
    for call in (
        lambda: kv.get(StrSubclass("seen")),
        lambda: kv.set(StrSubclass("seen"), 2),
        lambda: kv.get_many([StrSubclass("seen")]),
    ):
        with pytest.raises(keyshelf.InvalidKeyError, match="non-empty string"):
            call()
    assert kv.get("seen") == 1


@pytest.mark.parametrize("batch", [None, 5, 1.5, object()])
def test_non_iterable_key_batches_are_invalid_keys(kv: Any, batch: Any) -> None:
    # Was: TypeError("... object is not iterable").
    kv.set("k", 1)
    before = unchanged(kv)
    for call in (
        lambda: kv.mget(batch),
        lambda: kv.get_many(batch),
        lambda: kv.delete_many(batch),
    ):
        with pytest.raises(keyshelf.InvalidKeyError, match="Invalid key batch"):
            call()
    assert unchanged(kv) == before


# -- values that contain themselves -------------------------------------------------------


def _cycles() -> list[Any]:
    in_list: list[Any] = []
    in_list.append(in_list)
    in_dict: dict[str, Any] = {}
    in_dict["self"] = in_dict
    in_map: dict[Any, Any] = {}
    in_map[1] = in_map
    through_tuple: tuple[list[Any]] = ([],)
    through_tuple[0].append(through_tuple)
    mutual: list[Any] = []
    mutual.append([mutual])
    late: list[Any] = [1, "two"]
    late.append(late)
    late.append(object())  # refused too, but only after the cycle
    return [in_list, in_dict, in_map, through_tuple, mutual, late]


@pytest.mark.timeout(60)
def test_self_containing_values_are_refused_not_written_forever(kv: Any) -> None:
    # Was: set() of a list that contains itself never returned, growing memory.
    kv.set("k", "old", metadata={"m": 1})
    before = unchanged(kv), kv.get_metadata("k")
    for value in _cycles():
        for method, args, kwargs in (
            ("set", ("k", value), {}),
            ("mset", ({"k": 1, "other": value},), {}),
            ("set", ("k", 1), {"metadata": {"m": value}}),
            ("set_metadata", ("k", {"m": value}), {}),
            ("compare_and_swap", ("k", "old", value), {}),
            ("compare_and_swap", ("k", value, "new"), {}),
        ):
            with pytest.raises(keyshelf.SerializationError, match="contains itself"):
                getattr(kv, method)(*args, **kwargs)
    assert (unchanged(kv), kv.get_metadata("k")) == before


def test_shared_but_acyclic_values_still_round_trip(kv: Any) -> None:
    shared = [1, "x"]
    value: list[Any] = []
    node = value
    for _ in range(400):  # deeper than the fast path, sharing one list everywhere
        child: list[Any] = [shared, (shared,), {"s": shared}]
        node.append(child)
        node = child
    kv.set("k", value)
    got = kv.get("k")[0]
    depth = 0
    while got:
        assert got[0] == [1, "x"] and got[1] == ([1, "x"],) and got[2] == {"s": [1, "x"]}
        got = got[3] if len(got) > 3 else None
        depth += 1
    assert depth == 400


# -- arguments too big (or too hostile) to print in an error message --------------------

HUGE = 10**5000  # repr() of it raises ValueError (sys.get_int_max_str_digits)


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@pytest.mark.parametrize(
    "bad", [HUGE, -HUGE, (HUGE,), Unprintable()], ids=["huge", "-huge", "tuple", "unprintable"]
)
def test_unprintable_arguments_still_get_keyshelf_errors(kv: Any, bad: Any) -> None:
    # Was: ValueError/OverflowError/RuntimeError while building the error message,
    # or OverflowError converting a huge int TTL to float.
    kv.set("n", 1)
    before = unchanged(kv)
    expected: list[tuple[type[Exception], str, tuple[Any, ...], dict[str, Any]]] = [
        (keyshelf.InvalidKeyError, "mget", (["n", bad],), {}),
        (keyshelf.InvalidKeyError, "delete", ("n", bad), {}),
        (keyshelf.InvalidKeyError, "mset", ({"n": 2, bad: 1},), {}),
        (keyshelf.InvalidKeyError, "namespace", (bad,), {}),
        (keyshelf.InvalidKeyError, "clear_namespace", (bad,), {}),
        (keyshelf.InvalidTTLError, "set", ("n", 2, bad), {}),
        (keyshelf.InvalidTTLError, "expire", ("n", bad), {}),
        (keyshelf.InvalidArgumentError, "set", ("n", 2), {"metadata": {bad: 1}}),
    ]
    for error, method, args, kwargs in expected:
        with pytest.raises(error):
            getattr(kv, method)(*args, **kwargs)
    if type(bad) is int:
        with pytest.raises(keyshelf.IncrementOverflowError):
            kv.increment("n", bad)
    assert unchanged(kv) == before


@pytest.mark.parametrize(
    "options",
    [
        {"max_value_size": -HUGE},
        {"auto_cleanup": True, "cleanup_interval": HUGE},
        {"separator": HUGE},
        {"codec": HUGE},
        {"codec": Unprintable()},
        {"cache": Unprintable()},
        {"namespace": HUGE},
    ],
    ids=["size", "interval", "separator", "codec", "codec-unprintable", "cache", "namespace"],
)
def test_unprintable_options_are_refused_at_open(options: dict[str, Any]) -> None:
    with pytest.raises((keyshelf.InvalidURLError, keyshelf.InvalidKeyError)):
        keyshelf.open("memory://", **options)
    with pytest.raises((keyshelf.InvalidURLError, keyshelf.InvalidKeyError)):
        keyshelf.open_async("memory://", **options)


def test_huge_int_timeout_is_refused(tmp_path: Any) -> None:
    with pytest.raises(keyshelf.InvalidURLError, match="timeout is too large"):
        keyshelf.open(f"sqlite:///{tmp_path / 's.db'}", timeout=HUGE)
    with pytest.raises(keyshelf.InvalidURLError):
        keyshelf.open(HUGE)  # type: ignore[arg-type]


# -- batch sizes of the streaming methods ------------------------------------------------


@pytest.mark.parametrize(
    "batch_size",
    [0, -1, True, 2.0, "10", None, 2**31, 2**63, HUGE],
    ids=["0", "-1", "True", "2.0", "str", "None", "2**31", "2**63", "huge"],
)
def test_stream_batch_sizes_are_checked(kv: Any, batch_size: Any) -> None:
    # Was: IndexError for 0 and negatives, TypeError for strings, bools accepted,
    # OverflowError from SQLite for sizes beyond 64 bits.
    kv.mset({"a": 1, "b": 2})
    for method in ("iter_keys", "iter_items"):
        with pytest.raises(keyshelf.InvalidArgumentError, match="batch_size"):
            list(getattr(kv, method)("*", batch_size=batch_size))
        with pytest.raises(keyshelf.InvalidArgumentError, match="batch_size"):
            list(getattr(kv, method)("a*", batch_size=batch_size))
    assert list(kv.iter_keys(batch_size=2**31 - 1)) == ["a", "b"]
    assert list(kv.iter_items("a*", batch_size=1)) == [("a", 1)]


# -- file paths the operating system cannot take -----------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "{tmp}/nul\0.db",
        "sqlite:///{tmp}/nul\0.db",
        "sqlite:///{tmp}/nul%00.db",
        "sqlite:///{tmp}/lone\ud800.db",
        "file://{tmp}/nul\0.json",
        "file://{tmp}/nul%00.json",
        "file://{tmp}/lone\udfff.json",
    ],
    ids=[
        "bare-nul",
        "sqlite-nul",
        "sqlite-%00",
        "sqlite-surrogate",
        "file-nul",
        "file-%00",
        "file-surrogate",
    ],
)
def test_unusable_file_paths_are_invalid_urls(tmp_path: Any, url: str) -> None:
    # Was: ValueError("embedded null byte") / UnicodeEncodeError escaping open().
    url = url.format(tmp=tmp_path)
    with pytest.raises(keyshelf.InvalidURLError):
        keyshelf.open(url)
    with pytest.raises(keyshelf.InvalidURLError):
        keyshelf.open_async(url)
    assert list(tmp_path.iterdir()) == []


# -- a read-only JSON store file --------------------------------------------------------

_WRITE_READ_ONLY = """
url, path = sys.argv[2], sys.argv[3]
with keyshelf.open(url) as kv:
    kv.set("k", 1)
os.chmod(path, 0o444)
before = open(path, "rb").read()
out = {}
with keyshelf.open(url) as kv:
    out["get"] = kv.get("k")
    try:
        kv.set("k", 2)
        out["set"] = "ok"
    except keyshelf.KVError as exc:
        out["set"] = f"{type(exc).__name__}: {exc}"
    out["after"] = kv.get("k")
out["unchanged"] = open(path, "rb").read() == before
out["leftovers"] = sorted(n for n in os.listdir(os.path.dirname(path)) if n.endswith(".tmp"))
print(json.dumps(out))
"""


def test_read_only_json_store_is_not_replaced() -> None:
    # Was: the file backend renamed a new document over a chmod 444 store file.
    reason = helpers.unprivileged_reason()
    if reason is not None:
        pytest.skip(reason)
    directory = helpers.shared_directory(owner_is_unprivileged=True)
    try:
        path = directory / "s.json"
        out = helpers.run_unprivileged(_WRITE_READ_ONLY, f"file://{path}", str(path))
    finally:
        shutil.rmtree(directory)
    assert out["get"] == 1 and out["after"] == 1
    assert out["set"] == f"BackendUnavailableError: Cannot write {path}: the file is read-only"
    assert out["unchanged"] is True and out["leftovers"] == []


# -- a FIFO where the JSON store should be -----------------------------------------------


@pytest.mark.timeout(30)
def test_fifo_in_place_of_a_json_store_is_refused_without_waiting(tmp_path: Any) -> None:
    # Was: open() blocked forever, waiting for a writer on the FIFO.
    path = tmp_path / "store.json"
    os.mkfifo(path)
    with pytest.raises(keyshelf.IncompatibleStoreError, match="is not a regular file"):
        keyshelf.open(f"file://{path}")
    with pytest.raises(keyshelf.IncompatibleStoreError, match="is not a regular file"):
        keyshelf.open_async(f"file://{path}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.json"]


# -- a float plus an int too large to be a float ---------------------------------------------


def test_float_plus_huge_int_is_an_overflow_error(kv: Any) -> None:
    # Was: a bare OverflowError("int too large to convert to float") from Python.
    kv.set("f", 1.5)
    for delta in (10**400, -(10**400)):
        with pytest.raises(keyshelf.IncrementOverflowError):
            kv.increment("f", delta)
        with pytest.raises(keyshelf.IncrementOverflowError):
            kv.decrement("f", delta)
    assert kv.get("f") == 1.5
    assert kv.increment("f", 2**70) == 1.5 + 2**70  # converts fine: a float result


# -- truthy flags that are not bools -----------------------------------------------------------


@pytest.mark.parametrize("flag", ["yes", 1, [1], 2.5], ids=["str", "int", "list", "float"])
def test_truthy_set_flags_mean_true_everywhere(kv: Any, flag: Any) -> None:
    # Was: SQLite bound "yes" as a string that SQL reads as false (nx="yes" overwrote,
    # keep_ttl="yes" dropped the TTL); a list raised BackendError (SQLite) or
    # TypeError (PostgreSQL).
    kv.set("a", 1, ttl=100)
    assert kv.set("a", 2, nx=flag) is False
    assert kv.set("missing", 2, xx=flag) is False
    assert kv.set("a", 3, keep_ttl=flag) is True
    assert kv.get("a") == 3 and kv.ttl("a") is not None and kv.ttl("a") > 50
    assert kv.exists("missing") is False


@pytest.mark.parametrize("flag", ["", 0, [], None], ids=["str", "int", "list", "None"])
def test_falsy_set_flags_mean_false_everywhere(kv: Any, flag: Any) -> None:
    kv.set("a", 1, ttl=100)
    assert kv.set("a", 2, nx=flag, xx=flag, keep_ttl=flag) is True
    assert kv.get("a") == 2 and kv.ttl("a") is None


# -- a released memoryview -------------------------------------------------------------------


def _released() -> memoryview:
    view = memoryview(b"data")
    view.release()
    return view


def test_released_memoryview_is_a_serialization_error(kv: Any) -> None:
    # Was: a bare ValueError("operation forbidden on released memoryview object").
    kv.set("k", "old")
    for value in (_released(), [_released()], {"a": (_released(),)}):
        for method, args in (("set", ("k", value)), ("mset", ({"k": value},))):
            with pytest.raises(keyshelf.SerializationError, match="not JSON serializable"):
                getattr(kv, method)(*args)
    assert kv.get("k") == "old"


def test_appending_a_released_memoryview_is_a_serialization_error(kv: Any) -> None:
    # Was: a bare ValueError from bytes() of the released view.
    kv.set("b", b"x")
    with pytest.raises(keyshelf.SerializationError, match="released memoryview"):
        kv.append("b", _released())
    with pytest.raises(keyshelf.SerializationError, match="released memoryview"):
        kv.append("new", _released())
    assert kv.dump() == {"b": b"x"}


# -- append onto a number ------------------------------------------------------------------------


@pytest.mark.parametrize("stored", [5, 1.5, True, None, 2**70, [1], {"a": 1}, (1,)], ids=repr)
def test_append_onto_a_non_string_value_is_an_append_type_error(kv: Any, stored: Any) -> None:
    # Was (Redis): ValueError("invalid literal for int() ...") for ints, floats and bools.
    kv.set("k", stored)
    for value in ("", "x", b"", b"x"):
        with pytest.raises(keyshelf.AppendTypeError, match="Cannot append"):
            kv.append("k", value)
    assert kv.get("k") == stored and type(kv.get("k")) is type(stored)


# -- open(): a lone surrogate as a bare path, huge ints as PostgreSQL options ------------------


def test_bare_path_with_a_lone_surrogate_is_an_invalid_url(tmp_path: Any, monkeypatch: Any) -> None:
    # Was: UnicodeEncodeError from quoting the path.
    monkeypatch.chdir(tmp_path)
    for url in ("\ud800", "a\udfffb.db"):
        with pytest.raises(keyshelf.InvalidURLError):
            keyshelf.open(url)
        with pytest.raises(keyshelf.InvalidURLError):
            keyshelf.open_async(url)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option", ["min_size", "application_name", "sslmode"])
def test_huge_int_postgres_options_are_invalid_urls(option: str) -> None:
    # Was: ValueError printing the int (libpq parameters, the min_size/max_size message).
    pytest.importorskip("psycopg")
    from ..backends import test_postgres_server as pg_server

    url = pg_server.server_url()
    with pytest.raises(keyshelf.InvalidURLError, match=option):
        keyshelf.open(url, schema=pg_server.fresh_schema(), **{option: HUGE})


# -- durations too long for threads, sockets and timers -------------------------------------


@pytest.mark.parametrize("seconds", [9223372037.0, 1e300], ids=["2**63ns", "1e300"])
def test_huge_durations_are_refused_at_open(seconds: float) -> None:
    # Was: OverflowError from socket/threading (Redis socket timeouts, PostgreSQL
    # connect_timeout), a cleanup thread that died at its first wait, and a
    # statement_timeout refused by the server as "cannot connect".
    cases: list[tuple[str, dict[str, Any]]] = [
        ("memory://", {"auto_cleanup": True, "cleanup_interval": seconds}),
    ]
    pytest.importorskip("redis")
    from ..backends import redis_url

    for name in ("socket_timeout", "socket_connect_timeout", "pool_timeout"):
        cases.append((redis_url(), {name: seconds, "prefix": "keyshelf-test-never-used"}))
    pytest.importorskip("psycopg")
    from ..backends import test_postgres_server as pg_server

    for name in ("connect_timeout", "statement_timeout"):
        cases.append((pg_server.server_url(), {name: seconds, "schema": "keyshelf_test_never"}))
    for url, options in cases:
        for opener in (keyshelf.open, keyshelf.open_async):
            with pytest.raises(keyshelf.InvalidURLError, match="must be at most"):
                opener(url, **options)


@pytest.mark.parametrize("mode", [0, 1.5, b"wal", ["wal"], None], ids=repr)
def test_non_string_journal_mode_is_an_invalid_url(tmp_path: Any, mode: Any) -> None:
    # Was: AttributeError("'int' object has no attribute 'upper'").
    url = f"sqlite:///{tmp_path / 's.db'}"
    if mode is None:  # not given: the default
        keyshelf.open(url, journal_mode=mode).close()
        return
    with pytest.raises(keyshelf.InvalidURLError, match="journal_mode"):
        keyshelf.open(url, journal_mode=mode)


# -- Redis database numbers and pool sizes beyond reason --------------------------------------


@pytest.mark.timeout(60)
def test_absurd_redis_and_postgres_sizes_are_refused_at_open() -> None:
    # Was: ValueError printing a huge db number; a pool that filled a queue with
    # one slot per allowed connection until memory ran out (max_connections=10**30).
    pytest.importorskip("redis")
    from ..backends import redis_url

    base = redis_url().split("?")[0].rsplit("/", 1)[0]
    for url, options in [
        (f"{base}/0", {"db": HUGE}),
        (f"{base}/0", {"db": 2**40}),
        (f"{base}/{'9' * 5000}", {}),
        (f"{base}/{'9' * 30}", {}),
        (f"{base}/0", {"max_connections": 10**30}),
        (f"{base}/0", {"max_connections": "9" * 30}),
    ]:
        for opener in (keyshelf.open, keyshelf.open_async):
            with pytest.raises(keyshelf.InvalidURLError):
                opener(url, prefix="keyshelf-test-never-used", **options)
    pytest.importorskip("psycopg")
    from ..backends import test_postgres_server as pg_server

    for options in ({"min_size": 10**9, "max_size": 10**9}, {"max_size": 10**12}):
        with pytest.raises(keyshelf.InvalidURLError, match="must be at most"):
            keyshelf.open(pg_server.server_url(), schema="keyshelf_test_never", **options)


# -- lone surrogates in server URLs and string options ----------------------------------------


def test_lone_surrogates_in_server_urls_and_options_are_invalid_urls() -> None:
    # Was: UnicodeEncodeError from redis-py or psycopg (user names, passwords,
    # database names, client_name, application_name).
    pytest.importorskip("redis")
    pytest.importorskip("psycopg")
    from ..backends import redis_url
    from ..backends import test_postgres_server as pg_server

    redis_base = redis_url().split("?")[0]
    host = redis_base.split("://", 1)[1].split("/", 1)[0]
    pg = pg_server.server_url()
    cases: list[tuple[str, dict[str, Any]]] = [
        (f"redis://u\ud800:p@{host}/0", {}),
        (redis_base, {"client_name": "\ud800"}),
        (redis_base, {"password": "x\udc80"}),
        (redis_base, {"username": "\udfff"}),
        (pg.replace("postgres@", "po\ud800@", 1), {}),
        (pg + "\ud800", {}),
        (pg, {"application_name": "\ud800"}),
        (pg, {"options": "-c search_path=\udc80"}),
    ]
    for url, options in cases:
        for opener in (keyshelf.open, keyshelf.open_async):
            with pytest.raises(keyshelf.InvalidURLError, match=r"surrogate|cannot be used"):
                opener(url, **options)


# -- long runs of unclosed "[" in hierarchical patterns ------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "pattern",
    ["[" * 20_000, "[a-]" * 5_000, "[" * 8_000 + "a-]" * 4_000, "[^" * 10_000],
    ids=["unclosed", "ranges-eat-brackets", "mixed", "negated"],
)
def test_unclosed_brackets_compile_in_linear_time(pattern: str) -> None:
    # Was: every "[" rescanned the rest of the pattern (quadratic): a 20,000
    # character pattern took minutes in the separator dialect.
    from keyshelf.patterns import compile_pattern

    with keyshelf.open("memory://", separator=".") as kv:
        kv.set("a[", 1)
        started = time.monotonic()
        assert kv.keys(pattern) == [k for k in ["a["] if compile_pattern(pattern, ".").match(k)]
        assert time.monotonic() - started < 2.0
