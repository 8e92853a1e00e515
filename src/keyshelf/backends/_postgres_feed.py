"""The PostgreSQL change feed: its tables, its trigger and its queries (SQL text only).

No I/O, no driver import: the async backend and its generated sync twin build
their feed statements here. The feed is off until :meth:`FeedStatements.enable`
runs; everything it needs then lives in the database, so every writer of every
process records from its next statement:

``<table>_log``
    One row per change: ``n`` (its place in the feed, from the sequence
    below), ``rev`` (the revision: the ``n`` of its transaction's first
    change), namespace, key, ``kind`` (``s``/``d``/``e``), the value columns
    after the change, version, expiry, the old row's value columns and expiry
    (``p*``, ``pexp``) and ``at`` (the server's ``statement_timestamp()``).
``<table>_rev``
    The sequence numbering the changes.
``<table>_bell``
    A sequence holding the doorbell (below): server seconds until which some
    watcher waits.
``<table>_feed`` (one row)
    ``pruned`` the highest revision pruned, ``low`` the lowest ``n`` that may
    still be kept, and the retention (``history_count``, ``history_ms``, NULL
    = no such bound).
``<table>_feed`` (trigger)
    A *deferred* constraint trigger on the data table, for each row inserted,
    updated or deleted, running the function ``<table>_feed``.

Why deferred: the trigger runs at COMMIT, after every statement of the
transaction. The first change of a transaction takes a transaction-scoped
advisory lock (:attr:`FeedStatements.order_key`) and only then draws its
numbers from the sequence. That lock is released only after the commit has
completed and become visible, so numbers are drawn in commit order: a
transaction cannot take revision 11 and commit before the one holding
revision 10 (a bare sequence could, and a watcher already at 11 would then
never see 10). Taking the lock last also means a transaction never holds it
while it waits for a row lock, so the lock cannot join a deadlock. Every
change of one transaction shares one revision, the ``n`` of its first change,
kept in a transaction-local setting (:attr:`FeedStatements.rev_setting`).
Revisions therefore grow by the number of changes of the previous
transaction (never contiguous across a batch), and a commit that fails after
its trigger ran leaves a gap nobody sees.

Why this shape: each expression of a PL/pgSQL function is compiled again in
every transaction and each SQL statement pays an executor start, so per change
the trigger runs two expressions and one ``INSERT`` (see docs/postgres.md:
the previous version, which updated a counter row per change, cost about 25 us
more of server time per ``set``). Liveness of the old row (``prev`` is the old
value only if it was live) is decided when the log is read, from ``pexp``
and ``at``.

A DELETE records ``"delete"``, or ``"expire"`` when the statement marked
itself as purging expired rows (the transaction-local setting
``keyshelf.purging``, set by the purge statements in their first step).

Pruning is amortised inside the trigger: every :data:`PRUNE_CHECK`-th change
reads the retention; a count bound lets the log grow
``max(count // 10, 100)`` changes past it, then deletes the changes numbered
``count`` or more below the current one; a duration bound is applied every
:data:`PRUNE_EVERY`-th change. Both raise ``pruned``, which is how a reader
detects that its ``after`` is gone. (A gap left by a failed commit counts as
kept, so the log may then hold a few changes fewer than the count.)

The doorbell: the first change of a transaction sends ``NOTIFY`` on
:attr:`FeedStatements.channel` while some watcher waits; PostgreSQL delivers it
at commit, so a listener wakes only once the change is visible. A NOTIFY
costs every commit a lock and a queue entry, so it is sent only while the
bell sequence is ahead of the server's clock: a waiting watcher sets it
:data:`BELL_SECONDS` ahead, renewing it every :data:`BELL_RENEW` seconds,
*before* it reads the revision it waits beyond, in a statement that also takes
the order lock. A writer that read the bell before the renewal held that lock,
so it committed before the watcher's read, which sees its revision; a writer
after the renewal reads the bell on and rings. (``setval`` is not
transactional: the new bell is visible at once.)
"""

from __future__ import annotations

import hashlib

from ._postgres_sql import quote

#: Changes a count bound may run over before the log is pruned back to it.
PRUNE_SLACK_MIN = 100
#: The trigger reads the retention every this many changes.
PRUNE_CHECK = 32
#: A duration bound is applied every this many changes.
PRUNE_EVERY = 64
#: Seconds a waiting watcher keeps the doorbell on; it renews it every
#: BELL_RENEW seconds while it waits.
BELL_SECONDS = 60
BELL_RENEW = 20.0

# The transaction-local setting a purge statement sets (see the module docstring).
PURGING = "keyshelf.purging"

_VALUE = "tag, ival, fval, tval, bval"
_PREV = "ptag, pival, pfval, ptval, pbval"
# The server ms of a change (the NOW of _postgres_sql at the recording statement).
_AT_MS = "floor(extract(epoch FROM at) * 1000)::bigint"


