"""Locks with leases and fencing tokens (``kv.lock``), on every backend and both APIs.

A lock is built on the store's own atomic operations (``setnx`` and
``compare_and_swap``), so these tests also check that a backend's
``compare_and_swap`` is decided by the backend (through the cache tier too).
Lease deadlines are judged by the store's clock, on every backend, so most
tests move a :class:`~keyshelf.testing.FakeClock` instead of waiting; one
test uses the suite's ``clock`` (real on server-clock backends).
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import Any

import pytest

import keyshelf

from .. import AsyncDriver, FakeClock


class Driven:
    """A sync or async lock object, driven from the suite's sync test bodies."""

    def __init__(self, kv: Any, lock: Any) -> None:
        self.lock = lock
        self._loop = kv._loop if isinstance(kv, AsyncDriver) else None

    def _run(self, result: Any) -> Any:
        return self._loop.run_until_complete(result) if self._loop is not None else result

    @property
    def fencing_token(self) -> int:
        return int(self.lock.fencing_token)

    def acquire(self) -> Driven:
        assert self._run(self.lock.acquire()) is self.lock
        return self

    def extend(self, *args: Any) -> None:
        assert self._run(self.lock.extend(*args)) is None

    def release(self) -> None:
        assert self._run(self.lock.release()) is None

    def __enter__(self) -> Driven:
        enter = self.lock.__aenter__ if self._loop is not None else self.lock.__enter__
        assert self._run(enter()) is self.lock
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        leave = self.lock.__aexit__ if self._loop is not None else self.lock.__exit__
        self._run(leave(exc_type, exc, tb))


def lock(kv: Any, name: str, ttl: Any, **options: Any) -> Driven:
    return Driven(kv, kv.lock(name, ttl, **options))


def locks_of(kv: Any) -> Any:
    """The namespace view holding ``kv``'s locks."""
    return kv.namespace(kv.namespace_name + ":locks")


def held(kv: Any, name: str) -> bool:
    """True if a non-blocking acquisition of ``name`` fails (and leaves it as it was)."""
    try:
        lock(kv, name, 1, blocking=False).acquire().release()
    except keyshelf.LockNotAcquiredError:
        return True
    return False


def test_lock_is_exclusive_and_tokens_grow(kv: Any) -> None:
    with lock(kv, "job:42", ttl=30) as first:
        assert first.fencing_token == 1
        with pytest.raises(keyshelf.LockNotAcquiredError):
            lock(kv, "job:42", ttl=30, blocking=False).acquire()
        # Another name is another lock.
        with lock(kv, "job:43", ttl=30) as other:
            assert other.fencing_token == 1
    with lock(kv, "job:42", ttl=30) as second:
        assert second.fencing_token == 2
    again = lock(kv, "job:42", ttl=30).acquire()
    assert again.fencing_token == 3
    again.release()
    # The lock object can be taken again: a new acquisition, a new token.
    again.acquire()
    assert again.fencing_token == 4
    again.release()


def test_lock_lives_in_its_own_namespace(kv: Any) -> None:
    kv.set("job:42", {"state": "queued"})
    with lock(kv, "job:42", ttl=30) as taken:
        assert taken.lock.name == "job:42"
        assert taken.lock.namespace == kv.namespace_name + ":locks"
        assert kv.keys() == ["job:42"]
        assert kv.get("job:42") == {"state": "queued"}
        stored = locks_of(kv).get("job:42")
        assert stored["owner"] is not None and stored["fencing_token"] == 1
    # Released: the key stays (it keeps the fencing counter), without an owner or a TTL.
    assert locks_of(kv).get("job:42") == {"owner": None, "fencing_token": 1, "lease_until": None}
    assert locks_of(kv).ttl("job:42") is None
    assert kv.keys() == ["job:42"]
    view = kv.namespace("jobs")
    with lock(view, "job:42", ttl=30) as in_view:
        assert in_view.lock.namespace == "jobs:locks"
        assert in_view.fencing_token == 1
        assert held(kv, "job:42") is False


def test_lock_lease_ends_by_the_stores_clock(opener: Any) -> None:
    fake = FakeClock()
    kv = opener(clock=fake)
    first = lock(kv, "job", ttl=10).acquire()
    fake.advance(9.9)
    assert held(kv, "job") is True
    fake.advance(0.2)
    # The lease ended: anyone takes the lock over, with the next token.
    second = lock(kv, "job", ttl=10).acquire()
    assert second.fencing_token == first.fencing_token + 1
    # The first holder can neither extend nor release the new holder's lock.
    with pytest.raises(keyshelf.LockNotOwnedError):
        first.extend(60)
    with pytest.raises(keyshelf.LockNotOwnedError):
        first.release()
    assert held(kv, "job") is True
    stored = locks_of(kv).get("job")
    assert stored["fencing_token"] == second.fencing_token
    second.release()
    assert held(kv, "job") is False


