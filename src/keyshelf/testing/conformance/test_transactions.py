"""Single-key atoms and checked multi-key commits, on every backend and both APIs.

``getset``, ``delete_if`` and ``expire_if`` are decisions run by each
backend's ``update``; ``kv.atomic()`` and ``kv.transaction(fn)`` commit
through the backend's ``commit`` (by default its ``update_many``). A backend
that cannot change several keys atomically (``backend.multi_key_atomic`` is
False) must refuse every commit with :class:`UnsupportedOperationError` and
change nothing; the tests of commits check exactly that on such a backend.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Generator, Iterator
from datetime import timedelta
from typing import Any

import pytest

import keyshelf
from keyshelf.records import MAX_MUTATIONS

from .. import AsyncDriver


def _multi(kv: Any) -> bool:
    return bool(kv.backend.multi_key_atomic)


def _snapshot(kv: Any) -> dict[str, Any]:
    """Every live key with its value, metadata, version and whether it has a TTL."""
    state: dict[str, Any] = {}
    for key in kv.keys():
        entry = kv.get_entry(key)
        state[key] = (entry.value, entry.metadata, entry.version, entry.expires_at is None)
    return state


@contextlib.contextmanager
def _refused_or_done(kv: Any) -> Iterator[bool]:
    """Run a commit: on a backend without multi-key atomicity it must be refused.

    Yields True if the backend commits (the block's assertions then apply);
    on a refusing backend the block must raise UnsupportedOperationError and
    the store must be unchanged.
    """
    if _multi(kv):
        yield True
        return
    before = _snapshot(kv)
    with pytest.raises(keyshelf.UnsupportedOperationError, match="several keys"):
        yield False
    assert _snapshot(kv) == before


class _Ready:
    """An awaitable that is already done (the sync API's stand-in for a coroutine)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, Any]:
        return self.value
        yield  # a generator that never suspends


def _finish(coroutine: Any) -> Any:
    """Run a coroutine that awaits only finished things to its end, without a loop."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    coroutine.close()
    raise AssertionError("the transaction body suspended")


Body = Callable[[Any, Any, Callable[[Any], Awaitable[Any]]], Awaitable[Any]]


def _transact(kv: Any, body: Body, other: Any = None, **options: Any) -> Any:
    """``kv.transaction`` with one body for both APIs.

    ``body(tx, other, run)`` is an ``async def``: ``await run(tx.get(k))``
    reads, ``await run(other.set(...))`` writes through ``other`` (a store of
    the same API, ``kv`` itself by default) outside the transaction. On the
    async API the body is the transaction function; on the sync one it is run
    to its end at once (nothing it awaits is pending).
    """
    target = kv if other is None else other
    if isinstance(kv, AsyncDriver):
        raw = target._store

        async def run_async(value: Any) -> Any:
            return await value

        async def fn_async(tx: Any) -> Any:
            return await body(tx, raw, run_async)

        return kv.transaction(fn_async, **options)

    def fn(tx: Any) -> Any:
        return _finish(body(tx, target, _Ready))

    return kv.transaction(fn, **options)


def _second(kv: Any, opener: Any) -> Any:
    """Another handle on the same data if the backend is shared, else ``kv``."""
    return opener() if opener.shared else kv


# -- getset ---------------------------------------------------------------------


def test_getset_returns_the_old_value_and_stores_the_new(kv: Any) -> None:
    assert kv.getset("k", {"a": [1]}) is None
    assert kv.get("k") == {"a": [1]}
    old = kv.getset("k", 2.5)
    assert old == {"a": [1]}
    got = kv.get("k")
    assert got == 2.5 and type(got) is float
    assert kv.get_entry("k").version == 2


@pytest.mark.parametrize("value", [0, 1.5, "", "text", b"\x00b", True, None, [1, [2]], {"a": 1}])
def test_getset_keeps_the_type_of_the_old_value(kv: Any, value: Any) -> None:
    kv.set("k", value)
    old = kv.getset("k", "new")
    assert old == value and type(old) is type(value)


def test_getset_is_a_plain_set_for_ttl_and_metadata(kv: Any) -> None:
    kv.set("k", 1, ttl=60, metadata={"owner": "x"})
    assert kv.getset("k", 2) == 1
    entry = kv.get_entry("k")
    # The TTL is replaced (none given: none), the user metadata is kept.
    assert entry.expires_at is None and entry.metadata == {"owner": "x"}
    assert kv.getset("k", 3, ttl=30) == 2
    assert 0 < kv.ttl("k") <= 30
    assert kv.getset("k", 4, timedelta(seconds=20)) == 3
    assert 0 < kv.ttl("k") <= 20


def test_getset_treats_an_expired_key_as_missing(kv: Any, clock: Any) -> None:
    kv.set("k", "old", ttl=0.2, metadata={"m": 1})
    clock.advance(0.3)
    assert kv.getset("k", "new") is None
    entry = kv.get_entry("k")
    assert entry.value == "new" and entry.version == 1 and entry.metadata == {}


def test_getset_bad_input_changes_nothing(kv: Any) -> None:
    kv.set("k", 1)
    before = _snapshot(kv)
    with pytest.raises(keyshelf.InvalidKeyError):
        kv.getset("", 2)
    with pytest.raises(keyshelf.InvalidTTLError):
        kv.getset("k", 2, ttl=0)
    with pytest.raises(keyshelf.InvalidTTLError):
        kv.getset("k", 2, ttl=-1)
    with pytest.raises(keyshelf.SerializationError):
        kv.getset("k", object())
    assert _snapshot(kv) == before


# -- delete_if --------------------------------------------------------------------


def test_delete_if_deletes_only_an_equal_value(kv: Any) -> None:
    kv.set("lock", "token-a")
    assert kv.delete_if("lock", "token-b") is False
    assert kv.get("lock") == "token-a"
    assert kv.delete_if("lock", "token-a") is True
    assert kv.exists("lock") is False
    assert kv.delete_if("lock", "token-a") is False


def test_delete_if_uses_typed_equality(kv: Any) -> None:
    kv.set("k", 1)
    assert kv.delete_if("k", 1.0) is False
    assert kv.delete_if("k", True) is False
    assert kv.delete_if("k", "1") is False
    assert kv.get("k") == 1
    kv.set("d", {"a": 1, "b": 2})
    assert kv.delete_if("d", {"b": 2, "a": 1}) is False
    assert kv.delete_if("d", {"a": 1, "b": 2}) is True
    kv.set("n", None)
    assert kv.delete_if("n", None) is True
    assert kv.exists("n") is False


def test_delete_if_of_an_expired_key_is_false(kv: Any, clock: Any) -> None:
    kv.set("k", "v", ttl=0.2)
    clock.advance(0.3)
    assert kv.delete_if("k", "v") is False
    assert kv.exists("k") is False


def test_delete_if_bad_input_changes_nothing(kv: Any) -> None:
    kv.set("k", 1)
    before = _snapshot(kv)
    with pytest.raises(keyshelf.InvalidKeyError):
        kv.delete_if("", 1)
    with pytest.raises(keyshelf.SerializationError):
        kv.delete_if("k", object())
    assert _snapshot(kv) == before


# -- expire_if --------------------------------------------------------------------


def test_expire_if_sets_the_ttl_only_for_an_equal_value(kv: Any) -> None:
    kv.set("lock", "mine", metadata={"m": 1})
    assert kv.expire_if("lock", "theirs", 30) is False
    assert kv.ttl("lock") is None
    assert kv.get_entry("lock").version == 1
    assert kv.expire_if("lock", "mine", 30) is True
    assert 0 < kv.ttl("lock") <= 30
    entry = kv.get_entry("lock")
    # Value and metadata stay; a write decided on the value: a new version.
    assert entry.value == "mine" and entry.metadata == {"m": 1} and entry.version == 2
    assert kv.expire_if("lock", "mine", timedelta(seconds=10)) is True
    assert 0 < kv.ttl("lock") <= 10
    assert kv.expire_if("missing", "mine", 30) is False
    assert kv.exists("missing") is False


def test_expire_if_uses_typed_equality(kv: Any) -> None:
    kv.set("k", 0)
    assert kv.expire_if("k", False, 30) is False
    assert kv.expire_if("k", 0.0, 30) is False
    assert kv.ttl("k") is None
    assert kv.expire_if("k", 0, 30) is True


def test_expire_if_lets_the_key_expire(kv: Any, clock: Any) -> None:
    kv.set("k", "v")
    assert kv.expire_if("k", "v", 0.2) is True
    clock.advance(0.3)
    assert kv.exists("k") is False
    assert kv.expire_if("k", "v", 30) is False


def test_expire_if_bad_input_changes_nothing(kv: Any) -> None:
    kv.set("k", "v")
    before = _snapshot(kv)
    for ttl in (0, -1, float("nan"), True, "10"):
        with pytest.raises(keyshelf.InvalidTTLError):
            kv.expire_if("k", "v", ttl)
    with pytest.raises(keyshelf.InvalidArgumentError):
        kv.expire_if("k", "v", None)
    with pytest.raises(keyshelf.InvalidKeyError):
        kv.expire_if("", "v", 10)
    assert _snapshot(kv) == before


# -- atomic(): the builder -----------------------------------------------------------


def test_commit_applies_every_mutation_and_reports_versions(kv: Any) -> None:
    kv.set("a", 10)
    kv.set("b", 5, metadata={"m": 1})
    kv.set("gone", "x")
    a = kv.get_entry("a")
    builder = kv.atomic()
    assert builder.check("a", a.version) is builder
    assert builder.check("new", None) is builder
    assert builder.set("a", 7) is builder
    assert builder.increment("b", -2) is builder
    assert builder.set("new", "n") is builder
    assert builder.delete("gone") is builder
    with _refused_or_done(kv) as done:
        result = builder.commit()
    if not done:
        return
    assert result.ok is True
    assert isinstance(result, keyshelf.CommitResult)
    assert result.versions == {"a": 2, "b": 2, "new": 1}
    for key, version in result.versions.items():
        assert kv.get_entry(key).version == version
    assert kv.dump() == {"a": 7, "b": 3, "new": "n"}
    # increment keeps the user metadata; a plain set keeps it too.
    assert kv.get_entry("b").metadata == {"m": 1}


def test_a_failed_check_writes_nothing(kv: Any) -> None:
    kv.set("a", 1)
    kv.set("b", 2)
    version = kv.get_entry("a").version
    kv.set("a", 100)  # another writer: version + 1
    before = _snapshot(kv)
    builder = kv.atomic().check("a", version).set("a", 0).set("c", 3).delete("b").increment("b")
    with _refused_or_done(kv) as done:
        result = builder.commit()
    if not done:
        return
    assert result.ok is False and result.versions == {}
    assert _snapshot(kv) == before


def test_check_of_absence(kv: Any) -> None:
    kv.set("taken", 1)
    with _refused_or_done(kv) as done:
        claimed = kv.atomic().check("job", None).set("job", "worker-1").commit()
    if not done:
        return
    assert claimed.ok is True and claimed.versions == {"job": 1}
    again = kv.atomic().check("job", None).set("job", "worker-2").commit()
    assert again.ok is False
    assert kv.get("job") == "worker-1"
    assert kv.atomic().check("taken", None).set("x", 1).commit().ok is False
    assert kv.exists("x") is False


def test_an_expired_key_checks_as_absent(kv: Any, clock: Any) -> None:
    kv.set("lease", "old", ttl=0.2)
    version = kv.get_entry("lease").version
    clock.advance(0.3)
    with _refused_or_done(kv) as done:
        stale = kv.atomic().check("lease", version).set("lease", "stale").commit()
    if not done:
        return
    assert stale.ok is False
    assert kv.exists("lease") is False
    fresh = kv.atomic().check("lease", None).set("lease", "new").commit()
    assert fresh.ok is True and fresh.versions == {"lease": 1}
    entry = kv.get_entry("lease")
    assert entry.value == "new" and entry.expires_at is None


def test_commit_set_follows_the_rules_of_set(kv: Any) -> None:
    kv.set("kept", 1, ttl=60, metadata={"owner": "x"})
    kv.set("replaced", 1, metadata={"owner": "x"})
    builder = (
        kv.atomic()
        .set("kept", 2)
        .set("replaced", 2, ttl=30, metadata={"owner": "y"})
        .set("meta_ttl", 3, metadata={"ttl": 20, "k": "v"})
        .set("plain", 4)
    )
    with _refused_or_done(kv) as done:
        result = builder.commit()
    if not done:
        return
    assert result.ok
    kept = kv.get_entry("kept")
    # A set without ttl removes the TTL and keeps the user metadata.
    assert kept.expires_at is None and kept.metadata == {"owner": "x"} and kept.version == 2
    assert kv.get_entry("replaced").metadata == {"owner": "y"}
    assert 0 < kv.ttl("replaced") <= 30
    assert kv.get_entry("meta_ttl").metadata == {"k": "v"}
    assert 0 < kv.ttl("meta_ttl") <= 20
    assert kv.ttl("plain") is None and kv.get_entry("plain").metadata == {}


def test_commit_ttls_expire(kv: Any, clock: Any) -> None:
    kv.set("e", "v")
    builder = kv.atomic().set("s", 1, ttl=0.2).expire("e", 0.2).set("forever", 1)
    with _refused_or_done(kv) as done:
        assert builder.commit().ok
    if not done:
        return
    clock.advance(0.3)
    assert kv.keys() == ["forever"]


def test_commit_increment_follows_the_rules_of_increment(kv: Any) -> None:
    kv.set("ttl", 5, ttl=60)
    kv.set("f", 1.5)
    builder = kv.atomic().increment("ttl", 2).increment("missing").increment("f", 1)
    with _refused_or_done(kv) as done:
        result = builder.commit()
    if not done:
        return
    assert result.ok and result.versions == {"ttl": 2, "missing": 1, "f": 2}
    assert kv.get("ttl") == 7 and 0 < kv.ttl("ttl") <= 60
    missing = kv.get("missing")
    assert missing == 1 and type(missing) is int and kv.ttl("missing") is None
    f = kv.get("f")
    assert f == 2.5 and type(f) is float


def test_a_failing_mutation_writes_nothing(kv: Any) -> None:
    kv.set("text", "abc")
    kv.set("big", 2**63 - 1)
    kv.set("a", 1)
    before = _snapshot(kv)
    failing = [
        (keyshelf.NotNumericError, kv.atomic().set("a", 2).increment("text").set("b", 1)),
        (keyshelf.IncrementOverflowError, kv.atomic().delete("a").increment("big", 1)),
    ]
    for error, builder in failing:
        if not _multi(kv):
            with pytest.raises(keyshelf.UnsupportedOperationError):
                builder.commit()
        else:
            with pytest.raises(error):
                builder.commit()
        assert _snapshot(kv) == before


def test_mutations_of_one_key_apply_in_order(kv: Any) -> None:
    kv.set("k", 1, metadata={"m": 1})
    builder = kv.atomic().set("k", 10).increment("k", 5).expire("k", 30).increment("k")
    builder.delete("d").set("d", "again").set("tmp", 1).delete("tmp")
    with _refused_or_done(kv) as done:
        result = builder.commit()
    if not done:
        return
    # One new version per key, however many mutations touched it.
    assert result.ok and result.versions == {"k": 2, "d": 1}
    entry = kv.get_entry("k")
    assert entry.value == 16 and entry.version == 2 and entry.metadata == {"m": 1}
    assert 0 < kv.ttl("k") <= 30
    assert kv.get("d") == "again"
    assert kv.exists("tmp") is False


def test_commit_expire_of_an_absent_key_does_nothing(kv: Any) -> None:
    with _refused_or_done(kv) as done:
        result = kv.atomic().expire("missing", 10).set("x", 1).commit()
    if not done:
        return
    assert result.ok and result.versions == {"x": 1}
    assert kv.keys() == ["x"]


def test_a_builder_with_only_checks(kv: Any) -> None:
    kv.set("a", 1)
    with _refused_or_done(kv) as done:
        ok = kv.atomic().check("a", 1).check("b", None).commit()
    if not done:
        return
    assert ok.ok is True and ok.versions == {}
    assert kv.atomic().check("a", 2).commit().ok is False
    assert kv.atomic().commit().ok is True


def test_builder_bad_input_raises_at_the_call(kv: Any) -> None:
    kv.set("k", 1)
    before = _snapshot(kv)
    builder = kv.atomic().set("k", 2)
    with pytest.raises(keyshelf.InvalidKeyError):
        builder.set("", 1)
    with pytest.raises(keyshelf.InvalidKeyError):
        builder.check("", 1)
    with pytest.raises(keyshelf.InvalidKeyError):
        builder.delete("")
    with pytest.raises(keyshelf.SerializationError):
        builder.set("k", object())
    for ttl in (0, -1, float("inf"), True):
        with pytest.raises(keyshelf.InvalidTTLError):
            builder.set("k", 1, ttl=ttl)
        with pytest.raises(keyshelf.InvalidTTLError):
            builder.expire("k", ttl)
    with pytest.raises(keyshelf.InvalidArgumentError):
        builder.expire("k", None)
    with pytest.raises(keyshelf.InvalidArgumentError):
        builder.set("k", 1, metadata=["not", "a", "dict"])
    with pytest.raises(keyshelf.InvalidArgumentError):
        builder.increment("k", True)
    with pytest.raises(keyshelf.InvalidArgumentError):
        builder.increment("k", "1")
    for version in (0, -1, 1.0, True, "1"):
        with pytest.raises(keyshelf.InvalidArgumentError):
            builder.check("k", version)
    builder.check("k", 1)
    with pytest.raises(keyshelf.InvalidArgumentError):
        builder.check("k", 2)
    assert _snapshot(kv) == before
    # The builder kept what it accepted: one set and one check.
    with _refused_or_done(kv) as done:
        result = builder.commit()
    if done:
        assert result.ok and result.versions == {"k": 2} and kv.get("k") == 2


def test_builder_refuses_a_value_above_max_value_size(opener: Any) -> None:
    kv = opener(max_value_size=100)
    with pytest.raises(keyshelf.ValueTooLargeError):
        kv.atomic().set("k", "x" * 200)
    assert kv.keys() == []


def test_the_mutation_limit(kv: Any) -> None:
    builder = kv.atomic()
    for i in range(MAX_MUTATIONS):
        builder.set(f"k{i:04d}", i)
    assert MAX_MUTATIONS >= 1000
    with pytest.raises(keyshelf.InvalidArgumentError, match=str(MAX_MUTATIONS)):
        builder.set("one-more", 1)
    with pytest.raises(keyshelf.InvalidArgumentError, match=str(MAX_MUTATIONS)):
        builder.delete("one-more")
    assert kv.keys() == []
    # A commit of the limit itself is applied whole.
    builder.check("absent", None)
    with _refused_or_done(kv) as done:
        result = builder.commit()
    if not done:
        return
    assert result.ok and len(result.versions) == MAX_MUTATIONS
    assert kv.key_count() == MAX_MUTATIONS
    assert kv.get("k0999") == 999


def test_a_builder_acts_on_its_view_namespace(kv: Any) -> None:
    other = kv.namespace("other")
    kv.set("k", "default")
    other.set("k", "other")
    version = other.get_entry("k").version
    with _refused_or_done(kv) as done:
        result = other.atomic().check("k", version).set("k", "changed").set("n", 1).commit()
    if not done:
        return
    assert result.ok
    assert other.dump() == {"k": "changed", "n": 1}
    assert kv.dump() == {"k": "default"}


def test_multi_key_atomic_says_what_the_backend_does(kv: Any) -> None:
    if _multi(kv):
        assert kv.atomic().set("a", 1).set("b", 2).commit().ok is True
        assert kv.dump() == {"a": 1, "b": 2}
        return
    # A refusing backend names itself and writes nothing.
    with pytest.raises(keyshelf.UnsupportedOperationError) as refused:
        kv.atomic().set("a", 1).commit()
    # It names the backend: its class, and where it is (through the async
    # bridge, the class is the sync backend's).
    assert "cannot change several keys" in str(refused.value)
    assert kv.backend.location in str(refused.value)
    assert kv.keys() == []


# -- transaction(fn) --------------------------------------------------------------------


def test_transaction_commits_and_returns_what_fn_returned(kv: Any) -> None:
    kv.set("alice", 100)
    kv.set("bob", 0)

    async def transfer(tx: Any, other: Any, run: Any) -> str:
        alice = await run(tx.get("alice"))
        bob = await run(tx.get("bob"))
        tx.set("alice", alice - 30)
        tx.set("bob", bob + 30)
        return "moved"

    with _refused_or_done(kv) as done:
        assert _transact(kv, transfer) == "moved"
    if done:
        assert kv.dump() == {"alice": 70, "bob": 30}


def test_transaction_reads_entries_and_defaults(kv: Any) -> None:
    kv.set("a", 1, metadata={"m": "x"})

    async def body(tx: Any, other: Any, run: Any) -> tuple[Any, ...]:
        entry = await run(tx.get_entry("a"))
        missing = await run(tx.get_entry("nope"))
        default = await run(tx.get("nope", "dflt"))
        tx.increment("a")
        tx.expire("a", 30)
        tx.delete("nope")
        return entry.value, entry.version, entry.metadata, missing, default

    with _refused_or_done(kv) as done:
        result = _transact(kv, body)
    if done:
        assert result == (1, 1, {"m": "x"}, None, "dflt")
        assert kv.get("a") == 2 and 0 < kv.ttl("a") <= 30


def test_transaction_retries_when_a_key_read_changes(kv: Any, opener: Any) -> None:
    kv.set("counter", 1)
    second = _second(kv, opener)
    seen: list[Any] = []

    async def body(tx: Any, other: Any, run: Any) -> Any:
        value = await run(tx.get("counter"))
        seen.append(value)
        if len(seen) == 1:
            # Another writer changes the key after this attempt read it.
            await run(other.set("counter", 10))
        tx.set("counter", value + 1)
        return value

    with _refused_or_done(kv) as done:
        result = _transact(kv, body, second)
    if not done:
        return
    # The first attempt's commit failed its check; the retry saw the new value.
    assert seen == [1, 10] and result == 10
    assert kv.get("counter") == 11


def test_transaction_retries_when_an_absent_key_read_appears(kv: Any, opener: Any) -> None:
    second = _second(kv, opener)
    attempts: list[Any] = []

    async def claim(tx: Any, other: Any, run: Any) -> Any:
        owner = await run(tx.get("job"))
        attempts.append(owner)
        if len(attempts) == 1:
            await run(other.set("job", "worker-2"))
        if owner is None:
            tx.set("job", "worker-1")
        return owner

    with _refused_or_done(kv) as done:
        result = _transact(kv, claim, second)
    if done:
        assert attempts == [None, "worker-2"] and result == "worker-2"
        assert kv.get("job") == "worker-2"


def test_transaction_reads_what_another_handle_wrote(kv: Any, opener: Any) -> None:
    # A store with a cache tier must not read its cached copy in a
    # transaction: the copy is stale once another handle wrote the key.
    kv.set("rate", 1)
    assert kv.get("rate") == 1  # a cache tier now holds the key
    _second(kv, opener).set("rate", 2)

    async def body(tx: Any, other: Any, run: Any) -> Any:
        rate = await run(tx.get("rate"))
        tx.set("price", rate * 10)
        return rate

    with _refused_or_done(kv) as done:
        result = _transact(kv, body, retries=0)
    if done:
        assert result == 2
        assert kv.get("price") == 20


def test_transaction_gives_up_after_its_retries(kv: Any, opener: Any) -> None:
    kv.set("hot", 0)
    second = _second(kv, opener)
    calls: list[int] = []

    async def body(tx: Any, other: Any, run: Any) -> None:
        value = await run(tx.get("hot"))
        calls.append(value)
        await run(other.set("hot", value + 1))  # always changed behind its back
        tx.set("hot", -1)
        tx.set("written", True)

    if not _multi(kv):
        with pytest.raises(keyshelf.UnsupportedOperationError):
            _transact(kv, body, second, retries=2)
        return
    with pytest.raises(keyshelf.TransactionConflictError, match="3 attempts"):
        _transact(kv, body, second, retries=2)
    assert calls == [0, 1, 2]
    assert kv.get("hot") == 3 and kv.exists("written") is False
    assert issubclass(keyshelf.TransactionConflictError, keyshelf.KVError)
    calls.clear()
    kv.set("hot", 0)
    with pytest.raises(keyshelf.TransactionConflictError, match="1 attempts"):
        _transact(kv, body, second, retries=0)
    assert calls == [0]


def test_an_error_in_fn_writes_nothing_and_is_not_retried(kv: Any) -> None:
    kv.set("a", 1)
    calls: list[int] = []

    async def body(tx: Any, other: Any, run: Any) -> None:
        calls.append(await run(tx.get("a")))
        tx.set("a", 2)
        raise LookupError("no")

    with pytest.raises(LookupError if _multi(kv) else keyshelf.UnsupportedOperationError):
        _transact(kv, body)
    assert calls == ([1] if _multi(kv) else []) and kv.get("a") == 1


def test_transaction_bad_input(kv: Any) -> None:
    kv.set("a", 1)
    before = _snapshot(kv)

    async def body(tx: Any, other: Any, run: Any) -> None:
        await run(tx.get("a"))
        tx.set("a", 2)
        tx.set("", 1)

    with pytest.raises(keyshelf.InvalidKeyError if _multi(kv) else keyshelf.KVError):
        _transact(kv, body)
    for retries in (-1, 1.5, None, True):
        with pytest.raises(keyshelf.InvalidArgumentError):
            _transact(kv, body, retries=retries)
    with pytest.raises(keyshelf.InvalidArgumentError):
        kv.transaction("not a function")
    assert _snapshot(kv) == before


def test_transaction_refuses_the_other_api_s_function(kv: Any) -> None:
    kv.set("a", 1)
    # A refusing backend refuses before fn runs.
    error = keyshelf.InvalidArgumentError if _multi(kv) else keyshelf.UnsupportedOperationError
    if isinstance(kv, AsyncDriver):
        with pytest.raises(error, match="async def" if _multi(kv) else None):
            kv.transaction(lambda tx: tx.set("a", 2))
    else:

        async def body(tx: Any) -> None:
            tx.set("a", 2)

        with pytest.raises(error, match="plain function" if _multi(kv) else None):
            kv.transaction(body)
    assert kv.get("a") == 1


def test_a_transaction_acts_on_its_view_namespace(kv: Any) -> None:
    view = kv.namespace("accounts")
    view.set("x", 1)
    kv.set("x", 100)

    async def body(tx: Any, other: Any, run: Any) -> Any:
        value = await run(tx.get("x"))
        tx.set("x", value + 1)
        return value

    with _refused_or_done(kv) as done:
        assert _transact(view, body) == 1
    if done:
        assert view.get("x") == 2 and kv.get("x") == 100
