"""SQL text, configuration and row conversion shared by both PostgreSQL backends.

Nothing here talks to a server or imports the driver: the async backend
(``_postgres_async.py``) and its generated sync twin (``_postgres_sync.py``)
both build their statements and read their rows through this module, so the
SQL exists exactly once.

Table layout (schema version 1), per ``(schema, table)``::

    ns          text COLLATE "C"   namespace            } primary key
    key         text COLLATE "C"   key                  } (byte order = code point order)
    tag         text               codec type tag (codec.py)
    ival        bigint             int payloads ("i", "b")
    fval        double precision   float payloads ("f")
    tval        text               text payloads ("s", "I", "F")
    bval        bytea              bytes payloads ("y", "j", "x", "p"); also a
                                   "s" payload holding NUL characters, as UTF-8
                                   (PostgreSQL text cannot hold NUL)
    meta        bytea              encoded user metadata, NULL = {}
    expires_at  bigint             ms since the epoch, server clock; NULL = never
    created_at  bigint             ms, server clock
    updated_at  bigint             ms, server clock
    version     integer            1 on creation, +1 per write of value or metadata

plus a partial index on ``expires_at`` and a ``<table>_meta`` table holding
``schema_version``.

Clock: every statement takes "now" from the server (:data:`NOW`), so expiry
is decided by one clock whatever the clients' clocks say. A TTL reaches the
server as a duration (``expires_at - now`` of the caller: the TTL in whole
milliseconds, rounded down) and is stored as ``server_now + duration``; a
row is live while ``expires_at > server_now``. Import and migration store
the absolute instant they are given.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Any

from ..codec import TAG_BIGINT, TAG_BOOL, TAG_FLOAT, TAG_INT, TAG_SPECIAL_FLOAT, TAG_STR
from ..errors import SerializationError
from ..patterns import Matcher, prefix_upper_bound
from ..records import INT64_MAX, INT64_MIN, Value

SCHEMA_VERSION = 1

#: Seconds a call waits for the server's answer by default (option ``timeout``).
DEFAULT_TIMEOUT = 30.0

#: Schema and table names: plain identifiers, short enough for "<table>_meta".
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,57}")

#: The server's clock in integer milliseconds, fixed for one statement.
NOW = "floor(extract(epoch FROM statement_timestamp()) * 1000)::bigint"

#: Tags whose payload is text (a NUL-holding one is stored UTF-8 in bval).
TEXT_TAGS = frozenset({TAG_STR, TAG_BIGINT, TAG_SPECIAL_FLOAT})

#: Float results of the SQL increment fast path stay far from overflow.
FLOAT_FAST_LIMIT = 1e300

# The payload size of codec.payload_size, computed in SQL.
SIZE = (
    f"CASE WHEN ival IS NOT NULL THEN (CASE WHEN tag = '{TAG_BOOL}' THEN 1 ELSE 8 END) "
    "WHEN fval IS NOT NULL THEN 8 "
    "ELSE coalesce(octet_length(tval), octet_length(bval), 0) END"
)

Columns = tuple[int | None, float | None, str | None, bytes | None]

_NO_COLUMNS: Columns = (None, None, None, None)
_SPECIAL_PATTERN_CHARS = frozenset("*?[]\\")


def columns(tag: str, payload: Any) -> Columns:
    """Split a payload into the (ival, fval, tval, bval) columns.

    Raises SerializationError (nothing is written) for a payload PostgreSQL
    cannot hold exactly: an int beyond 64 bits, or a text payload of a custom
    codec tag that contains NUL characters.
    """
    kind = type(payload)
    if kind is str:
        if "\x00" not in payload:
            return None, None, payload, None
        if tag in TEXT_TAGS:
            return None, None, None, payload.encode("utf-8")
        raise SerializationError(
            f"Value is not JSON serializable: PostgreSQL cannot store the NUL characters "
            f"of a text payload with custom tag {tag!r}; use a bytes payload"
        )
    if kind is int:
        if INT64_MIN <= payload <= INT64_MAX:
            return payload, None, None, None
        raise SerializationError(
            f"Value is not JSON serializable: payload of tag {tag!r} is an int beyond 64 bits"
        )
    if kind is bytes:
        return None, None, None, payload
    if kind is float:
        return None, payload, None, None
    if payload is None:
        return _NO_COLUMNS
    if isinstance(payload, bytearray | memoryview):
        return None, None, None, bytes(payload)
    raise SerializationError(
        f"Value is not JSON serializable: payload of tag {tag!r} is a {kind.__name__}"
    )


def value_of(
    tag: str, ival: int | None, fval: float | None, tval: str | None, bval: bytes | None
) -> Value:
    """The encoded value ``(tag, payload)`` stored in a row's payload columns."""
    if ival is not None:
        return tag, ival
    if fval is not None:
        return tag, fval
    if tval is not None:
        return tag, tval
    if bval is not None:
        return tag, (bval.decode("utf-8") if tag in TEXT_TAGS else bval)
    return tag, None


