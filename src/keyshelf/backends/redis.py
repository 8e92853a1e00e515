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
  ``health_check_interval``, ``client_name``;
* ``max_connections`` (sync: unbounded, async: 64; callers beyond it wait up
  to ``pool_timeout`` seconds, default ``socket_timeout``);
* ``cluster=true``: the URL names a node of a Redis Cluster;
* with ``rediss://``: ``ssl_cert_reqs`` (``none``/``optional``/``required``),
  ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``.

Opening connects once (``PING``, ``INFO``): an unreachable server raises
:class:`BackendUnavailableError` naming host and port; a wrong password, a
missing database number or a cluster/standalone mismatch
:class:`InvalidURLError`; a server older than 6.2
:class:`IncompatibleStoreError` -- all at open time.
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
    try:
        backend = RedisBackend(settings)  # a cluster client connects here
    except (redis_errors.RedisError, redis_errors.RedisClusterException, OSError) as exc:
        raise _open_error(exc, settings) from exc
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
    """Connect, authenticate, select the database, check the server version and mode."""
    where = settings.location
    client = backend.client
    try:
        client.execute_command("PING")
        try:
            info = client.execute_command("INFO", "server")
            clustered = client.execute_command("INFO", "cluster").get("cluster_enabled")
        except redis_errors.ResponseError:
            info, clustered = {}, None  # INFO disabled (managed services): skip the checks
    except (redis_errors.RedisError, redis_errors.RedisClusterException, OSError) as exc:
        raise _open_error(exc, settings) from exc
    version = str(info.get("redis_version", ""))
    numbers = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if version and numbers < MIN_SERVER_VERSION:
        raise IncompatibleStoreError(
            f"Redis server {where} runs version {version}; keyshelf needs Redis "
            f"{'.'.join(map(str, MIN_SERVER_VERSION))} or later"
        )
    if clustered and not settings.cluster:
        raise InvalidURLError(
            f"Redis server {where} is a Redis Cluster node: open it with the option cluster=true"
        )


def _open_error(exc: BaseException, settings: RedisSettings) -> Exception:
    """The keyshelf error for a failure while opening."""
    where = settings.location
    text = str(exc)
    if isinstance(exc, redis_errors.AuthenticationError):
        return InvalidURLError(f"Redis server {where} refused the credentials: {text}")
    if isinstance(exc, redis_errors.ResponseError):
        if "DB index" in text or "invalid DB" in text.lower():
            db = settings.connection_kwargs["db"]
            return InvalidURLError(f"Redis server {where} has no database {db}: {text}")
        if "NOAUTH" in text or "WRONGPASS" in text or "AUTH" in text:
            return InvalidURLError(f"Redis server {where} refused the credentials: {text}")
        return BackendUnavailableError(f"Redis server {where} refused to serve: {text}")
    if isinstance(exc, redis_errors.RedisClusterException) and "not enabled" in text:
        return InvalidURLError(
            f"Redis server {where} is not a Redis Cluster node: drop the option cluster=true"
        )
    return BackendUnavailableError(f"Cannot connect to Redis at {where}: {text}")
