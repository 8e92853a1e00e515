"""The async ``KVStore`` of the DataKnobs KV package (``dataknobs-kv``), over keyshelf.

Change the import and keep the code::

    from dataknobs_kv import KVStore, migrate_store                  # before
    from keyshelf.compat.dataknobs_kv import KVStore, migrate_store  # after

``KVStore(backend=..., config=...)`` opens a :class:`keyshelf.AsyncStore`
(:func:`keyshelf.open_async`) with dot-notation hierarchical patterns
(``separator="."``) and delegates every awaited method to it; nothing is
implemented twice. The store's own URL and options are built from the
``backend`` name and the ``config`` dict of dataknobs-kv:

============  ==============================================================
``backend``   ``config`` (defaults: :data:`DEFAULT_CONFIG`)
============  ==============================================================
``memory``    none: a new private in-process store
``file``      ``path`` (default ``kv_store.json``), ``format`` (``json``),
              ``compression`` (``gzip``/``none``) -- one JSON file
``sqlite``    ``path`` (default ``kv_store.db``) -- keyshelf's default backend
``redis``     ``host``, ``port``, ``db``, ``password`` (+ ``prefix``,
              ``socket_timeout`` ... of docs/redis.md)
``postgres``  ``host``, ``port``, ``database``, ``user``, ``password``,
              ``table`` (+ ``schema`` ... of docs/postgres.md)
``s3``        ``bucket``, ``prefix``, ``region`` (+ ``endpoint_url``,
              ``profile`` ... of docs/s3.md)
============  ==============================================================

Any other ``config`` entry is passed to :func:`keyshelf.open_async` as a
backend option (``config={"url": ...}`` gives a keyshelf URL outright).
Elasticsearch and the other dataknobs-data backends are not keyshelf
backends: naming one raises :class:`keyshelf.InvalidURLError`.

Where the documents' semantics differ from keyshelf's, this facade follows
the documents; docs/migrating.md lists the differences.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, ClassVar, NamedTuple
from urllib.parse import quote

# Only keyshelf's public API: this facade is what any application could write.
from keyshelf import AsyncStore, migrate_async, open_async
from keyshelf.codec import Codec, Payload, get_codec
from keyshelf.errors import InvalidURLError, SerializationError
from keyshelf.expiry import TTL
from keyshelf.transfer import Progress

from ._targets import Target, postgres_target, redis_target, sqlite_url

__all__ = [
    "BACKENDS",
    "CUSTOM_VALUE_TYPE",
    "DEFAULT_CONFIG",
    "KVStore",
    "Serialized",
    "migrate_store",
]

#: The backend names KVStore accepts (``postgresql`` is an alias of ``postgres``).
BACKENDS = ("memory", "file", "sqlite", "redis", "postgres", "s3")

#: Defaults for each backend's ``config``; the entries of ``config`` win. Change
#: them once at start-up to point every ``KVStore(backend="postgres")`` (say)
#: at your server without repeating the config.
DEFAULT_CONFIG: dict[str, dict[str, Any]] = {
    "memory": {},
    "file": {"path": "kv_store.json"},
    "sqlite": {"path": "kv_store.db"},
    "redis": {"host": "localhost", "port": 6379, "db": 0},
    "postgres": {"host": "localhost"},
    "s3": {},
}

_ALIASES = {"postgresql": "postgres"}

#: The ``value_type`` of a value that a ``serialize`` override encoded itself.
CUSTOM_VALUE_TYPE = "custom"


def backend_target(backend: str, config: Mapping[str, Any] | None = None) -> Target:
    """The keyshelf URL and options for ``KVStore(backend=..., config=...)``."""
    if not isinstance(backend, str):
        raise InvalidURLError(f"backend must be a name such as 'memory', not {backend!r}")
    name = _ALIASES.get(backend.lower(), backend.lower())
    if name not in BACKENDS:
        raise InvalidURLError(
            f"The {backend!r} backend is not supported by keyshelf; use one of "
            f"{', '.join(BACKENDS)} (see docs/migrating.md)"
        )
    if config is not None and not isinstance(config, Mapping):
        raise InvalidURLError(f"config must be a dict, not {type(config).__name__}")
    config = dict(config or {})
    # A URL in config says everything: the defaults are for building one.
    settings = config if "url" in config else {**DEFAULT_CONFIG.get(name, {}), **config}
    url = settings.pop("url", None)
    if url is not None:
        return str(url), settings
    if name == "memory":
        return "memory://", settings
    if name == "file":
        return "file://", settings  # the file backend reads path/format/compression
    if name == "sqlite":
        return sqlite_url(settings.pop("path")), settings
    if name == "redis":
        return redis_target(settings)
    if name == "s3":
        return s3_target(settings)
    return postgres_target(settings)


def s3_target(settings: dict[str, Any]) -> Target:
    """``s3://bucket/prefix`` from ``bucket`` and ``prefix``; the rest are options."""
    bucket = settings.pop("bucket", None)
    if not isinstance(bucket, str) or not bucket:
        raise InvalidURLError("backend='s3' needs config['bucket'], the name of an existing bucket")
    prefix = settings.pop("prefix", "") or ""
    if not isinstance(prefix, str):
        raise InvalidURLError(f"config['prefix'] must be a string, not {type(prefix).__name__}")
    return f"s3://{quote(bucket, safe='')}/{quote(prefix.strip('/'), safe='/')}", settings


