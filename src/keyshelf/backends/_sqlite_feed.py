"""The SQLite change feed: tables and triggers in the store's file (docs/changes.md).

Switching the feed on (``enable_changes``) creates, in one transaction:

* ``<t>_feed``: one row with the highest revision pruned, the retention
  (``history_count``, ``history_ms``) and two markers that only ever differ
  from 0 inside a write transaction: ``grouping`` (a multi-key commit is
  running: the ``seq`` its first change gets) and ``expiring`` (the purge of
  expired keys is running);
* ``<t>_changes``: one row per change. Its ``seq`` (the rowid: the largest
  one plus 1) orders the changes and is the revision of a single change; the
  changes of one commit all carry the first one's ``seq`` in ``rev``. So the
  revision is ``coalesce(rev, seq)``, never above ``seq``, and a write costs
  one row in one table: the feed's settings row is only read. The newest
  row is never pruned, so the revision never goes down;
* three triggers on the data table (``AFTER INSERT``, ``AFTER UPDATE``,
  ``AFTER DELETE``) that take the next revision and append the change, in the
  statement's own transaction: every write of every process and thread
  records, whatever code path it takes (the async fast path, a bounded
  store's evictions), from the first write after the feed was switched on;
* a trigger on ``<t>_changes`` that prunes, once every :data:`PRUNE_EVERY`
  changes, what is beyond the retention (so the table holds at most
  ``history_count + PRUNE_EVERY`` rows under a count bound).

Revisions are taken under SQLite's write lock (every write is one statement
or one ``BEGIN IMMEDIATE`` transaction), so they increase in commit order;
a rolled-back transaction takes its rows, and so its revisions, back.
The data table's shape check accepts exactly these triggers
(:func:`is_ours`).

Types: a row inserted or updated is a ``"set"``; a deleted row is a
``"delete"``, or an ``"expire"`` while ``expiring`` is set. ``prev`` of a set
is the replaced value if it was still live at the write's ``updated_at``.
``at``: the writer's clock (``updated_at``) for sets, SQLite's clock for
removals; duration retention compares them.
"""

from __future__ import annotations

import re
import sqlite3

#: Changes between two prunes (the trigger on the change table runs on every
#: PRUNE_EVERY-th change).
PRUNE_EVERY = 128

# SQLite's clock in epoch milliseconds (removals carry no time of their own).
_NOW = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"


def _tokens(sql: str) -> list[str]:
    return re.findall(r"\w+|[^\s\w]", sql.lower())


def feed_table(t: str) -> str:
    return f"{t}_feed"


def changes_table(t: str) -> str:
    return f"{t}_changes"


def schema_sql(t: str) -> list[str]:
    """The tables of the feed and its settings row, in creation order."""
    f, c = feed_table(t), changes_table(t)
    return [
        f"""CREATE TABLE IF NOT EXISTS {f} (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            pruned INTEGER NOT NULL,
            history_count INTEGER,
            history_ms INTEGER,
            grouping INTEGER NOT NULL,
            expiring INTEGER NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS {c} (
            seq INTEGER PRIMARY KEY,
            rev INTEGER,
            type TEXT NOT NULL,
            ns TEXT NOT NULL,
            key TEXT NOT NULL,
            vtype TEXT,
            value BLOB,
            version INTEGER,
            expires_at INTEGER,
            ptype TEXT,
            prev BLOB,
            at INTEGER NOT NULL)""",
        f"INSERT OR IGNORE INTO {f} VALUES (1, 0, NULL, NULL, 0, 0)",
    ]


#: The revision of a change row: its own ``seq``, or the commit's (``rev``).
REVISION = "coalesce(rev, seq)"


