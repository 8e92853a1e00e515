"""The PostgreSQL backend over psycopg 3 (async; source of ``_postgres_sync.py``).

``tools/async_to_sync.py`` generates the sync :class:`PostgresBackend` from
this file by renaming (``AsyncConnectionPool`` -> ``ConnectionPool`` ...);
edit this one and run ``make generate``. The SQL lives in
:mod:`._postgres_sql`; the URL and its options are parsed in
:mod:`.postgres`; the connections (psycopg_pool's pool and the lease each
operation takes from it) are :mod:`._postgres_lease_async`.

Guarantees:

* **Atomic.** Every primitive is one SQL statement, or one transaction that
  first locks the row (``SELECT ... FOR UPDATE``) for the rare
  read-modify-write cases SQL does not cover (merging metadata, increments of
  big or special numbers, appends past a text/bytes layout). Nothing is read
  in Python and written back without a row lock, so no update is lost between
  threads, tasks or processes. Multi-row statements lock rows in key order, so
  two batches never deadlock each other.
* **One clock: the server's.** "Now" is ``statement_timestamp()`` of the
  server, in whole milliseconds, in every statement. A TTL reaches the
  server as a whole number of milliseconds (the store's ``expires_at -
  now``: the TTL rounded down) and is stored as ``server_now + duration``,
  so a key never outlives its TTL on the server's clock; a TTL below 1 ms
  stores a key that is already expired (invisible, as on every backend).
  Import and migration store each record's absolute instant exactly, never
  turned back into a duration. A key expires when the *server's* clock
  reaches it, whatever the clients' clocks say; the instants reported back
  (``expires_at``, ``created_at``, ``updated_at``) are server-clock
  instants, so ``ttl()`` (computed by the client) is off by the client's
  clock skew, if any.
* **Bounded waits.** Every wait for the server's answer is bounded on the
  client side (option ``timeout``, default 30 s): a server that stops
  answering (frozen, partitioned) makes the call raise
  BackendUnavailableError instead of hanging, and the connection is closed
  and replaced. The server's ``statement_timeout`` cannot do this (a frozen
  server enforces nothing); set it below ``timeout`` to have a slow but
  live server cancel a statement cleanly first. TCP keepalives and
  ``tcp_user_timeout`` also detect a dead peer.
* **Opening does not block an event loop.** The async backend does no I/O
  when it is created: :meth:`prepare` (``async with``) or its first call
  prepares the schema (the same checks as ``open()``) and opens the pool,
  once, behind an asyncio lock; a failure raises there, and the next call
  tries again.
* **Expired means gone.** Every statement filters expired rows with the
  server's now; ``purge_expired`` deletes them through the expiry index.
* **Fast.** Connections are pooled and long-lived (autocommit), every
  statement is a server-side prepared statement with binary results, batches
  are one statement (``= ANY(array)``, ``INSERT ... SELECT FROM unnest``), and
  patterns with a literal prefix are primary-key range scans (``COLLATE "C"``).
* **Failures are keyshelf errors.** Connection refused, a lost connection, a
  server restart or a statement timeout raise :class:`BackendUnavailableError`
  naming ``host:port/db``; other server errors raise :class:`BackendError`;
  the driver's exception is chained and never escapes. A connection found
  dead when taken from the pool is replaced before use, and the pool connects
  again on demand once the server is back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from contextlib import suppress
from math import copysign
from time import monotonic
from typing import Any

import psycopg
from psycopg import AsyncConnection, errors

from ..changes import DELETE as DELETE_CHANGE
from ..changes import EXPIRE, SET, Change
from ..codec import TAG_BYTES, TAG_INT, TAG_STR
from ..errors import (
    BackendError,
    BackendUnavailableError,
    ChangesCompactedError,
    IncompatibleStoreError,
    SerializationError,
    StoreClosedError,
    StoreNotFoundError,
)
from ..patterns import Matcher
from ..records import (
    DELETE,
    INT64_MAX,
    INT64_MIN,
    CommitOutcome,
    Decision,
    DeleteOp,
    ExpireOp,
    IncrementOp,
    Keep,
    LazyItems,
    Meta,
    MultiDecision,
    Op,
    R,
    Record,
    SetOp,
    Value,
    Write,
    stats_dict,
)
from . import _base_async
from ._postgres_feed import BELL_RENEW, FeedStatements
from ._postgres_lease_async import (
    ADAPTERS,
    AsyncConnections,
    BoundedConnection,
    Lease,
    describe,
)
from ._postgres_sql import (
    FLOAT_FAST_LIMIT,
    SCHEMA_VERSION,
    Config,
    Statements,
    columns,
    key_range,
    pure_prefix,
    unreachable_prefix,
    value_of,
    values_by_key,
)

# Rows fetched per round trip when a pattern is filtered in Python.
_FETCH = 2000
# A read-modify-write whose key is inserted concurrently is retried this often.
_ATTEMPTS = 50
# mset batches at least this large first try a COPY (only new keys, see put_many).
_COPY_MIN = 1000
# After a COPY attempt meets an existing key, this many large batches skip it.
_COPY_BACKOFF = 16


# A connection left inside a transaction (a statement of the commit pipeline failed).
_OPEN_TRANSACTION = (psycopg.pq.TransactionStatus.INTRANS, psycopg.pq.TransactionStatus.INERROR)


class _InsertConflictError(Exception):
    """A key update_many read as absent was created meanwhile: roll back and retry."""


def _lock_id(ns: str, key: str) -> int:
    """The advisory lock id of one key: 64 bits of a hash of its namespace and name."""
    digest = hashlib.blake2b(f"{ns}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _commit_params(ns: str, checks: dict[str, int | None], ops: list[Op]) -> dict[str, Any] | None:
    """Parameters of ``Statements.commit``, or None if the commit needs the general path."""
    by_key: dict[str, Op] = {}
    for op in ops:
        if op.key in by_key:
            return None  # several mutations of one key: applied in order by the decision
        if isinstance(op, IncrementOp):
            delta = op.delta
            if type(delta) is int:
                if not INT64_MIN <= delta <= INT64_MAX:
                    return None
            elif not (abs(delta) < FLOAT_FAST_LIMIT and (delta != 0.0 or copysign(1.0, delta) > 0)):
                return None  # nan, infinities, -0.0 and huge floats
        by_key[op.key] = op
    keys = sorted({*checks, *by_key})
    columns_of: dict[str, list[Any]] = {
        name: []
        for name in (
            "ck", "cv", "op", "tag", "ival", "fval", "tval", "bval", "setmeta", "meta", "ttl",
            "di", "df",
        )
    }  # fmt: skip
    for key in keys:
        check = checks.get(key)
        row: dict[str, Any] = dict.fromkeys(columns_of)
        row["ck"] = 0 if key not in checks else (1 if check is None else 2)
        row["cv"] = check if key in checks and check is not None else None
        queued = by_key.get(key)
        row["op"] = ""
        row["setmeta"] = False
        if isinstance(queued, SetOp):
            row["op"] = "s"
            row["tag"] = queued.value[0]
            row["ival"], row["fval"], row["tval"], row["bval"] = columns(*queued.value)
            if not isinstance(queued.meta, Keep):
                row["setmeta"], row["meta"] = True, queued.meta
            row["ttl"] = queued.ttl_ms
        elif isinstance(queued, DeleteOp):
            row["op"] = "d"
        elif isinstance(queued, IncrementOp):
            row["op"] = "i"
            if type(queued.delta) is int:
                row["di"] = queued.delta
            else:
                row["df"] = queued.delta
        elif isinstance(queued, ExpireOp):
            row["op"], row["ttl"] = "e", queued.ttl_ms
        for name, value in row.items():
            columns_of[name].append(value)
    return {"ns": ns, "keys": keys, **columns_of}


def connect_error(exc: psycopg.Error, location: str) -> BackendError:
    """The keyshelf error for a failure to connect at open time."""
    return BackendUnavailableError(f"Cannot connect to PostgreSQL at {location}: {describe(exc)}")


async def prepare_database(config: Config) -> None:
    """Check the server and create keyshelf's schema if needed, race-free.

    Two processes preparing a fresh database at once both succeed: creation
    runs under a transaction-scoped advisory lock and every statement is
    ``IF NOT EXISTS``. Raises IncompatibleStoreError for a database that is
    not UTF-8, a table that is not keyshelf's, or a newer schema version;
    StoreNotFoundError, creating nothing, when the tables do not exist and
    the store was opened with ``create=False``.
    """
    sql = Statements(config.schema, config.table)
    try:
        conn = await BoundedConnection.connect(
            config.conninfo, autocommit=True, context=ADAPTERS, **config.connect_kwargs()
        )
    except psycopg.Error as exc:
        raise connect_error(exc, config.location) from exc
    conn.limit = config.wait_limit()
    try:
        async with conn:
            encoding = conn.info.parameter_status("server_encoding")
            if encoding not in (b"UTF8", "UTF8"):
                raise IncompatibleStoreError(
                    f"PostgreSQL database {config.location} uses encoding {encoding!r}; "
                    "keyshelf needs a UTF8 database"
                )
            version = await _schema_version(conn, sql, config)
            if version is None and not config.create:
                raise StoreNotFoundError(
                    f"PostgreSQL at {config.location} has no keyshelf store "
                    f"{config.schema}.{config.table} (opened with create=False: nothing created)"
                )
            if version is None:
                async with conn.transaction():
                    await conn.execute(
                        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (sql.lock_name,)
                    )
                    version = await _schema_version(conn, sql, config)
                    if version is None:
                        cur = await conn.execute(sql.find_schema, (config.schema,))
                        if await cur.fetchone() is None:
                            await conn.execute(sql.create_schema)
                        for statement in sql.create_tables:
                            await conn.execute(statement)
                        await conn.execute(sql.write_version, (str(SCHEMA_VERSION),))
                        version = SCHEMA_VERSION
            if version > SCHEMA_VERSION:
                raise IncompatibleStoreError(
                    f"{config.location} table {config.schema}.{config.table} holds keyshelf "
                    f"schema version {version}; this keyshelf reads up to version "
                    f"{SCHEMA_VERSION}: upgrade keyshelf"
                )
    except psycopg.OperationalError as exc:
        raise BackendUnavailableError(
            f"PostgreSQL at {config.location} failed while opening the store: {describe(exc)}"
        ) from exc
    except psycopg.Error as exc:
        raise BackendError(
            f"PostgreSQL at {config.location} refused to set up keyshelf's tables "
            f"{config.schema}.{config.table}: {describe(exc)}"
        ) from exc


async def _schema_version(
    conn: AsyncConnection[Any], sql: Statements, config: Config
) -> int | None:
    """The recorded schema version, None if keyshelf's tables do not exist yet."""
    cur = await conn.execute(sql.find_tables, (config.schema, sql.table, sql.meta_table))
    found = {name for (name,) in await cur.fetchall()}
    if sql.meta_table not in found:
        if sql.table in found:
            raise IncompatibleStoreError(
                f"{config.location}: table {config.schema}.{config.table} exists but is not "
                "a keyshelf table (no schema version recorded)"
            )
        return None
    cur = await conn.execute(sql.read_version)
    row = await cur.fetchone()
    if row is None or not str(row[0]).isdigit():
        raise IncompatibleStoreError(
            f"{config.location}: table {config.schema}.{sql.meta_table} exists but is not "
            "keyshelf's"
        )
    return int(row[0])


