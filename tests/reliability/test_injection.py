"""Injection and escape: no key, pattern or namespace reaches anything it should not.

* distinct (namespace, key) pairs never share storage, whatever separators,
  braces, quotes or wildcards they contain (a hypothesis property, on every
  backend through both APIs);
* SQL and glob metacharacters in patterns match literally where they are
  literal (``%`` and ``_`` are not SQL wildcards, ``'`` ends no string);
* SQL written into keys and namespaces stays data: the database's tables,
  the application's canary rows and other stores are untouched;
* Redis keys never leave ``<prefix>:{`` (checked on a private server, where
  every key can be listed);
* path pieces (``../``, ``/etc/passwd``, ``..\\``) in keys and namespaces
  never create, change or delete a file outside the store's own files.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keyshelf
from keyshelf.patterns import compile_pattern

from ..conftest import Opener
from . import helpers

NASTY = [":", "{", "}", "#", "%", "_", "'", '"', ";", "-", "*", "?", "[", "]", "\\", "/", ".",
         " ", "a", "b", "é", "🚀", "\u200d"]  # fmt: skip
NAMES = (
    st.lists(st.sampled_from(NASTY), min_size=1, max_size=6)
    .map("".join)
    .filter(lambda s: not s.startswith("__"))
)

SQL = [
    "'; DROP TABLE keyshelf; --",
    "x' OR '1'='1",
    "Robert'); DROP TABLE students;--",
    '"; DELETE FROM kv; --',
    "1; SELECT pg_sleep(10); --",
    "%' --",
    "\\'; TRUNCATE keyshelf.kv; --",
]
PATHS = ["../x", "../../x", "..\\x", "/etc/passwd", "x/../../y", "./.", "/", "~root/.ssh", "..."]


def glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


# -- distinct pairs, distinct storage ---------------------------------------------------------


def _check_pairs(kv: Any, pairs: list[tuple[str, str]]) -> None:
    spaces = sorted({ns for ns, _ in pairs})
    for index, (ns, key) in enumerate(pairs):
        kv.namespace(ns).set(key, index)
    for index, (ns, key) in enumerate(pairs):
        assert kv.namespace(ns).get(key) == index, (ns, key)
    for ns in spaces:
        view = kv.namespace(ns)
        mine = sorted(key for n, key in pairs if n == ns)
        assert view.keys() == mine
        assert view.key_count() == len(mine) == view.size()
        assert view.dump() == {key: pairs.index((ns, key)) for key in mine}
    assert kv.list_namespaces() == spaces
    # Clearing one namespace leaves every other pair alone.
    first = spaces[0]
    assert kv.clear_namespace(first) == sum(1 for n, _ in pairs if n == first)
    for index, (ns, key) in enumerate(pairs):
        expected = None if ns == first else index
        assert kv.namespace(ns).get(key) == expected, (ns, key)
    for ns in spaces[1:]:
        kv.clear_namespace(ns)
    assert kv.list_namespaces() == []


def run_pairs(opener: Opener, examples: int) -> None:
    kv = opener()

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(pairs=st.lists(st.tuples(NAMES, NAMES), min_size=1, max_size=8, unique=True))
    def distinct(pairs: list[tuple[str, str]]) -> None:
        _check_pairs(kv, pairs)

    distinct()


def test_distinct_namespace_key_pairs_never_share_storage(opener: Opener) -> None:
    run_pairs(opener, examples=15)


@pytest.mark.stress
@pytest.mark.timeout(1800)
def test_distinct_pairs_soak(opener: Opener, backend_name: str) -> None:
    # 300 examples everywhere: on S3 (about a hundred requests each to one
    # serialised test server) about five minutes since list_namespaces stopped
    # listing every namespace that deletes had emptied.
    run_pairs(opener, examples=300)


def test_look_alike_pairs_never_share_storage(opener: Opener, backend_name: str) -> None:
    """Pairs built to collide under a naive ``ns + sep + key`` encoding."""
    pairs = [
        ("a", "b:c"), ("a:b", "c"), ("a:b:c", "x"), ("a", "b:c:x"),
        ("a{", "}b"), ("a{}", "b"), ("{a}", "b"), ("a", "}:b"),
        ("a#keys", "x"), ("a", "#keys"), ("a", "x#ttl"),
        ("1:a", "b"), ("1", "a:b"), ("a", "1:a:b"),
        ("ns%", "k"), ("ns_", "k"), ("nsx", "k"), ("ns", "%k"),
        ("'", "'"), ("''", ""), ("a'", "b"), ("a", "'b"),
        ("a\\", "b"), ("a", "\\b"), ("a/", "b"), ("a", "/b"),
    ]  # fmt: skip
    # Very long and Unicode-heavy names, at the 255-character limit.
    pairs += [("n" * 255, "k" * 255), ("🚀" * 255, "é" * 255), ("é" * 255, "🚀" * 255)]
    pairs += [("\u200d" * 200 + "a", "\U0010fffd" * 255), ("Ω" * 254 + ":", ":" + "Ω" * 254)]
    pairs = [(ns, key) for ns, key in pairs if key]
    kv = opener()
    if backend_name == "s3":
        # The documented S3 deviation (docs/s3.md): an object name is at most 1024
        # bytes, so a pair whose name would be longer is refused and writes nothing.
        from keyshelf.backends._s3_io import MAX_NAME_BYTES, Layout

        root = opener.url.split("/", 3)[3] + "/"
        too_long = [
            (ns, key)
            for ns, key in pairs
            if len(Layout(root).data(ns, key).encode()) > MAX_NAME_BYTES
        ]
        assert too_long  # the 255-character Unicode pairs
        for ns, key in too_long:
            with pytest.raises(keyshelf.InvalidKeyError, match="too long for S3"):
                kv.namespace(ns).set(key, 1)
        assert kv.list_namespaces() == []
        pairs = [pair for pair in pairs if pair not in too_long]
    _check_pairs(kv, pairs)


# -- metacharacters in patterns ---------------------------------------------------------------

META_KEYS = [
    "%", "_", "a", "ab", "a%", "a_", "a_b", "axb", "a%b", "'", "a'b", "''", "[a]", "*", "a*",
    "\\", "a\\b", "?", "a?", "{a,b}", "a b", "%%", "_x", "é", "🚀",
]  # fmt: skip
META_PATTERNS = ["%", "_", "a%", "a_", "a_b", "%b", "'", "a'*", "''", "' OR 1=1 --", "\\%",
                 "[%]", "[_]", "a[%_]b", "*%*", "*_*", "\\*", "\\\\", "a\\\\b", "\\?", "[[]a]",
                 "{a,b}", "*'*", '*"*', "%'; DROP TABLE keyshelf; --"]  # fmt: skip


def test_sql_and_glob_metacharacters_in_patterns_match_literally(opener: Opener) -> None:
    kv = opener()
    keys = sorted(set(META_KEYS))
    kv.mset({key: key for key in keys})
    for pattern in META_PATTERNS:
        expected = [k for k in keys if compile_pattern(pattern).match(k)]
        assert kv.keys(pattern) == expected, pattern
        assert kv.key_count(pattern) == len(expected), pattern
        assert list(kv.get_pattern(pattern)) == expected, pattern
    # "%" and "_" are literal: they match only themselves.
    assert kv.keys("%") == ["%"] and kv.keys("_") == ["_"] and kv.keys("a_b") == ["a_b"]
    assert kv.delete_pattern("a%") == 1 and kv.delete_pattern("a_") == 1
    assert sorted(kv.keys()) == sorted(set(keys) - {"a%", "a_"})


# -- SQL in keys, namespaces and values stays data ---------------------------------------------


def test_sql_in_keys_namespaces_and_values_stays_data(opener: Opener) -> None:
    kv = opener()
    for text in SQL:
        view = kv.namespace(text)
        view.set(text, text, metadata={text: text})
        view.mset({f"{text}{i}": i for i in range(3)})
        assert view.increment(text + "n") == 1
        assert view.append(text + "s", text) == text
    for text in SQL:
        view = kv.namespace(text)
        assert view.get(text) == text and view.get_metadata(text) == {text: text}
        assert view.size() == 6
        assert view.delete_pattern(glob_escape(text) + "*") == 6
    assert kv.list_namespaces() == []


def test_sqlite_tables_survive_sql_in_every_argument(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE students (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO students (name) VALUES ('Robert')")
    conn.commit()
    conn.close()
    with keyshelf.open(path) as kv:
        for text in SQL:
            view = kv.namespace(text)
            view.set(text, text)
            view.keys(text)
            view.keys(f"*{text}*")
            view.delete_pattern(text)
            view.get_many([text, text + "x"])
            view.delete_many([text])
    conn = sqlite3.connect(path)
    names = sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master"))
    rows = conn.execute("SELECT * FROM students").fetchall()
    conn.close()
    assert rows == [(1, "Robert")]
    assert names == sorted(
        ["students", "keyshelf", "keyshelf_meta", "keyshelf_expiry",
         "sqlite_autoindex_keyshelf_meta_1"]
    )  # fmt: skip


@pytest.mark.parametrize(
    "options",
    [
        {"table": "keyshelf; DROP TABLE students"},
        {"table": "kv--"},
        {"table": "a b"},
        {"table": '"quoted"'},
        {"journal_mode": "WAL; DROP TABLE students"},
        {"journal_mode": "off"},
    ],
    ids=lambda o: next(iter(o.values())),
)
def test_sqlite_identifiers_in_options_are_refused(tmp_path: Path, options: dict[str, Any]) -> None:
    with pytest.raises(keyshelf.InvalidURLError):
        keyshelf.open(tmp_path / "s.db", **options)


@pytest.mark.parametrize(
    "options",
    [{"schema": "x; DROP SCHEMA public"}, {"table": 'kv"; DROP TABLE x; --'}, {"schema": "a.b"}],
    ids=["schema", "table", "dotted"],
)
def test_postgres_identifiers_in_options_are_refused(options: dict[str, Any]) -> None:
    pytest.importorskip("psycopg")
    from ..backends import test_postgres_server as pg_server

    with pytest.raises(keyshelf.InvalidURLError, match="plain identifier"):
        keyshelf.open(pg_server.server_url(), **options)


def test_postgres_other_schemas_and_tables_untouched() -> None:
    pytest.importorskip("psycopg")
    from ..backends import test_postgres_server as pg_server

    url = pg_server.server_url()
    mine, canary = pg_server.fresh_schema(), pg_server.fresh_schema()
    admin = pg_server.admin()
    try:
        admin.execute(f'CREATE SCHEMA "{canary}"')
        admin.execute(f'CREATE TABLE "{canary}".kv (ns text, key text, value text)')
        admin.execute(f"INSERT INTO \"{canary}\".kv VALUES ('default', 'k', 'canary')")
        with keyshelf.open(url, schema=mine) as kv:
            for text in [*SQL, canary, f"{canary}.kv", "public"]:
                kv.namespace(text).set(text, text)
                kv.namespace(text).keys(f"*{text}*")
                kv.namespace(text).delete_pattern(text)
                kv.set(text, text)
            kv.clear()
        rows = admin.execute(f'SELECT * FROM "{canary}".kv').fetchall()
        tables = admin.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1",
            (mine,),
        ).fetchall()
    finally:
        pg_server.drop_schema(mine)
        pg_server.drop_schema(canary)
    assert rows == [("default", "k", "canary")]
    assert tables == [("kv",), ("kv_meta",)]


# -- Redis: nothing outside <prefix>:{ ----------------------------------------------------------


def test_redis_keys_never_leave_the_prefix() -> None:
    redis = pytest.importorskip("redis")
    from ..backends import REDIS_SERVER, RedisServer

    if not os.path.exists(REDIS_SERVER):
        pytest.skip(f"{REDIS_SERVER} is not installed")
    server = RedisServer()
    server.start()
    raw = redis.Redis.from_url(server.url)
    try:
        raw.set("canary", "untouched")
        raw.set("keyshelf", "a key named like the prefix")
        raw.hset("other:{default}:k", mapping={"t": "ss", "v": "another store"})
        hostile = [*SQL, *PATHS, "*", "?", "[", "}", "{", "{x}", "#keys", ":", "a}:b", "%7D"]
        with keyshelf.open(server.url, prefix="mine") as kv:
            for text in hostile:
                view = kv.namespace(text)
                view.set(text, text, ttl=100)
                view.mset({f"{text}:{i}": i for i in range(3)})
                view.increment(f"{text}#n")
                view.keys(text)
                view.delete_pattern(f"{glob_escape(text)}:*")
            for text in hostile:
                assert kv.namespace(text).dump() == {text: text, f"{text}#n": 1}
            names = sorted(k.decode() for k in raw.scan_iter(count=1000))
            assert raw.get("canary") == b"untouched"
            assert raw.get("keyshelf") == b"a key named like the prefix"
            assert raw.hget("other:{default}:k", "v") == b"another store"
            outside = [n for n in names if not n.startswith("mine:{")]
            assert outside == sorted(["canary", "keyshelf", "other:{default}:k"])
            for text in hostile:
                kv.clear_namespace(text)
            assert kv.list_namespaces() == []
    finally:
        raw.close()
        server.stop()


# -- the file system ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", helpers.EVERY)
def test_path_pieces_never_touch_the_file_system(backend: str, tmp_path: Path) -> None:
    """Keys and namespaces shaped like paths create no file beyond the store's own."""
    (tmp_path / "work").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x").write_text("precious")
    (tmp_path / "work" / "x").write_text("also precious")
    previous = os.getcwd()
    os.chdir(tmp_path / "work")
    try:
        with helpers.location(backend, tmp_path / "store") as (url, options):
            (tmp_path / "store").mkdir(exist_ok=True)
            before_outside = helpers.tree(tmp_path / "outside")
            before_work = helpers.tree(tmp_path / "work")
            with keyshelf.open(url, **options) as kv:
                for text in [*PATHS, "../outside/x", "../../outside/x", "store.db-wal"]:
                    view = kv.namespace(text)
                    view.set(text, text)
                    view.set(f"{text}/{text}", 1)
                    view.mset({f"../{text}": 1, f"{text}/..": 2})
                    view.delete(text)
                    view.delete_pattern(f"{text}*")
                    view.keys(f"../{text}*")
                    kv.clear_namespace(text)
            assert helpers.tree(tmp_path / "outside") == before_outside
            assert helpers.tree(tmp_path / "work") == before_work
            own = {p.name for p in (tmp_path / "store").iterdir()}
            allowed = {"store.db", "store.db-wal", "store.db-shm", "store.json", "store.json.lock"}
            assert own <= allowed, own
    finally:
        os.chdir(previous)