def trigger_sql(t: str) -> dict[str, str]:
    """Name -> definition of every trigger of the feed on the data table ``t``."""
    f, c = feed_table(t), changes_table(t)
    columns = "(rev, type, ns, key, vtype, value, version, expires_at, ptype, prev, at)"
    # Inside a multi-key commit, grouping holds the seq its first change gets.
    group = f"nullif((SELECT grouping FROM {f}), 0)"
    prev_live = "old.expires_at IS NULL OR old.expires_at > new.updated_at"
    return {
        f"{t}_feed_insert": f"""CREATE TRIGGER {t}_feed_insert AFTER INSERT ON {t}
BEGIN
    INSERT INTO {c} {columns} VALUES ({group}, 'set', new.ns, new.key, new.type,
        new.value, new.version, new.expires_at, NULL, NULL, new.updated_at);
END""",
        f"{t}_feed_update": f"""CREATE TRIGGER {t}_feed_update AFTER UPDATE ON {t}
BEGIN
    INSERT INTO {c} {columns} VALUES ({group}, 'set', new.ns, new.key, new.type,
        new.value, new.version, new.expires_at,
        CASE WHEN {prev_live} THEN old.type END,
        CASE WHEN {prev_live} THEN old.value END, new.updated_at);
END""",
        f"{t}_feed_delete": f"""CREATE TRIGGER {t}_feed_delete AFTER DELETE ON {t}
BEGIN
    INSERT INTO {c} {columns} VALUES ({group},
        CASE WHEN (SELECT expiring FROM {f}) THEN 'expire' ELSE 'delete' END,
        old.ns, old.key, NULL, NULL, NULL, NULL, old.type, old.value, {_NOW});
END""",
    }


def prune_trigger_sql(t: str) -> tuple[str, str]:
    """The pruning trigger on the change table: (name, definition).

    Drops the rows beyond the count bound, and old rows (among the oldest
    ``8 * PRUNE_EVERY``) beyond the age bound, never the newest row (its
    ``seq`` carries the revision on); ``pruned`` keeps the highest revision
    dropped.
    """
    f, c = feed_table(t), changes_table(t)
    name = f"{c}_prune"
    window = f"(SELECT seq, rev, at FROM {c} ORDER BY seq LIMIT {8 * PRUNE_EVERY})"
    old_rows = f"SELECT seq, rev FROM {window} WHERE at < new.at - {f}.history_ms"
    return (
        name,
        f"""CREATE TRIGGER {name} AFTER INSERT ON {c}
WHEN new.seq % {PRUNE_EVERY} = 0
BEGIN
    UPDATE {f} SET pruned = max(pruned, coalesce((
        SELECT {REVISION} FROM {c} WHERE seq <= new.seq - {f}.history_count
        ORDER BY seq DESC LIMIT 1), 0))
        WHERE history_count IS NOT NULL;
    DELETE FROM {c} WHERE seq <= new.seq - (SELECT history_count FROM {f});
    UPDATE {f} SET pruned = max(pruned, coalesce((
        SELECT max({REVISION}) FROM ({old_rows}) WHERE seq < new.seq), 0))
        WHERE history_ms IS NOT NULL;
    DELETE FROM {c} WHERE seq < new.seq AND seq IN (
        SELECT seq FROM {window} WHERE at < new.at - (SELECT history_ms FROM {f}));
END""",
    )


def is_ours(t: str, name: str, sql: str | None) -> bool:
    """True if trigger ``name`` on ``t`` is exactly one the feed creates."""
    want = trigger_sql(t).get(name)
    return want is not None and sql is not None and _tokens(sql) == _tokens(want)


def enable(
    conn: sqlite3.Connection, t: str, history_count: int | None, history_ms: int | None
) -> None:
    """Create what is missing and set the retention (inside the caller's transaction)."""
    for sql in schema_sql(t):
        conn.execute(sql)
    existing = {
        name
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN (?, ?)",
            (t, changes_table(t)),
        )
    }
    name, prune = prune_trigger_sql(t)
    for trigger, sql in [*trigger_sql(t).items(), (name, prune)]:
        if trigger not in existing:
            conn.execute(sql)
    conn.execute(
        f"UPDATE {feed_table(t)} SET history_count = ?, history_ms = ?",
        (history_count, history_ms),
    )


def settings(conn: sqlite3.Connection, t: str) -> tuple[int | None, int | None] | None:
    """The retention of an enabled feed, None if the feed is off (reads only)."""
    try:
        row = conn.execute(f"SELECT history_count, history_ms FROM {feed_table(t)}").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    return None if row is None else (row[0], row[1])
