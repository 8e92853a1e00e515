"""The Redis backend: ``redis://host:6379/0``, ``rediss://`` (TLS), ``unix:///path.sock``.

The registry imports this module only when such a URL is opened, so
``import keyshelf`` never needs redis-py; without it, opening a Redis URL
raises an ImportError that names the extra to install (``keyshelf[redis]``).

The implementation is :mod:`._redis_async` (written once over
``redis.asyncio``) and :mod:`._redis_sync` (generated from it); the layout,
value encoding and Lua scripts are in :mod:`._redis_common`; the user guide
is ``docs/redis.md``.

URL and options (keyword arguments or query parameters):

* ``redis://[[user]:password@]host[:port][/db]``; ``rediss://`` for TLS;
  ``unix:///path/to/redis.sock`` (database via ``db=``);
* ``prefix`` (default ``"keyshelf"``): the first part of every Redis key, so
  several stores or applications can share one database;
* ``db``, ``username``, ``password`` (override the URL's);
* ``socket_timeout`` (default 10 s), ``socket_connect_timeout`` (default 5 s),
  ``max_connections``, ``health_check_interval``, ``client_name``;
* with ``rediss://``: ``ssl_cert_reqs`` (``none``/``optional``/``required``),
  ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``.

Opening connects once (``PING``): an unreachable server raises
:class:`BackendUnavailableError` naming host and port, a wrong password or
missing database number :class:`InvalidURLError`, at open time.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult

import redis  # noqa: F401  (an ImportError here becomes the registry's install hint)
from redis import exceptions as redis_errors

from ..errors import BackendUnavailableError, IncompatibleStoreError, InvalidURLError
from ._redis_async import AsyncRedisBackend
from ._redis_common import RedisSettings, parse_settings
from ._redis_sync import RedisBackend

__all__ = ["AsyncRedisBackend", "RedisBackend", "create"]

#: Oldest server version the scripts (ZMSCORE) and SCAN TYPE work with.
MIN_SERVER_VERSION = (6, 2)


def create(url: SplitResult, options: dict[str, Any], asynchronous: bool) -> Any:
    """Factory for ``redis://``, ``rediss://`` and ``unix://`` URLs.

    Validates the URL and options, then connects once so that a server that
    cannot work is refused now rather than at the first operation.
    """
    settings = parse_settings(url, options)
    backend = RedisBackend(settings)
    try:
        probe(backend, settings)
    except BaseException:
        backend.close()
        raise
    if asynchronous:
        # The async client connects lazily, inside the caller's event loop.
        backend.close()
        return AsyncRedisBackend(settings)
    return backend


def probe(backend: RedisBackend, settings: RedisSettings) -> None:
    """Connect, authenticate, select the database and check the server version."""
    where = settings.location
    try:
        backend.client.execute_command("PING")
        try:
            info = backend.client.execute_command("INFO", "server")
        except redis_errors.ResponseError:
            info = {}  # INFO disabled (managed services): skip the version check
        version = str(info.get("redis_version", ""))
        numbers = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
        if version and numbers < MIN_SERVER_VERSION:
            raise IncompatibleStoreError(
                f"Redis server {where} runs version {version}; keyshelf needs Redis "
                f"{'.'.join(map(str, MIN_SERVER_VERSION))} or later"
            )
    except redis_errors.AuthenticationError as exc:
        raise InvalidURLError(f"Redis server {where} refused the credentials: {exc}") from exc
    except redis_errors.ResponseError as exc:
        text = str(exc)
        if "DB index" in text or "invalid DB" in text.lower():
            raise InvalidURLError(
                f"Redis server {where} has no database {settings.connection_kwargs['db']}: {text}"
            ) from exc
        if "NOAUTH" in text or "WRONGPASS" in text or "AUTH" in text:
            raise InvalidURLError(f"Redis server {where} refused the credentials: {text}") from exc
        raise BackendUnavailableError(f"Redis server {where} refused to serve: {text}") from exc
    except (redis_errors.RedisError, OSError) as exc:
        raise BackendUnavailableError(f"Cannot connect to Redis at {where}: {exc}") from exc
