"""Crafted SQLite files: keyshelf checks the real shape of its tables before writing.

Under keyshelf's names (``keyshelf``, ``keyshelf_meta``, ``keyshelf_expiry``)
a file must hold exactly what keyshelf creates: the columns with their
declared types, ``PRIMARY KEY (ns, key)``, ``WITHOUT ROWID``, the meta table,
a numeric schema version, the expiry index, and no trigger or other index on
those tables. Anything else is refused at open with IncompatibleStoreError
naming the problem, through both APIs, and the file is byte-identical
afterwards (its SHA-256 is compared).
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from pathlib import Path

import pytest

import keyshelf

DATA = """CREATE TABLE keyshelf (
    ns TEXT NOT NULL,
    key TEXT NOT NULL,
    type TEXT NOT NULL,
    value BLOB,
    expires_at INTEGER,
    meta BLOB,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (ns, key)
) WITHOUT ROWID"""
META = "CREATE TABLE keyshelf_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
VERSION = "INSERT INTO keyshelf_meta VALUES ('schema_version', '1')"
INDEX = "CREATE INDEX keyshelf_expiry ON keyshelf (expires_at) WHERE expires_at IS NOT NULL"
ROW = "INSERT INTO keyshelf VALUES ('default', 'password', 's', 'hunter1', NULL, NULL, 1, 1, 1)"

# name -> (statements building the file, text the error must contain)
HOSTILE: dict[str, tuple[list[str], str]] = {
    "no-primary-key": (
        [DATA.replace(",\n    PRIMARY KEY (ns, key)", "").replace(" WITHOUT ROWID", "")],
        "primary key is not (ns, key)",
    ),
    "no-primary-key-with-meta": (
        [
            DATA.replace(",\n    PRIMARY KEY (ns, key)", "").replace(" WITHOUT ROWID", ""),
            META,
            VERSION,
        ],
        "primary key is not (ns, key)",
    ),
    "primary-key-on-key-only": (
        [DATA.replace("PRIMARY KEY (ns, key)", "PRIMARY KEY (key)"), META, VERSION, INDEX],
        "primary key is not (ns, key)",
    ),
    "rowid-table": (
        [DATA.replace(" WITHOUT ROWID", ""), META, VERSION, INDEX],
        "not a WITHOUT ROWID table",
    ),
    "wrong-type": (
        [DATA.replace("value BLOB", "value TEXT"), META, VERSION, INDEX],
        "column value is TEXT, not BLOB",
    ),
    "nullable-column": (
        [DATA.replace("type TEXT NOT NULL", "type TEXT"), META, VERSION, INDEX],
        "column type is not declared as keyshelf's",
    ),
    "default-value": (
        [
            DATA.replace("version INTEGER NOT NULL", "version INTEGER NOT NULL DEFAULT 666"),
            META,
            VERSION,
            INDEX,
        ],
        "column version is not declared as keyshelf's",
    ),
    "extra-column": (
        [DATA, META, VERSION, INDEX, "ALTER TABLE keyshelf ADD COLUMN note TEXT"],
        "its columns are",
    ),
    "nocase-key": (
        [
            DATA.replace("key TEXT NOT NULL", "key TEXT NOT NULL COLLATE NOCASE"),
            META,
            VERSION,
            INDEX,
        ],
        "definition differs",
    ),
    "check-constraint": (
        [
            DATA.replace("PRIMARY KEY (ns, key)", "PRIMARY KEY (ns, key), CHECK (key != 'x')"),
            META,
            VERSION,
            INDEX,
        ],
        "definition differs",
    ),
    "view-with-meta": (
        [META, VERSION, "CREATE VIEW keyshelf AS SELECT 1 AS ns"],
        "view keyshelf is not keyshelf's",
    ),
    "meta-without-data-table": ([META, VERSION], "data table keyshelf is missing"),
    "meta-beside-foreign-table": (
        [META, VERSION, "CREATE TABLE keyshelf (id INTEGER PRIMARY KEY, name TEXT)"],
        "its columns are id, name",
    ),
    "trigger-on-data": (
        [
            DATA,
            META,
            VERSION,
            INDEX,
            "CREATE TABLE loot (key TEXT, value BLOB)",
            "CREATE TRIGGER steal AFTER INSERT ON keyshelf BEGIN "
            "INSERT INTO loot VALUES (new.key, new.value); "
            "UPDATE keyshelf SET value = 666, type = 'i' WHERE key = new.key; END",
        ],
        "trigger steal on keyshelf's table keyshelf",
    ),
    "trigger-on-meta": (
        [
            DATA,
            META,
            VERSION,
            INDEX,
            "CREATE TRIGGER t AFTER UPDATE ON keyshelf_meta BEGIN SELECT 1; END",
        ],
        "trigger t on keyshelf's table keyshelf_meta",
    ),
    "trigger-without-meta": (
        [DATA, "CREATE TRIGGER t BEFORE DELETE ON keyshelf BEGIN SELECT 1; END"],
        "trigger t",
    ),
    "non-numeric-version": (
        [DATA, META, "INSERT INTO keyshelf_meta VALUES ('schema_version', 'one')", INDEX],
        "schema_version 'one'",
    ),
    "fractional-version": (
        [DATA, META, "INSERT INTO keyshelf_meta VALUES ('schema_version', '1.0')", INDEX],
        "not a keyshelf schema version",
    ),
    "superscript-version": (
        [DATA, META, "INSERT INTO keyshelf_meta VALUES ('schema_version', '\u00b9')", INDEX],
        "not a keyshelf schema version",
    ),
    "zero-version": (
        [DATA, META, "INSERT INTO keyshelf_meta VALUES ('schema_version', '0')", INDEX],
        "not a keyshelf schema version",
    ),
    "huge-version": (
        [DATA, META, f"INSERT INTO keyshelf_meta VALUES ('schema_version', '{'9' * 5000}')", INDEX],
        "not a keyshelf schema version",
    ),
    "blob-version": (
        [DATA, META, "INSERT INTO keyshelf_meta VALUES ('schema_version', x'31')", INDEX],
        "not a keyshelf schema version",
    ),
    "no-version-row": ([DATA, META, INDEX], "no schema_version"),
    "expiry-index-on-other-column": (
        [DATA, META, VERSION, "CREATE INDEX keyshelf_expiry ON keyshelf (value)"],
        "index keyshelf_expiry is not keyshelf's",
    ),
    "extra-unique-index": (
        [DATA, META, VERSION, INDEX, "CREATE UNIQUE INDEX grab ON keyshelf (value)"],
        "index grab is not keyshelf's",
    ),
    "meta-as-view": (
        [DATA, INDEX, "CREATE VIEW keyshelf_meta AS SELECT 'schema_version' AS name"],
        "view keyshelf_meta is not keyshelf's",
    ),
}


def build(path: Path, statements: list[str]) -> str:
    """Create the file (rollback journal: no sidecars) and return its SHA-256."""
    conn = sqlite3.connect(path)
    for sql in statements:
        conn.execute(sql)
        if sql.lower().startswith("create table keyshelf (") and "version integer" in sql.lower():
            conn.execute(ROW)  # before any trigger exists
    conn.commit()
    conn.close()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def open_and_write(path: Path, api: str, **options: object) -> None:
    if api == "sync":
        with keyshelf.open(path, **options) as kv:
            kv.set("password", "hunter2")
        return

    async def run() -> None:
        async with keyshelf.open_async(path, **options) as kv:
            await kv.set("password", "hunter2")

    asyncio.run(run())


@pytest.mark.parametrize("api", ["sync", "async"])
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_crafted_files_are_refused_byte_identical(tmp_path: Path, case: str, api: str) -> None:
    statements, problem = HOSTILE[case]
    path = tmp_path / "crafted.db"
    digest = build(path, statements)
    for options in ({}, {"create": False}, {"readonly": True}):
        with pytest.raises(keyshelf.IncompatibleStoreError) as info:
            open_and_write(path, api, **options)
        message = str(info.value)
        assert str(path) in message
        assert problem in message, message
        assert len(message) < 1000  # a 5,000-digit version is not echoed in full
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crafted.db"]


def test_the_trigger_never_ran(tmp_path: Path) -> None:
    statements, _ = HOSTILE["trigger-on-data"]
    path = tmp_path / "crafted.db"
    build(path, statements)
    with pytest.raises(keyshelf.IncompatibleStoreError):
        open_and_write(path, "sync")
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM loot").fetchone() == (0,)
    assert conn.execute("SELECT value FROM keyshelf").fetchall() == [("hunter1",)]
    conn.close()


def test_the_shape_keyshelf_creates_is_accepted_whatever_its_layout(tmp_path: Path) -> None:
    # The same definitions written on one line each, in upper and lower case.
    path = tmp_path / "relaid.db"
    one_line = " ".join(DATA.split()).lower().replace("create table", "CREATE TABLE")
    build(path, [one_line, META.lower(), VERSION, INDEX])
    with keyshelf.open(path) as kv:
        assert kv.get("password") == "hunter1"
        kv.set("password", "hunter2")
    with keyshelf.open(path, create=False) as kv:
        assert kv.get("password") == "hunter2"


def test_a_store_without_its_expiry_index_gets_it_back(tmp_path: Path) -> None:
    path = tmp_path / "noindex.db"
    build(path, [DATA, META, VERSION])
    with keyshelf.open(path, readonly=True) as kv:  # read-only: nothing is added
        assert kv.get("password") == "hunter1"
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE type='index'").fetchone()[0] == 1
    conn.close()
    with keyshelf.open(path) as kv:
        assert kv.get("password") == "hunter1"
    conn = sqlite3.connect(path)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    conn.close()
    assert "keyshelf_expiry" in names


def test_a_store_keyshelf_created_reopens(tmp_path: Path) -> None:
    path = tmp_path / "good.db"
    with keyshelf.open(path) as kv:
        kv.set("k", 1, ttl=60)
    for _ in range(2):
        with keyshelf.open(path, create=False) as kv:
            assert kv.get("k") == 1
