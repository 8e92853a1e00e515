"""The Redis backend: ``redis://host:6379/0``, ``rediss://`` (TLS), ``unix:///path.sock``.

The registry imports this module only when such a URL is opened, so
``import keyshelf`` never needs redis-py; without it, opening a Redis URL
raises an ImportError that names the extra to install (``keyshelf[redis]``).

The implementation is :mod:`._redis_async` (written once over
``redis.asyncio``) and :mod:`._redis_sync` (generated from it); the URL and
options are read by :mod:`._redis_settings`, the key layout is
:mod:`._redis_layout`, the value encoding and Lua scripts (``lua/*.lua``) are
in :mod:`._redis_common`; the user guide is ``docs/redis.md``.

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

``open()`` connects once (``PING``, ``INFO``) and loads every Lua script
(one pipeline; on a Redis Cluster, on every primary): an unreachable server
raises :class:`BackendUnavailableError` naming host and port; a wrong
password, a missing database number or a cluster/standalone mismatch
:class:`InvalidURLError`; a server older than 6.2
:class:`IncompatibleStoreError` -- all at open time. ``open_async()`` checks
the URL and options at once but does no I/O: the same connection and checks
run when the store is entered (``async with``) or on its first call, inside
the event loop (they never block it), and raise the same errors there.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult

import redis  # noqa: F401  (an ImportError here becomes the registry's install hint)
from redis import exceptions as redis_errors

from ._redis_async import AsyncRedisBackend
from ._redis_settings import MIN_SERVER_VERSION, parse_settings
from ._redis_sync import RedisBackend, open_error

__all__ = ["MIN_SERVER_VERSION", "AsyncRedisBackend", "RedisBackend", "create"]


def create(url: SplitResult, options: dict[str, Any], asynchronous: bool) -> Any:
    """Factory for ``redis://``, ``rediss://`` and ``unix://`` URLs.

    Validates the URL and options (InvalidURLError now, for both APIs). The
    sync backend then connects, checks the server and loads the scripts, so
    that a server that cannot work is refused now rather than at the first
    operation; the async backend does the same on its first call, without
    blocking the event loop.
    """
    settings = parse_settings(url, options)
    if asynchronous:
        return AsyncRedisBackend(settings)
    try:
        backend = RedisBackend(settings)  # a cluster client connects here
    except (redis_errors.RedisError, redis_errors.RedisClusterException, OSError) as exc:
        raise open_error(exc, settings) from exc
    try:
        backend.connect()
    except BaseException:
        backend.close()
        raise
    return backend