def values_by_key(rows: list[tuple[Any, ...]]) -> dict[str, Value]:
    """``{key: (tag, payload)}`` from rows of (key, tag, ival, fval, tval, bval).

    The same decoding as :func:`value_of`, unrolled: batches of values are
    read on the hot path of ``mget``.
    """
    found: dict[str, Value] = {}
    for key, tag, ival, fval, tval, bval in rows:
        if tval is not None:
            found[key] = (tag, tval)
        elif ival is not None:
            found[key] = (tag, ival)
        elif bval is not None:
            found[key] = (tag, bval.decode("utf-8") if tag in TEXT_TAGS else bval)
        elif fval is not None:
            found[key] = (tag, fval)
        else:
            found[key] = (tag, None)
    return found


def quote(name: str) -> str:
    """A double-quoted SQL identifier (names are checked against IDENTIFIER)."""
    return '"' + name.replace('"', '""') + '"'


def pure_prefix(matcher: Matcher) -> bool:
    """True if the pattern matches exactly the keys inside its prefix range.

    Such patterns (``*``, a literal key, ``user:*`` in the default dialect)
    need no filtering after the range scan, so SQL can count, limit and
    delete them by itself.
    """
    if matcher.match_all or matcher.literal:
        return True
    return (
        matcher.separator is None
        and matcher.pattern == matcher.prefix + "*"
        and not _SPECIAL_PATTERN_CHARS.intersection(matcher.prefix)
    )


def unreachable_prefix(prefix: str) -> bool:
    """True if no valid key can start with ``prefix`` (it holds NUL or a surrogate).

    Such a prefix cannot even be sent as text, and matches nothing.
    """
    if "\x00" in prefix:
        return True
    return not prefix.isascii() and any(0xD800 <= ord(c) <= 0xDFFF for c in prefix)


def key_range(matcher: Matcher, column: str = "key") -> tuple[str, list[str]]:
    """SQL condition and parameters restricting ``column`` to the pattern's prefix.

    With the "C" collation this is an index range scan on the primary key.
    """
    prefix = matcher.prefix
    if matcher.literal:
        return f"{column} = %s", [prefix]
    if not prefix:
        return "TRUE", []
    upper = prefix_upper_bound(prefix)
    if upper is None:
        return f"{column} >= %s", [prefix]
    return f"{column} >= %s AND {column} < %s", [prefix, upper]


def live(alias: str = "", now: str = NOW) -> str:
    """SQL: the row is visible at the server's ``now``."""
    col = f"{alias}.expires_at" if alias else "expires_at"
    return f"({col} IS NULL OR {col} > {now})"


