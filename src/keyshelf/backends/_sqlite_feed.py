"""The SQLite change feed: tables and triggers in the store's file (docs/changes.md).

Switching the feed on (``enable_changes``) creates, in one transaction:

* ``<t>_feed``: one row with the highest revision pruned, the retention
  (``history_count``, ``history_ms``) and the marker ``expiring``, which
  differs from 0 only inside a write transaction that purges expired keys
  (its ``grouping`` column is read only by the triggers of shape 1, below);
* ``<t>_changes``: one row per change. Its ``seq`` (the rowid: the largest
  one plus 1) orders the changes and is the revision of a single change; the
  changes of one multi-key commit all carry the first one's ``seq`` in
  ``rev``, which the commit writes into its rows before it commits. So the
  revision is ``coalesce(rev, seq)``, never above ``seq``. The newest row is
  never pruned, so the revision never goes down;
* three triggers on the data table (``AFTER INSERT``, ``AFTER UPDATE``,
  ``AFTER DELETE``) that append the change, in the statement's own
  transaction: every write of every process and thread records, whatever
  code path it takes (the async fast path, a bounded store's evictions), from
  the first write after the feed was switched on. A set's trigger reads no
  other table;
* pruning, once every :data:`PRUNE_EVERY` changes: the data table's triggers
  delete the settings row when the change they appended has a ``seq`` that is
  a multiple of PRUNE_EVERY, and a trigger on that deletion drops what is
  beyond the retention and puts the row back with the new ``pruned`` (so the
  table holds at most ``history_count + PRUNE_EVERY`` rows under a count
  bound). The deletion matches no row on the other writes, which is why the
  pruning program costs a write nothing until it is due.

Revisions are taken under SQLite's write lock (every write is one statement
or one ``BEGIN IMMEDIATE`` transaction), so they increase in commit order;
a rolled-back transaction takes its rows, and so its revisions, back.
The data table's shape check accepts exactly these triggers and those of
shape 1 (:func:`is_ours`).

Shape 1 (keyshelf before this layout) read the settings row in every
trigger, for the commit's marker ``grouping``, and pruned from a trigger on
the change table that ran on every change (and read the oldest 1,024
changes on every prune): a ``set`` with it cost ~1.3 us more on average than
now (docs/changes.md has the measurements; most of what remains is the second
page every commit writes to the WAL, which no trigger avoids). Its tables are
the same; opening a store that holds its triggers (not read-only) replaces
them in one write transaction (:func:`install`), keeping every change
recorded. Its definitions stay here only to recognise it.

Types: a row inserted or updated is a ``"set"``; a deleted row is a
``"delete"``, or an ``"expire"`` while ``expiring`` is set. ``prev`` of a set
is the replaced value if it was still live at the write's ``updated_at``.
``at``: the writer's clock (``updated_at``) for sets, SQLite's clock for
removals; duration retention compares them.
"""

from __future__ import annotations

import re
import sqlite3

#: Changes between two prunes (the change whose ``seq`` is a multiple of
#: PRUNE_EVERY prunes).
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

_COLUMNS = "(rev, type, ns, key, vtype, value, version, expires_at, ptype, prev, at)"
_PREV_LIVE = "old.expires_at IS NULL OR old.expires_at > new.updated_at"


