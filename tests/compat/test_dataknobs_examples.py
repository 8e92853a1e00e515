"""Every ```python example of dataknobs-kv's README and design plan runs on the facade.

The examples are read from copies of those documents (``examples.py``) and run as
written, top-level ``await`` included. What each test changes is listed in
its ``substitutions``, and is only ever:

* the import line: ``from dataknobs_kv import`` -> ``from keyshelf.compat.dataknobs_kv import``
  (examples without an import get that of the Quick Start, as in the documents);
* the backend name, in the examples whose backend is a free choice
  (``backend="memory"``/``"postgres"`` -> each backend of the suite in turn);
* placeholders the documents leave to the reader: undefined variables
  (``session_data``, ``results``, ``document_bytes``, ``user_config``,
  ``system_config``, ``postgres_config``, ``MyComplexClass``), and made-up
  paths, hosts, databases and passwords (``/data/kv_store.json``,
  ``"myapp"``, ``"dbuser"`` ...), which become the test's own.

The examples that use ``store`` without creating it get a
``KVStore(backend=...)`` of the backend under test. Examples that cannot run
by nature are in ``NOT_RUN``, with the reason docs/migrating.md gives.
"""

from __future__ import annotations

import gzip
import pickle
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import keyshelf
from keyshelf.compat.dataknobs_kv import KVStore

from .examples import blocks
from .runner import Substitutions, example, run_async

DOCS = Path(__file__).parents[2] / "docs" / "migrating.md"

IMPORT: Substitutions = [("from dataknobs_kv import", "from keyshelf.compat.dataknobs_kv import")]
FACADE_IMPORT = "from keyshelf.compat.dataknobs_kv import KVStore, migrate_store"


class MyComplexClass:
    """The README's placeholder class for custom serialization (picklable: module level)."""

    def __init__(self, payload: Any) -> None:
        self.payload = payload

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MyComplexClass) and other.payload == self.payload

    __hash__ = None  # type: ignore[assignment]


# Values for the variables the documents use without defining them.
PLACEHOLDERS: dict[str, Any] = {
    "session_data": {"user_id": 123, "ip": "10.0.0.1"},
    "results": [{"id": 1}, {"id": 2}],
    "document_bytes": b"%PDF-1.4 quarterly report",
    "user_config": {"theme": "dark"},
    "system_config": {"debug": True},
    "MyComplexClass": MyComplexClass,
}

# Examples that cannot run, and why (docs/migrating.md lists the same).
NOT_RUN = {
    ("004", "Key Design"): "a data-model sketch (types as values), not code to run",
    ("004", "Value Structure"): "a data-model sketch (Enum with the type names), not code to run",
    ("004", "Metadata Types"): "a data-model sketch, not code to run",
    ("004", "Backend Mapping"): "a data-model sketch of the dataknobs-data record",
    ("004", "With dataknobs-config"): "needs the dataknobs_config package",
    ("004", "With dataknobs-data"): "needs the dataknobs_data package",
}

COVERED: set[tuple[str, str]] = set()


def covers(*names: tuple[str, str]) -> Callable[[Any], Any]:
    """Mark a test as the one that runs these examples."""
    for name in names:
        assert name[1] in blocks(name[0]), name
    COVERED.update(names)
    return lambda test: test


def fresh_namespace() -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "seed_example", **PLACEHOLDERS}
    exec(FACADE_IMPORT, namespace)
    return namespace


def rename_backend(seed: str, name: str, backend: str) -> Substitutions:
    """``backend="memory"``/``"postgres"`` -> the backend under test."""
    code = example(seed, name).code
    return [
        (f'backend="{chosen}"', f'backend="{backend}"')
        for chosen in ("memory", "postgres")
        if chosen != backend and f'backend="{chosen}"' in code
    ]