class FeedStatements:
    """The feed statements of one ``(schema, table)``."""

    def __init__(self, schema: str, table: str) -> None:
        s = quote(schema)
        t = f"{s}.{quote(table)}"
        feed = f"{s}.{quote(table + '_feed')}"
        log = f"{s}.{quote(table + '_log')}"
        seq = f"{s}.{quote(table + '_rev')}"
        bell = f"{s}.{quote(table + '_bell')}"
        self.feed_name = f"{schema}.{table}_feed"
        digest = hashlib.sha1(f"{schema}.{table}".encode()).hexdigest()[:20]
        #: The LISTEN/NOTIFY channel (an identifier, short whatever the names).
        self.channel = f"keyshelf_feed_{digest}"
        #: The transaction-local setting holding the revision of the transaction.
        self.rev_setting = f"keyshelf.rev_{digest}"
        #: The advisory lock key that orders revisions (a signed 64-bit int).
        self.order_key = int.from_bytes(
            hashlib.sha1(f"keyshelf-feed-order:{schema}.{table}".encode()).digest()[:8],
            "big",
            signed=True,
        )
        function = f"{s}.{quote(table + '_feed')}"
        trigger = quote(table + "_feed")
        self.lock_name = f"keyshelf-feed:{schema}.{table}"
        rev = self.rev_setting
        # The first change of a transaction: the order lock, then the doorbell
        # (only while a watcher waits), then the number. CASE evaluates its
        # conditions in order, so the number is drawn under the lock.
        number = f"""CASE WHEN current_setting('{rev}', true) > '' THEN nextval('{seq}')
                     WHEN pg_advisory_xact_lock({self.order_key})::text = ''
                          AND (coalesce(pg_sequence_last_value('{bell}'), 0)
                                   <= extract(epoch FROM statement_timestamp())
                               OR pg_notify('{self.channel}', '')::text = '')
                     THEN nextval('{seq}') END"""
        slack = f"greatest(f.history_count / 10, {PRUNE_SLACK_MIN}) - {PRUNE_CHECK}"

        # -- switching on ---------------------------------------------------------
        #: An earlier layout of the feed (a counter row; no sequence): replaced by
        #: :attr:`create`, its revision carried over (see :attr:`upgrade`).
        self.old_layout = (
            "SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = to_regclass(%s) "
            "AND attname = 'xid' AND NOT attisdropped"
        )
        self.old_layout_params = (feed,)
        self.upgrade = [
            f"CREATE TEMPORARY TABLE keyshelf_feed_carry ON COMMIT DROP AS "
            f"SELECT rev FROM {feed} WHERE id = 1",
            f"DROP TRIGGER IF EXISTS {trigger} ON {t}",
            f"DROP TABLE {log}, {feed}",
        ]
        # After create: revisions go on from the old counter; all before are pruned.
        self.carry = [
            f"SELECT setval('{seq}', rev) FROM keyshelf_feed_carry WHERE rev > 0",
            f"INSERT INTO {feed} (id, pruned, low) SELECT 1, rev, rev + 1 FROM keyshelf_feed_carry",
        ]
        self.create = [
            f"""CREATE TABLE IF NOT EXISTS {feed} (
                id integer PRIMARY KEY CHECK (id = 1),
                pruned bigint NOT NULL,
                low bigint NOT NULL,
                history_count bigint,
                history_ms bigint
            )""",
            f"""CREATE TABLE IF NOT EXISTS {log} (
                n bigint PRIMARY KEY,
                rev bigint NOT NULL,
                ns text COLLATE "C" NOT NULL,
                key text COLLATE "C" NOT NULL,
                kind text NOT NULL,
                tag text, ival bigint, fval double precision, tval text, bval bytea,
                version integer,
                expires_at bigint,
                ptag text, pival bigint, pfval double precision, ptval text, pbval bytea,
                pexp bigint,
                at timestamptz NOT NULL
            )""",
            f"CREATE SEQUENCE IF NOT EXISTS {seq}",
            f"CREATE SEQUENCE IF NOT EXISTS {bell} MINVALUE 0 START 0",
            f"""CREATE OR REPLACE FUNCTION {function}() RETURNS trigger
            LANGUAGE plpgsql AS $feed$
            DECLARE
                this_n bigint;
                f record;
                gone_rev bigint;
                gone_n bigint;
            BEGIN
                IF TG_OP = 'UPDATE' AND NEW IS NOT DISTINCT FROM OLD THEN
                    RETURN NULL;
                END IF;
                this_n := {number};
                INSERT INTO {log} (n, rev, ns, key, kind, {_VALUE}, version, expires_at,
                                   {_PREV}, pexp, at)
                VALUES (this_n,
                    coalesce(nullif(current_setting('{rev}', true), '')::bigint,
                             set_config('{rev}', this_n::text, true)::bigint),
                    coalesce(NEW.ns, OLD.ns), coalesce(NEW.key, OLD.key),
                    CASE WHEN TG_OP <> 'DELETE' THEN 's'
                         WHEN current_setting('{PURGING}', true) = 'on' THEN 'e' ELSE 'd' END,
                    NEW.tag, NEW.ival, NEW.fval, NEW.tval, NEW.bval, NEW.version,
                    NEW.expires_at, OLD.tag, OLD.ival, OLD.fval, OLD.tval, OLD.bval,
                    OLD.expires_at, statement_timestamp());
                IF this_n % {PRUNE_CHECK} <> 0 THEN
                    RETURN NULL;
                END IF;
                SELECT * FROM {feed} WHERE id = 1 INTO f;
                IF f.history_count IS NOT NULL
                        AND this_n - f.low + 1 > f.history_count + {slack} THEN
                    WITH gone AS (
                        DELETE FROM {log} WHERE n <= this_n - f.history_count RETURNING rev
                    ) SELECT max(rev) FROM gone INTO gone_rev;
                    UPDATE {feed} SET pruned = greatest(pruned, coalesce(gone_rev, 0)),
                        low = greatest(low, this_n - f.history_count + 1) WHERE id = 1;
                END IF;
                IF f.history_ms IS NOT NULL AND this_n % {PRUNE_EVERY} = 0 THEN
                    WITH gone AS (
                        DELETE FROM {log}
                        WHERE at < statement_timestamp() - f.history_ms * interval '1 ms'
                          AND rev < current_setting('{rev}')::bigint
                        RETURNING rev, n
                    ) SELECT max(rev), max(n) FROM gone INTO gone_rev, gone_n;
                    UPDATE {feed} SET pruned = greatest(pruned, coalesce(gone_rev, 0)),
                        low = greatest(low, coalesce(gone_n, 0) + 1) WHERE id = 1;
                END IF;
                RETURN NULL;
            END
            $feed$""",
        ]
        self.has_trigger = (
            "SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = %s::regclass AND tgname = %s"
        )
        self.has_trigger_params = (f"{s}.{quote(table)}", table + "_feed")
        self.create_trigger = (
            f"CREATE CONSTRAINT TRIGGER {trigger} AFTER INSERT OR UPDATE OR DELETE ON {t} "
            f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {function}()"
        )
        # %s history_count, history_ms (both given: both bounds apply).
        self.configure = f"""
            INSERT INTO {feed} (id, pruned, low, history_count, history_ms)
            VALUES (1, 0, 1, %s, %s)
            ON CONFLICT (id) DO UPDATE SET history_count = excluded.history_count,
                history_ms = excluded.history_ms"""

        # -- reading ------------------------------------------------------------------
        # Whether the feed exists (to_regclass: no error when it does not).
        self.exists = "SELECT to_regclass(%s) IS NOT NULL"
        self.exists_params = (f"{s}.{quote(table + '_feed')}",)
        # The newest committed revision; never below the prune mark (the log may
        # be empty then), 0 before any change.
        self.revision = f"""
            SELECT greatest((SELECT rev FROM {log} ORDER BY n DESC LIMIT 1),
                            (SELECT pruned FROM {feed} WHERE id = 1), 0)"""
        self.pruned = f"SELECT pruned FROM {feed} WHERE id = 1"
        # prev: the old row's value only if it was live when the change was made.
        live_prev = f"CASE WHEN pexp IS NULL OR pexp > {_AT_MS} THEN ptag END"
        cols = f"rev, kind, ns, key, {_VALUE}, version, expires_at, {live_prev}, "
        cols += "pival, pfval, ptval, pbval, n"
        # n >= rev always, so "rev > after" is a range of the primary key.
        # %s after, after, limit  /  %s after, after, ns, limit
        self.read_all = f"SELECT {cols} FROM {log} WHERE n > %s AND rev > %s ORDER BY n LIMIT %s"
        self.read_ns = (
            f"SELECT {cols} FROM {log} WHERE n > %s AND rev > %s AND ns = %s ORDER BY n LIMIT %s"
        )
        # The rest of one revision after the limit cut it: %s last n read, rev
        self.read_rest_all = f"SELECT {cols} FROM {log} WHERE n > %s AND rev = %s ORDER BY n"
        self.read_rest_ns = (
            f"SELECT {cols} FROM {log} WHERE n > %s AND rev = %s AND ns = %s ORDER BY n"
        )
        self.count_log = f"SELECT count(*) FROM {log}"
        self.listen = f"LISTEN {self.channel}"
        # A waiting watcher keeps the doorbell on for BELL_SECONDS (renewed every
        # BELL_RENEW s); the order lock makes the renewal wait for a commit in flight.
        self.ring = (
            f"SELECT pg_advisory_xact_lock({self.order_key})::text, "
            f"setval('{bell}', greatest(coalesce(pg_sequence_last_value('{bell}'), 0), "
            f"extract(epoch FROM statement_timestamp())::bigint + {BELL_SECONDS}))"
        )
        self.notify = f"NOTIFY {self.channel}"
