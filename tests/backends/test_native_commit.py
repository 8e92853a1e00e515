"""The one-round-trip commits of Redis (one Lua script) and PostgreSQL (one pipeline).

(And SQLite's one-statement commit of checks and sets, in the equivalence test.)

* A commit with 2 checks and 2 sets is **one round trip** to the server,
  counted by a loopback proxy that sees every byte (a round trip: the server
  answering after the client sent), against a plain ``get`` in the same run;
  the general path (what one script or statement cannot do exactly) takes
  more, so the count can tell them apart.
* The native commit gives exactly the answers of the general path
  (``Backend.commit`` of the interface: the shared decision through
  ``update_many``), checked by hypothesis on random stored values (ints near
  the 64-bit edges, big ints, floats and special floats, strings, bools,
  ``None``, TTLs, metadata) and random checks and mutations, both run from the
  same state in two namespaces.
* PostgreSQL: a key the statement read as absent that another transaction
  inserts meanwhile makes the statement roll back whole and the commit take
  the general path, which sees the key.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from benchmarks.roundtrips import RoundTrips, counting
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keyshelf
from keyshelf.backends.base import Backend
from keyshelf.codec import TAG_INT

from ..conftest import BACKENDS

SERVERS = ("redis", "postgres")


@contextlib.contextmanager
def store(backend: str, tmp_path: Path) -> Iterator[keyshelf.Store]:
    with BACKENDS[backend][0](tmp_path) as (url, options), keyshelf.open(url, **options) as kv:
        yield kv


@contextlib.contextmanager
def counted(backend: str, tmp_path: Path) -> Iterator[tuple[keyshelf.Store, RoundTrips]]:
    """A store of ``backend`` whose connections go through a counting proxy."""
    with contextlib.ExitStack() as stack:
        url, options = stack.enter_context(BACKENDS[backend][0](tmp_path))
        proxy, through = stack.enter_context(counting(url))
        yield stack.enter_context(keyshelf.open(through, **options)), proxy


@pytest.mark.parametrize("backend", SERVERS)
def test_a_commit_is_one_round_trip(backend: str, tmp_path: Path) -> None:
    with counted(backend, tmp_path) as (kv, proxy):
        kv.mset({"a": 1, "b": 2})
        kv.get("a")  # connected, scripts loaded, statements prepared
        for i in range(3):
            a, b = kv.get_entry("a"), kv.get_entry("b")
            assert a is not None and b is not None
            before = proxy.count
            assert kv.get("a") == (1 if i == 0 else i - 1)
            single = proxy.count - before
            builder = kv.atomic().check("a", a.version).check("b", b.version)
            before = proxy.count
            result = builder.set("a", i).set("b", i).commit()
            assert result.ok and result.versions == {"a": a.version + 1, "b": b.version + 1}
            assert single == 1
            assert proxy.count - before == 1
        # A failed check is one round trip too, and writes nothing.
        before = proxy.count
        assert kv.atomic().check("a", 1).set("a", "no").commit().ok is False
        assert proxy.count - before == 1
        # The general path reads first: more than one round trip (Redis: an int
        # sum beyond 2^53; PostgreSQL: two mutations of one key).
        kv.set("c", 2**60)
        before = proxy.count
        assert kv.atomic().increment("c").increment("c").set("d", 1).commit().ok
        assert proxy.count - before > 1
        assert kv.mget(["a", "b", "c", "d"]) == {"a": 2, "b": 2, "c": 2**60 + 2, "d": 1}


# -- the native commit answers exactly as the general path --------------------------

_NUMBERS = st.sampled_from(
    [0, 1, -1, 2**53 - 1, 2**53, -(2**53), 2**62, 2**63 - 1, -(2**63), 2**63, 10**30]
)
_FLOATS = st.sampled_from([0.0, -0.0, 1.5, -2.25, 1e300, -1e308, math.inf, -math.inf, 0.1])
_VALUES = st.one_of(
    _NUMBERS, _FLOATS, st.sampled_from(["", "text", b"\x00b", True, False, None, [1], {"a": 1}])
)
_DELTAS = st.one_of(
    st.sampled_from([1, -1, 0, 2**53, -(2**63), 2**63 - 1, 2**63, -(2**64)]),
    st.sampled_from([0.5, -0.0, 0.0, 1e308, math.inf, math.nan, -1e300]),
)
_KEYS = st.sampled_from(["k1", "k2", "k3"])
_STATE = st.dictionaries(
    _KEYS,
    st.tuples(
        _VALUES,
        st.sampled_from([None, 60]),
        st.sampled_from([None, {"m": 1}]),
        st.integers(1, 3),
    ),
)
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), _KEYS, _VALUES, st.sampled_from([None, 30]),
                  st.sampled_from([None, {"n": 2}])),
        st.tuples(st.just("delete"), _KEYS),
        st.tuples(st.just("increment"), _KEYS, _DELTAS),
        st.tuples(st.just("expire"), _KEYS, st.just(45)),
    ),
    min_size=1,
    max_size=4,
)  # fmt: skip
# Mostly checks that hold, so that most examples write.
_CHECKS = st.dictionaries(
    _KEYS, st.sampled_from(["same", "same", "same", "same", "absent", "other"]), max_size=2
)


def _prepare(kv: Any, state: dict[str, Any]) -> None:
    kv.clear()
    for key, (value, ttl, meta, writes) in sorted(state.items()):
        for _ in range(writes):
            kv.set(key, value, ttl=ttl, metadata=meta)


def _builder(kv: Any, checks: dict[str, str], ops: list[Any]) -> Any:
    builder = kv.atomic()
    for key, kind in sorted(checks.items()):
        entry = kv.get_entry(key)
        version = None if entry is None else entry.version
        if kind == "absent":
            version = None
        elif kind == "other":
            version = 7 if version is None else version + 5
        builder.check(key, version)
    for op in ops:
        if op[0] == "set":
            builder.set(op[1], op[2], ttl=op[3], metadata=op[4])
        elif op[0] == "delete":
            builder.delete(op[1])
        elif op[0] == "increment":
            builder.increment(op[1], op[2])
        else:
            builder.expire(op[1], op[2])
    return builder


def _outcome(run: Any) -> Any:
    try:
        return ("ok", run())
    except keyshelf.KVError as exc:
        return ("error", type(exc).__name__)


def _picture(kv: Any) -> dict[str, Any]:
    """What a reader sees of every key: typed value, metadata, version, TTL or not."""
    seen: dict[str, Any] = {}
    for key in kv.keys():
        entry = kv.get_entry(key)
        value = entry.value
        if isinstance(value, float) and math.isnan(value):
            value = "nan"
        elif isinstance(value, float):
            value = (value, math.copysign(1.0, value))
        seen[key] = (type(entry.value).__name__, value, entry.metadata, entry.version,
                     entry.expires_at is not None)  # fmt: skip
    return seen


@pytest.mark.parametrize("backend", ("sqlite", *SERVERS))
def test_the_native_commit_answers_as_the_general_path(backend: str, tmp_path: Path) -> None:
    with store(backend, tmp_path) as kv:
        native, general = kv.namespace("native"), kv.namespace("general")
        backend_object = kv.backend

        @settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
        @given(state=_STATE, checks=_CHECKS, ops=_OPS)
        def check(state: dict[str, Any], checks: dict[str, str], ops: list[Any]) -> None:
            _prepare(native, state)
            _prepare(general, state)
            mine = _builder(native, checks, ops)
            theirs = _builder(general, checks, ops)
            got = _outcome(mine.commit)
            # The interface's own commit: the shared decision through update_many.
            want = _outcome(
                lambda: keyshelf.CommitResult(
                    *Backend.commit(
                        backend_object, "general", theirs._checks, theirs._ops, kv._now()
                    )
                )
            )
            assert got == want
            assert _picture(native) == _picture(general)

        check()


def test_postgres_retries_a_key_created_behind_the_statement(tmp_path: Path) -> None:
    psycopg = pytest.importorskip("psycopg")
    with BACKENDS["postgres"][0](tmp_path) as (url, options), keyshelf.open(url, **options) as kv:
        table = kv.backend._sql.t
        kv.set("other", 1)
        other = kv.get_entry("other")
        assert other is not None
        rival = psycopg.connect(url, autocommit=False)
        try:
            # Another transaction inserts "x" and keeps it uncommitted: the
            # commit's statement does not see it, and its insert of "x" waits.
            rival.execute(
                f"INSERT INTO {table} (ns, key, tag, ival, created_at, updated_at, version) "
                f"VALUES ('default', 'x', '{TAG_INT}', 99, 0, 0, 1)"
            )
            done: dict[str, Any] = {}

            def commit() -> None:
                builder = kv.atomic().check("other", other.version).set("x", "mine")
                done["plain"] = builder.set("other", 2).commit()

            worker = threading.Thread(target=commit)
            worker.start()
            watcher = psycopg.connect(url, autocommit=True)
            try:
                # Wait (polling the server, no fixed sleep) until the commit blocks on
                # "x": this test's statement (its table's name), not another suite's.
                for _ in range(6000):
                    row = watcher.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query LIKE '%%WITH i AS%%' AND strpos(query, %s) > 0",
                        (table,),
                    ).fetchone()
                    if row and row[0]:
                        break
                    worker.join(0.01)
                else:
                    raise AssertionError("the commit never waited for the rival insert")
            finally:
                watcher.close()
            rival.commit()
            worker.join(60)
            assert not worker.is_alive()
        finally:
            rival.close()
        # The statement rolled back whole and the general path did the commit,
        # replacing the rival's "x" (version 2) and "other".
        assert done["plain"].ok is True
        assert done["plain"].versions == {"x": 2, "other": other.version + 1}
        assert kv.get("x") == "mine" and kv.get("other") == 2
        # With a check that "x" is absent, the same race is a failed check.
        assert kv.atomic().check("x", None).set("x", "again").commit().ok is False