async def run(
    seed: str,
    name: str,
    *,
    backend: str | None = None,
    subs: Substitutions = (),
    placeholders: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run one example in a fresh namespace (with ``store`` on ``backend`` if given)."""
    namespace = {**fresh_namespace(), **(placeholders or {})}
    substitutions = [*IMPORT] if "from dataknobs_kv import" in example(seed, name).code else []
    if backend is not None:
        namespace["store"] = KVStore(backend=backend)
        substitutions += rename_backend(seed, name, backend)
    await run_async(example(seed, name), namespace, [*substitutions, *subs])
    return namespace


def test_every_example_is_run_or_explained() -> None:
    every = {(seed, name) for seed in ("001", "004") for name in blocks(seed)}
    assert every == COVERED | set(NOT_RUN)
    assert not COVERED & set(NOT_RUN)


def test_the_examples_not_run_are_listed_in_the_docs() -> None:
    text = DOCS.read_text()
    for _seed, name in NOT_RUN:
        assert name in text, name


# -- the examples whose backend is a free choice: on every backend -------------------


@covers(("001", "Quick Start"))
async def test_quick_start(dk_backend: str, opened: list[Any]) -> None:
    ns = await run("001", "Quick Start", backend=dk_backend)
    assert ns["name"] == "MyApplication"
    assert ns["debug"] is True
    assert ns["app_keys"] == ["app.name", "app.version"]
    assert ns["all_config"] == {"app.config.debug": True}
    assert await ns["store"].keys() == ["app.name", "app.version"]


@covers(("001", "Hierarchical Key Structure"))
async def test_hierarchical_keys(dk_backend: str, opened: list[Any]) -> None:
    ns = await run("001", "Hierarchical Key Structure", backend=dk_backend)
    # "*" stays within one segment (the design plan's pattern syntax), "**" spans them.
    assert ns["user_data"] == {"users.123.email": "john@example.com", "users.123.name": "John Doe"}
    assert ns["user_settings"] == {
        "users.123.settings.notifications": True,
        "users.123.settings.theme": "dark",
    }
    assert await ns["store"].keys() == []


@covers(("001", "Pattern Matching"))
async def test_pattern_matching(dk_backend: str, opened: list[Any]) -> None:
    ns = await run("001", "Pattern Matching", backend=dk_backend)
    store = ns["store"]
    await store.set_many(
        {
            "users.1.name": "a",
            "users.2.name": "b",
            "app.config.x": 1,
            "logs.2024-01": "l",
            "logs.2023-12": "l",
            "app.x.y": 2,
            "error": 3,
            "svc.db.error": 4,
            "user.a.name": "c",
            "user.ab.name": "d",
            "log.7.txt": "t",
            "env.dev.config": 5,
            "env.test.config": 6,
        }
    )
    assert await store.keys("users.*.name") == ["users.1.name", "users.2.name"]
    assert await store.keys("*.config.*") == ["app.config.x"]
    assert await store.keys("logs.2024-*") == ["logs.2024-01"]
    assert await store.keys("app.**") == ["app.config.x", "app.x.y"]
    assert await store.keys("**.error") == ["error", "svc.db.error"]
    assert await store.keys("user.?.name") == ["user.a.name"]
    assert await store.keys("log.[0-9].txt") == ["log.7.txt"]
    assert await store.keys("env.{dev,prod}.config") == ["env.dev.config"]


@covers(("001", "Metadata Management"))
async def test_metadata(
    dk_backend: str, opened: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    ns = await run("001", "Metadata Management", backend=dk_backend)
    assert capsys.readouterr().out == "Author: John Doe\nTags: ['quarterly', 'finance']\n"
    store = ns["store"]
    # The "ttl" entry set the expiry and is not kept in the metadata (dataknobs-kv README).
    assert "ttl" not in ns["metadata"]
    assert 86000 < await store.ttl("document.report.pdf") <= 86400.001
    assert await store.get_metadata("document.report.pdf") == {
        "content_type": "application/pdf",
        "author": "John Doe",
        "created": "2024-01-15",
        "tags": ["quarterly", "finance"],
        "reviewed": True,
        "reviewer": "Jane Smith",
    }
    assert await store.get("document.report.pdf") == PLACEHOLDERS["document_bytes"]


@covers(("001", "TTL and Expiration"))
async def test_ttl(dk_backend: str, opened: list[Any], capsys: pytest.CaptureFixture[str]) -> None:
    ns = await run("001", "TTL and Expiration", backend=dk_backend)
    assert ns["data"] == PLACEHOLDERS["session_data"]
    assert ns["expired_count"] == 0
    assert capsys.readouterr().out == "Removed 0 expired keys\n"
    assert ns["store"].kv._sweeper is not None  # auto_cleanup runs a background task


@covers(("001", "Atomic Operations"))
async def test_atomic(dk_backend: str, opened: list[Any]) -> None:
    ns = await run("001", "Atomic Operations", backend=dk_backend)
    assert ns["success"] is False  # a missing key never matches
    assert ns["views"] == 1
    assert ns["remaining"] == -1
    store = ns["store"]
    assert await store.get("logs.access") == "\n2024-01-15 10:30 User login"
    assert await store.get("notes") == ", Remember to update docs"
    await store.set("version", "1.0.0")
    await run_async(example("001", "Atomic Operations"), ns, [])
    assert ns["success"] is True
    assert await store.get("version") == "1.1.0"


@covers(("001", "Batch Operations"))
async def test_batch(dk_backend: str, opened: list[Any]) -> None:
    ns = await run("001", "Batch Operations", backend=dk_backend)
    assert ns["values"] == {"config.host": "localhost", "config.port": 8080, "config.ssl": True}
    assert ns["deleted"] == {"temp.file1": False, "temp.file2": False, "cache.old": False}


@covers(("001", "Namespace Isolation"))
async def test_namespace_isolation(dk_backend: str, opened: list[Any]) -> None:
    ns = await run("001", "Namespace Isolation", backend=dk_backend)
    assert ns["user_settings"] == {"theme": "dark"}
    assert ns["system_settings"] == {"debug": True}
    assert ns["user_store"].namespace == "user_data"
    assert await ns["cache_store"].get("settings") is None


@covers(("001", "Custom Serialization"))
async def test_custom_serialization(dk_backend: str, opened: list[Any]) -> None:
    ns = await run("001", "Custom Serialization")
    custom_store = ns["CustomStore"](backend=dk_backend)
    thing = MyComplexClass({"deep": (1, 2)})
    assert await custom_store.set("object.1", thing)
    assert await custom_store.get("object.1") == thing
    # The bytes serialize() returned are what the backend holds, as value type "custom".
    now = int(time.time() * 1000)
    record = await custom_store.kv.backend.get_record("default", "object.1", now)
    assert record.tag == "custom" and pickle.loads(bytes(record.payload)) == thing
    await custom_store.set("plain", {"still": "typed"})
    assert await custom_store.get("plain") == {"still": "typed"}
    assert await custom_store.compare_and_swap("object.1", thing, "replaced")
    assert (await custom_store.get_entry("object.1")).value == "replaced"


@covers(("001", "Caching Layer"))
async def test_caching_layer(dk_backend: str, opened: list[Any]) -> None:
    ns = await run("001", "Caching Layer", backend=dk_backend)
    store = ns["store"]
    await store.set("hot.key", 1)
    assert await store.get("hot.key") == 1
    assert await store.get("hot.key") == 1
    assert store.kv.backend.cache.hits >= 1


@covers(("004", "Examples"))
async def test_design_pattern_examples(dk_backend: str, opened: list[Any]) -> None:
    # As written, the design plan calls store.keys() without await: the calls
    # build coroutines that are never run (Python warns, nothing fails) ...
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ns = await run("004", "Examples", backend=dk_backend)
    # ... so they also run with the missing "await" added, collecting the results.
    store = ns["store"]
    await store.set_many(
        {
            "app.config.a": 1,
            "app.config.b.c": 2,
            "db.database.host": 3,
            "x.database.y.z": 4,
            "user.1.settings": 5,
            "user.12.settings": 6,
            "app.dev.config": 7,
            "app.test.config": 8,
        }
    )
    ns["seen"] = []
    await run_async(example("004", "Examples"), ns, [("store.keys(", "seen += await store.keys(")])
    assert ns["seen"] == [
        "app.config.a",
        "db.database.host",
        "x.database.y.z",
        "user.1.settings",
        "app.dev.config",
    ]


@covers(("004", "Basic Usage"))
async def test_basic_usage(dk_backend: str, opened: list[Any]) -> None:
    ns = await run("004", "Basic Usage", backend=dk_backend)
    assert ns["value"] == "MyApp"
    assert ns["config_keys"] == []
    assert ns["all_configs"] == {}
    store = ns["store"]
    assert await store.exists("app.name") is False
    assert await store.get_metadata("user.123.profile") == {"tags": ["vip", "active"]}


@covers(("004", "Hierarchical Operations"))
async def test_hierarchical_operations(dk_backend: str, opened: list[Any]) -> None:
    ns = await run("004", "Hierarchical Operations", backend=dk_backend)
    assert ns["db_config"] == {
        "app.config.database.host": "localhost",
        "app.config.database.name": "mydb",
        "app.config.database.port": 5432,
    }
    assert await ns["store"].keys() == []


@covers(("004", "TTL and Expiration"))
async def test_design_ttl(dk_backend: str, opened: list[Any]) -> None:
    ns = await run("004", "TTL and Expiration", backend=dk_backend)
    assert ns["data"] == PLACEHOLDERS["session_data"]
    assert ns["expired_count"] == 0


@covers(("004", "Atomic Operations"))
async def test_design_atomic(dk_backend: str, opened: list[Any]) -> None:
    ns = await run("004", "Atomic Operations", backend=dk_backend)
    assert (ns["success"], ns["new_value"], ns["result"]) == (False, 1, "\nNew entry")
    await ns["store"].set("counter", 5)
    await run_async(example("004", "Atomic Operations"), ns, [])
    assert ns["success"] is True
    assert await ns["store"].get("counter") == 6


@covers(("004", "Namespace Isolation"))
async def test_design_namespace_isolation(dk_backend: str, opened: list[Any]) -> None:
    ns = await run("004", "Namespace Isolation", backend=dk_backend)
    assert ns["user_config"] == {"theme": "dark"}
    assert ns["system_config"] == {"debug": True}


# -- the examples of one backend, as written ----------------------------------------


@covers(("001", "Memory Backend"))
async def test_memory_backend(opened: list[Any]) -> None:
    ns = await run("001", "Memory Backend")
    assert await ns["store"].set("k", 1) and await ns["store"].get("k") == 1


@covers(("001", "File Backend"))
async def test_file_backend(tmp_path: Path, opened: list[Any]) -> None:
    path = tmp_path / "kv_store.json"
    ns = await run("001", "File Backend", subs=[("/data/kv_store.json", str(path))])
    await ns["store"].set("config.debug", True)
    assert gzip.decompress(path.read_bytes()).startswith(b"{")  # compression="gzip"
    with keyshelf.open(f"file://{path}") as kv:
        assert kv.get("config.debug") is True


@covers(("001", "PostgreSQL Backend"))
async def test_postgres_backend(postgres_defaults: dict[str, Any], opened: list[Any]) -> None:
    # The document's host, database, user and password stand for the reader's:
    # they become the test server's (a trust server ignores the password).
    subs = [
        ('"localhost"', repr(postgres_defaults.get("host", "localhost")).replace("'", '"')),
        ('"myapp"', f'"{postgres_defaults["database"]}"'),
        ('"dbuser"', f'"{postgres_defaults.get("user", "postgres")}"'),
    ]
    if "password" in postgres_defaults:
        subs.append(('"dbpass"', f'"{postgres_defaults["password"]}"'))
    ns = await run("001", "PostgreSQL Backend", subs=subs)
    await ns["store"].set("k", {"v": 1})
    from ..backends.test_postgres_server import admin

    table = admin().execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = %s AND tablename = 'kv_store'",
        (postgres_defaults["schema"],),
    )
    assert table.fetchone()[0] == 1  # config "table" names keyshelf's table


@covers(("001", "Redis Backend"))
async def test_redis_backend(password_redis: dict[str, Any], opened: list[Any]) -> None:
    # A throwaway server that takes the document's password "optional"; its port
    # replaces the document's 6379, which stands for the reader's server.
    ns = await run("001", "Redis Backend", subs=[("6379", str(password_redis["port"]))])
    await ns["store"].set("user.1", "Alice")
    assert await ns["store"].get("user.1") == "Alice"


@covers(("001", "S3 Backend"))
async def test_s3_backend(opened: list[Any]) -> None:
    # The test S3 server (tests/backends/s3_server.py) stands for AWS: its bucket,
    # endpoint and credentials are added to the document's config; a fresh prefix
    # replaces "data/" so the test starts empty.
    from ..backends import s3_server

    url = s3_server.endpoint()
    extra = ", ".join(f'"{k}": "{v}"' for k, v in s3_server.options(url).items() if k != "region")
    prefix = f"dk-{time.time_ns()}"
    subs = [
        ('"my-kv-store"', f'"{s3_server.BUCKET}"'),
        ('"data/"', f'"{prefix}/"'),
        ('"region": "us-west-2"', f'"region": "us-west-2", {extra}'),
    ]
    try:
        ns = await run("001", "S3 Backend", subs=subs)
        await ns["store"].set("user.1", "Alice")
        assert await ns["store"].get("user.1") == "Alice"
    finally:
        s3_server.remove_prefix(url, prefix)


@covers(("001", "Migration Between Backends"))
async def test_migration(servers: dict[str, Any], opened: list[Any]) -> None:
    with keyshelf.open("file://", path="data.json") as source:
        source.set("app.name", "MyApp", metadata={"owner": "ops"})
        source.set("session.abc", {"user_id": 1}, ttl=3600)
        source.namespace("tenant1").set("theme", "dark")
    # postgres_config: the reader's PostgreSQL settings -- the test server's.
    postgres_config = dict(servers["postgres"])
    ns = await run(
        "001", "Migration Between Backends", placeholders={"postgres_config": postgres_config}
    )
    target = ns["target"]
    assert await target.get("app.name") == "MyApp"
    assert await target.get_metadata("app.name") == {"owner": "ops"}
    assert 3500 < await target.ttl("session.abc") <= 3600.001
    assert await target.kv.namespace("tenant1").get("theme") == "dark"


@covers(("004", "From Dictionary/JSON Files"))
async def test_from_json_files(opened: list[Any]) -> None:
    Path("config.json").write_text('{"database": {"host": "localhost", "port": 5432}}')
    # The file store must hold the config first: the recipe of docs/migrating.md.
    with keyshelf.open("file://", path="kv_store.json") as kv:
        kv.mset({"database.host": "localhost", "database.port": 5432})
    ns = await run("004", "From Dictionary/JSON Files")
    assert ns["config"]["database"]["host"] == ns["value"] == "localhost"


@covers(("004", "From Redis"))
async def test_from_redis(redis_defaults: dict[str, Any], opened: list[Any]) -> None:
    # The "# Old code" half is redis-py itself (against the shared server's db 0,
    # without a prefix of its own), not this API: only the "# New code" half runs.
    old = example("004", "From Redis").code.split("# New code")[0]
    ns = await run("004", "From Redis", subs=[(old, "")])
    assert ns["name"] == "John"


@covers(("004", "Core Operations"))
def test_core_interface() -> None:
    """The facade has every method of the design plan's interface, awaited, with its parameters."""
    import ast
    import inspect

    lines = [
        line.strip()
        for line in example("004", "Core Operations").code.splitlines()
        if line.strip().startswith("async def")
    ]
    assert len(lines) == 15
    for line in lines:
        (listed,) = ast.parse(line + ": ...").body
        assert isinstance(listed, ast.AsyncFunctionDef)
        facade = getattr(KVStore, listed.name)
        assert inspect.iscoroutinefunction(facade), listed.name
        names = [arg.arg for arg in listed.args.args]
        assert list(inspect.signature(facade).parameters)[: len(names)] == names, listed.name


def test_pickle_placeholder_is_importable() -> None:
    assert pickle.loads(pickle.dumps(MyComplexClass(1))) == MyComplexClass(1)
