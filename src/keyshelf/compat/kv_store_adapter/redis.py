"""``RedisKVStore`` (kv-store-adapter): keyshelf's Redis backend."""

from __future__ import annotations

from typing import Any

from .._targets import redis_target
from ._store import KeyshelfKVStore

__all__ = ["DEFAULT_OPTIONS", "RedisKVStore"]

#: Defaults for the constructor's arguments; the arguments given win. Change
#: them once at start-up (e.g. ``DEFAULT_OPTIONS["prefix"] = "myapp"``).
DEFAULT_OPTIONS: dict[str, Any] = {"host": "localhost", "port": 6379, "db": 0}


class RedisKVStore(KeyshelfKVStore):
    """A store on a Redis server (6.2 or later), connected at construction.

    ``host``, ``port``, ``db``, ``password``, ``socket_timeout`` as in
    redis-py, plus redis-py's ``username``, ``ssl``, ``unix_socket_path``,
    ``socket_connect_timeout``, ``health_check_interval``, ``client_name``,
    ``max_connections`` and ``ssl_*``, and keyshelf's ``prefix`` (default
    ``"keyshelf"``: every Redis key starts with it) and store options. Other
    redis-py arguments (``decode_responses`` ...) are refused with
    :class:`keyshelf.InvalidURLError`.
    """

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        db: int | None = None,
        password: str | None = None,
        socket_timeout: float | None = None,
        **redis_kwargs: Any,
    ) -> None:
        given = {
            "host": host,
            "port": port,
            "db": db,
            "password": password,
            "socket_timeout": socket_timeout,
        }
        settings = {**DEFAULT_OPTIONS}
        settings.update({name: value for name, value in given.items() if value is not None})
        settings.update(redis_kwargs)
        url, options = redis_target(settings)
        super().__init__(url, **options)