def trigger_sql(t: str) -> dict[str, str]:
    """Name -> definition of every trigger of the feed on the data table ``t``."""
    f, c = feed_table(t), changes_table(t)
    # Inside a trigger, last_insert_rowid() is the seq of the change just
    # appended. The deletion matches no row unless a prune is due (see
    # prune_trigger_sql); its WHERE reads no table.
    due = f"DELETE FROM {f} WHERE id = CASE WHEN last_insert_rowid() % {PRUNE_EVERY} = 0 THEN 1 END"
    return {
        f"{t}_feed_insert": f"""CREATE TRIGGER {t}_feed_insert AFTER INSERT ON {t}
BEGIN
    INSERT INTO {c} {_COLUMNS} VALUES (NULL, 'set', new.ns, new.key, new.type,
        new.value, new.version, new.expires_at, NULL, NULL, new.updated_at);
    {due};
END""",
        f"{t}_feed_update": f"""CREATE TRIGGER {t}_feed_update AFTER UPDATE ON {t}
BEGIN
    INSERT INTO {c} {_COLUMNS} VALUES (NULL, 'set', new.ns, new.key, new.type,
        new.value, new.version, new.expires_at,
        CASE WHEN {_PREV_LIVE} THEN old.type END,
        CASE WHEN {_PREV_LIVE} THEN old.value END, new.updated_at);
    {due};
END""",
        f"{t}_feed_delete": f"""CREATE TRIGGER {t}_feed_delete AFTER DELETE ON {t}
BEGIN
    INSERT INTO {c} {_COLUMNS} VALUES (NULL,
        CASE WHEN (SELECT expiring FROM {f}) THEN 'expire' ELSE 'delete' END,
        old.ns, old.key, NULL, NULL, NULL, NULL, old.type, old.value, {_NOW});
    {due};
END""",
    }


def prune_trigger_sql(t: str) -> tuple[str, str]:
    """The pruning trigger, on the deletion of the settings row: (name, definition).

    Runs when a change whose ``seq`` is a multiple of :data:`PRUNE_EVERY` was
    just appended (the newest row, ``seq`` ``top``), with the settings in
    ``old``. Puts the settings row back, then drops the rows beyond the count
    bound, and old rows (among the oldest ``8 * PRUNE_EVERY``) beyond the age
    bound, never the newest row (its ``seq`` carries the revision on);
    ``pruned`` keeps the highest revision dropped. Without an age bound the
    window is not read (shape 1 read it on every prune: ~0.5 us per write).
    """
    f, c = feed_table(t), changes_table(t)
    name = f"{f}_prune"
    top = f"(SELECT max(seq) FROM {c})"
    at = f"(SELECT at FROM {c} WHERE seq = {top})"
    window = f"(SELECT seq, rev, at FROM {c} ORDER BY seq LIMIT {8 * PRUNE_EVERY})"
    old_rows = f"SELECT seq, rev FROM {window} WHERE at < {at} - old.history_ms"
    return (
        name,
        f"""CREATE TRIGGER {name} AFTER DELETE ON {f}
BEGIN
    INSERT INTO {f} VALUES (old.id, max(old.pruned, coalesce((
        SELECT {REVISION} FROM {c} WHERE seq <= {top} - old.history_count
        ORDER BY seq DESC LIMIT 1), 0)),
        old.history_count, old.history_ms, old.grouping, old.expiring);
    DELETE FROM {c} WHERE seq <= {top} - old.history_count;
    UPDATE {f} SET pruned = max(pruned, coalesce((
        SELECT max({REVISION}) FROM ({old_rows}) WHERE seq < {top}), 0))
        WHERE old.history_ms IS NOT NULL;
    DELETE FROM {c} WHERE old.history_ms IS NOT NULL AND seq < {top} AND seq IN (
        SELECT seq FROM {window} WHERE at < {at} - old.history_ms);
END""",
    )


# -- shape 1: recognised, to be replaced (install) -------------------------------


def _v1_trigger_sql(t: str) -> dict[str, str]:
    """Shape 1's triggers on the data table (same names as now)."""
    f, c = feed_table(t), changes_table(t)
    group = f"nullif((SELECT grouping FROM {f}), 0)"
    return {
        f"{t}_feed_insert": f"""CREATE TRIGGER {t}_feed_insert AFTER INSERT ON {t}
BEGIN
    INSERT INTO {c} {_COLUMNS} VALUES ({group}, 'set', new.ns, new.key, new.type,
        new.value, new.version, new.expires_at, NULL, NULL, new.updated_at);
END""",
        f"{t}_feed_update": f"""CREATE TRIGGER {t}_feed_update AFTER UPDATE ON {t}
BEGIN
    INSERT INTO {c} {_COLUMNS} VALUES ({group}, 'set', new.ns, new.key, new.type,
        new.value, new.version, new.expires_at,
        CASE WHEN {_PREV_LIVE} THEN old.type END,
        CASE WHEN {_PREV_LIVE} THEN old.value END, new.updated_at);
END""",
        f"{t}_feed_delete": f"""CREATE TRIGGER {t}_feed_delete AFTER DELETE ON {t}
BEGIN
    INSERT INTO {c} {_COLUMNS} VALUES ({group},
        CASE WHEN (SELECT expiring FROM {f}) THEN 'expire' ELSE 'delete' END,
        old.ns, old.key, NULL, NULL, NULL, NULL, old.type, old.value, {_NOW});
END""",
    }