class Statements:
    """Every SQL statement of one ``(schema, table)``, built once."""

    def __init__(self, schema: str, table: str) -> None:
        self.schema = schema
        self.table = table
        self.meta_table = f"{table}_meta"
        t = f"{quote(schema)}.{quote(table)}"
        self.t = t
        self.meta = f"{quote(schema)}.{quote(self.meta_table)}"
        self.lock_name = f"keyshelf:{schema}.{table}"
        self._cache: dict[Any, str] = {}
        values = "tag, ival, fval, tval, bval"
        columns_all = (
            "ns, key, tag, ival, fval, tval, bval, meta, expires_at, "
            "created_at, updated_at, version"
        )
        old_live = live("r", "excluded.created_at")
        self.old_live = old_live
        self.columns_all = columns_all

        # -- reads --------------------------------------------------------
        self.get = f"SELECT {values} FROM {t} WHERE ns = %s AND key = %s AND {live()}"
        self.exists = f"SELECT 1 FROM {t} WHERE ns = %s AND key = %s AND {live()}"
        # ttl(): the remaining ms by the server's clock (NULL: no expiry); live rows only.
        self.time_left = (
            f"SELECT expires_at - {NOW} FROM {t} WHERE ns = %s AND key = %s AND {live()}"
        )
        self.get_record = (
            f"SELECT {values}, expires_at, meta, created_at, updated_at, version "
            f"FROM {t} WHERE ns = %s AND key = %s AND {live()}"
        )
        self.get_many = (
            f"SELECT key, {values} FROM {t} WHERE ns = %s AND key = ANY(%s::text[]) AND {live()}"
        )
        self.sizes = (
            f"SELECT key, {SIZE} FROM {t} WHERE ns = %s AND key = ANY(%s::text[]) AND {live()}"
        )
        self.total_size = (
            f"SELECT coalesce(sum({SIZE}), 0)::bigint FROM {t} WHERE ns = %s AND {live()}"
        )
        self.stats = (
            f"SELECT count(*), count(*) FILTER (WHERE {live()}), "
            f"count(*) FILTER (WHERE expires_at > {NOW}) FROM {t} WHERE ns = %s"
        )
        # A loose index scan: one probe of the primary key per namespace.
        self.namespaces = f"""
            WITH RECURSIVE n(ns) AS (
                (SELECT ns FROM {t} ORDER BY ns LIMIT 1)
                UNION ALL
                SELECT (SELECT s.ns FROM {t} s WHERE s.ns > n.ns ORDER BY s.ns LIMIT 1)
                FROM n WHERE n.ns IS NOT NULL
            )
            SELECT n.ns FROM n WHERE n.ns IS NOT NULL
                AND EXISTS (SELECT 1 FROM {t} s WHERE s.ns = n.ns AND {live("s")})"""

        # -- single-key writes ----------------------------------------------
        # (read-modify-write fallback) lock the row, live or not, with the server's now.
        self.lock = (
            f"SELECT {values}, expires_at, meta, created_at, updated_at, version, {NOW} "
            f"FROM {t} WHERE ns = %s AND key = %s FOR UPDATE"
        )
        # %s tag ival fval tval bval expires_at meta created_at(NULL = now) version ns key
        self.rewrite = f"""
            UPDATE {t} SET tag = %s, ival = %s, fval = %s, tval = %s, bval = %s,
                expires_at = %s, meta = %s, created_at = coalesce(%s, {NOW}),
                updated_at = {NOW}, version = %s
            WHERE ns = %s AND key = %s"""
        # %s ns key tag ival fval tval bval meta ttl_ms
        self.insert_new = f"""
            INSERT INTO {t} ({columns_all})
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, {NOW} + %s::bigint, {NOW}, {NOW}, 1)
            ON CONFLICT (ns, key) DO NOTHING"""
        self.delete_one = f"DELETE FROM {t} WHERE ns = %s AND key = %s RETURNING {live()}"
        # -- the checked commit in one statement (Backend.commit) ------------
        # One row per key (sorted; at most one mutation each): its check (ck
        # 0 none, 1 absent, 2 version cv) and mutation (op '' none, 's' set,
        # 'd' delete, 'i' increment by di (int) or df (float), 'e' expire).
        # Rows are locked FOR UPDATE in key order. Nothing is written unless
        # every check holds ("ok") and every increment is one SQL can do
        # exactly ("fast": else the caller takes the general path, which also
        # raises the errors). A key read as absent that another writer
        # created meanwhile leaves its insert undone: the statement then
        # fails on purpose (keyshelf-commit-retry), so its transaction rolls
        # back whole, and the caller takes the general path.
        i_int = f"j.live AND j.otag = '{TAG_INT}' AND j.oival IS NOT NULL AND j.di IS NOT NULL"
        i_fast = (
            f"(j.di IS NOT NULL AND (NOT j.live OR (j.otag = '{TAG_INT}' AND j.oival IS NOT NULL"
            f" AND ((j.di >= 0 AND j.oival <= {INT64_MAX} - j.di)"
            f" OR (j.di < 0 AND j.oival >= {INT64_MIN} - j.di)))"
            f" OR (j.otag = '{TAG_FLOAT}' AND j.ofval IS NOT NULL"
            f" AND abs(j.ofval) < {FLOAT_FAST_LIMIT:g})))"
            f" OR (j.df IS NOT NULL AND (NOT j.live"
            f" OR (j.otag = '{TAG_INT}' AND j.oival IS NOT NULL)"
            f" OR (j.otag = '{TAG_FLOAT}' AND j.ofval IS NOT NULL"
            f" AND abs(j.ofval) < {FLOAT_FAST_LIMIT:g})))"
        )
        old_num = "coalesce(j.ofval, j.oival::float8)"
        self.commit = f"""
            WITH i AS (
                SELECT * FROM unnest(
                    %(keys)s::text[], %(ck)s::int[], %(cv)s::bigint[], %(op)s::text[],
                    %(tag)s::text[], %(ival)s::bigint[], %(fval)s::float8[], %(tval)s::text[],
                    %(bval)s::bytea[], %(setmeta)s::bool[], %(meta)s::bytea[], %(ttl)s::bigint[],
                    %(di)s::bigint[], %(df)s::float8[]
                ) AS i(key, ck, cv, op, tag, ival, fval, tval, bval, setmeta, meta, ttl, di, df)
            ),
            c AS (
                SELECT r.key, r.tag, r.ival, r.fval, r.tval, r.bval, r.expires_at, r.meta,
                       r.created_at, r.version, {live("r")} AS live
                FROM {t} r WHERE r.ns = %(ns)s AND r.key = ANY(%(keys)s::text[])
                ORDER BY r.key FOR UPDATE
            ),
            j AS (
                SELECT i.*, c.key IS NOT NULL AS present, coalesce(c.live, false) AS live,
                       c.tag AS otag, c.ival AS oival, c.fval AS ofval, c.tval AS otval,
                       c.bval AS obval, c.expires_at AS oexp, c.meta AS ometa,
                       c.created_at AS ocreated, c.version AS over
                FROM i LEFT JOIN c ON c.key = i.key
            ),
            verdict AS (
                SELECT coalesce(bool_and(CASE j.ck WHEN 0 THEN true WHEN 1 THEN NOT j.live
                                         ELSE j.live AND j.over = j.cv END), true) AS ok,
                       coalesce(bool_and(j.op <> 'i' OR {i_fast}), true) AS fast
                FROM j
            ),
            w AS (
                SELECT j.key, j.present,
                    CASE j.op WHEN 's' THEN j.tag WHEN 'e' THEN j.otag
                         ELSE CASE WHEN j.di IS NOT NULL AND (NOT j.live OR {i_int})
                                   THEN '{TAG_INT}' ELSE '{TAG_FLOAT}' END END AS ntag,
                    CASE j.op WHEN 's' THEN j.ival WHEN 'e' THEN j.oival
                         ELSE CASE WHEN j.di IS NOT NULL AND NOT j.live THEN j.di
                                   WHEN {i_int} THEN j.oival + j.di END END AS nival,
                    CASE j.op WHEN 's' THEN j.fval WHEN 'e' THEN j.ofval
                         ELSE CASE WHEN j.di IS NOT NULL AND (NOT j.live OR {i_int}) THEN NULL
                                   WHEN NOT j.live THEN j.df
                                   ELSE {old_num} + coalesce(j.df, j.di::float8) END
                         END AS nfval,
                    CASE j.op WHEN 's' THEN j.tval WHEN 'e' THEN j.otval END AS ntval,
                    CASE j.op WHEN 's' THEN j.bval WHEN 'e' THEN j.obval END AS nbval,
                    CASE WHEN j.op = 's' AND j.setmeta THEN j.meta
                         WHEN j.live THEN j.ometa END AS nmeta,
                    CASE j.op WHEN 's' THEN {NOW} + j.ttl WHEN 'e' THEN {NOW} + j.ttl
                         ELSE CASE WHEN j.live THEN j.oexp END END AS nexp,
                    CASE WHEN j.live THEN j.ocreated ELSE {NOW} END AS ncreated,
                    CASE WHEN j.live THEN j.over + 1 ELSE 1 END AS nversion
                FROM j, verdict
                WHERE verdict.ok AND verdict.fast
                  AND (j.op IN ('s', 'i') OR (j.op = 'e' AND j.live))
            ),
            ins AS (
                INSERT INTO {t} ({columns_all})
                SELECT %(ns)s, w.key, w.ntag, w.nival, w.nfval, w.ntval, w.nbval, w.nmeta,
                       w.nexp, w.ncreated, {NOW}, w.nversion
                FROM w WHERE NOT w.present
                ON CONFLICT (ns, key) DO NOTHING
                RETURNING key, version
            ),
            upd AS (
                UPDATE {t} r SET tag = w.ntag, ival = w.nival, fval = w.nfval, tval = w.ntval,
                    bval = w.nbval, meta = w.nmeta, expires_at = w.nexp,
                    created_at = w.ncreated, updated_at = {NOW}, version = w.nversion
                FROM w WHERE w.present AND r.ns = %(ns)s AND r.key = w.key
                RETURNING r.key, r.version
            ),
            up AS (SELECT * FROM ins UNION ALL SELECT * FROM upd),
            gone AS (
                DELETE FROM {t} r USING j, verdict
                WHERE verdict.ok AND verdict.fast AND j.op = 'd' AND j.live
                  AND r.ns = %(ns)s AND r.key = j.key
                RETURNING r.key
            )
            SELECT v.ok, v.fast, (SELECT array_agg(up.key) FROM up),
                   (SELECT array_agg(up.version) FROM up),
                   CASE WHEN (SELECT count(*) FROM up) <> (SELECT count(*) FROM w)
                        THEN (SELECT ('keyshelf-commit-retry ' || count(*))::int FROM gone)
                   END
            FROM verdict v"""
        # -- several keys in one transaction (update_many) ---------------------
        # Transaction-scoped advisory locks on the keys' ids (sorted by the
        # caller, taken in array order): two multi-key transactions sharing a
        # key, present or absent, run one after the other, so a key one of
        # them read as absent cannot be created by the other in between.
        self.lock_ids = "SELECT count(pg_advisory_xact_lock(h)) FROM unnest(%s::bigint[]) AS h"
        # %s ns, keys: the rows (live or expired) locked in key order, as self.lock.
        self.lock_many = (
            f"SELECT key, {values}, expires_at, meta, created_at, updated_at, version, {NOW} "
            f"FROM {t} WHERE ns = %s AND key = ANY(%s::text[]) ORDER BY key FOR UPDATE"
        )
        # Rows are locked in key order, so concurrent batches cannot deadlock.
        self.delete_many = f"""
            WITH doomed AS (
                SELECT key FROM {t} WHERE ns = %(ns)s AND key = ANY(%(keys)s::text[])
                ORDER BY key FOR UPDATE
            )
            DELETE FROM {t} r USING doomed
            WHERE r.ns = %(ns)s AND r.key = doomed.key
            RETURNING r.key, {live("r")}"""
        self.expire = (
            f"UPDATE {t} SET expires_at = {NOW} + %s::bigint "
            f"WHERE ns = %s AND key = %s AND {live()}"
        )
        self.persist = (
            f"UPDATE {t} SET expires_at = NULL WHERE ns = %s AND key = %s AND expires_at > {NOW}"
        )
        keep_old = (
            f"expires_at = CASE WHEN {old_live} THEN r.expires_at END, "
            f"meta = CASE WHEN {old_live} THEN r.meta END, "
            f"created_at = CASE WHEN {old_live} THEN r.created_at ELSE excluded.created_at END, "
            "updated_at = excluded.updated_at, "
            f"version = CASE WHEN {old_live} THEN r.version + 1 ELSE 1 END"
        )
        # Increment fast path, %s ns key delta. Writes only when the result is
        # exact here: a live 64-bit int staying in range, a live float far from
        # overflow, or a missing/expired key (starting at delta, no TTL). Any
        # other case returns no row and runs the shared decision instead.
        guard = (
            f"NOT {old_live}"
            f" OR (r.tag = '{TAG_INT}' AND r.ival IS NOT NULL AND"
            f" CASE WHEN excluded.ival >= 0 THEN r.ival <= {INT64_MAX} - excluded.ival"
            f" ELSE r.ival >= ({INT64_MIN}) - excluded.ival END)"
            f" OR (r.tag = '{TAG_FLOAT}' AND r.fval IS NOT NULL"
            f" AND abs(r.fval) < {FLOAT_FAST_LIMIT:g})"
        )
        self.increment_int = f"""
            INSERT INTO {t} AS r ({columns_all})
            VALUES (%s, %s, '{TAG_INT}', %s::bigint, NULL, NULL, NULL, NULL, NULL,
                    {NOW}, {NOW}, 1)
            ON CONFLICT (ns, key) DO UPDATE SET
                tag = CASE WHEN {old_live} THEN r.tag ELSE '{TAG_INT}' END,
                ival = CASE WHEN NOT {old_live} THEN excluded.ival
                            WHEN r.tag = '{TAG_INT}' THEN r.ival + excluded.ival END,
                fval = CASE WHEN {old_live} AND r.tag = '{TAG_FLOAT}'
                            THEN r.fval + excluded.ival END,
                tval = NULL, bval = NULL, {keep_old}
            WHERE {guard}
            RETURNING tag, ival, fval"""
        guard_float = (
            f"NOT {old_live}"
            f" OR (r.tag = '{TAG_INT}' AND r.ival IS NOT NULL)"
            f" OR (r.tag = '{TAG_FLOAT}' AND r.fval IS NOT NULL"
            f" AND abs(r.fval) < {FLOAT_FAST_LIMIT:g})"
        )
        self.increment_float = f"""
            INSERT INTO {t} AS r ({columns_all})
            VALUES (%s, %s, '{TAG_FLOAT}', NULL, %s::float8, NULL, NULL, NULL, NULL,
                    {NOW}, {NOW}, 1)
            ON CONFLICT (ns, key) DO UPDATE SET
                tag = '{TAG_FLOAT}',
                ival = NULL,
                fval = CASE WHEN NOT {old_live} THEN excluded.fval
                            WHEN r.tag = '{TAG_INT}' THEN r.ival + excluded.fval
                            ELSE r.fval + excluded.fval END,
                tval = NULL, bval = NULL, {keep_old}
            WHERE {guard_float}
            RETURNING tag, ival, fval"""
        # Append fast path, %s ns key tag tval bval max_size: str onto a str
        # stored as text, bytes onto bytes, within max_size; a missing/expired
        # key is created. Anything else returns no row (the shared decision
        # then raises the right error or handles the rare layout).
        self.append = f"""
            INSERT INTO {t} AS r ({columns_all})
            VALUES (%s, %s, %s, NULL, NULL, %s, %s, NULL, NULL, {NOW}, {NOW}, 1)
            ON CONFLICT (ns, key) DO UPDATE SET
                tval = CASE WHEN {old_live} THEN r.tval || excluded.tval ELSE excluded.tval END,
                bval = CASE WHEN {old_live} THEN r.bval || excluded.bval ELSE excluded.bval END,
                tag = excluded.tag, ival = NULL, fval = NULL, {keep_old}
            WHERE NOT {old_live} OR (r.tag = excluded.tag AND (
                (excluded.tval IS NOT NULL AND r.tval IS NOT NULL
                 AND octet_length(r.tval)::bigint + octet_length(excluded.tval) <= %s::bigint)
                OR (excluded.bval IS NOT NULL AND r.bval IS NOT NULL
                 AND octet_length(r.bval)::bigint + octet_length(excluded.bval) <= %s::bigint)))
            RETURNING tag, tval, bval"""
        # %s new tag ival fval tval bval, ns, key, expected tag ival fval tval bval
        self.compare_and_swap = f"""
            UPDATE {t} SET tag = %s, ival = %s, fval = %s, tval = %s, bval = %s,
                updated_at = {NOW}, version = version + 1
            WHERE ns = %s AND key = %s AND {live()} AND tag = %s
                AND ival IS NOT DISTINCT FROM %s AND fval IS NOT DISTINCT FROM %s
                AND tval IS NOT DISTINCT FROM %s AND bval IS NOT DISTINCT FROM %s"""
        # mset: %s ns, keys, tags, ivals, fvals, tvals, bvals, ttl_ms. Input
        # rows are sorted by key, so concurrent batches lock in the same order.
        self.put_many = f"""
            INSERT INTO {t} AS r ({columns_all})
            SELECT %s, u.k, u.tg, u.i, u.f, u.t, u.b, NULL, {NOW} + %s::bigint,
                   {NOW}, {NOW}, 1
            FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::float8[], %s::text[],
                        %s::bytea[]) AS u(k, tg, i, f, t, b)
            ON CONFLICT (ns, key) DO UPDATE SET
                tag = excluded.tag, ival = excluded.ival, fval = excluded.fval,
                tval = excluded.tval, bval = excluded.bval,
                expires_at = excluded.expires_at,
                meta = CASE WHEN {old_live} THEN r.meta END,
                created_at = CASE WHEN {old_live} THEN r.created_at
                                  ELSE excluded.created_at END,
                updated_at = excluded.updated_at,
                version = CASE WHEN {old_live} THEN r.version + 1 ELSE 1 END"""
        # import/migration: %s ns, keys, tags, ivals, fvals, tvals, bvals, metas,
        # expires_at (absolute ms, NULL = never) per row. Like put_many, but each
        # row brings its own expiry instant, stored exactly, and replaces the
        # user metadata.
        self.put_records = f"""
            INSERT INTO {t} AS r ({columns_all})
            SELECT %s, u.k, u.tg, u.i, u.f, u.t, u.b, u.m, u.at, {NOW}, {NOW}, 1
            FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::float8[], %s::text[],
                        %s::bytea[], %s::bytea[], %s::bigint[]) AS u(k, tg, i, f, t, b, m, at)
            ON CONFLICT (ns, key) DO UPDATE SET
                tag = excluded.tag, ival = excluded.ival, fval = excluded.fval,
                tval = excluded.tval, bval = excluded.bval,
                expires_at = excluded.expires_at, meta = excluded.meta,
                created_at = CASE WHEN {old_live} THEN r.created_at
                                  ELSE excluded.created_at END,
                updated_at = excluded.updated_at,
                version = CASE WHEN {old_live} THEN r.version + 1 ELSE 1 END"""
        # %s ns, after (NULL = from the start), limit
        self.scan_records = (
            f"SELECT key, {values}, expires_at, meta, created_at, updated_at, version "
            f"FROM {t} WHERE ns = %s AND {live()} AND (%s::text IS NULL OR key > %s::text) "
            "ORDER BY key LIMIT %s"
        )
        # Bulk fast path: COPY straight into the table when every key is new.
        self.server_now = f"SELECT {NOW}"
        self.copy_in = (
            f"COPY {t} (ns, key, tag, ival, fval, tval, bval, expires_at, created_at, "
            "updated_at, version) FROM STDIN (FORMAT BINARY)"
        )
        self.copy_types = [
            "text", "text", "text", "int8", "float8", "text", "bytea", "int8", "int8", "int8",
            "int4",
        ]  # fmt: skip
        # Expired rows nobody is writing right now; locked rows are left for
        # the next sweep (SKIP LOCKED: a sweep never waits or deadlocks).
        # The first step marks the transaction as purging, so the change feed
        # (see _postgres_feed) records these removals as "expire".
        purging = "purging AS MATERIALIZED (SELECT set_config('keyshelf.purging', 'on', true))"
        self.purge_all = f"""
            WITH {purging}, doomed AS (
                SELECT x.ns, x.key FROM {t} x, purging WHERE x.expires_at <= {NOW}
                FOR UPDATE OF x SKIP LOCKED
            )
            DELETE FROM {t} r USING doomed WHERE r.ns = doomed.ns AND r.key = doomed.key"""
        self.purge_ns = f"""
            WITH {purging}, doomed AS (
                SELECT x.ns, x.key FROM {t} x, purging WHERE x.expires_at <= {NOW} AND x.ns = %s
                FOR UPDATE OF x SKIP LOCKED
            )
            DELETE FROM {t} r USING doomed WHERE r.ns = doomed.ns AND r.key = doomed.key"""

        # -- schema -------------------------------------------------------------
        self.find_tables = (
            "SELECT c.relname FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname IN (%s, %s)"
        )
        self.find_schema = "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s"
        self.create_schema = f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}"
        self.read_version = f"SELECT value FROM {self.meta} WHERE name = 'schema_version'"
        self.create_tables = [
            f"""CREATE TABLE IF NOT EXISTS {self.meta} (
                name text PRIMARY KEY,
                value text NOT NULL
            )""",
            f"""CREATE TABLE IF NOT EXISTS {t} (
                ns text COLLATE "C" NOT NULL,
                key text COLLATE "C" NOT NULL,
                tag text NOT NULL,
                ival bigint,
                fval double precision,
                tval text,
                bval bytea,
                meta bytea,
                expires_at bigint,
                created_at bigint NOT NULL,
                updated_at bigint NOT NULL,
                version integer NOT NULL,
                PRIMARY KEY (ns, key)
            )""",
            f"CREATE INDEX IF NOT EXISTS {quote(table + '_expires_at')} ON {t} (expires_at) "
            "WHERE expires_at IS NOT NULL",
        ]
        self.write_version = (
            f"INSERT INTO {self.meta} (name, value) VALUES ('schema_version', %s) "
            "ON CONFLICT (name) DO NOTHING"
        )

    # -- statements that depend on flags ------------------------------------------

    def put(self, nx: bool, keep_ttl: bool, keep_meta: bool) -> str:
        """``set``: %s ns key tag ival fval tval bval meta ttl_ms. Row count 1 if written."""
        cache_key = ("put", nx, keep_ttl, keep_meta)
        sql = self._cache.get(cache_key)
        if sql is None:
            old_live = self.old_live
            expires = (
                f"CASE WHEN {old_live} THEN r.expires_at ELSE excluded.expires_at END"
                if keep_ttl
                else "excluded.expires_at"
            )
            meta = f"CASE WHEN {old_live} THEN r.meta END" if keep_meta else "excluded.meta"
            sql = f"""
                INSERT INTO {self.t} AS r ({self.columns_all})
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, {NOW} + %s::bigint, {NOW}, {NOW}, 1)
                ON CONFLICT (ns, key) DO UPDATE SET
                    tag = excluded.tag, ival = excluded.ival, fval = excluded.fval,
                    tval = excluded.tval, bval = excluded.bval,
                    expires_at = {expires},
                    meta = {meta},
                    created_at = CASE WHEN {old_live} THEN r.created_at
                                      ELSE excluded.created_at END,
                    updated_at = excluded.updated_at,
                    version = CASE WHEN {old_live} THEN r.version + 1 ELSE 1 END"""
            if nx:
                sql += f"\n                WHERE NOT {old_live}"
            self._cache[cache_key] = sql
        return sql

    def put_xx(self, keep_ttl: bool, keep_meta: bool) -> str:
        """``set(xx=True)``: %s tag ival fval tval bval ttl_ms meta ns key."""
        cache_key = ("put_xx", keep_ttl, keep_meta)
        sql = self._cache.get(cache_key)
        if sql is None:
            expires = "expires_at" if keep_ttl else f"{NOW} + %s::bigint"
            meta = "meta" if keep_meta else "%s"
            sql = f"""
                UPDATE {self.t} SET tag = %s, ival = %s, fval = %s, tval = %s, bval = %s,
                    expires_at = {expires}, meta = {meta},
                    updated_at = {NOW}, version = version + 1
                WHERE ns = %s AND key = %s AND {live()}"""
            self._cache[cache_key] = sql
        return sql

    def select(self, bound: str, values: bool, after: bool, limit: bool) -> str:
        """A range scan of live keys (with values) in key order."""
        cache_key = ("select", bound, values, after, limit)
        sql = self._cache.get(cache_key)
        if sql is None:
            cols = "key, tag, ival, fval, tval, bval" if values else "key"
            sql = f"SELECT {cols} FROM {self.t} WHERE ns = %s AND {bound} AND {live()}"
            if after:
                sql += " AND key > %s"
            sql += " ORDER BY key"
            if limit:
                sql += " LIMIT %s"
            self._cache[cache_key] = sql
        return sql

    def count(self, bound: str) -> str:
        """Number of live keys in a range."""
        cache_key = ("count", bound)
        sql = self._cache.get(cache_key)
        if sql is None:
            sql = f"SELECT count(*) FROM {self.t} WHERE ns = %s AND {bound} AND {live()}"
            self._cache[cache_key] = sql
        return sql

    def delete_range(self, bound: str) -> str:
        """Delete a whole range (expired rows too), locking rows in key order.

        Returns one row per deleted key: whether it was live.
        """
        cache_key = ("delete_range", bound)
        sql = self._cache.get(cache_key)
        if sql is None:
            sql = f"""
                WITH doomed AS (
                    SELECT key FROM {self.t} WHERE ns = %s AND {bound}
                    ORDER BY key FOR UPDATE
                )
                DELETE FROM {self.t} r USING doomed
                WHERE r.ns = %s AND r.key = doomed.key
                RETURNING {live("r")}"""
            self._cache[cache_key] = sql
        return sql

    def lock_range(self, bound: str) -> str:
        """Lock every row of a range in key order; returns key and liveness."""
        cache_key = ("lock_range", bound)
        sql = self._cache.get(cache_key)
        if sql is None:
            sql = (
                f"SELECT key, {live()} FROM {self.t} WHERE ns = %s AND {bound} "
                "ORDER BY key FOR UPDATE"
            )
            self._cache[cache_key] = sql
        return sql


