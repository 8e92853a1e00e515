"""The PostgreSQL change feed: its tables, its trigger and its queries (SQL text only).

No I/O, no driver import: the async backend and its generated sync twin build
their feed statements here. The feed is off until :meth:`FeedStatements.enable`
runs; everything it needs then lives in the database, so every writer of every
process records from its next statement:

``<table>_feed`` (one row)
    ``rev`` the latest revision, ``pruned`` the highest revision pruned,
    ``kept`` the number of changes kept, the retention (``history_count``,
    ``history_ms``, NULL = no such bound), ``bell`` (the doorbell, below) and
    ``xid``/``seq`` (the transaction that took ``rev`` and its last change).
``<table>_log``
    One row per change: ``(rev, seq)`` (``seq`` orders the changes of one
    revision), namespace, key, ``kind`` (``s``/``d``/``e``), the value
    columns after the change, version, expiry, the value columns before the
    change (``p*``) and ``at`` (server ms, for a duration bound).
``<table>_feed`` (trigger)
    A *deferred* constraint trigger on the data table, for each row inserted,
    updated or deleted, running the function ``<table>_feed``.

Why deferred: the trigger runs at COMMIT, after every statement of the
transaction, and takes the revision there with ``UPDATE <table>_feed SET rev =
rev + 1``. The row lock of that update is held until the commit completes,
so revisions are assigned in commit order: a transaction cannot take revision
11 and commit before the one holding revision 10 (a plain sequence could, and
a watcher already at 11 would then never see 10). Taking the lock last also
means a transaction never holds it while it waits for a row lock, so the lock
cannot join a deadlock. Every change of one transaction shares one revision:
the feed row remembers the id of the transaction that took it (``xid``; the
row stays locked by that transaction until it commits), and ``seq`` orders
the changes. Taking the revision and inserting the change is one statement.

A DELETE records ``"delete"``, or ``"expire"`` when the statement marked
itself as purging expired rows (the transaction-local setting
``keyshelf.purging``, set by the purge statements in their first step).
The value before (``prev``) is the old row's only if it was live.

Pruning is amortised inside the trigger: a count bound lets the log grow
``max(count // 10, 100)`` changes past it, then deletes the oldest down to the
bound; a duration bound is applied every 64th revision. Both raise
``pruned``, which is how a reader detects that its ``after`` is gone.

The doorbell: the first change of a transaction sends ``NOTIFY`` on
:attr:`FeedStatements.channel` while some watcher waits; PostgreSQL delivers it
at commit, so a listener wakes only once the change is visible. A NOTIFY
costs every commit a lock and a queue entry (about as much as the rest of the
recording), so it is sent only while the feed row's ``bell`` (server ms) is in
the future: a waiting watcher sets it :data:`BELL_MS` ahead, renewing it every
:data:`BELL_RENEW` seconds, *before* it reads the revision it waits beyond. The
row lock orders the two: a writer that took its revision before the watcher's
renewal committed before it, so the watcher's read sees that revision; a writer
after it sees the bell on and rings.
"""

from __future__ import annotations

import hashlib

from ._postgres_sql import NOW, quote

#: Changes a count bound may run over before the log is pruned back to it.
PRUNE_SLACK_MIN = 100
#: A duration bound is applied every this many revisions.
PRUNE_EVERY = 64
#: Milliseconds a waiting watcher keeps the doorbell on; it renews it every
#: BELL_RENEW seconds while it waits.
BELL_MS = 60_000
BELL_RENEW = 20.0

# The transaction-local setting a purge statement sets (see the module docstring).
PURGING = "keyshelf.purging"

_VALUE = "tag, ival, fval, tval, bval"
_PREV = "ptag, pival, pfval, ptval, pbval"