def _v1_prune_trigger_sql(t: str) -> tuple[str, str]:
    """Shape 1's pruning trigger, on the change table (every change ran it)."""
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


def _same(sql: str | None, want: str) -> bool:
    return sql is not None and _tokens(sql) == _tokens(want)


def is_ours(t: str, name: str, sql: str | None) -> bool:
    """True if trigger ``name`` on ``t`` is exactly one the feed creates, or shape 1's."""
    return any(
        name in shape and _same(sql, shape[name]) for shape in (trigger_sql(t), _v1_trigger_sql(t))
    )


def _wanted(t: str) -> dict[str, tuple[str, str | None]]:
    """Trigger name -> (definition now, shape 1's definition or None)."""
    v1 = _v1_trigger_sql(t)
    wanted: dict[str, tuple[str, str | None]] = {
        name: (sql, v1[name]) for name, sql in trigger_sql(t).items()
    }
    name, sql = prune_trigger_sql(t)
    wanted[name] = (sql, None)
    old_name, old_sql = _v1_prune_trigger_sql(t)
    wanted[old_name] = ("", old_sql)  # shape 1 only: dropped, not replaced
    return wanted


def _triggers(conn: sqlite3.Connection, t: str) -> dict[str, str | None]:
    found: dict[str, str | None] = {
        name: sql
        for name, sql in conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN (?, ?, ?)",
            (t, feed_table(t), changes_table(t)),
        )
    }
    return found


def needs_install(conn: sqlite3.Connection, t: str) -> bool:
    """True if the file holds shape 1's triggers (reads only; see :func:`install`)."""
    found = _triggers(conn, t)
    return any(
        old is not None and _same(found.get(name), old) for name, (_, old) in _wanted(t).items()
    )


def install(conn: sqlite3.Connection, t: str) -> None:
    """Create the feed's missing triggers and replace shape 1's (in the caller's transaction).

    Only the triggers change: every change recorded stays, with its revision,
    and ``pruned`` keeps its value. A trigger of another definition under one
    of these names is left alone (the data table's shape check refuses it).
    """
    found = _triggers(conn, t)
    for name, (sql, old) in _wanted(t).items():
        if name not in found:
            if sql:
                conn.execute(sql)
        elif old is not None and _same(found[name], old):
            conn.execute(f"DROP TRIGGER {name}")
            if sql:
                conn.execute(sql)


def enable(
    conn: sqlite3.Connection, t: str, history_count: int | None, history_ms: int | None
) -> None:
    """Create what is missing and set the retention (inside the caller's transaction)."""
    for sql in schema_sql(t):
        conn.execute(sql)
    install(conn, t)
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


def group_start(conn: sqlite3.Connection, t: str) -> int:
    """The ``seq`` the next change will get (inside a write transaction: see :func:`group_end`)."""
    row = conn.execute(f"SELECT coalesce(max(seq), 0) + 1 FROM {changes_table(t)}").fetchone()
    return int(row[0])


def group_end(conn: sqlite3.Connection, t: str, first: int) -> None:
    """Give every change since ``first`` the revision ``first`` (same transaction).

    A prune inside the transaction may have dropped some of them, and then
    recorded their own ``seq`` as ``pruned``; the commit's revision, which is
    at most that, is what was dropped.
    """
    conn.execute(f"UPDATE {changes_table(t)} SET rev = ?1 WHERE seq > ?1", (first,))
    conn.execute(f"UPDATE {feed_table(t)} SET pruned = ?1 WHERE pruned > ?1", (first,))