def test_lock_expired_but_not_taken_is_no_longer_owned(opener: Any) -> None:
    fake = FakeClock()
    kv = opener(clock=fake)
    first = lock(kv, "job", ttl=5).acquire()
    fake.advance(6)
    before = locks_of(kv).get_entry("job")
    with pytest.raises(keyshelf.LockNotOwnedError):
        first.extend()
    with pytest.raises(keyshelf.LockNotOwnedError):
        first.release()
    # Nothing was written by the refused calls.
    assert locks_of(kv).get_entry("job").version == before.version
    assert lock(kv, "job", ttl=5).acquire().fencing_token == 2


def test_lock_extend_moves_the_deadline_and_keeps_the_token(opener: Any) -> None:
    fake = FakeClock()
    kv = opener(clock=fake)
    holder = lock(kv, "job", ttl=10).acquire()
    fake.advance(8)
    holder.extend(10)
    fake.advance(8)
    assert held(kv, "job") is True
    holder.extend()  # the lock's own TTL, from now
    fake.advance(9.5)
    assert held(kv, "job") is True
    assert holder.fencing_token == 1
    fake.advance(1)
    assert held(kv, "job") is False
    with pytest.raises(keyshelf.InvalidTTLError):
        holder.extend(0)


def test_lock_lease_with_the_suites_clock(opener: Any, clock: Any) -> None:
    # On server-clock backends the suite's clock is real: a short lease really ends.
    kv = opener()
    first = lock(kv, "job", ttl=0.2).acquire()
    clock.advance(0.3)
    second = lock(kv, "job", ttl=30, blocking=False).acquire()
    assert second.fencing_token == 2
    with pytest.raises(keyshelf.LockNotOwnedError):
        first.release()
    second.release()


def test_lock_release_and_extend_need_a_held_lock(kv: Any) -> None:
    fresh = lock(kv, "job", ttl=10)
    with pytest.raises(keyshelf.LockNotOwnedError):
        fresh.release()
    with pytest.raises(keyshelf.LockNotOwnedError):
        fresh.extend(10)
    with pytest.raises(keyshelf.LockNotOwnedError):
        _ = fresh.fencing_token
    fresh.acquire()
    with pytest.raises(keyshelf.LockNotAcquiredError):
        fresh.acquire()  # not reentrant
    fresh.release()
    assert fresh.fencing_token == 1  # still readable after release
    with pytest.raises(keyshelf.LockNotOwnedError):
        fresh.release()
    assert issubclass(keyshelf.LockNotOwnedError, keyshelf.KVError)
    assert issubclass(keyshelf.LockNotAcquiredError, keyshelf.KVError)


def test_lock_leaving_the_block_after_losing_the_lease(opener: Any) -> None:
    fake = FakeClock()
    kv = opener(clock=fake)
    # The block succeeded but the lease was lost: leaving it raises, and the
    # new holder keeps the lock.
    with pytest.raises(keyshelf.LockNotOwnedError), lock(kv, "job", ttl=5):
        fake.advance(6)
        thief = lock(kv, "job", ttl=60).acquire()
    assert thief.fencing_token == 2
    assert held(kv, "job") is True
    thief.release()
    # The block raised: its own exception comes out, with a note about the lock.
    with pytest.raises(LookupError) as raised, lock(kv, "job", ttl=5):
        fake.advance(6)
        thief = lock(kv, "job", ttl=60).acquire()
        raise LookupError("the block's own error")
    assert "releasing lock 'job' failed" in " ".join(getattr(raised.value, "__notes__", []))
    assert held(kv, "job") is True
    thief.release()
    # A block that raises while the lock is still held releases it.
    with pytest.raises(LookupError), lock(kv, "job", ttl=5):
        raise LookupError
    assert held(kv, "job") is False
    # A block that releases early leaves quietly.
    with lock(kv, "job", ttl=5) as early:
        early.release()
    assert held(kv, "job") is False


def test_lock_timeout_bounds_the_wait(kv: Any) -> None:
    with lock(kv, "job", ttl=30):
        with pytest.raises(keyshelf.LockNotAcquiredError, match="gave up"):
            lock(kv, "job", ttl=30, timeout=0).acquire()
        with pytest.raises(keyshelf.LockNotAcquiredError):
            lock(kv, "job", ttl=30, timeout=0.05).acquire()
    assert lock(kv, "job", ttl=30, timeout=0).acquire().fencing_token == 2


