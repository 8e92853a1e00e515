"""Corrupt, foreign and non-writable files, and sharing an application's database.

Whatever sits at a store's path, opening it either works or raises a
``BackendError`` that names the file and the problem; the file is never
modified (its bytes are compared), and nothing but SQLite's own empty
``-wal``/``-shm`` sidecars appears next to it. (The file backend's own list of
foreign documents is in tests/test_file.py; the basic SQLite cases in
tests/backends/test_sqlite.py.)

Permissions do not stop root, so non-writable files are tested twice: with
``chattr +i`` (immutable, which stops root too) when running as root, and as
the unprivileged ``nobody`` user in a subprocess (real permission bits).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import keyshelf

from . import helpers

APIS = ["sync", "async"]


def sqlite_good(path: Path) -> bytes:
    with keyshelf.open(path) as kv:
        kv.mset({f"k{i:04d}": {"i": i, "pad": "x" * 300} for i in range(300)})
        kv.set("ttl", 1, ttl=3600, metadata={"m": 1})
    return path.read_bytes()


def run_ops(url: str, api: str) -> None:
    """Open, read everything, write: the first refusal ends it."""
    if api == "sync":
        with keyshelf.open(url) as kv:
            kv.dump()
            kv.stats()
            kv.set("new", 1)
            kv.delete_pattern("k*")
        return

    async def run() -> None:
        async with keyshelf.open_async(url) as kv:
            await kv.dump()
            await kv.stats()
            await kv.set("new", 1)
            await kv.delete_pattern("k*")

    asyncio.run(run())


def sidecars_only(directory: Path, before: set[str], name: str) -> None:
    """Nothing new in ``directory`` but SQLite's empty -wal and -shm files."""
    for path in directory.iterdir():
        if path.name in before:
            continue
        assert path.name in (f"{name}-wal", f"{name}-shm"), f"{path.name} appeared"
        if path.name.endswith("-wal"):
            assert path.stat().st_size == 0


# -- SQLite: corrupt and foreign files ---------------------------------------------------