class FeedStatements:
    """The feed statements of one ``(schema, table)``."""

    def __init__(self, schema: str, table: str) -> None:
        s = quote(schema)
        t = f"{s}.{quote(table)}"
        feed = f"{s}.{quote(table + '_feed')}"
        log = f"{s}.{quote(table + '_log')}"
        self.feed_name = f"{schema}.{table}_feed"
        digest = hashlib.sha1(f"{schema}.{table}".encode()).hexdigest()[:20]
        #: The LISTEN/NOTIFY channel (an identifier, short whatever the names).
        self.channel = f"keyshelf_feed_{digest}"
        function = f"{s}.{quote(table + '_feed')}"
        trigger = quote(table + "_feed")
        self.lock_name = f"keyshelf-feed:{schema}.{table}"

        # -- switching on ---------------------------------------------------------
        self.create = [
            f"""CREATE TABLE IF NOT EXISTS {feed} (
                id integer PRIMARY KEY CHECK (id = 1),
                rev bigint NOT NULL,
                pruned bigint NOT NULL,
                kept bigint NOT NULL,
                history_count bigint,
                history_ms bigint,
                bell bigint NOT NULL DEFAULT 0,
                xid bigint NOT NULL DEFAULT 0,
                seq integer NOT NULL DEFAULT 0
            )""",
            f"""CREATE TABLE IF NOT EXISTS {log} (
                rev bigint NOT NULL,
                seq integer NOT NULL,
                ns text COLLATE "C" NOT NULL,
                key text COLLATE "C" NOT NULL,
                kind text NOT NULL,
                tag text, ival bigint, fval double precision, tval text, bval bytea,
                version integer,
                expires_at bigint,
                ptag text, pival bigint, pfval double precision, ptval text, pbval bytea,
                at bigint NOT NULL,
                PRIMARY KEY (rev, seq)
            )""",
            f"""CREATE OR REPLACE FUNCTION {function}() RETURNS trigger
            LANGUAGE plpgsql AS $feed$
            DECLARE
                now_ms bigint := {NOW};
                kind text := 's';
                was_live boolean;
                f record;
                gone_rev bigint;
                gone_count bigint;
            BEGIN
                IF TG_OP = 'UPDATE' AND NEW IS NOT DISTINCT FROM OLD THEN
                    RETURN NULL;
                END IF;
                IF TG_OP = 'DELETE' THEN
                    kind := CASE WHEN current_setting('{PURGING}', true) = 'on'
                                 THEN 'e' ELSE 'd' END;
                END IF;
                was_live := TG_OP <> 'INSERT'
                    AND (OLD.expires_at IS NULL OR OLD.expires_at > now_ms);
                -- One statement: the revision (a new one for the first change of
                -- this transaction, whose id the feed row remembers) and the change.
                WITH taken AS (
                    UPDATE {feed} SET
                        rev = CASE WHEN xid = txid_current() THEN rev ELSE rev + 1 END,
                        seq = CASE WHEN xid = txid_current() THEN seq + 1 ELSE 0 END,
                        xid = txid_current(), kept = kept + 1
                    WHERE id = 1
                    RETURNING rev, seq, kept, history_count, history_ms, bell
                ), added AS (
                    INSERT INTO {log} (rev, seq, ns, key, kind, {_VALUE}, version, expires_at,
                                       {_PREV}, at)
                    SELECT taken.rev, taken.seq, coalesce(NEW.ns, OLD.ns),
                        coalesce(NEW.key, OLD.key), kind, NEW.tag, NEW.ival, NEW.fval,
                        NEW.tval, NEW.bval, NEW.version, NEW.expires_at,
                        CASE WHEN was_live THEN OLD.tag END, CASE WHEN was_live THEN OLD.ival END,
                        CASE WHEN was_live THEN OLD.fval END, CASE WHEN was_live THEN OLD.tval END,
                        CASE WHEN was_live THEN OLD.bval END, now_ms
                    FROM taken
                )
                SELECT * FROM taken INTO f;
                IF f.seq = 0 AND f.bell > now_ms THEN
                    PERFORM pg_notify('{self.channel}', '');
                END IF;
                IF f.history_count IS NOT NULL
                        AND f.kept > f.history_count
                                     + greatest(f.history_count / 10, {PRUNE_SLACK_MIN}) THEN
                    WITH gone AS (
                        DELETE FROM {log} l USING (
                            SELECT l2.rev, l2.seq FROM {log} l2 ORDER BY l2.rev, l2.seq
                            LIMIT f.kept - f.history_count
                        ) d WHERE l.rev = d.rev AND l.seq = d.seq RETURNING l.rev
                    ) SELECT max(rev), count(*) FROM gone INTO gone_rev, gone_count;
                    UPDATE {feed} SET pruned = greatest(pruned, coalesce(gone_rev, 0)),
                        kept = kept - gone_count WHERE id = 1;
                END IF;
                IF f.history_ms IS NOT NULL AND f.seq = 0 AND f.rev % {PRUNE_EVERY} = 0 THEN
                    WITH gone AS (
                        DELETE FROM {log} WHERE at < now_ms - f.history_ms AND rev < f.rev
                        RETURNING rev
                    ) SELECT max(rev), count(*) FROM gone INTO gone_rev, gone_count;
                    UPDATE {feed} SET pruned = greatest(pruned, coalesce(gone_rev, 0)),
                        kept = kept - gone_count WHERE id = 1;
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
            INSERT INTO {feed} (id, rev, pruned, kept, history_count, history_ms)
            VALUES (1, 0, 0, 0, %s, %s)
            ON CONFLICT (id) DO UPDATE SET history_count = excluded.history_count,
                history_ms = excluded.history_ms"""

        # -- reading ------------------------------------------------------------------
        # Whether the feed exists (to_regclass: no error when it does not).
        self.exists = "SELECT to_regclass(%s) IS NOT NULL"
        self.exists_params = (f"{s}.{quote(table + '_feed')}",)
        self.revision = f"SELECT rev FROM {feed} WHERE id = 1"
        self.pruned = f"SELECT pruned FROM {feed} WHERE id = 1"
        cols = f"rev, kind, ns, key, {_VALUE}, version, expires_at, {_PREV}"
        # %s after, limit  /  %s after, ns, limit
        self.read_all = f"SELECT {cols} FROM {log} WHERE rev > %s ORDER BY rev, seq LIMIT %s"
        self.read_ns = (
            f"SELECT {cols} FROM {log} WHERE rev > %s AND ns = %s ORDER BY rev, seq LIMIT %s"
        )
        # The rest of one revision after the limit cut it: %s rev, seq count skipped
        self.read_rest_all = f"SELECT {cols} FROM {log} WHERE rev = %s ORDER BY seq OFFSET %s"
        self.read_rest_ns = (
            f"SELECT {cols} FROM {log} WHERE rev = %s AND ns = %s ORDER BY seq OFFSET %s"
        )
        self.count_log = f"SELECT count(*) FROM {log}"
        self.listen = f"LISTEN {self.channel}"
        # A waiting watcher keeps the doorbell on for BELL_MS (renewed every BELL_RENEW s).
        self.ring = f"UPDATE {feed} SET bell = greatest(bell, {NOW} + {BELL_MS}) WHERE id = 1"
        self.notify = f"NOTIFY {self.channel}"