def _env_default(name: str, fallback: str) -> str:
    return os.environ.get(name) or fallback


@dataclass
class Config:
    """Everything a PostgreSQL backend needs, parsed and checked at open time."""

    conninfo: str
    libpq: dict[str, Any]
    schema: str = "keyshelf"
    table: str = "kv"
    min_size: int = 1
    max_size: int = 10
    connect_timeout: float = 10.0
    statement_timeout: float | None = None
    location: str = ""
    timeout: float = DEFAULT_TIMEOUT
    #: The libpq in use knows ``tcp_user_timeout`` (libpq 12 and later).
    tcp_user_timeout: bool = True
    #: False (``create=False``): refuse to create keyshelf's schema and tables.
    create: bool = True

    def wait_limit(self) -> float:
        """Seconds the client waits for any one answer from the server (``timeout``)."""
        return self.timeout

    def connect_kwargs(self) -> dict[str, Any]:
        """libpq parameters for every connection (timeouts included).

        Unless given as options: TCP keepalives probing an idle connection
        within about ``timeout``, and ``tcp_user_timeout`` (data left
        unacknowledged that long closes the connection), so the kernel also
        notices a peer that vanished. Both are client-side settings only
        (nothing is sent to the server or a pooler in front of it).
        """
        kwargs = dict(self.libpq)
        # libpq counts whole seconds and treats 1 as 2.
        kwargs["connect_timeout"] = max(2, math.ceil(self.connect_timeout))
        if self.statement_timeout is not None:
            ms = max(1, round(self.statement_timeout * 1000))
            option = f"-c statement_timeout={ms}"
            kwargs["options"] = f"{kwargs['options']} {option}" if kwargs.get("options") else option
        probe = max(1, math.ceil(self.timeout / 3))
        kwargs.setdefault("keepalives", "1")
        kwargs.setdefault("keepalives_idle", str(probe))
        kwargs.setdefault("keepalives_interval", str(max(1, math.ceil(probe / 3))))
        kwargs.setdefault("keepalives_count", "3")
        if self.tcp_user_timeout:
            kwargs.setdefault("tcp_user_timeout", str(math.ceil(self.timeout * 1000)))
        return kwargs


def location_of(parts: dict[str, Any]) -> str:
    """``host:port/dbname`` of parsed connection parameters (never the password)."""
    host = str(parts.get("host") or parts.get("hostaddr") or _env_default("PGHOST", "localhost"))
    port = str(parts.get("port") or _env_default("PGPORT", "5432"))
    user = str(parts.get("user") or _env_default("PGUSER", ""))
    dbname = str(parts.get("dbname") or _env_default("PGDATABASE", user or "postgres"))
    return f"{host}:{port}/{dbname}"