def _sqlite_cases(tmp_path: Path) -> dict[str, tuple[bytes, str]]:
    """kind -> (file content, regex the error must match besides the path)."""
    good = sqlite_good(tmp_path / "good.db")
    page = 4096
    not_db = "not an SQLite database|corrupt or not a database"
    corrupt = "corrupt or not a database|malformed|not an SQLite database"
    truncated = "is truncated"
    garbage_pages = good[:page] + os.urandom(len(good) - page)
    json_store = tmp_path / "store.json"
    with keyshelf.open(f"file://{json_store}") as kv:
        kv.set("k", 1)
    cases: dict[str, tuple[bytes, str]] = {
        "random": (os.urandom(8192), not_db),
        "text": (b"name,email\nalice,alice@example.com\n" * 100, not_db),
        "gzip": (gzip.compress(good), not_db),
        "keyshelf-json-store": (json_store.read_bytes(), not_db),
        "magic-only": (good[:16], truncated),
        "truncated-header": (good[:60], truncated),
        "truncated-first-page": (good[: page // 2], truncated),
        "one-page": (good[:page], truncated),
        "truncated-third": (good[: len(good) // 3], truncated),
        "truncated-two-thirds": (good[: 2 * len(good) // 3], truncated),
        "truncated-last-page": (good[:-page], truncated),
        "truncated-last-byte": (good[:-1], truncated),
        "garbage-pages": (garbage_pages, corrupt),
    }
    return cases


SQLITE_KINDS = [
    "random",
    "text",
    "gzip",
    "keyshelf-json-store",
    "magic-only",
    "truncated-header",
    "truncated-first-page",
    "one-page",
    "truncated-third",
    "truncated-two-thirds",
    "truncated-last-page",
    "truncated-last-byte",
    "garbage-pages",
]


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("kind", SQLITE_KINDS)
def test_corrupt_sqlite_files_are_refused_unchanged(tmp_path: Path, kind: str, api: str) -> None:
    content, problem = _sqlite_cases(tmp_path)[kind]
    directory = tmp_path / "victim"
    directory.mkdir()
    path = directory / "store.db"
    path.write_bytes(content)
    before = set(os.listdir(directory))
    with pytest.raises(keyshelf.BackendError) as info:
        run_ops(str(path), api)
    message = str(info.value)
    assert str(path) in message
    assert any(p in message for p in problem.split("|")), message
    assert path.read_bytes() == content
    sidecars_only(directory, before, path.name)


def _set_schema_version(path: Path, version: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute("UPDATE keyshelf_meta SET value = ? WHERE name = 'schema_version'", (version,))
    conn.commit()
    conn.close()


@pytest.mark.parametrize("api", APIS)
def test_newer_sqlite_schema_is_refused_unchanged(tmp_path: Path, api: str) -> None:
    path = tmp_path / "future.db"
    sqlite_good(path)
    _set_schema_version(path, "2")
    content = path.read_bytes()
    before = set(os.listdir(tmp_path))
    with pytest.raises(keyshelf.IncompatibleStoreError) as info:
        run_ops(str(path), api)
    assert str(path) in str(info.value)
    assert "schema version 2" in str(info.value) and "upgrade keyshelf" in str(info.value)
    assert path.read_bytes() == content
    sidecars_only(tmp_path, before, path.name)


@pytest.mark.parametrize(
    "setup",
    [
        "CREATE TABLE keyshelf_meta (id INTEGER PRIMARY KEY, note TEXT)",
        "CREATE TABLE keyshelf (id INTEGER PRIMARY KEY, name TEXT)",
        "CREATE VIEW keyshelf AS SELECT 1 AS x",
    ],
    ids=["foreign-meta-table", "app-table-named-keyshelf", "app-view-named-keyshelf"],
)
def test_app_objects_with_keyshelf_names_are_refused_untouched(tmp_path: Path, setup: str) -> None:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute(setup)
    if setup.startswith("CREATE TABLE"):
        table = setup.split()[2]
        conn.execute(f"INSERT INTO {table} (id) VALUES (1), (2)")
    conn.commit()
    conn.close()
    content = path.read_bytes()
    with pytest.raises(keyshelf.IncompatibleStoreError) as info:
        run_ops(str(path), "sync")
    assert str(path) in str(info.value)
    assert "is not keyshelf's" in str(info.value) and "table=" in str(info.value)
    assert path.read_bytes() == content
    # The same file works with a table name of keyshelf's own.
    with keyshelf.open(path, table="kvstore") as kv:
        kv.set("k", 1)
        assert kv.get("k") == 1


def test_own_data_table_without_its_meta_table_still_opens(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    sqlite_good(path)
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE keyshelf_meta")
    conn.commit()
    conn.close()
    with keyshelf.open(path) as kv:
        assert kv.get("k0001") == {"i": 1, "pad": "x" * 300}
        assert kv.size() == 301


def test_a_wal_beside_a_short_file_is_not_mistaken_for_truncation(tmp_path: Path) -> None:
    # Killed mid-checkpoint, a database file may be shorter than its header says
    # while the WAL still holds the pages: that is not corruption.
    path = tmp_path / "s.db"
    sqlite_good(path)
    holder = sqlite3.connect(path)
    holder.execute("PRAGMA wal_autocheckpoint = 0")
    holder.execute("BEGIN")
    holder.execute("SELECT count(*) FROM keyshelf").fetchone()  # keeps the WAL from a reset
    with keyshelf.open(path) as kv:
        kv.mset({f"n{i:04d}": "y" * 500 for i in range(200)})
        assert Path(f"{path}-wal").stat().st_size > 0
        with keyshelf.open(path) as again:
            assert again.size() == 501
    holder.rollback()
    holder.close()


# -- the file backend: truncations, symlinks, special files -------------------------------


def _json_store(path: Path) -> bytes:
    with keyshelf.open(f"file://{path}") as kv:
        kv.mset({f"k{i:03d}": {"i": i} for i in range(100)})
    return path.read_bytes()


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("fraction", [0.01, 0.25, 0.5, 0.75, 0.99])
def test_truncated_json_stores_are_refused_unchanged(
    tmp_path: Path, fraction: float, api: str
) -> None:
    path = tmp_path / "store.json"
    good = _json_store(path)
    content = good[: max(1, int(len(good) * fraction))]
    path.write_bytes(content)
    before = set(os.listdir(tmp_path))
    with pytest.raises(keyshelf.IncompatibleStoreError) as info:
        run_ops(f"file://{path}", api)
    assert str(path) in str(info.value)
    assert path.read_bytes() == content
    assert set(os.listdir(tmp_path)) == before


@pytest.mark.parametrize("backend", helpers.LOCAL_FILES)
def test_symlink_to_a_foreign_file_is_refused_and_the_target_unchanged(
    tmp_path: Path, backend: str
) -> None:
    decoy = tmp_path / "outside" / "passwd"
    decoy.parent.mkdir()
    decoy.write_text("root:x:0:0:root:/root:/bin/bash\n" * 20)
    content = decoy.read_bytes()
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    link = store_dir / ("store.db" if backend == "sqlite" else "store.json")
    link.symlink_to(decoy)
    url = str(link) if backend == "sqlite" else f"file://{link}"
    with pytest.raises(keyshelf.BackendError) as info:
        run_ops(url, "sync")
    assert str(link) in str(info.value)
    assert decoy.read_bytes() == content
    assert link.is_symlink()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", helpers.LOCAL_FILES)
@pytest.mark.parametrize("special", ["fifo", "/dev/null", "/dev/zero", "directory"])
def test_special_files_are_refused_without_hanging(
    tmp_path: Path, backend: str, special: str
) -> None:
    if special == "fifo":
        path = tmp_path / "store"
        os.mkfifo(path)
    elif special == "directory":
        path = tmp_path / "store"
        path.mkdir()
    else:
        path = Path(special)
    url = str(path) if backend == "sqlite" else f"file://{path}"
    with pytest.raises(keyshelf.IncompatibleStoreError) as info:
        run_ops(url, "sync")
    assert str(path) in str(info.value)
    problem = "is a directory" if special == "directory" else "is not a regular file"
    assert problem in str(info.value)


# -- non-writable files and directories ---------------------------------------------------

# Runs as an unprivileged user: argv[2] url, argv[3] the store path, argv[4] what to do.
_ATTEMPT = """
url, path, prepare = sys.argv[2], sys.argv[3], sys.argv[4]
directory = os.path.dirname(path)
if prepare != "new":
    with keyshelf.open(url) as kv:
        kv.mset({"a": 1, "b": [1, 2]})
if prepare == "file":
    os.chmod(path, 0o444)
elif prepare in ("directory", "new"):
    os.chmod(directory, 0o555)
before = open(path, "rb").read() if os.path.exists(path) else None
listing = sorted(os.listdir(directory))
out = {"steps": []}
def step(name, call):
    try:
        out["steps"].append([name, "ok", repr(call())])
        return True
    except keyshelf.KVError as exc:
        out["steps"].append([name, type(exc).__name__, str(exc)])
    except BaseException as exc:
        out["steps"].append([name, "NOT A KVERROR " + type(exc).__name__, str(exc)])
    return False
holder = {}
if step("open", lambda: holder.setdefault("kv", keyshelf.open(url)) and None):
    kv = holder["kv"]
    step("get", lambda: kv.get("a"))
    step("set", lambda: kv.set("a", 2))
    step("get again", lambda: kv.get("a"))
    kv.close()
out["unchanged"] = before is None or open(path, "rb").read() == before
out["new files"] = sorted(set(os.listdir(directory)) - set(listing))
print(json.dumps(out))
"""


def _check_refusal(out: dict[str, Any], path: Path, prepare: str) -> None:
    steps = {name: (kind, detail) for name, kind, detail in out["steps"]}
    for name, (kind, _detail) in steps.items():
        assert not kind.startswith("NOT A KVERROR"), (name, steps)
    failed = [(name, kind, detail) for name, (kind, detail) in steps.items() if kind != "ok"]
    # Refused at open, or reads work and the write is refused: never a silent write.
    assert failed, f"nothing was refused: {steps}"
    assert "set" not in steps or steps["set"][0] != "ok", steps
    for _name, kind, detail in failed:
        assert issubclass(getattr(keyshelf, kind), keyshelf.BackendError)
        assert str(path) in detail
    if "get again" in steps:
        assert steps["get again"] == ("ok", "1")
    assert out["unchanged"] is True
    allowed = {f"{path.name}-wal", f"{path.name}-shm"} if prepare == "file" else set()
    assert set(out["new files"]) <= allowed, out["new files"]


@pytest.mark.parametrize("prepare", ["file", "directory", "new"])
@pytest.mark.parametrize("backend", helpers.LOCAL_FILES)
def test_non_writable_files_and_directories_as_an_unprivileged_user(
    backend: str, prepare: str
) -> None:
    reason = helpers.unprivileged_reason()
    if reason is not None:
        pytest.skip(reason)
    directory = helpers.shared_directory(owner_is_unprivileged=True)
    try:
        path = directory / ("store.db" if backend == "sqlite" else "store.json")
        url = str(path) if backend == "sqlite" else f"file://{path}"
        out = helpers.run_unprivileged(_ATTEMPT, url, str(path), prepare)
    finally:
        directory.chmod(0o755)
        shutil.rmtree(directory)
    _check_refusal(out, path, prepare)


def _chattr_reason(tmp_path: Path) -> str | None:
    if os.geteuid() != 0:
        return "chattr +i needs root; the unprivileged test covers this user"
    if shutil.which("chattr") is None:
        return "chattr is not installed"
    probe = tmp_path / "probe"
    probe.touch()
    result = subprocess.run(
        ["chattr", "+i", str(probe)], capture_output=True, text=True, check=False
    )
    subprocess.run(["chattr", "-i", str(probe)], capture_output=True, check=False)
    probe.unlink()
    if result.returncode != 0:
        return f"chattr +i does not work here: {result.stderr.strip()}"
    return None


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def _attempt_in_process(url: str, path: Path, api: str) -> dict[str, Any]:
    """The unprivileged script's steps, here, through either API."""
    directory = path.parent
    before = path.read_bytes() if path.exists() else None
    listing = set(os.listdir(directory))
    steps: list[list[str]] = []
    loop = asyncio.new_event_loop()

    def step(name: str, call: Callable[[], Any]) -> bool:
        try:
            result = call()
            if asyncio.iscoroutine(result):
                result = loop.run_until_complete(result)
            steps.append([name, "ok", repr(result)])
            return True
        except keyshelf.KVError as exc:
            steps.append([name, type(exc).__name__, str(exc)])
        except BaseException as exc:
            steps.append([name, "NOT A KVERROR " + type(exc).__name__, str(exc)])
        return False

    opened: dict[str, Any] = {}
    opener = keyshelf.open if api == "sync" else keyshelf.open_async
    if step("open", lambda: opened.setdefault("kv", opener(url)) and None):
        kv = opened["kv"]
        step("get", lambda: kv.get("a"))
        step("set", lambda: kv.set("a", 2))
        step("get again", lambda: kv.get("a"))
        step("close", kv.close if api == "sync" else kv.aclose)
    loop.close()
    return {
        "steps": steps,
        "unchanged": before is None or path.read_bytes() == before,
        "new files": sorted(set(os.listdir(directory)) - listing),
    }


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("prepare", ["file", "directory", "new"])
@pytest.mark.parametrize("backend", helpers.LOCAL_FILES)
def test_immutable_files_and_directories_stop_even_root(
    tmp_path: Path, backend: str, prepare: str, api: str
) -> None:
    reason = _chattr_reason(tmp_path)
    if reason is not None:
        pytest.skip(reason)
    directory = tmp_path / "store"
    directory.mkdir()
    path = directory / ("store.db" if backend == "sqlite" else "store.json")
    url = str(path) if backend == "sqlite" else f"file://{path}"
    if prepare != "new":
        with keyshelf.open(url) as kv:
            kv.mset({"a": 1, "b": [1, 2]})
    target = path if prepare == "file" else directory
    with immutable(target):
        out = _attempt_in_process(url, path, api)
    out["steps"] = [s for s in out["steps"] if s[0] != "close" or s[1] != "ok"]
    _check_refusal(out, path, prepare)


# -- sharing an application's SQLite database ------------------------------------------------

_APP_SCHEMA = [
    "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT UNIQUE)",
    "CREATE INDEX users_by_name ON users (name)",
    "CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT)",
    "CREATE TRIGGER users_audit AFTER INSERT ON users "
    "BEGIN INSERT INTO audit (what) VALUES ('added ' || NEW.name); END",
    "CREATE VIEW user_names AS SELECT name FROM users ORDER BY name",
    "CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)",  # the app's own key-value table
]


def _app_state(path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(path)
    try:
        objects = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master "
            "WHERE name NOT LIKE '%keyshelf%' AND name NOT LIKE '%kvstore%' ORDER BY name"
        ).fetchall()
        rows = {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            for table in ("users", "audit", "kv")
        }
        return {
            "objects": objects,
            "rows": rows,
            "view": conn.execute("SELECT * FROM user_names").fetchall(),
            "user_version": conn.execute("PRAGMA user_version").fetchone(),
            "application_id": conn.execute("PRAGMA application_id").fetchone(),
            "journal_mode": conn.execute("PRAGMA journal_mode").fetchone(),
            "integrity": conn.execute("PRAGMA integrity_check").fetchall(),
        }
    finally:
        conn.close()


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("journal", ["delete", "wal"])  # the modes a file remembers
@pytest.mark.parametrize("table", [None, "kvstore"])
def test_application_database_is_left_untouched(
    tmp_path: Path, journal: str, table: str | None, api: str
) -> None:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA journal_mode={journal}")
    for statement in _APP_SCHEMA:
        conn.execute(statement)
    conn.executemany(
        "INSERT INTO users (name, email) VALUES (?, ?)",
        [("Bob", "bob@example.com"), ("Alice", "alice@example.com"), ("O'Brien", None)],
    )
    conn.execute("INSERT INTO kv VALUES ('keyshelf', 'the app''s own row')")
    conn.execute("PRAGMA user_version = 7")
    conn.execute("PRAGMA application_id = 1234")
    conn.commit()
    conn.close()
    before = _app_state(path)
    assert before["journal_mode"] == (journal,)
    options = {} if table is None else {"table": table}
    if api == "sync":
        with keyshelf.open(path, **options) as kv:
            for where, method, args, kwargs in _WORK:
                target = kv if where == "kv" else kv.namespace(where)
                getattr(target, method)(*args, **kwargs)
    else:

        async def run() -> None:
            async with keyshelf.open_async(path, **options) as akv:
                for where, method, args, kwargs in _WORK:
                    target = akv if where == "kv" else akv.namespace(where)
                    await getattr(target, method)(*args, **kwargs)

        asyncio.run(run())
    after = _app_state(path)
    assert after == before
    # keyshelf added exactly its own objects, and its data is there.
    prefix = table or "keyshelf"
    conn = sqlite3.connect(path)
    app_objects = {"users", "users_by_name", "audit", "users_audit", "user_names", "kv"}
    app_objects |= {"sqlite_autoindex_users_1", "sqlite_autoindex_kv_1"}
    names = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    ours = names - app_objects
    # The application's trigger still fires, on its own table only.
    conn.execute("INSERT INTO users (name) VALUES ('Carol')")
    audit = conn.execute("SELECT what FROM audit").fetchall()
    conn.close()
    assert ours == {
        prefix,
        f"{prefix}_meta",
        f"{prefix}_expiry",
        f"sqlite_autoindex_{prefix}_meta_1",
    }
    assert audit == [("added Bob",), ("added Alice",), ("added O'Brien",), ("added Carol",)]
    with keyshelf.open(path, **options) as kv:
        assert kv.dump() == {"k": "kept"}


# (namespace view or "kv", method, args, kwargs): a bit of everything, app-like names included.
_WORK: list[tuple[str, str, tuple[Any, ...], dict[str, Any]]] = [
    ("kv", "set", ("user:1", {"name": "Alice"}), {"ttl": 60, "metadata": {"by": "app"}}),
    ("kv", "mset", ({f"k{i}": i for i in range(50)},), {}),
    ("kv", "increment", ("hits", 3), {}),
    ("kv", "append", ("log", "x"), {}),
    ("kv", "compare_and_swap", ("hits", 3, 4), {}),
    ("kv", "delete_pattern", ("k1*",), {}),
    ("users", "set", ("users", "not the table"), {}),
    ("kv", "set", ("'; DROP TABLE users; --", 1), {}),
    ("kv", "delete_expired", (), {}),
    ("users", "clear", (), {}),
    ("kv", "clear_namespace", ("audit",), {}),
    ("kv", "clear", (), {}),
    ("kv", "set", ("k", "kept"), {}),
]
