"""The Redis backend, written once for asyncio (source of ``_redis_sync.py``).

``tools/async_to_sync.py`` generates the sync twin from this file by renaming
the asyncio client to redis-py's sync client and dropping ``async``/``await``;
edit this one and run ``make generate``.
The settings live in :mod:`keyshelf.backends._redis_settings`, the key layout
in :mod:`keyshelf.backends._redis_layout`, the value encoding and the Lua
scripts in :mod:`keyshelf.backends._redis_common`, shared by both.

Guarantees:

* **One round trip** for ``get`` (``HMGET``), ``set`` (one script),
  ``get_many``/``mget`` (one script) and every atomic operation.
* **Atomic on the server.** ``set`` with ``nx``/``xx``/``keep_ttl``,
  ``increment``, ``append``, ``compare_and_swap``, ``mset``/``set_many``,
  ``delete``/``delete_many`` and ``clear`` are single Lua scripts, which
  Redis runs without interleaving any other command. ``set_metadata``,
  increments of integers beyond 64 bits and ``delete_pattern`` with a pattern
  that is more than a literal prefix read, decide in Python, and write under
  ``WATCH``/``MULTI``/``EXEC``: if anything changed in between, the
  transaction is dropped and retried, so nothing is ever lost.
* **Expiry is native** and judged by one clock, the Redis server's. A TTL
  reaches the server as a whole number of milliseconds (``PEXPIRE``, the
  TTL rounded down), so a key never outlives its TTL on the server's clock;
  a TTL below 1 ms deletes the key on the spot (the write is invisible, as
  on every backend). Import and migration copy an absolute instant exactly
  (``PEXPIREAT``). The instant reported back (``expires_at``) is the
  server's own (``PEXPIRETIME``), the same however often it is read. An
  expired key is gone for every command the moment Redis says so.
* **Scripts are preloaded.** Opening loads every Lua script (one pipeline;
  on a cluster, on every primary), so each operation is one ``EVALSHA``. A
  server that lost its scripts (restart, ``SCRIPT FLUSH``, failover) answers
  ``NOSCRIPT``: every script is loaded again and the call retried once.
* **Opening does not block an event loop.** The async backend does no I/O
  when it is created: it connects and checks the server (``PING``,
  ``INFO``, scripts) in :meth:`prepare` (``async with``) or on its first
  call, once, behind an asyncio lock; a failure there raises the error
  ``open()`` would have raised, and the next call tries again.
* **Failures** (refused connection, timeout, server error) raise
  :class:`BackendUnavailableError` or :class:`BackendError` naming the
  server; the redis-py exception is chained and never escapes. Commands are
  not retried (a retried increment could count twice); a dead pooled
  connection is replaced on the next call, so the first operation after the
  server comes back works.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio
from redis import exceptions as redis_errors
from redis.asyncio import retry as redis_retry
from redis.backoff import NoBackoff

from ..changes import DELETE as DELETE_CHANGE
from ..changes import EXPIRE, SET, Change
from ..codec import TAG_SPECIAL_FLOAT
from ..errors import (
    BackendError,
    BackendUnavailableError,
    ChangesCompactedError,
    IncompatibleStoreError,
    InvalidURLError,
    NotNumericError,
    StoreClosedError,
    UnsupportedOperationError,
    ValueTooLargeError,
)
from ..patterns import Matcher, prefix_upper_bound
from ..records import (
    DELETE,
    INT64_MAX,
    INT64_MIN,
    Action,
    CommitOutcome,
    Decision,
    DeleteOp,
    IncrementOp,
    Keep,
    MultiDecision,
    Op,
    R,
    Record,
    SetOp,
    Value,
    Write,
    commit_keys,
    decide_append,
    decide_increment,
    encode_number,
    numeric,
    stats_dict,
)
from . import _redis_common as rc
from . import _redis_pools
from ._base_async import AsyncBackend
from ._redis_layout import Layout, Space, lex_range, prefix_only, split_data_key
from ._redis_settings import RedisSettings, server_problem

# The largest sequence number of a stream id: "<revision>-<_MAX_SEQ>" is the
# last id of a revision (XREAD returns entries after the id it is given).
_MAX_SEQ = 2**64 - 1
# Seconds between two looks at a cluster store's feed setting while it is off.
_FEED_RECHECK = 1.0

_DRIVER_ERRORS = (redis_errors.RedisError, redis_errors.RedisClusterException, OSError)
_UNAVAILABLE = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ClusterDownError,
    redis_errors.RedisClusterException,
    OSError,
)


class AsyncRedisBackend(AsyncBackend):
    """Keyshelf records in one Redis database, under one key prefix."""

    multi_key_atomic = True

    def __init__(self, settings: RedisSettings) -> None:
        """Build the client; no I/O (see :meth:`connect`)."""
        self.location = settings.location
        self._settings = settings
        self.prefix = settings.prefix
        self._layout = Layout(settings.prefix, cluster=settings.cluster)
        retry = redis_retry.Retry(NoBackoff(), 0)
        self._pool: Any = None
        # redis-py's command methods are untyped; replies are checked here.
        self._client: Any
        if settings.cluster:
            # Commands are routed by key; every script and transaction touches
            # one namespace, whose keys share one slot (the braces are a hash tag).
            self._client = redis.asyncio.RedisCluster(retry=retry, **settings.cluster_kwargs())
        else:
            connection_class = {
                "tcp": redis.asyncio.Connection,
                "ssl": redis.asyncio.SSLConnection,
                "unix": redis.asyncio.UnixDomainSocketConnection,
            }[settings.transport]
            # Callers beyond max_connections wait for a free connection (up to
            # pool_timeout) instead of failing at once.
            self._pool = _redis_pools.AsyncWaitingPool.build(
                settings.max_connections,
                settings.pool_timeout,
                connection_class=connection_class,
                retry=retry,
                **settings.connection_kwargs,
            )
            self._client = redis.asyncio.Redis(connection_pool=self._pool)
        self._closed = False
        # The change feed: the private client of blocking reads, and on a
        # cluster the namespaces whose feed this process has switched on.
        self._blocking: Any = None
        self._feed_marked: set[str] = set()
        self._feed_checked = -1.0
        self._feed_conf: tuple[int | None, int | None] | None = None
        # Until connect() has succeeded, the first call runs it, alone (a
        # cluster client also discovers the topology then, and redis-py loses
        # connections if many calls race to do that). Checked, with _closed,
        # by one flag per call.
        self._cold = True
        self._ready = False
        if True:  # ASYNC
            self._warming = asyncio.Lock()
        else:
            self._warming = threading.Lock()

    @property
    def client(self) -> Any:
        """The redis-py client (for diagnostics; keyshelf's keys are its own)."""
        return self._client

    # -- plumbing -----------------------------------------------------------

    def _fail(self, exc: BaseException, action: str) -> BackendError:
        if self._closed:  # a call that raced close() lost its connection to it
            return self._closed_error()
        if isinstance(exc, _UNAVAILABLE):
            return BackendUnavailableError(
                f"Redis server {self.location} is unavailable ({action}): {exc}"
            )
        return BackendError(f"Redis error on {self.location} ({action}): {exc}")

    def _closed_error(self) -> StoreClosedError:
        return StoreClosedError(f"The store {self.location} is closed")

    async def connect(self) -> None:
        """Connect, check the server and load every script; idempotent.

        ``PING`` (connection, credentials, database), ``INFO server`` and
        ``INFO cluster`` (version, cluster mode), then :meth:`load_scripts`.
        Raises what opening a store raises: BackendUnavailableError for a
        server that cannot be reached, InvalidURLError for refused
        credentials, a missing database or a cluster/standalone mismatch,
        IncompatibleStoreError for a server older than 6.2.
        """
        if not self._cold:
            return
        client = self._client
        try:
            await client.execute_command("PING")
            try:
                info = await client.execute_command("INFO", "server")
                clustered = (await client.execute_command("INFO", "cluster")).get("cluster_enabled")
            except redis_errors.ResponseError:
                info, clustered = {}, None  # INFO disabled (managed services): skip the checks
        except _DRIVER_ERRORS as exc:
            raise open_error(exc, self._settings) from exc
        problem = server_problem(info, clustered, self._settings)
        if problem is not None:
            kind, _, text = problem.partition(": ")
            raise (IncompatibleStoreError if kind == "version" else InvalidURLError)(text)
        try:
            await self.load_scripts()
        except _DRIVER_ERRORS as exc:
            raise open_error(exc, self._settings) from exc
        self._cold = False
        self._ready = not self._closed

    async def load_scripts(self) -> None:
        """``SCRIPT LOAD`` every script of :data:`SCRIPTS <._redis_common.SCRIPTS>`.

        One pipelined round trip on a single server. On a cluster each
        ``SCRIPT LOAD`` goes to every primary (redis-py routes it so), one
        command per script: a key's script then runs by ``EVALSHA`` on
        whichever primary owns its slot, also after a resharding.
        """
        if self._settings.cluster:
            for script in rc.SCRIPTS:
                await self._client.execute_command("SCRIPT", "LOAD", script.source)
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for script in rc.SCRIPTS:
                pipe.execute_command("SCRIPT", "LOAD", script.source)
            await pipe.execute()

    async def prepare(self) -> None:
        """Connect now if no call has yet (``async with`` on the store)."""
        if not self._ready:
            await self._prepare()

    async def _prepare(self) -> None:
        """Raise if closed; else connect (the first call does it, alone)."""
        if self._closed:
            raise self._closed_error()
        async with self._warming:
            await self.connect()
        self._ready = not self._closed

    async def _eval(
        self,
        script: rc.Script,
        keys: Sequence[str | bytes],
        args: Sequence[Any],
        client: Any = None,
    ) -> Any:
        """Run ``script`` by its SHA (one round trip: scripts are loaded at open).

        A server that lost its scripts (restart, ``SCRIPT FLUSH``, failover)
        answers NOSCRIPT: every script is loaded again and the call retried
        once. Inside a ``WATCH`` (``client`` is the watching pipeline) the
        script is sent by its source instead, on that same connection.
        """
        target = self._client if client is None else client
        if self._settings.cluster and script.name in rc.FEED_SCRIPTS:
            feed = keys[-2]
            await self._feed_mark(feed.decode() if isinstance(feed, bytes) else feed)
        count = len(keys)
        try:
            # The digest and count go as bytes: redis-py converts every other
            # argument in Python, and arguments are most of a call's cost.
            return await target.execute_command(
                "EVALSHA",
                script.digest,
                rc.NUMKEYS[count] if count < 256 else count,
                *keys,
                *args,
            )
        except redis_errors.NoScriptError:
            if client is None:
                await self.load_scripts()
                try:
                    return await target.execute_command(
                        "EVALSHA", script.sha, len(keys), *keys, *args
                    )
                except redis_errors.NoScriptError:
                    pass  # e.g. a cluster node that changed meanwhile: send the source
            return await target.execute_command("EVAL", script.source, len(keys), *keys, *args)

    async def ping(self) -> None:
        """Check that the server answers (used at open time)."""
        try:
            await self._client.execute_command("PING")
        except _DRIVER_ERRORS as exc:
            raise self._fail(exc, "connect") from exc

    async def _tidy(self, space: Space, low: str = "", high: str = "") -> tuple[int, list[int]]:
        """Forget every due leftover of expired keys; (keys found gone, last TIDY reply)."""
        gone = 0
        while True:
            reply = await self._eval(
                rc.TIDY,
                (space.catalog, space.expiring, space.feed, space.log),
                (space.base, rc.CHUNK, low, high),
            )
            gone += reply[1]
            if reply[0] < rc.CHUNK or reply[1] + reply[5] == 0:
                return gone, reply

    # -- reads --------------------------------------------------------------

    async def get(self, ns: str, key: str, now: int) -> Value | None:
        if not self._ready:
            await self._prepare()
        try:
            t, v = await self._client.execute_command(
                "HMGET", self._layout.space(ns).base + key, "t", "v"
            )
        except _DRIVER_ERRORS as exc:
            raise self._fail(exc, "get") from exc
        return None if t is None else rc.from_redis(t, v)

    async def get_record(self, ns: str, key: str, now: int) -> Record | None:
        if not self._ready:
            await self._prepare()
        try:
            reply = await self._eval(rc.GET_RECORD, (self._layout.space(ns).base + key,), ())
        except _DRIVER_ERRORS as exc:
            raise self._fail(exc, "get") from exc
        return rc.record_from_reply(reply, now) if reply else None

    async def time_left(self, ns: str, key: str, now: int) -> int | None:
        """``PTTL``: the server's own remaining time, one command.

        0 (the key's last millisecond) counts as gone, like -2 (no key).
        """
        if not self._ready:
            await self._prepare()
        try:
            left = await self._client.execute_command("PTTL", self._layout.space(ns).base + key)
        except _DRIVER_ERRORS as exc:
            raise self._fail(exc, "ttl") from exc
        if left == -1:
            return None
        return int(left) if left > 0 else -1

    async def exists(self, ns: str, key: str, now: int) -> bool:
        if not self._ready:
            await self._prepare()
        try:
            found = await self._client.execute_command("EXISTS", self._layout.space(ns).base + key)
        except _DRIVER_ERRORS as exc:
            raise self._fail(exc, "exists") from exc
        return bool(found)

    async def get_many(self, ns: str, keys: Sequence[str], now: int) -> dict[str, Value]:
        if not self._ready:
            await self._prepare()
        try:
            return await self._get_many(self._layout.space(ns), list(dict.fromkeys(keys)))
        except _DRIVER_ERRORS as exc:
            raise self._fail(exc, "get_many") from exc

    async def _get_many(self, space: Space, unique: list[str]) -> dict[str, Value]:
        if not unique:
            return {}
        base = space.base
        if len(unique) == 1:
            t, v = await self._client.execute_command("HMGET", base + unique[0], "t", "v")
            return {} if t is None else {unique[0]: rc.from_redis(t, v)}
        bbase = space.bbase
        reply = await self._eval(rc.GET_MANY, [bbase + key.encode() for key in unique], ())
        found: dict[str, Value] = {}
        for i, key in enumerate(unique):
            t = reply[2 * i]
            if t is not None:
                found[key] = rc.from_redis(t, reply[2 * i + 1])
        return found

    async def sizes(self, ns: str, keys: Sequence[str], now: int) -> dict[str, int]:
        if not self._ready:
            await self._prepare()
        unique = list(dict.fromkeys(keys))
        if not unique:
            return {}
        base = self._layout.space(ns).base
        try:
            reply = await self._eval(rc.SIZES, [base + key for key in unique], ())
        except _DRIVER_ERRORS as exc:
            raise self._fail(exc, "storage_size") from exc
        return {key: size for key, size in zip(unique, reply, strict=True) if size >= 0}

    # -- writes -------------------------------------------------------------

    async def put(
        self,
        ns: str,
        key: str,
        value: Value,
        expires_at: int | None,
        meta: Any,
        now: int,
        *,
        nx: bool = False,
        xx: bool = False,
        keep_ttl: bool = False,
    ) -> bool:
        if not self._ready:
            await self._prepare()
        t, v = rc.to_redis(value)
        space = self._layout.space(ns)
        if isinstance(meta, Keep):
            mode, stored_meta = "k", b""
        else:
            mode, stored_meta = "s", meta or b""
        px = "keep" if keep_ttl else rc.px_for(expires_at, now)
        head = f"{now}|{px}|{mode}{'nx' if nx else 'xx' if xx else ''}|{t}"
        try:
            done = await self._eval(
                rc.PUT,
                (space.bbase + key.encode(), *space.bnames),
                (head, v, stored_meta) if stored_meta else (head, v),
            )
        except _DRIVER_ERRORS as exc:
            raise self._fail(exc, "set") from exc
        return bool(done == 1)

    async def put_many(
        self, ns: str, items: Sequence[tuple[str, Value]], expires_at: int | None, now: int
    ) -> None:
        if not self._ready:
            await self._prepare()
        space = self._layout.space(ns)
        base = space.bbase
        catalog, expiring, feed, log = space.bnames
        keys = [catalog, expiring]
        keys += [base + key.encode() for key, _value in items]
        keys += (feed, log)
        head = f"{now}|{rc.px_for(expires_at, now)}"
        try:
            await self._eval(rc.PUT_MANY, keys, (head, rc.pack_items(items)))
        except _DRIVER_ERRORS as exc:
            raise self._fail(exc, "mset") from exc

    async def put_records(self, ns: str, items: Sequence[tuple[str, Write]], now: int) -> None:
        """Store whole records (import, migration), up to :data:`CHUNK` per script.

        Each record's expiry is an absolute instant and is kept exactly
        (``PEXPIREAT``), never turned back into a duration. Each script is
        atomic; a long batch is split so that no script holds the server for
        long, and if one fails, the records before it stay written.
        """
        if not self._ready:
            await self._prepare()
        latest = list(dict(items).items())  # the last record of a repeated key wins
        space = self._layout.space(ns)
        base = space.base
        try:
            for start in range(0, len(latest), rc.CHUNK):
                keys = [space.catalog, space.expiring]
                args: list[Any] = [now, base]
                for key, write in latest[start : start + rc.CHUNK]:
                    t, v = rc.to_redis((write.tag, write.payload))
                    keys.append(base + key)
                    args += (key, t, v, write.meta or b"", rc.at_for(write.expires_at))
                await self._eval(rc.PUT_RECORDS, [*keys, space.feed, space.log], args)
        except _DRIVER_ERRORS as exc:
            raise self._fail(exc, "import") from exc

    async def delete(self, ns: str, keys: Sequence[str], now: int) -> list[str]:
        if not self._ready:
            await self._prepare()
        unique = list(dict.fromkeys(keys))
        if not unique:
            return []
        space = self._layout.space(ns)
        try:
            reply = await self._eval(rc.DELETE, self._delete_keys(space, unique), unique)
        except _DRIVER_ERRORS as exc:
            raise self._fail(exc, "delete") from exc
        return [key for key, live in zip(unique, reply, strict=True) if live]

    def _delete_keys(self, space: Space, keys: list[str]) -> list[str]:
        return [
            space.catalog,
            space.expiring,
            *(space.base + key for key in keys),
            space.feed,
            space.log,
        ]

    async def set_expiry(self, ns: str, key: str, expires_at: int | None, now: int) -> bool:
        if not self._ready:
            await self._prepare()
        space = self._layout.space(ns)
        try:
            done = await self._eval(
                rc.SET_EXPIRY,
                (space.base + key, space.expiring, space.feed, space.log),
                (key, rc.px_for(expires_at, now)),
            )
        except _DRIVER_ERRORS as exc:
            raise self._fail(exc, "expire" if expires_at is not None else "persist") from exc
        return bool(done == 1)

    async def increment(self, ns: str, key: str, delta: int | float, now: int) -> int | float:
        if not self._ready:
            await self._prepare()
        if type(delta) is int:
            if not INT64_MIN <= delta <= INT64_MAX:
                return await self.update(ns, key, now, decide_increment(delta))
            kind, text = "ii", str(delta)
        else:
            tag, _payload = encode_number(delta)
            kind = "sF" if tag == TAG_SPECIAL_FLOAT else "ff"
            text = repr(delta)
        space = self._layout.space(ns)
        try:
            reply = await self._eval(
                rc.INCREMENT,
                (space.bbase + key.encode(), space.bnames[0], *space.bnames[2:]),
                (f"{now}|{kind}|{text}",),
            )
        except _DRIVER_ERRORS as exc:
            raise self._fail(exc, "increment") from exc
        if type(reply) is bytes:  # an int result, sent bare
            return int(reply)
        code = reply[0]
        if code == 0:
            result = numeric(*rc.from_redis(reply[1], reply[2]))
            assert result is not None
            return result
        if code == 1:
            raise NotNumericError("Cannot increment non-numeric value")
        if code == 2:
            encode_number(int(reply[1]) + delta)  # raises IncrementOverflowError
        # A stored integer beyond 64 bits: Lua cannot add it exactly.
        return await self.update(ns, key, now, decide_increment(delta))

    async def append(self, ns: str, key: str, value: Value, now: int, max_size: int) -> Value:
        if not self._ready:
            await self._prepare()
        t, v = rc.to_redis(value)
        space = self._layout.space(ns)
        try:
            reply = await self._eval(
                rc.APPEND,
                (space.base + key, space.catalog, space.feed, space.log),
                (key, t, v, now, max_size),
            )
        except _DRIVER_ERRORS as exc:
            raise self._fail(exc, "append") from exc
        code = reply[0]
        if code == 0:
            return rc.from_redis(reply[1], reply[2])
        if code == 1:
            # The script sends back the stored type only: its payload is not needed.
            stored = rc.tag_of(reply[1])
            # The shared decision raises the type error, worded like everywhere else.
            decide_append(value, max_size)(Record(stored, None, None, None, now, now, 1))
        raise ValueTooLargeError(
            f"Appending would make the value {reply[1]} bytes, above max_value_size {max_size}"
        )

    async def compare_and_swap(
        self, ns: str, key: str, expected: Value, new: Value, now: int
    ) -> bool:
        if not self._ready:
            await self._prepare()
        et, ev = rc.to_redis(expected)
        nt, nv = rc.to_redis(new)
        space = self._layout.space(ns)
        try:
            done = await self._eval(
                rc.COMPARE_AND_SWAP,
                (space.base + key, space.feed, space.log),
                (et, ev, nt, nv, now),
            )
        except _DRIVER_ERRORS as exc:
            raise self._fail(exc, "compare_and_swap") from exc
        return bool(done == 1)

    async def update(self, ns: str, key: str, now: int, decide: Decision[R]) -> R:
        """Read, decide in Python, write under WATCH; retried if the key changed."""

        def decide_one(records: dict[str, Record | None]) -> tuple[dict[str, Action], R]:
            write, result = decide(records[key])
            return ({} if write is None else {key: write}), result

        what = f"key {key!r} in namespace {ns!r}"
        return await self._watched(ns, [key], now, decide_one, "update", what)

    async def update_many(
        self, ns: str, keys: Sequence[str], now: int, decide: MultiDecision[R]
    ) -> R:
        """Read every key under WATCH, decide in Python, write in one MULTI; retried on change.

        The keys of one namespace share one hash slot, so the WATCH and the
        transaction touch one node of a Redis Cluster too.
        """
        what = f"keys in namespace {ns!r}"
        return await self._watched(ns, keys, now, decide, "update_many", what)

    async def _watched(
        self,
        ns: str,
        keys: Sequence[str],
        now: int,
        decide: MultiDecision[R],
        operation: str,
        what: str,
    ) -> R:
        """Read ``keys`` under WATCH, ``decide``, apply in one MULTI; retried when one changed.

        The writes run the same scripts as the primitives (so the indexes and
        the feed stay right); when the MULTI holds more than one script, they
        share one feed revision.
        """
        if not self._ready:
            await self._prepare()
        space = self._layout.space(ns)
        datas = [space.base + key for key in keys]
        try:
            if self._settings.cluster:
                await self._feed_mark(space.feed)
            for _attempt in range(rc.WATCH_ATTEMPTS):
                async with self._client.pipeline(transaction=True) as pipe:
                    try:
                        if datas:
                            await pipe.watch(*datas)
                        records: dict[str, Record | None] = {}
                        for key, data in zip(keys, datas, strict=True):
                            reply = await self._eval(rc.GET_RECORD, (data,), (), client=pipe)
                            records[key] = rc.record_from_reply(reply, now) if reply else None
                        actions, result = decide(records)
                        writes = [(k, a) for k, a in actions.items() if isinstance(a, Write)]
                        doomed = [k for k, a in actions.items() if a is DELETE]
                        if not writes and not doomed:
                            return result
                        pipe.multi()
                        joined = len(writes) + bool(doomed) > 1
                        if joined:
                            pipe.execute_command("EVAL", rc.FEED_JOIN.source, 1, space.feed)
                        for key, write in writes:
                            pipe.execute_command(
                                "EVAL",
                                rc.WRITE.source,
                                5,
                                space.base + key,
                                space.catalog,
                                space.expiring,
                                space.feed,
                                space.log,
                                *_write_args(key, write, records[key], now),
                            )
                        if doomed:
                            names = self._delete_keys(space, doomed)
                            pipe.execute_command(
                                "EVAL", rc.DELETE.source, len(names), *names, *doomed
                            )
                        if joined:
                            pipe.execute_command("HDEL", space.feed, "j")
                        await pipe.execute()
                        return result
                    except redis_errors.WatchError:
                        continue
        except _DRIVER_ERRORS as exc:
            raise self._fail(exc, operation) from exc
        raise BackendError(
            f"Redis server {self.location}: {what} kept changing; "
            f"gave up after {rc.WATCH_ATTEMPTS} attempts"
        )

    async def commit(
        self, ns: str, checks: dict[str, int | None], ops: list[Op], now: int
    ) -> CommitOutcome:
        """One script (one round trip): every check, then every mutation, or nothing.

        The script decides everything before its first write, with the rules
        of :func:`records.decide_commit`. An increment it cannot compute
        exactly (a stored integer beyond 64 bits, an int sum beyond 2^53, a
        delta beyond 64 bits) sends the whole commit to the general path
        (:meth:`update_many`), which has the same answers.
        """
        keys = commit_keys(checks, ops)
        args = _commit_args(keys, checks, ops, now, self._layout.space(ns).base)
        if args is None:
            return await super().commit(ns, checks, ops, now)
        if not self._ready:
            await self._prepare()
        space = self._layout.space(ns)
        names = [
            space.catalog,
            space.expiring,
            *(space.base + key for key in keys),
            space.feed,
            space.log,
        ]
        try:
            reply = await self._eval(rc.COMMIT, names, args)
        except _DRIVER_ERRORS as exc:
            raise self._fail(exc, "commit") from exc
        code = reply[0]
        if code == 0:
            return False, {}
        if code == 1:
            versions = {key: int(v) for key, v in zip(keys, reply[1:], strict=True) if v}
            return True, versions
        if code == 2:
            raise NotNumericError("Cannot increment non-numeric value")
        return await super().commit(ns, checks, ops, now)

    # -- listings -------------------------------------------------------------

    async def scan(
        self,
        ns: str,
        matcher: Matcher,
        now: int,
        after: str | None,
        limit: int | None,
        values: bool,
    ) -> list[tuple[str, Value | None]]:
        if not self._ready:
            await self._prepare()
        if matcher.literal:
            key = matcher.prefix
            if after is not None and key <= after:
                return []
            if values:
                value = await self.get(ns, key, now)
                return [] if value is None else [(key, value)]
            return [(key, None)] if await self.exists(ns, key, now) else []
        space = self._layout.space(ns)
        low, high = lex_range(matcher.prefix, after, prefix_upper_bound(matcher.prefix))
        test = None if matcher.match_all else matcher.match
        inline = values and test is None
        step = 3 if inline else 1
        rows: list[tuple[str, Value | None]] = []
        # A filtered page reads ahead in growing chunks: a page costs about
        # the keys up to its last match, not a whole CHUNK (small pages of a
        # long stream would otherwise each reread up to CHUNK keys).
        ahead = 16
        try:
            while True:
                want = rc.CHUNK
                if limit is not None:
                    if test is None:
                        want = min(want, limit - len(rows))
                    else:
                        want = min(want, max(limit - len(rows), ahead))
                        ahead *= 2
                reply = await self._eval(
                    rc.SCAN,
                    (space.catalog, space.expiring, space.feed, space.log),
                    (space.base, low, high, want, "1" if inline else "0"),
                )
                batch: list[tuple[str, Value | None]] = []
                for i in range(2, len(reply), step):
                    key = reply[i].decode()
                    if test is not None and not test(key):
                        continue
                    batch.append(
                        (key, rc.from_redis(reply[i + 1], reply[i + 2]) if inline else None)
                    )
                if values and not inline and batch:
                    found = await self._get_many(space, [key for key, _ in batch])
                    batch = [(key, found[key]) for key, _ in batch if key in found]
                rows += batch
                if limit is not None and len(rows) >= limit:
                    return rows[:limit]
                if reply[0] < want:
                    return rows
                low = "(" + reply[1].decode()
        except _DRIVER_ERRORS as exc:
            raise self._fail(exc, "scan") from exc

    async def count(self, ns: str, matcher: Matcher, now: int) -> int:
        if not self._ready:
            await self._prepare()
        if matcher.literal:
            return int(await self.exists(ns, matcher.prefix, now))
        space = self._layout.space(ns)
        try:
            if matcher.match_all:
                return int((await self._tidy(space))[1][2])
            low, high = lex_range(matcher.prefix, None, prefix_upper_bound(matcher.prefix))
            if prefix_only(matcher):
                return int((await self._tidy(space, low, high))[1][4])
            total = 0
            while True:
                reply = await self._eval(
                    rc.SCAN,
                    (space.catalog, space.expiring, space.feed, space.log),
                    (space.base, low, high, rc.CHUNK, "0"),
                )
                total += sum(1 for key in reply[2:] if matcher.match(key.decode()))
                if reply[0] < rc.CHUNK:
                    return total
                low = "(" + reply[1].decode()
        except _DRIVER_ERRORS as exc:
            raise self._fail(exc, "count") from exc

    async def delete_matching(self, ns: str, matcher: Matcher, now: int) -> int:
        if not self._ready:
            await self._prepare()
        if matcher.literal:
            return len(await self.delete(ns, [matcher.prefix], now))
        space = self._layout.space(ns)
        try:
            if matcher.match_all:
                low, high = "-", "+"
            else:
                low, high = lex_range(matcher.prefix, None, prefix_upper_bound(matcher.prefix))
            if matcher.match_all or prefix_only(matcher):
                removed = await self._eval(
                    rc.CLEAR_RANGE,
                    (space.catalog, space.expiring, space.feed, space.log),
                    (space.base, low, high),
                )
                return int(removed)
            return await self._delete_filtered(space, matcher, low, high)
        except _DRIVER_ERRORS as exc:
            raise self._fail(exc, "delete_pattern") from exc

    async def _delete_filtered(self, space: Space, matcher: Matcher, low: str, high: str) -> int:
        """Collect the matching keys under WATCH of the index, delete them in MULTI.

        Any key created or deleted in the namespace meanwhile changes the index
        and aborts the transaction, which is then retried: the keys deleted are
        exactly the matching keys at the moment of the delete.
        """
        if self._settings.cluster:
            await self._feed_mark(space.feed)
        for _attempt in range(rc.WATCH_ATTEMPTS):
            async with self._client.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(space.catalog)
                    doomed: list[str] = []
                    cursor = low
                    while True:
                        members = await pipe.execute_command(
                            "ZRANGEBYLEX", space.catalog, cursor, high, "LIMIT", 0, rc.CHUNK
                        )
                        doomed += (k for k in (m.decode() for m in members) if matcher.match(k))
                        if len(members) < rc.CHUNK:
                            break
                        cursor = "(" + members[-1].decode()
                    if not doomed:
                        return 0
                    pipe.multi()
                    keys = self._delete_keys(space, doomed)
                    pipe.execute_command("EVAL", rc.DELETE.source, len(keys), *keys, *doomed)
                    (reply,) = await pipe.execute()
                    return sum(reply)
                except redis_errors.WatchError:
                    continue
        raise BackendError(
            f"Redis server {self.location}: the keys matching {matcher.pattern!r} kept "
            f"changing; gave up after {rc.WATCH_ATTEMPTS} attempts"
        )

    async def _spaces(self, suffix: str) -> list[str]:
        """Namespaces that have a bookkeeping key (SCAN over the whole database)."""
        match = self._layout.index_match if suffix == "#keys" else self._layout.ttl_match
        names: set[str] = set()
        async for name in self._client.scan_iter(match=match, count=rc.CHUNK, _type="zset"):
            ns = self._layout.namespace_of(name, suffix)
            if ns is not None:
                names.add(ns)
        return sorted(names)

    async def namespaces(self, now: int) -> list[str]:
        if not self._ready:
            await self._prepare()
        try:
            found = []
            for ns in await self._spaces("#keys"):
                _gone, reply = await self._tidy(self._layout.space(ns))
                if reply[2] > 0:
                    found.append(ns)
            return found
        except _DRIVER_ERRORS as exc:
            raise self._fail(exc, "list_namespaces") from exc

    async def purge_expired(self, ns: str | None, now: int) -> int:
        """Redis deletes expired keys itself; this forgets their index entries.

        Returns how many expired keys still had index entries.
        """
        if not self._ready:
            await self._prepare()
        try:
            names = [ns] if ns is not None else await self._spaces("#ttl")
            removed = 0
            for name in names:
                gone, _reply = await self._tidy(self._layout.space(name))
                removed += gone
            return removed
        except _DRIVER_ERRORS as exc:
            raise self._fail(exc, "delete_expired") from exc

    async def stats(self, ns: str, now: int) -> dict[str, Any]:
        if not self._ready:
            await self._prepare()
        try:
            _gone, reply = await self._tidy(self._layout.space(ns))
        except _DRIVER_ERRORS as exc:
            raise self._fail(exc, "stats") from exc
        # Redis purges by itself: no expired key is ever counted.
        return stats_dict(int(reply[2]), int(reply[2]), int(reply[3]))

    async def total_size(self, ns: str, now: int) -> int:
        if not self._ready:
            await self._prepare()
        space = self._layout.space(ns)
        total, low = 0, "-"
        try:
            while True:
                reply = await self._eval(
                    rc.SIZE_CHUNK,
                    (space.catalog, space.expiring, space.feed, space.log),
                    (space.base, low, "+", rc.CHUNK),
                )
                total += int(reply[2])
                if reply[0] < rc.CHUNK:
                    return total
                low = "(" + reply[1].decode()
        except _DRIVER_ERRORS as exc:
            raise self._fail(exc, "storage_size") from exc

    # -- change feed (docs/changes.md; the recording is in the scripts) --------

    change_feed = True

    async def _feed_configure(
        self, name: str, history_count: int | None, history_ms: int | None
    ) -> None:
        """Switch the feed hash ``name`` on with this retention (its revision is kept)."""
        fields: dict[str, Any] = {"on": "1"}
        dropped = []
        for field, bound in (("count", history_count), ("ms", history_ms)):
            if bound is None:
                dropped.append(field)
            else:
                fields[field] = str(bound)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hset(name, mapping=fields)
            if dropped:
                pipe.hdel(name, *dropped)
            await pipe.execute()

    async def enable_changes(self, history_count: int | None, history_ms: int | None) -> None:
        """Mark the feed hash on; the scripts check it in the same step as each write.

        On a cluster the store-wide hash holds the setting and every
        namespace has its own hash (and stream, and revisions): this marks
        every namespace that has keys now; a process marks a namespace that
        appears later at its first write there (see :meth:`_feed_mark`).
        """
        if not self._ready:
            await self._prepare()
        try:
            await self._feed_configure(self._layout.feed, history_count, history_ms)
            if self._settings.cluster:
                for ns in await self._spaces("#keys"):
                    space = self._layout.space(ns)
                    await self._feed_configure(space.feed, history_count, history_ms)
                    self._feed_marked.add(space.feed)
                self._feed_conf = (history_count, history_ms)
        except _DRIVER_ERRORS as exc:
            raise self._fail(exc, "enable_changes") from exc

    async def _feed_mark(self, feed: str) -> None:
        """On a cluster: switch a namespace's feed on if the store's is (see enable_changes).

        Asked once per namespace and process while the feed is on; while it
        is off, the store-wide setting is read at most once a second. Once
        on, the setting is kept (there is no switching off).
        """
        if feed in self._feed_marked:
            return
        if self._feed_conf is None:
            clock = time.monotonic()
            if 0 <= clock - self._feed_checked < _FEED_RECHECK:
                return
            conf = await self._client.execute_command(
                "HMGET", self._layout.feed, "on", "count", "ms"
            )
            self._feed_checked = clock
            if conf[0] != b"1":
                return
            count, ms = (None if c is None else int(c) for c in conf[1:])
            self._feed_conf = (count, ms)
        await self._feed_configure(feed, *self._feed_conf)
        self._feed_marked.add(feed)

    async def changes_enabled(self) -> bool:
        if not self._ready:
            await self._prepare()
        try:
            on = await self._client.execute_command("HGET", self._layout.feed, "on")
        except _DRIVER_ERRORS as exc:
            raise self._fail(exc, "changes_enabled") from exc
        _honour_cancel()
        return bool(on == b"1")

    def _feed_names(self, ns: str | None) -> tuple[str, str]:
        """The feed hash and stream serving ``ns`` (per namespace on a cluster)."""
        if not self._settings.cluster:
            return self._layout.feed, self._layout.log
        if ns is None:
            raise UnsupportedOperationError(
                f"Redis Cluster {self.location}: the change feed is kept per namespace "
                "(revisions are per namespace there); read it through a namespace"
            )
        space = self._layout.space(ns)
        return space.feed, space.log

    async def revision(self, now: int, ns: str | None = None) -> int:
        """The latest revision (of ``ns``'s feed on a cluster; store-wide otherwise)."""
        if not self._ready:
            await self._prepare()
        if self._settings.cluster and ns is None:
            ns = "default"
        feed, _log = self._feed_names(ns)
        try:
            rev = await self._client.execute_command("HGET", feed, "rev")
        except _DRIVER_ERRORS as exc:
            raise self._fail(exc, "revision") from exc
        _honour_cancel()
        return 0 if rev is None else int(rev)

    async def changes(self, ns: str | None, after: int, limit: int, now: int) -> list[Change]:
        """XRANGE from revision ``after + 1``; the prune mark is read afterwards.

        A single server keeps one stream for the store: other namespaces'
        entries are skipped here (read on until ``limit`` changes of ``ns``,
        or the end). A revision is never split by ``limit``.
        """
        if not self._ready:
            await self._prepare()
        _feed, log = self._feed_names(ns)
        found: list[Change] = []
        start = f"{after + 1}-0"
        prefix = self.prefix
        try:
            while True:
                batch = max(limit, 100)
                entries = await self._client.execute_command(
                    "XRANGE", log, start, "+", "COUNT", batch
                )
                for entry_id, fields in entries:
                    change = _change_of(prefix, entry_id, fields)
                    if change is None or (ns is not None and change.ns != ns):
                        continue
                    if len(found) >= limit and change.revision != found[-1].revision:
                        break
                    found.append(change)
                else:
                    if len(entries) == batch:
                        start = "(" + entries[-1][0].decode()
                        continue
                break
            pruned = await self._feed_pruned(log)
        except _DRIVER_ERRORS as exc:
            raise self._fail(exc, "changes") from exc
        _honour_cancel()
        if after < pruned:
            raise ChangesCompactedError(
                f"Changes after revision {after} were pruned from the history of "
                f"{self.location} (changes from revision {pruned + 1} on are kept)",
                oldest=pruned + 1,
            )
        return found

    async def _feed_pruned(self, log: str) -> int:
        """The highest revision trimmed from ``log``, from its first entry.

        Revisions of one stream are contiguous (each revision adds at least
        one entry), so when anything was trimmed (more entries added than
        kept), every revision before the first entry's is gone, and that
        revision too if its first entries are.
        """
        try:
            info = await self._client.execute_command("XINFO", "STREAM", log)
        except redis_errors.ResponseError:
            return 0  # no stream yet: nothing recorded, nothing pruned
        if isinstance(info, list):
            info = dict(zip(info[::2], info[1::2], strict=True))
        info = {k.decode() if isinstance(k, bytes) else k: v for k, v in info.items()}
        if int(info["entries-added"]) <= int(info["length"]):
            return 0
        if not info.get("first-entry"):
            return _id_parts(info["last-generated-id"])[0]
        revision, seq = _id_parts(info["first-entry"][0])
        return revision if seq else revision - 1

    async def wait_changes(self, after: int, timeout: float, ns: str | None = None) -> None:
        """XREAD BLOCK on the feed's stream, on a connection of its own.

        The blocking read holds a connection of a second, private client (not
        the pool the other calls share); cancelling the call drops that
        connection, and :meth:`close` closes the client.
        """
        if not self._ready:
            await self._prepare()
        if self._settings.cluster and ns is None:
            ns = "default"
        _feed, log = self._feed_names(ns)
        # The read must end before the client's socket timeout would cut it.
        socket = self._settings.connection_kwargs.get("socket_timeout") or 10.0
        block = max(1, int(min(timeout, socket / 2) * 1000))
        client = self._blocking_client()
        command = ("XREAD", "COUNT", 1, "BLOCK", block, "STREAMS", log, f"{after}-{_MAX_SEQ}")
        try:
            if True:  # ASYNC
                # redis-py finishes a command whose task is cancelled (and
                # swallows the cancellation): the read runs as a task of its
                # own, so a cancelled caller leaves at once, and the read ends
                # on its private connection within ``block`` ms.
                read = asyncio.ensure_future(client.execute_command(*command))
                read.add_done_callback(_retrieve)
                await asyncio.shield(read)
            else:
                client.execute_command(*command)
        except _DRIVER_ERRORS as exc:
            if self._closed:
                raise self._closed_error() from exc
            raise self._fail(exc, "watch") from exc
        if self._closed:
            raise self._closed_error()

    def _blocking_client(self) -> Any:
        """The private client of :meth:`wait_changes` (built on first use)."""
        if self._closed:
            raise self._closed_error()
        if self._blocking is None:
            settings = self._settings
            retry = redis_retry.Retry(NoBackoff(), 0)
            if settings.cluster:
                self._blocking = redis.asyncio.RedisCluster(
                    retry=retry, **settings.cluster_kwargs()
                )
            else:
                connection_class = {
                    "tcp": redis.asyncio.Connection,
                    "ssl": redis.asyncio.SSLConnection,
                    "unix": redis.asyncio.UnixDomainSocketConnection,
                }[settings.transport]
                pool = redis.asyncio.ConnectionPool(
                    connection_class=connection_class, retry=retry, **settings.connection_kwargs
                )
                self._blocking = redis.asyncio.Redis(connection_pool=pool)
        return self._blocking

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._ready = False
        try:
            await self._client.aclose()
            if self._pool is not None:
                await self._pool.disconnect()
        except _DRIVER_ERRORS:
            pass
        if self._blocking is not None:
            try:
                await self._blocking.aclose()
                if not self._settings.cluster:
                    await self._blocking.connection_pool.disconnect()
            except _DRIVER_ERRORS:
                pass


def _write_args(key: str, write: Write, old: Record | None, now: int) -> list[Any]:
    """WRITE script arguments for a decision's write replacing ``old``."""
    t, v = rc.to_redis((write.tag, write.payload))
    if old is None:
        created, version = now, 1
        px = rc.px_for(write.expires_at, now)
    else:
        created, version = old.created_at, old.version + 1
        same = write.expires_at == old.expires_at
        px = "keep" if same else rc.px_for(write.expires_at, now)
    return [key, t, v, write.meta or b"", created, now, version, px]


def _commit_args(
    keys: list[str], checks: dict[str, int | None], ops: list[Op], now: int, base: str
) -> list[Any] | None:
    """ARGV of the COMMIT script, or None if an increment needs the general path."""
    index = {key: str(i) for i, key in enumerate(keys, 1)}
    args: list[Any] = [now, base]
    for key in keys:
        if key not in checks:
            args.append("-")
        else:
            version = checks[key]
            args.append("" if version is None else str(version))
    for op in ops:
        where = index[op.key]
        if isinstance(op, SetOp):
            t, v = rc.to_redis(op.value)
            px = "" if op.ttl_ms is None else str(max(op.ttl_ms, 0))
            if isinstance(op.meta, Keep):
                args.extend(("s", where, t, v, px, "k", ""))
            else:
                args.extend(("s", where, t, v, px, "s", op.meta or b""))
        elif isinstance(op, DeleteOp):
            args.extend(("d", where))
        elif isinstance(op, IncrementOp):
            delta = op.delta
            if type(delta) is int:
                if not INT64_MIN <= delta <= INT64_MAX:
                    return None
                args.extend(("i", where, str(delta), "ii"))
            else:
                tag, _payload = encode_number(delta)
                args.extend(("i", where, repr(delta), "sF" if tag == TAG_SPECIAL_FLOAT else "ff"))
        else:
            args.extend(("e", where, str(max(op.ttl_ms, 0))))
    return args


def open_error(exc: BaseException, settings: RedisSettings) -> Exception:
    """The keyshelf error for a failure while connecting (at open or the first call)."""
    where = settings.location
    text = str(exc)
    if isinstance(exc, redis_errors.AuthenticationError):
        return InvalidURLError(f"Redis server {where} refused the credentials: {text}")
    if isinstance(exc, redis_errors.ResponseError):
        if "DB index" in text or "invalid DB" in text.lower():
            db = settings.connection_kwargs["db"]
            return InvalidURLError(f"Redis server {where} has no database {db}: {text}")
        if "NOAUTH" in text or "WRONGPASS" in text or "AUTH" in text:
            return InvalidURLError(f"Redis server {where} refused the credentials: {text}")
        return BackendUnavailableError(f"Redis server {where} refused to serve: {text}")
    if isinstance(exc, redis_errors.RedisClusterException) and "not enabled" in text:
        return InvalidURLError(
            f"Redis server {where} is not a Redis Cluster node: drop the option cluster=true"
        )
    return BackendUnavailableError(f"Cannot connect to Redis at {where}: {text}")


def _change_of(prefix: str, entry_id: bytes, fields: dict[bytes, bytes]) -> Change | None:
    """A Change from a stream entry (see lua/_prelude.lua), None if it is not one."""
    named = split_data_key(prefix, fields[b"k"].decode("utf-8", "surrogateescape"))
    if named is None:
        return None
    ns, key = named
    revision = int(entry_id.split(b"-", 1)[0])
    kind = fields.get(b"y")
    pt = fields.get(b"pt")
    prev = None if pt is None else rc.from_redis(pt, fields.get(b"pv"))
    if kind == b"s":
        x = int(fields[b"x"])
        return Change(
            revision,
            SET,
            ns,
            key,
            rc.from_redis(fields[b"t"], fields.get(b"v")),
            int(fields[b"n"]),
            None if x < 0 else x,
            prev,
        )
    return Change(
        revision, EXPIRE if kind == b"e" else DELETE_CHANGE, ns, key, None, None, None, prev
    )


def _id_parts(entry_id: bytes | str) -> tuple[int, int]:
    """``(revision, n)`` of a stream id ``"<revision>-<n>"``."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    revision, _, seq = text.partition("-")
    return int(revision), int(seq or 0)


def _retrieve(read: Any) -> None:
    """Done callback of a read nobody may await any more: fetch its outcome."""
    if not read.cancelled():
        read.exception()


def _honour_cancel() -> None:
    """Raise CancelledError if the current task was cancelled during a redis-py call.

    redis-py completes a command whose task is cancelled meanwhile and does
    not re-raise (the connection stays in step with the server), so the feed
    calls a watch makes check the task's pending cancellation afterwards.
    """
    if True:  # ASYNC
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
    else:
        return
