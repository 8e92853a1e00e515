"""Fixtures for the compat facades: test servers behind the facades' defaults.

The facades take their server settings from :data:`DEFAULT_CONFIG`
(``dataknobs_kv``) and :data:`DEFAULT_OPTIONS` (``kv_store_adapter.redis``),
which applications may set once at start-up. The tests set them to the suite's
own servers (the finders of ``tests/backends``), with a Redis key prefix and a
PostgreSQL schema of each test's own, removed afterwards. With ``CI=true`` an
unreachable server fails the test; elsewhere it is skipped.

Every test runs in its own temporary working directory, so the relative
default paths (``kv_store.json``, ``kv_store.db``, ``data.json`` ...) land
there.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from keyshelf.compat import dataknobs_kv
from keyshelf.compat.kv_store_adapter import redis as adapter_redis

from ..backends import RedisServer, delete_prefix, redis_url
from ..backends.test_postgres_server import drop_schema, fresh_schema, server_url
from ..conftest import ON_CI

#: The backends KVStore(backend=...) can select, all in the suite.
DK_BACKENDS = ["memory", "file", "sqlite", "redis", "postgres"]


@pytest.fixture(autouse=True)
def _workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KEYSHELF_URL", raising=False)


def redis_settings(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    settings: dict[str, Any] = {"host": parts.hostname or "localhost", "port": parts.port or 6379}
    settings["db"] = int(parts.path.strip("/") or 0)
    if parts.password:
        settings["password"] = parts.password
    return settings


def postgres_settings(url: str) -> dict[str, Any]:
    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(url)
    settings: dict[str, Any] = {"database": parts.get("dbname")}
    for name in ("host", "port", "user", "password"):
        if parts.get(name):
            settings[name] = parts[name]
    return settings


@pytest.fixture
def redis_defaults(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Both facades' Redis defaults point at the test server, with a fresh prefix."""
    url = redis_url()
    prefix = f"keyshelf-compat-{uuid.uuid4().hex}"
    settings = {**redis_settings(url), "prefix": prefix}
    monkeypatch.setitem(dataknobs_kv.DEFAULT_CONFIG, "redis", dict(settings))
    monkeypatch.setattr(adapter_redis, "DEFAULT_OPTIONS", dict(settings))
    try:
        yield settings
    finally:
        delete_prefix(url, prefix)


@pytest.fixture
def postgres_defaults(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """KVStore(backend="postgres") points at the test server, in a fresh schema."""
    url = server_url()
    schema = fresh_schema()
    settings = {**postgres_settings(url), "schema": schema, "connect_timeout": 5}
    monkeypatch.setitem(dataknobs_kv.DEFAULT_CONFIG, "postgres", dict(settings))
    try:
        yield settings
    finally:
        drop_schema(schema)


@pytest.fixture
def servers(redis_defaults: dict[str, Any], postgres_defaults: dict[str, Any]) -> dict[str, Any]:
    """Both servers, for examples that name several backends."""
    return {"redis": redis_defaults, "postgres": postgres_defaults}


@pytest.fixture(params=DK_BACKENDS)
def dk_backend(request: pytest.FixtureRequest) -> str:
    """A backend name for KVStore(backend=...); its server is set up if it needs one."""
    name = str(request.param)
    if name in ("redis", "postgres"):
        request.getfixturevalue(f"{name}_defaults")
    return name


#: The passwords of the seed examples that connect with one.
PASSWORDS = ("secret", "optional")


@pytest.fixture(scope="session")
def password_redis() -> Iterator[dict[str, Any]]:
    """A throwaway redis-server whose default user takes the examples' passwords."""
    server = RedisServer()
    try:
        server.start()
    except RuntimeError as exc:
        reason = f"cannot start a throwaway redis-server for the password examples: {exc}"
        if ON_CI:
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    try:
        import redis

        client = redis.Redis(host="127.0.0.1", port=server.port)
        client.execute_command(
            "ACL", "SETUSER", "default", "on", "resetpass", *(f">{p}" for p in PASSWORDS)
        )
        client.close()
        yield {"host": "127.0.0.1", "port": server.port}
    finally:
        with contextlib.suppress(Exception):
            server.stop()


@pytest.fixture
async def opened(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Every facade store a test (or an example it runs) opens, closed afterwards."""
    from keyshelf.compat.kv_store_adapter._store import KeyshelfKVStore

    stores: list[Any] = []
    for cls in (dataknobs_kv.KVStore, KeyshelfKVStore):
        original = cls.__init__

        def init(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> None:
            __original(self, *args, **kwargs)
            stores.append(self)

        monkeypatch.setattr(cls, "__init__", init)
    yield stores
    errors: list[Exception] = []
    for store in reversed(stores):
        try:
            if isinstance(store, dataknobs_kv.KVStore):
                await store.close()
            else:
                store.close()
        except Exception as exc:  # close the others, then report it
            errors.append(exc)
    if errors:
        raise errors[0]
