"""The one adapter behind MemoryKVStore, DiskKVStore and RedisKVStore."""

from __future__ import annotations

import os
from datetime import timedelta
from types import TracebackType
from typing import Any

# Only keyshelf's public API: this adapter is what any application could write.
from keyshelf import Store, open
from keyshelf.errors import KeyNotFoundError

from .protocol import KVStoreProtocol

_MISSING: Any = object()


class KeyshelfKVStore(KVStoreProtocol):
    """A kv-store-adapter store over a :class:`keyshelf.Store`.

    ``namespace=None`` is the store's namespace (``"default"`` unless the
    ``namespace`` option says otherwise); any other name acts through a
    namespace view of the same store. Keyword options of the constructors are
    :func:`keyshelf.open` options (``codec="pickle"``, ``clock``,
    ``max_value_size`` ...).
    """

    def __init__(self, url: str | os.PathLike[str], **options: Any) -> None:
        self._store = open(url, **options)

    @property
    def store(self) -> Store:
        """The :class:`keyshelf.Store` this adapter delegates to (the default namespace)."""
        return self._store

    def _view(self, namespace: str | None) -> Store:
        return self._store if namespace is None else self._store.namespace(namespace)

    def get(self, key: str, namespace: str | None = None) -> Any:
        """The value of ``key``; raises :class:`KeyNotFoundError` if missing or expired."""
        view = self._view(namespace)
        value = view.get(key, _MISSING)
        if value is _MISSING:
            raise KeyNotFoundError(f"Key {key!r} not found in namespace {view.namespace_name!r}")
        return value

    def set(
        self,
        key: str,
        value: Any,
        namespace: str | None = None,
        ttl: int | float | timedelta | None = None,
    ) -> None:
        """Store ``value``; ``ttl`` in seconds or as a timedelta (positive)."""
        self._view(namespace).set(key, value, ttl)

    def delete(self, key: str, namespace: str | None = None) -> bool:
        """Delete ``key``; True if it existed."""
        return self._view(namespace).delete(key) == 1

    def ttl(self, key: str, namespace: str | None = None) -> float | None:
        """Seconds left before ``key`` expires; None without expiry, or if missing."""
        left = self._view(namespace).ttl(key)
        return None if left is None or left == -1 else left

    def exists(self, key: str, namespace: str | None = None) -> bool:
        """True if ``key`` exists and has not expired."""
        return self._view(namespace).exists(key)

    def keys(self, namespace: str | None = None, pattern: str = "*") -> list[str]:
        """Keys of the namespace matching ``pattern`` (Redis glob), sorted."""
        return self._view(namespace).keys(pattern)

    def clear_namespace(self, namespace: str | None) -> int:
        """Delete every key of ``namespace`` (None: the default); how many were live."""
        return self._store.clear_namespace(self._view(namespace).namespace_name)

    def list_namespaces(self) -> list[str]:
        """Sorted names of the namespaces holding live keys."""
        return self._store.list_namespaces()

    def close(self) -> None:
        """Release the store's file or connections."""
        self._store.close()

    def __enter__(self) -> KeyshelfKVStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