@pytest.mark.parametrize(
    ("args", "options", "error"),
    [
        (("", 10), {}, keyshelf.InvalidKeyError),
        (("__job", 10), {}, keyshelf.InvalidKeyError),
        ((1, 10), {}, keyshelf.InvalidKeyError),
        (("job", 0), {}, keyshelf.InvalidTTLError),
        (("job", -1), {}, keyshelf.InvalidTTLError),
        (("job", 0.0001), {}, keyshelf.InvalidTTLError),
        (("job", True), {}, keyshelf.InvalidTTLError),
        (("job", "10"), {}, keyshelf.InvalidTTLError),
        (("job", 10), {"blocking": "no"}, keyshelf.InvalidArgumentError),
        (("job", 10), {"timeout": -1}, keyshelf.InvalidArgumentError),
        (("job", 10), {"timeout": float("nan")}, keyshelf.InvalidArgumentError),
        (("job", 10), {"timeout": "1"}, keyshelf.InvalidArgumentError),
        (("job", 10), {"blocking": False, "timeout": 1}, keyshelf.InvalidArgumentError),
    ],
)
def test_lock_bad_arguments_are_refused_before_any_io(
    kv: Any, args: tuple[Any, ...], options: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        kv.lock(*args, **options)
    assert locks_of(kv).keys() == []
    assert kv.keys() == []


def test_lock_refuses_a_key_that_is_no_lock_record(kv: Any) -> None:
    locks_of(kv).set("job", "not a lock")
    with pytest.raises(keyshelf.InvalidArgumentError, match="not a keyshelf lock"):
        lock(kv, "job", ttl=10).acquire()
    assert locks_of(kv).get("job") == "not a lock"


def test_lock_reads_past_the_cache_tier(opener: Any, kv: Any) -> None:
    # Another writer (an uncached store, like another process) releases the
    # lock; a cache that still holds the old record must not make this
    # store see it as held.
    if opener.shared:
        options = {k: v for k, v in opener.options.items() if not k.startswith("cache")}
        other: Any = keyshelf.open(opener.url, clock=opener.clock, **options)
    else:
        other = None
    try:
        holder_store = other if other is not None else kv
        holder = lock(holder_store, "job", ttl=30).acquire()
        assert locks_of(kv).get("job")["owner"] is not None  # cached as held, if cached
        holder.release()
        assert lock(kv, "job", ttl=30, blocking=False).acquire().fencing_token == 2
    finally:
        if other is not None:
            other.close()


ROUNDS = 20


def test_lock_guards_a_read_modify_write_between_two_owners(opener: Any) -> None:
    # Two owners (threads on sync, tasks on async) each increment a plain
    # get/set counter ROUNDS times, only inside the lock: no increment is
    # lost, and the fencing tokens are unique and grow in acquisition order.
    kv = opener()
    tokens: list[int] = []
    if opener.api == "async":
        store, loop = kv._store, kv._loop

        async def worker() -> None:
            for _ in range(ROUNDS):
                async with store.lock("counter", ttl=60) as taken:
                    tokens.append(taken.fencing_token)
                    value = await store.get("counter", 0)
                    await asyncio.sleep(0)  # let the other task try to get in
                    await store.set("counter", value + 1)

        async def both() -> None:
            await asyncio.gather(worker(), worker())

        loop.run_until_complete(both())
    else:
        stores = [kv, opener() if opener.shared else kv]
        errors: list[BaseException] = []
        guard = threading.Lock()

        def run(own: Any) -> None:
            try:
                for _ in range(ROUNDS):
                    with own.lock("counter", ttl=60) as taken:
                        with guard:
                            tokens.append(taken.fencing_token)
                        value = own.get("counter", 0)
                        own.set("counter", value + 1)
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(own,)) for own in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert errors == []
    assert kv.get("counter") == 2 * ROUNDS
    assert tokens == list(range(1, 2 * ROUNDS + 1))


def test_lock_a_stale_hint_never_takes_a_held_lock(opener: Any) -> None:
    # Releasing remembers the free record in this process so the next
    # acquisition swaps from it without a read; when another owner (another
    # store, like another process) took the lock since, that swap fails and
    # the record is read: the lock is still exclusive and tokens still grow.
    kv = opener()
    other = opener() if opener.shared else kv
    lock(kv, "job", ttl=30).acquire().release()
    taken = lock(other, "job", ttl=30).acquire()
    assert taken.fencing_token == 2
    if other is not kv:
        with pytest.raises(keyshelf.LockNotAcquiredError):
            lock(kv, "job", ttl=30, blocking=False).acquire()
    taken.release()
    lock(other, "job", ttl=30).acquire().release()  # token 3, written by the other store
    again = lock(kv, "job", ttl=30, blocking=False).acquire()
    assert again.fencing_token == 4
    again.release()