class AsyncPostgresBackend(_base_async.AsyncBackend):
    """keyshelf's table in a PostgreSQL database, through a psycopg connection pool."""

    multi_key_atomic = True
    #: A large ``mset`` may come as a :class:`LazyItems`: the ``COPY`` of a
    #: bulk load then encodes each value as it writes its row. The sync
    #: backend only (this class's generated twin drops the "Async" of its
    #: name): here each row's write is awaited, and other tasks would run
    #: between the encoding of two values.
    lazy_batches = not __qualname__.startswith("Async")

    def __init__(self, config: Config, *, prepared: bool = False) -> None:
        """Build the pool, unopened; no I/O.

        ``prepared``: :func:`prepare_database` has run already (``open()``
        does it before building the sync backend); otherwise the first call
        runs it (``open_async()``: inside the event loop).
        """
        self.location = config.location
        self._config = config
        self._sql = Statements(config.schema, config.table)
        self._copy_skip = 0
        self._conns = AsyncConnections(config, prepare_database, prepared=prepared)
        self._feed = FeedStatements(config.schema, config.table)
        self._feed_seen = False
        self._listeners: list[AsyncConnection[Any]] = []
        self._waiting = 0
        self._bell_renewed = float("-inf")

    # -- plumbing -----------------------------------------------------------

    def _connection(self, action: str) -> Lease:
        """``async with self._connection(action) as conn``: a connection for one operation.

        Driver errors raised inside become keyshelf errors naming the server
        and ``action``, with the driver's exception chained.
        """
        return self._conns.lease(action)

    async def prepare(self) -> None:
        """Prepare the schema and open the pool now if no call has yet (``async with``)."""
        await self._conns.prepare()

    # -- reads ----------------------------------------------------------------

    async def get(self, ns: str, key: str, now: int) -> Value | None:
        async with self._connection("get") as conn:
            cur = await conn.execute(self._sql.get, (ns, key), prepare=True, binary=True)
            row = await cur.fetchone()
        return None if row is None else value_of(*row)

    async def get_record(self, ns: str, key: str, now: int) -> Record | None:
        async with self._connection("get") as conn:
            cur = await conn.execute(self._sql.get_record, (ns, key), prepare=True, binary=True)
            row = await cur.fetchone()
        # Live by the server's clock (the query filters), whatever the store's says.
        if row is None:
            return None
        tag, payload = value_of(*row[:5])
        return Record(tag, payload, row[5], row[6], row[7], row[8], row[9])

    async def time_left(self, ns: str, key: str, now: int) -> int | None:
        """``expires_at - server_now`` computed by the server (one statement)."""
        async with self._connection("ttl") as conn:
            cur = await conn.execute(self._sql.time_left, (ns, key), prepare=True, binary=True)
            row = await cur.fetchone()
        if row is None:
            return -1
        return None if row[0] is None else int(row[0])

    async def exists(self, ns: str, key: str, now: int) -> bool:
        async with self._connection("exists") as conn:
            cur = await conn.execute(self._sql.exists, (ns, key), prepare=True, binary=True)
            row = await cur.fetchone()
        return row is not None

    async def get_many(self, ns: str, keys: Sequence[str], now: int) -> dict[str, Value]:
        async with self._connection("get_many") as conn:
            cur = await conn.execute(
                self._sql.get_many, (ns, list(keys)), prepare=True, binary=True
            )
            rows = await cur.fetchall()
        return values_by_key(rows)

    async def sizes(self, ns: str, keys: Sequence[str], now: int) -> dict[str, int]:
        async with self._connection("storage_size") as conn:
            cur = await conn.execute(self._sql.sizes, (ns, list(keys)), prepare=True, binary=True)
            found = dict(await cur.fetchall())
        return {key: found[key] for key in dict.fromkeys(keys) if key in found}

    async def total_size(self, ns: str, now: int) -> int:
        async with self._connection("storage_size") as conn:
            cur = await conn.execute(self._sql.total_size, (ns,), prepare=True, binary=True)
            row = await cur.fetchone()
        return 0 if row is None else int(row[0])

    async def stats(self, ns: str, now: int) -> dict[str, Any]:
        async with self._connection("stats") as conn:
            cur = await conn.execute(self._sql.stats, (ns,), prepare=True, binary=True)
            row = await cur.fetchone()
        assert row is not None
        return stats_dict(int(row[0]), int(row[1]), int(row[2]))

    async def namespaces(self, now: int) -> list[str]:
        async with self._connection("list_namespaces") as conn:
            cur = await conn.execute(self._sql.namespaces, prepare=True, binary=True)
            rows = await cur.fetchall()
        return [ns for (ns,) in rows]

    # -- writes ---------------------------------------------------------------

    async def put(
        self,
        ns: str,
        key: str,
        value: Value,
        expires_at: int | None,
        meta: Meta,
        now: int,
        *,
        nx: bool = False,
        xx: bool = False,
        keep_ttl: bool = False,
    ) -> bool:
        keep_meta = isinstance(meta, Keep)
        stored_meta = None if isinstance(meta, Keep) else meta
        tag = value[0]
        ival, fval, tval, bval = columns(tag, value[1])
        ttl = None if expires_at is None else expires_at - now
        params: tuple[Any, ...]
        if xx:
            sql = self._sql.put_xx(keep_ttl, keep_meta)
            params = (tag, ival, fval, tval, bval)
            if not keep_ttl:
                params += (ttl,)
            if not keep_meta:
                params += (stored_meta,)
            params += (ns, key)
        else:
            sql = self._sql.put(nx, keep_ttl, keep_meta)
            params = (ns, key, tag, ival, fval, tval, bval, stored_meta, ttl)
        async with self._connection("set") as conn:
            cur = await conn.execute(sql, params, prepare=True)
            return cur.rowcount > 0

    async def put_many(
        self, ns: str, items: Sequence[tuple[str, Value]], expires_at: int | None, now: int
    ) -> None:
        """Set every item in one statement (all or nothing), keeping live keys' metadata.

        Rows go in sorted by key, so concurrent batches lock in the same order
        and never deadlock. A large batch of keys that do not exist yet (a
        bulk load) goes in by ``COPY`` inside one transaction instead; if any
        key exists (even expired), that transaction is rolled back and the
        batch is upserted as usual.
        """
        value: Callable[[str], Value]
        if isinstance(items, LazyItems):
            # Unique keys, values encoded as the rows are written (see there).
            keys = sorted(items.keys)
            value = items.value
        else:
            latest = dict(items)  # last value wins for a repeated key
            keys = sorted(latest)
            value = latest.__getitem__
        ttl = None if expires_at is None else expires_at - now
        if len(keys) >= _COPY_MIN:
            if self._copy_skip > 0:
                self._copy_skip -= 1
            elif await self._copy_new(ns, keys, value, ttl):
                return
            else:
                self._copy_skip = _COPY_BACKOFF
        rows = [(key, tag, *columns(tag, payload)) for key in keys for tag, payload in [value(key)]]
        params = (
            ns,
            ttl,
            keys,
            [row[1] for row in rows],
            [row[2] for row in rows],
            [row[3] for row in rows],
            [row[4] for row in rows],
            [row[5] for row in rows],
        )
        async with self._connection("mset") as conn:
            await conn.execute(self._sql.put_many, params, prepare=True)

    async def _copy_new(
        self, ns: str, keys: list[str], value: Callable[[str], Value], ttl: int | None
    ) -> bool:
        """COPY rows of new keys in one transaction; False (nothing written) if one exists.

        ``value(key)`` may encode the value only now (a lazy batch): an error
        it raises leaves the transaction, which rolls back, so nothing is written.
        """
        sql = self._sql
        async with self._connection("mset") as conn:
            try:
                async with conn.transaction():
                    cur = await conn.execute(sql.server_now, prepare=True, binary=True)
                    server_now = (await cur.fetchone() or (0,))[0]
                    expires = None if ttl is None else server_now + ttl
                    async with conn.cursor().copy(sql.copy_in) as copy:
                        copy.set_types(sql.copy_types)
                        write = copy.write_row
                        at = server_now
                        row: tuple[Any, ...]
                        for key in keys:
                            tag, payload = value(key)
                            # columns(), unrolled for the common payloads.
                            kind = type(payload)
                            if kind is int and INT64_MIN <= payload <= INT64_MAX:  # type: ignore[operator]
                                row = (ns, key, tag, payload, None, None, None, expires, at, at, 1)
                            elif kind is str and "\x00" not in payload:  # type: ignore[operator]
                                row = (ns, key, tag, None, None, payload, None, expires, at, at, 1)
                            elif kind is bytes:
                                row = (ns, key, tag, None, None, None, payload, expires, at, at, 1)
                            else:
                                ival, fval, tval, bval = columns(tag, payload)
                                row = (ns, key, tag, ival, fval, tval, bval, expires, at, at, 1)
                            await write(row)
            except errors.UniqueViolation:
                return False
        return True

    async def put_records(self, ns: str, items: Sequence[tuple[str, Write]], now: int) -> None:
        """Store records with their own expiry and metadata in one statement (all or nothing).

        Each expiry is stored as the absolute instant given, so a copied key
        expires at the same millisecond as its source (one already past is
        stored expired: invisible, purged later).
        """
        latest = dict(items)
        keys = sorted(latest)
        if not keys:
            return
        tags: list[str] = []
        ivals: list[int | None] = []
        fvals: list[float | None] = []
        tvals: list[str | None] = []
        bvals: list[bytes | None] = []
        metas: list[bytes | None] = []
        instants: list[int | None] = []
        for key in keys:
            write = latest[key]
            ival, fval, tval, bval = columns(write.tag, write.payload)
            tags.append(write.tag)
            ivals.append(ival)
            fvals.append(fval)
            tvals.append(tval)
            bvals.append(bval)
            metas.append(write.meta)
            # The absolute instant, exactly (never turned back into a duration).
            instants.append(write.expires_at)
        params = (ns, keys, tags, ivals, fvals, tvals, bvals, metas, instants)
        async with self._connection("import") as conn:
            await conn.execute(self._sql.put_records, params, prepare=True)

    async def scan_records(
        self, ns: str, now: int, after: str | None, limit: int
    ) -> list[tuple[str, Record]]:
        """Up to ``limit`` live records in key order after ``after``, in one query."""
        async with self._connection("scan") as conn:
            cur = await conn.execute(
                self._sql.scan_records, (ns, after, after, limit), prepare=True, binary=True
            )
            rows = await cur.fetchall()
        found: list[tuple[str, Record]] = []
        for row in rows:
            tag, payload = value_of(*row[1:6])
            found.append((row[0], Record(tag, payload, *row[6:])))
        return found

    async def update(self, ns: str, key: str, now: int, decide: Decision[R]) -> R:
        """Lock the row (live or expired) and apply ``decide`` in one transaction.

        The decision sees instants in the caller's frame (the server's now
        maps to ``now``) and its expiry is mapped back exactly, so a kept TTL
        is kept to the millisecond. A missing key is inserted with
        ``ON CONFLICT DO NOTHING``; if another writer inserted it first, the
        transaction is retried, now locking that row.
        """
        sql = self._sql
        async with self._connection("update") as conn:
            for _ in range(_ATTEMPTS):
                async with conn.transaction():
                    cur = await conn.execute(sql.lock, (ns, key), prepare=True, binary=True)
                    row = await cur.fetchone()
                    if row is not None:
                        server_now = row[10]
                        shift = server_now - now
                        expires = row[5]
                        old = None
                        if expires is None or expires > server_now:
                            tag, payload = value_of(*row[:5])
                            old = Record(
                                tag,
                                payload,
                                None if expires is None else expires - shift,
                                row[6],
                                row[7],
                                row[8],
                                row[9],
                            )
                        write, result = decide(old)
                        if write is DELETE:
                            await conn.execute(sql.delete_one, (ns, key), prepare=True)
                        elif isinstance(write, Write):
                            stored = None if write.expires_at is None else write.expires_at + shift
                            if old is None:
                                created, version = None, 1
                            else:
                                created, version = old.created_at, old.version + 1
                            await conn.execute(
                                sql.rewrite,
                                (
                                    write.tag,
                                    *columns(write.tag, write.payload),
                                    stored,
                                    write.meta,
                                    created,
                                    version,
                                    ns,
                                    key,
                                ),
                                prepare=True,
                            )
                        return result
                    write, result = decide(None)
                    if not isinstance(write, Write):  # nothing, or delete: nothing to delete
                        return result
                    ttl = None if write.expires_at is None else write.expires_at - now
                    cur = await conn.execute(
                        sql.insert_new,
                        (ns, key, write.tag, *columns(write.tag, write.payload), write.meta, ttl),
                        prepare=True,
                    )
                    if cur.rowcount == 1:
                        return result
                # Another writer created the key between our read and insert.
        raise BackendError(
            f"PostgreSQL at {self.location}: gave up updating {key!r} in namespace {ns!r} "
            f"after {_ATTEMPTS} conflicting attempts"
        )

    async def update_many(
        self, ns: str, keys: Sequence[str], now: int, decide: MultiDecision[R]
    ) -> R:
        """One transaction: advisory locks on every key, rows locked, decide, write.

        Each key's advisory lock (an id from its namespace and name, taken in
        sorted order, so two such transactions cannot deadlock) serialises
        the multi-key transactions that share a key, present or not; the
        rows that exist (live or expired) are locked ``FOR UPDATE`` in key
        order. A key read as absent is inserted with ``ON CONFLICT DO
        NOTHING``: if a single-key writer created it meanwhile, the whole
        transaction is rolled back and run again. Instants map between the
        caller's clock and the server's as in :meth:`update`.
        """
        sql = self._sql
        ids = sorted({_lock_id(ns, key) for key in keys})
        wanted = list(keys)
        async with self._connection("update_many") as conn:
            for _ in range(_ATTEMPTS):
                try:
                    async with conn.transaction():
                        await conn.execute(sql.lock_ids, (ids,), prepare=True)
                        cur = await conn.execute(
                            sql.lock_many, (ns, wanted), prepare=True, binary=True
                        )
                        rows = {row[0]: row[1:] for row in await cur.fetchall()}
                        records: dict[str, Record | None] = {}
                        shifts: dict[str, int] = {}
                        for key in wanted:
                            row = rows.get(key)
                            records[key] = None
                            if row is None:
                                continue
                            server_now = row[10]
                            shift = shifts[key] = server_now - now
                            expires = row[5]
                            if expires is None or expires > server_now:
                                tag, payload = value_of(*row[:5])
                                records[key] = Record(
                                    tag,
                                    payload,
                                    None if expires is None else expires - shift,
                                    row[6],
                                    row[7],
                                    row[8],
                                    row[9],
                                )
                        actions, result = decide(records)
                        for key, action in actions.items():
                            await self._apply(conn, ns, key, action, records[key], shifts, now)
                        return result
                except _InsertConflictError:
                    continue  # rolled back: another writer created a key read as absent
        raise BackendError(
            f"PostgreSQL at {self.location}: gave up a multi-key update in namespace {ns!r} "
            f"after {_ATTEMPTS} conflicting attempts"
        )

    async def commit(
        self, ns: str, checks: dict[str, int | None], ops: list[Op], now: int
    ) -> CommitOutcome:
        """One pipelined round trip: BEGIN, the keys' advisory locks, one statement, COMMIT.

        The statement (``Statements.commit``) locks the rows, evaluates every
        check and applies every mutation with the rules of
        :func:`records.decide_commit`, or writes nothing. The general path
        (:meth:`update_many`, several round trips) serves what one statement
        cannot do exactly: several mutations of one key, an increment by a
        delta beyond 64 bits or a float delta that is not a plain finite one,
        an increment of a stored value SQL cannot add (a non-number, a big
        int, a result beyond 64 bits), and a key read as absent that another
        writer created meanwhile.
        """
        params = _commit_params(ns, checks, ops)
        if params is None:
            return await super().commit(ns, checks, ops, now)
        sql = self._sql
        ids = sorted({_lock_id(ns, key) for key in params["keys"]})
        async with self._connection("commit") as conn:
            try:
                # Sent together, answered together: one round trip. The
                # connection is in autocommit mode, so BEGIN/COMMIT are ours.
                async with conn.pipeline():
                    await conn.execute("BEGIN")
                    await conn.execute(sql.lock_ids, (ids,), prepare=True)
                    cur = await conn.execute(sql.commit, params, prepare=True)
                    await conn.execute("COMMIT")
            except errors.InvalidTextRepresentation as exc:
                if "keyshelf-commit-retry" not in str(exc):
                    raise
                retry = True
            else:
                retry = False
            finally:
                if conn.info.transaction_status in _OPEN_TRANSACTION:
                    await conn.execute("ROLLBACK")  # a failed statement: nothing was written
            row = None if retry else await cur.fetchone()
        if row is None:  # rolled back whole: a key read as absent was created meanwhile
            return await super().commit(ns, checks, ops, now)
        ok, fast, keys, versions, _ = row
        if not ok:
            return False, {}
        if not fast:
            return await super().commit(ns, checks, ops, now)
        return True, dict(zip(keys or [], versions or [], strict=True))

    async def _apply(
        self,
        conn: Any,
        ns: str,
        key: str,
        action: Any,
        old: Record | None,
        shifts: dict[str, int],
        now: int,
    ) -> None:
        """Write one action of :meth:`update_many` (inside its transaction)."""
        sql = self._sql
        if action is DELETE:
            await conn.execute(sql.delete_one, (ns, key), prepare=True)
            return
        if not isinstance(action, Write):
            return
        if key in shifts:  # a row exists (live or expired) and is locked: rewrite it
            shift = shifts[key]
            stored = None if action.expires_at is None else action.expires_at + shift
            created, version = (None, 1) if old is None else (old.created_at, old.version + 1)
            params = (
                action.tag,
                *columns(action.tag, action.payload),
                stored,
                action.meta,
                created,
                version,
                ns,
                key,
            )
            await conn.execute(sql.rewrite, params, prepare=True)
            return
        ttl = None if action.expires_at is None else action.expires_at - now
        cur = await conn.execute(
            sql.insert_new,
            (ns, key, action.tag, *columns(action.tag, action.payload), action.meta, ttl),
            prepare=True,
        )
        if cur.rowcount != 1:
            raise _InsertConflictError

    async def increment(self, ns: str, key: str, delta: int | float, now: int) -> int | float:
        # One statement for the common cases (see Statements.increment_int);
        # everything else (big or special numbers, non-numbers, overflow) runs
        # the shared decision under a row lock, which also raises the errors.
        sql: str | None = None
        if type(delta) is int:
            if INT64_MIN <= delta <= INT64_MAX:
                sql = self._sql.increment_int
        elif abs(delta) < FLOAT_FAST_LIMIT and (delta != 0.0 or copysign(1.0, delta) > 0):
            sql = self._sql.increment_float
        if sql is not None:
            async with self._connection("increment") as conn:
                cur = await conn.execute(sql, (ns, key, delta), prepare=True, binary=True)
                row = await cur.fetchone()
            if row is not None:
                result: int | float = row[1] if row[0] == TAG_INT else row[2]
                return result
        return await super().increment(ns, key, delta, now)

    async def append(self, ns: str, key: str, value: Value, now: int, max_size: int) -> Value:
        tag, payload = value
        fast = (tag == TAG_STR and type(payload) is str and "\x00" not in payload) or (
            tag == TAG_BYTES and type(payload) is bytes
        )
        if fast:
            tval = payload if tag == TAG_STR else None
            bval = payload if tag == TAG_BYTES else None
            async with self._connection("append") as conn:
                cur = await conn.execute(
                    self._sql.append,
                    (ns, key, tag, tval, bval, max_size, max_size),
                    prepare=True,
                    binary=True,
                )
                row = await cur.fetchone()
            if row is not None:
                return row[0], (row[1] if row[1] is not None else row[2])
        return await super().append(ns, key, value, now, max_size)

    async def compare_and_swap(
        self, ns: str, key: str, expected: Value, new: Value, now: int
    ) -> bool:
        try:
            want = columns(*expected)
        except SerializationError:
            return False  # a value no row can hold matches no row
        params = (new[0], *columns(*new), ns, key, expected[0], *want)
        async with self._connection("compare_and_swap") as conn:
            cur = await conn.execute(self._sql.compare_and_swap, params, prepare=True)
            return cur.rowcount > 0

    async def delete(self, ns: str, keys: Sequence[str], now: int) -> list[str]:
        unique = list(dict.fromkeys(keys))
        if not unique:
            return []
        async with self._connection("delete") as conn:
            if len(unique) == 1:
                cur = await conn.execute(
                    self._sql.delete_one, (ns, unique[0]), prepare=True, binary=True
                )
                row = await cur.fetchone()
                return unique if row is not None and row[0] else []
            cur = await conn.execute(
                self._sql.delete_many, {"ns": ns, "keys": unique}, prepare=True, binary=True
            )
            rows = await cur.fetchall()
        removed = {key for key, was_live in rows if was_live}
        return [key for key in unique if key in removed]

    async def set_expiry(self, ns: str, key: str, expires_at: int | None, now: int) -> bool:
        async with self._connection("expire" if expires_at is not None else "persist") as conn:
            if expires_at is None:
                cur = await conn.execute(self._sql.persist, (ns, key), prepare=True)
            else:
                cur = await conn.execute(
                    self._sql.expire, (expires_at - now, ns, key), prepare=True
                )
            return cur.rowcount > 0

    async def purge_expired(self, ns: str | None, now: int) -> int:
        async with self._connection("delete_expired") as conn:
            if ns is None:
                cur = await conn.execute(self._sql.purge_all, prepare=True)
            else:
                cur = await conn.execute(self._sql.purge_ns, (ns,), prepare=True)
            return max(cur.rowcount, 0)

    # -- patterns -------------------------------------------------------------

    async def scan(
        self,
        ns: str,
        matcher: Matcher,
        now: int,
        after: str | None,
        limit: int | None,
        values: bool,
    ) -> list[tuple[str, Value | None]]:
        if unreachable_prefix(matcher.prefix) or (limit is not None and limit <= 0):
            return []
        bound, params = key_range(matcher)
        exact = pure_prefix(matcher)
        args: list[Any] = [ns, *params]
        if after is not None:
            args.append(after)
        if exact and limit is not None:
            args.append(limit)
        sql = self._sql.select(bound, values, after is not None, exact and limit is not None)
        out: list[tuple[str, Value | None]] = []
        async with self._connection("scan") as conn:
            if exact or limit is None:
                cur = await conn.execute(sql, args, prepare=True, binary=True)
                rows = await cur.fetchall()
                match = None if exact else matcher.match
                for row in rows:
                    if match is None or match(row[0]):
                        out.append((row[0], value_of(*row[1:]) if values else None))
                return out
            # Filtered in Python with a limit: stream the range through a
            # server-side cursor and stop as soon as enough keys matched.
            async with conn.transaction():
                cursor = conn.cursor(name="keyshelf_scan", binary=True)
                try:
                    await cursor.execute(sql, args)
                    # Growing fetches: a small page reads about the rows up to
                    # its last match, not a whole _FETCH (which every page of
                    # a long stream of small pages would otherwise reread).
                    ahead = 16
                    while len(out) < limit:
                        size = min(_FETCH, max(limit - len(out), ahead))
                        ahead *= 2
                        batch = await cursor.fetchmany(size)
                        for row in batch:
                            if matcher.match(row[0]):
                                out.append((row[0], value_of(*row[1:]) if values else None))
                                if len(out) >= limit:
                                    break
                        if len(batch) < size:
                            break
                finally:
                    await cursor.close()
        return out

    async def count(self, ns: str, matcher: Matcher, now: int) -> int:
        if unreachable_prefix(matcher.prefix):
            return 0
        bound, params = key_range(matcher)
        async with self._connection("key_count") as conn:
            if pure_prefix(matcher):
                cur = await conn.execute(
                    self._sql.count(bound), (ns, *params), prepare=True, binary=True
                )
                row = await cur.fetchone()
                return 0 if row is None else int(row[0])
            # Only the keys cross the wire, a batch at a time.
            total = 0
            sql = self._sql.select(bound, False, False, False)
            async with conn.transaction():
                cursor = conn.cursor(name="keyshelf_count", binary=True)
                try:
                    await cursor.execute(sql, (ns, *params))
                    while True:
                        batch = await cursor.fetchmany(_FETCH)
                        total += sum(1 for (key,) in batch if matcher.match(key))
                        if len(batch) < _FETCH:
                            break
                finally:
                    await cursor.close()
            return total

    async def delete_matching(self, ns: str, matcher: Matcher, now: int) -> int:
        if unreachable_prefix(matcher.prefix):
            return 0
        bound, params = key_range(matcher)
        async with self._connection("delete_pattern") as conn:
            if pure_prefix(matcher):
                cur = await conn.execute(
                    self._sql.delete_range(bound), (ns, *params, ns), prepare=True, binary=True
                )
                return sum(1 for (was_live,) in await cur.fetchall() if was_live)
            async with conn.transaction():
                # Lock the whole range in key order, delete the matching rows.
                cur = await conn.execute(
                    self._sql.lock_range(bound), (ns, *params), prepare=True, binary=True
                )
                matching = [
                    (key, was_live) for key, was_live in await cur.fetchall() if matcher.match(key)
                ]
                doomed = [key for key, _ in matching]
                live_count = sum(1 for _, was_live in matching if was_live)
                if doomed:
                    await conn.execute(
                        self._sql.delete_many, {"ns": ns, "keys": doomed}, prepare=True
                    )
            return live_count

    # -- change feed (docs/changes.md; the SQL is in _postgres_feed) -------------

    change_feed = True

    async def enable_changes(self, history_count: int | None, history_ms: int | None) -> None:
        """Create the feed's tables, function and trigger if missing; store the retention.

        One transaction under an advisory lock, so concurrent callers do not
        race. The trigger is in the database: every writer of every process
        records from its next statement. A feed of the earlier layout (a
        counter row) is replaced, its revision carried over as the prune mark.
        """
        feed = self._feed
        async with self._connection("enable_changes") as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (feed.lock_name,)
            )
            cur = await conn.execute(feed.old_layout, feed.old_layout_params)
            upgrading = await cur.fetchone() is not None
            for statement in feed.upgrade if upgrading else []:
                await conn.execute(statement)
            for statement in feed.create:
                await conn.execute(statement)
            for statement in feed.carry if upgrading else []:
                await conn.execute(statement)
            cur = await conn.execute(feed.has_trigger, feed.has_trigger_params)
            if await cur.fetchone() is None:
                await conn.execute(feed.create_trigger)
            await conn.execute(feed.configure, (history_count, history_ms))
        self._feed_seen = True

    async def changes_enabled(self) -> bool:
        async with self._connection("changes_enabled") as conn:
            return await self._feed_exists(conn)

    async def _feed_exists(self, conn: Any) -> bool:
        """Whether the feed's tables exist (remembered once true: it is never switched off)."""
        if not self._feed_seen:
            feed = self._feed
            cur = await conn.execute(feed.exists, feed.exists_params, prepare=True)
            row = await cur.fetchone()
            self._feed_seen = bool(row and row[0])
        return self._feed_seen

    async def revision(self, now: int, ns: str | None = None) -> int:
        async with self._connection("revision") as conn:
            if not await self._feed_exists(conn):
                return 0
            cur = await conn.execute(self._feed.revision, prepare=True, binary=True)
            row = await cur.fetchone()
        return 0 if row is None else int(row[0])

    async def changes(self, ns: str | None, after: int, limit: int, now: int) -> list[Change]:
        """Changes after ``after`` in revision order; a revision is never split by ``limit``.

        The log is read before the prune mark: if pruning had removed a
        change this read needed, the mark read afterwards is beyond ``after``
        and ChangesCompactedError is raised.
        """
        feed = self._feed
        async with self._connection("changes") as conn:
            if not await self._feed_exists(conn):
                return []
            if ns is None:
                cur = await conn.execute(
                    feed.read_all, (after, after, limit), prepare=True, binary=True
                )
            else:
                cur = await conn.execute(
                    feed.read_ns, (after, after, ns, limit), prepare=True, binary=True
                )
            rows = await cur.fetchall()
            if rows and len(rows) >= limit:
                last, n = rows[-1][0], rows[-1][-1]
                if ns is None:
                    cur = await conn.execute(feed.read_rest_all, (n, last), prepare=True)
                else:
                    cur = await conn.execute(feed.read_rest_ns, (n, last, ns), prepare=True)
                rows += await cur.fetchall()
            cur = await conn.execute(feed.pruned, prepare=True, binary=True)
            mark = await cur.fetchone()
        pruned = 0 if mark is None else int(mark[0])
        if after < pruned:
            raise ChangesCompactedError(
                f"Changes after revision {after} were pruned from the history of "
                f"{self.location} (changes from revision {pruned + 1} on are kept)",
                oldest=pruned + 1,
            )
        return [_change_of(row) for row in rows]

    async def wait_changes(self, after: int, timeout: float, ns: str | None = None) -> None:
        """LISTEN/NOTIFY: wait on a listening connection of this backend's own.

        Each waiting call holds one listening connection (outside the pool);
        it goes back to a free list afterwards and is closed when the call
        is cancelled or fails, and by :meth:`close`. The revision is read on
        that connection after it listens and after it has kept the doorbell on
        (see :mod:`._postgres_feed`), so a commit after that read always
        rings. :meth:`close` sends one NOTIFY to wake every waiting call.
        """
        if self._conns.closed:
            raise StoreClosedError(f"The store {self.location} is closed")
        conn = await self._listener()
        kept = False
        self._waiting += 1
        try:
            if monotonic() - self._bell_renewed > BELL_RENEW:
                await conn.execute(self._feed.ring)  # before the read: see _postgres_feed
                self._bell_renewed = monotonic()
            cur = await conn.execute(self._feed.revision)
            row = await cur.fetchone()
            if row is None or int(row[0]) <= after:
                async for _note in conn.notifies(timeout=timeout, stop_after=1):
                    break
            kept = not self._conns.closed
        except psycopg.Error as exc:
            raise self._conns.error(exc, "watch") from exc
        finally:
            self._waiting -= 1
            if kept:
                self._listeners.append(conn)
            else:
                with suppress(psycopg.Error):
                    await conn.close()
        if self._conns.closed:
            raise StoreClosedError(f"The store {self.location} is closed")

    async def _listener(self) -> AsyncConnection[Any]:
        """A free listening connection, or a new one (LISTEN on the feed's channel)."""
        while self._listeners:
            try:
                conn = self._listeners.pop()
            except IndexError:  # another thread took the last one
                break
            if not conn.closed:
                return conn
        await self._conns.prepare()
        config = self._config
        try:
            conn = await AsyncConnection.connect(
                config.conninfo, autocommit=True, context=ADAPTERS, **config.connect_kwargs()
            )
            await conn.execute(self._feed.listen)
        except psycopg.Error as exc:
            raise self._conns.error(exc, "watch") from exc
        return conn

    # -- lifecycle ------------------------------------------------------------

    async def close(self) -> None:
        if self._waiting and not self._conns.closed:
            # Wake every waiting watch of this store at once (others only see a spurious ring).
            try:
                async with self._connection("close") as conn:
                    await conn.execute(self._feed.notify)
            except BackendError:
                pass  # best effort: the waiting calls end at their timeout anyway
        await self._conns.close()
        while self._listeners:
            with suppress(psycopg.Error, IndexError):
                await self._listeners.pop().close()


_KINDS = {"s": SET, "d": DELETE_CHANGE, "e": EXPIRE}


def _change_of(row: tuple[Any, ...]) -> Change:
    """A Change from a row of the feed's log (see FeedStatements.read_all)."""
    rev, kind, ns, key, tag, ival, fval, tval, bval, version, expires_at = row[:11]
    ptag = row[11]
    prev = None if ptag is None else value_of(ptag, *row[12:16])
    if kind == "s":
        return Change(
            rev, SET, ns, key, value_of(tag, ival, fval, tval, bval), version, expires_at, prev
        )
    return Change(rev, _KINDS[kind], ns, key, None, None, None, prev)
