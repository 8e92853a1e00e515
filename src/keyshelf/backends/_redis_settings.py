"""The Redis backend's settings: the URL and options, validated, and what a server must be.

* :class:`RedisSettings` turns a ``redis://``, ``rediss://`` or ``unix://``
  URL plus options into client keyword arguments, refusing what cannot work.
* :func:`server_problem` says why a server cannot serve keyshelf (too old, or
  a cluster node opened without ``cluster=true``).

No I/O, no redis import.
"""

from __future__ import annotations

from typing import Any, NamedTuple
from urllib.parse import SplitResult, unquote

from ..errors import InvalidURLError
from ..options import MAX_SECONDS, as_bool, as_number, as_str, refuse_unknown

DEFAULT_PREFIX = "keyshelf"
DEFAULT_SOCKET_TIMEOUT = 10.0
DEFAULT_CONNECT_TIMEOUT = 5.0

_SSL_OPTIONS = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
_CERT_REQS = ("none", "optional", "required")


class RedisSettings(NamedTuple):
    """Everything ``create()`` needs, validated."""

    prefix: str
    location: str  # redis://host:port/db, never the password
    transport: str  # "tcp", "ssl" or "unix": picks the connection class
    connection_kwargs: dict[str, Any]  # for redis-py's connection class
    max_connections: int | None  # pool size (None: the API's default); callers beyond wait
    pool_timeout: float  # how long they wait before BackendUnavailableError
    cluster: bool  # connect with redis-py's RedisCluster client

    def cluster_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``RedisCluster`` (the URL's node seeds the topology)."""
        kwargs = {k: v for k, v in self.connection_kwargs.items() if k != "db"}
        if self.transport == "ssl":
            kwargs["ssl"] = True
        # Per node; redis-py's async cluster client fails beyond it rather than
        # waiting, so the default leaves it unbounded.
        kwargs["max_connections"] = self.max_connections or 2**31
        return kwargs


# Database numbers are C ints on the server. A pool holds one slot per allowed
# connection, so an absurd max_connections would exhaust memory before any use.
_MAX_DB = 2**31 - 1
_MAX_CONNECTIONS = 100_000


def parse_settings(url: SplitResult, options: dict[str, Any]) -> RedisSettings:
    """Validate the URL and the backend options; raise InvalidURLError if unusable.

    Consumes the options it knows from ``options`` and refuses any other.
    """
    scheme = url.scheme.lower()
    kwargs: dict[str, Any] = {}
    try:
        username = unquote(url.username) if url.username else None
        password = unquote(url.password) if url.password else None
        port = url.port
    except ValueError as exc:
        raise InvalidURLError(f"Bad Redis URL {_redact(url)!r}: {exc}") from None
    if scheme == "unix":
        path = unquote(url.path)
        if not path or path == "/":
            raise InvalidURLError(
                f"A unix:// Redis URL needs the socket path (unix:///run/redis.sock), "
                f"got {_redact(url)!r}"
            )
        if url.hostname:
            raise InvalidURLError(
                f"A unix:// Redis URL takes no host: use unix:///path/to/redis.sock, "
                f"got {_redact(url)!r}"
            )
        kwargs["path"] = path
        db = 0
    else:
        kwargs["host"] = url.hostname or "localhost"
        kwargs["port"] = 6379 if port is None else port
        db = _db_from_path(url)
    if "db" in options:
        db = as_number("db", options.pop("db"), integer=True, minimum=-1, maximum=_MAX_DB)
    kwargs["db"] = db
    if "username" in options:
        username = as_str("username", options.pop("username"))
    if "password" in options:
        password = as_str("password", options.pop("password"))
    if username is not None:
        kwargs["username"] = username
    if password is not None:
        kwargs["password"] = password
    kwargs["socket_timeout"] = as_number(
        "socket_timeout", options.pop("socket_timeout", DEFAULT_SOCKET_TIMEOUT), maximum=MAX_SECONDS
    )
    kwargs["socket_connect_timeout"] = as_number(
        "socket_connect_timeout",
        options.pop("socket_connect_timeout", DEFAULT_CONNECT_TIMEOUT),
        maximum=MAX_SECONDS,
    )
    max_connections = None
    if "max_connections" in options:
        max_connections = as_number(
            "max_connections",
            options.pop("max_connections"),
            integer=True,
            maximum=_MAX_CONNECTIONS,
        )
    pool_timeout = as_number(
        "pool_timeout", options.pop("pool_timeout", kwargs["socket_timeout"]), maximum=MAX_SECONDS
    )
    if "health_check_interval" in options:
        kwargs["health_check_interval"] = as_number(
            "health_check_interval",
            options.pop("health_check_interval"),
            minimum=-1,
            maximum=MAX_SECONDS,
        )
    if "client_name" in options:
        kwargs["client_name"] = as_str("client_name", options.pop("client_name"))
    if scheme == "rediss":
        for name in _SSL_OPTIONS:
            if name in options:
                kwargs[name] = as_str(name, options.pop(name))
        reqs = kwargs.get("ssl_cert_reqs", "required")
        if reqs not in _CERT_REQS:
            raise InvalidURLError(
                f"Option ssl_cert_reqs must be one of {', '.join(_CERT_REQS)}, got {reqs!r}"
            )
    else:
        for name in _SSL_OPTIONS:
            if name in options:
                raise InvalidURLError(f"Option {name} needs a rediss:// (TLS) URL")
    prefix = check_prefix(options.pop("prefix", DEFAULT_PREFIX))
    # Opening a Redis store creates nothing (keys appear with the first write),
    # so create=False opens it as usual: there is no missing store to refuse.
    as_bool("create", options.pop("create", True))
    if "readonly" in options:
        raise InvalidURLError(
            f"Option readonly is not available for {scheme}:// stores (Redis has no read-only "
            "mode for keyshelf): connect as a Redis user whose ACL allows reads only instead"
        )
    cluster = as_bool("cluster", options.pop("cluster", False))
    if cluster and scheme == "unix":
        raise InvalidURLError(
            "A Redis Cluster is reached over TCP: use a redis:// or rediss:// URL"
        )
    if cluster and db != 0:
        raise InvalidURLError(f"A Redis Cluster has only database 0, got database {db}")
    refuse_unknown(scheme, options)
    if scheme == "unix":
        location = f"unix://{kwargs['path']}?db={db}"
    else:
        host = kwargs["host"]
        shown = f"[{host}]" if ":" in host else host
        location = f"{scheme}://{shown}:{kwargs['port']}/{db}"
        if cluster:
            location += "?cluster=true"
    transport = {"unix": "unix", "rediss": "ssl"}.get(scheme, "tcp")
    return RedisSettings(
        prefix, location, transport, kwargs, max_connections, pool_timeout, cluster
    )


def _db_from_path(url: SplitResult) -> int:
    path = url.path.strip("/")
    if not path:
        return 0
    if not path.isdigit() or not path.isascii() or int(path[:12]) > _MAX_DB:
        raise InvalidURLError(
            f"The path of a Redis URL is the database number (redis://host:6379/0), "
            f"got {_redact(url)!r}"
        )
    return int(path)


def _redact(url: SplitResult) -> str:
    if url.password is None:
        return url.geturl()
    netloc = url.netloc.rpartition("@")[2]
    user = url.username or ""
    return url._replace(netloc=f"{user}:***@{netloc}").geturl()


def check_prefix(prefix: object) -> str:
    """The ``prefix`` option: a non-empty printable string without braces."""
    text = as_str("prefix", prefix)
    if "{" in text or "}" in text:
        raise InvalidURLError(
            f"Option prefix must not contain braces (they delimit the namespace), got {text!r}"
        )
    if not text.isprintable():
        raise InvalidURLError(f"Option prefix must be printable text, got {text!r}")
    return text


#: Oldest server version the scripts (ZMSCORE, PEXPIRETIME fallback) and SCAN TYPE need.
MIN_SERVER_VERSION = (6, 2)


def server_problem(info: dict[str, Any], clustered: object, settings: RedisSettings) -> str | None:
    """Why the server described by ``INFO server``/``INFO cluster`` cannot serve; None if it can.

    Returns ``"version: ..."`` for a server that is too old and ``"mode: ..."``
    for a cluster node opened without ``cluster=true``.
    """
    version = str(info.get("redis_version", ""))
    numbers = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if version and numbers < MIN_SERVER_VERSION:
        return (
            f"version: Redis server {settings.location} runs version {version}; keyshelf needs "
            f"Redis {'.'.join(map(str, MIN_SERVER_VERSION))} or later"
        )
    if clustered and not settings.cluster:
        return (
            f"mode: Redis server {settings.location} is a Redis Cluster node: open it with the "
            "option cluster=true"
        )
    return None