class Serialized(NamedTuple):
    """What :meth:`KVStore.serialize` returns: keyshelf's typed encoding of a value."""

    value_type: str
    data: Payload


class _HookCodec(Codec):
    """A keyshelf codec that calls a KVStore subclass's serialize/deserialize."""

    name: ClassVar[str] = "dataknobs-hooks"

    def __init__(self, store: KVStore) -> None:
        self._store = store

    def encode(self, value: object) -> tuple[str, Payload]:
        out = self._store.serialize(value)
        if isinstance(out, Serialized):
            return out.value_type, out.data
        if out is None or type(out) in (bytes, str, int, float):
            return CUSTOM_VALUE_TYPE, out
        if isinstance(out, bytearray | memoryview):
            return CUSTOM_VALUE_TYPE, bytes(out)
        raise SerializationError(
            f"serialize() must return bytes, str, int, float or None, or what "
            f"super().serialize() returned; got {type(out).__name__}"
        )

    def decode(self, tag: str, payload: Payload) -> object:
        if isinstance(payload, bytearray | memoryview):
            payload = bytes(payload)
        return self._store.deserialize(payload, tag)


class KVStore:
    """An async key-value store with hierarchical keys (dataknobs-kv's ``KVStore``).

    Every method is awaited. Keys are dot paths (``app.config.debug``) and
    patterns are hierarchical: ``*`` stays within one segment, ``**`` spans
    segments, ``?``, ``[a-z]`` and ``{dev,prod}`` as in its design plan. Each store
    acts on its ``namespace`` (default ``"default"``).

    ``auto_cleanup``/``cleanup_interval`` purge expired keys in a background
    task; ``cache="memory"`` with ``cache_ttl``/``cache_size`` adds keyshelf's
    read-through cache. Further keyword arguments are keyshelf options
    (``codec``, ``max_value_size``, ``clock``, ``separator`` ...). The
    keyshelf store itself is :attr:`kv`; every keyshelf method not listed
    here (``ttl``, ``expire``, ``get_entry``, ``decrement`` ...) is reachable
    on this object too.
    """

    def __init__(
        self,
        backend: str = "memory",
        config: Mapping[str, Any] | None = None,
        *,
        namespace: str | None = None,
        auto_cleanup: bool = False,
        cleanup_interval: float | None = None,
        cache: str | bool | None = None,
        cache_ttl: float | None = None,
        cache_size: int | None = None,
        separator: str | None = ".",
        **options: Any,
    ) -> None:
        url, settings = backend_target(backend, config)
        given = {
            "namespace": namespace,
            "cleanup_interval": cleanup_interval,
            "cache": cache,
            "cache_ttl": cache_ttl,
            "cache_size": cache_size,
        }
        settings.update({name: value for name, value in given.items() if value is not None})
        settings.update(options)
        self._separator = separator
        self._base_codec = get_codec(settings.pop("codec", None))
        overridden = type(self).serialize is not KVStore.serialize
        overridden = overridden or type(self).deserialize is not KVStore.deserialize
        codec = _HookCodec(self) if overridden else self._base_codec
        self._kv = open_async(
            url, auto_cleanup=auto_cleanup, separator=separator or None, codec=codec, **settings
        )

    # -- the keyshelf store --------------------------------------------------

    @property
    def kv(self) -> AsyncStore:
        """The :class:`keyshelf.AsyncStore` this facade delegates to."""
        return self._kv

    @property
    def namespace(self) -> str:
        """The namespace every method acts on."""
        return self._kv.namespace_name

    def __getattr__(self, name: str) -> Any:
        # Every other keyshelf method: ttl, expire, persist, decrement, get_entry ...
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._kv, name)

    # -- custom serialization (as in dataknobs-kv) ------------------------------

    def serialize(self, value: Any) -> Any:
        """Encode ``value`` for storage: override to store your own types.

        An override returns bytes (or ``str``/``int``/``float``/``None``) for
        the values it handles -- they are stored with the value type
        ``"custom"`` -- and ``super().serialize(value)`` for the rest.
        """
        tag, payload = self._base_codec.encode(value)
        return Serialized(tag, payload)

    def deserialize(self, data: Any, value_type: str) -> Any:
        """Decode what :meth:`serialize` stored; ``value_type`` is ``"custom"``
        for the values an override encoded itself."""
        return self._base_codec.decode(value_type, data)

    # -- basic operations ---------------------------------------------------------

    async def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` (the plain value), or ``default`` if missing or expired."""
        return await self._kv.get(key, default)

    async def set(
        self,
        key: str,
        value: Any,
        metadata: dict[str, Any] | None = None,
        ttl: TTL | None = None,
    ) -> bool:
        """Store ``value`` with optional user ``metadata`` and ``ttl`` (seconds or timedelta).

        A ``ttl`` entry in ``metadata`` sets the expiry when ``ttl`` is not
        given. Without ``metadata`` the key keeps its metadata.
        """
        return await self._kv.set(key, value, ttl, metadata=metadata)

    async def delete(self, key: str) -> bool:
        """Delete ``key``; True if it existed."""
        return await self._kv.delete(key) == 1

    async def exists(self, key: str) -> bool:
        """True if ``key`` exists (expired keys do not)."""
        return await self._kv.exists(key)

    # -- batch operations -----------------------------------------------------------

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """Values of the keys that exist; missing ones are left out."""
        return await self._kv.get_many(keys)

    async def set_many(self, items: Mapping[str, Any], ttl: TTL | None = None) -> dict[str, bool]:
        """Set every pair atomically; ``{key: True}``."""
        return await self._kv.set_many(items, ttl)

    async def delete_many(self, keys: Iterable[str]) -> dict[str, bool]:
        """Delete keys atomically; ``{key: existed}``."""
        return await self._kv.delete_many(keys)

    # -- pattern operations ------------------------------------------------------------

    def _all(self) -> str:
        return "**" if self._separator else "*"

    async def keys(self, pattern: str | None = None) -> list[str]:
        """Keys matching ``pattern``, sorted; no pattern lists every key."""
        return await self._kv.keys(self._all() if pattern is None else pattern)

    async def get_pattern(self, pattern: str) -> dict[str, Any]:
        """``{key: value}`` for the keys matching ``pattern``, in key order."""
        return await self._kv.get_pattern(pattern)

    async def delete_pattern(self, pattern: str) -> int:
        """Delete the keys matching ``pattern`` atomically; how many existed."""
        return await self._kv.delete_pattern(pattern)

    # -- metadata ---------------------------------------------------------------------

    async def get_metadata(self, key: str) -> dict[str, Any] | None:
        """The user metadata of ``key`` (``{}`` if none); None if missing."""
        return await self._kv.get_metadata(key)

    async def set_metadata(
        self, key: str, metadata: dict[str, Any], *, replace: bool = False
    ) -> bool:
        """Merge ``metadata`` into the key's metadata (or replace it); False if missing."""
        return await self._kv.set_metadata(key, metadata, replace=replace)

    # -- atomic operations ------------------------------------------------------------

    async def compare_and_swap(self, key: str, old_value: Any, new_value: Any) -> bool:
        """Set ``new_value`` only if the value is ``old_value`` (same type); keeps the TTL."""
        return await self._kv.compare_and_swap(key, old_value, new_value)

    async def increment(self, key: str, delta: int | float = 1) -> int | float:
        """Atomically add ``delta`` (negative to decrement); a missing key starts at 0."""
        return await self._kv.increment(key, delta)

    async def append(self, key: str, value: str | bytes) -> str | bytes:
        """Atomically append to a str (or bytes) value; a missing key starts empty."""
        return await self._kv.append(key, value)

    # -- expiry ---------------------------------------------------------------------------

    async def cleanup_expired(self) -> int:
        """Remove this namespace's expired keys now; how many were removed."""
        return await self._kv.cleanup_expired()

    # -- lifecycle ------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop the cleanup task and release connections."""
        await self._kv.aclose()

    aclose = close

    async def __aenter__(self) -> KVStore:
        await self._kv.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} namespace={self.namespace!r}>"


async def migrate_store(
    source: KVStore | AsyncStore | str | os.PathLike[str],
    target: KVStore | AsyncStore | str | os.PathLike[str],
    batch_size: int = 1000,
    *,
    namespaces: Iterable[str] | None = None,
    progress: Progress | None = None,
) -> int:
    """Copy every namespace of ``source`` into ``target`` (dataknobs-kv's ``migrate_store``).

    :func:`keyshelf.migrate_async`: values with their types, TTLs (as the
    same absolute expiry) and user metadata, ``batch_size`` keys per backend
    call. Returns the number of keys copied.
    """
    return await migrate_async(
        _unwrap(source),
        _unwrap(target),
        batch_size=batch_size,
        namespaces=namespaces,
        progress=progress,
    )


def _unwrap(store: Any) -> Any:
    return store.kv if isinstance(store, KVStore) else store
