"""The sync KV Store Adapter API (``kv-store-adapter``), over keyshelf.

The module paths of that document work with ``keyshelf.compat.`` in front::

    from keyshelf.compat.kv_store_adapter.memory import MemoryKVStore
    from keyshelf.compat.kv_store_adapter.disk import DiskKVStore
    from keyshelf.compat.kv_store_adapter.redis import RedisKVStore
    from keyshelf.compat.kv_store_adapter.exceptions import KeyNotFoundError

Each store is a thin adapter over a :class:`keyshelf.Store`
(:func:`keyshelf.open`): ``namespace=`` on every method is a namespace view,
``get`` raises :class:`KeyNotFoundError` for a missing key, ``set`` returns
None, ``delete`` a bool, ``ttl`` None for a key without expiry (or missing).
Patterns are keyshelf's Redis glob. See docs/migrating.md for the
differences from the original package.
"""

from __future__ import annotations

from .disk import DiskKVStore
from .exceptions import KeyNotFoundError, KVStoreError, NamespaceError, TTLError
from .memory import MemoryKVStore
from .protocol import KVStoreProtocol
from .redis import RedisKVStore

__all__ = [
    "DiskKVStore",
    "KVStoreError",
    "KVStoreProtocol",
    "KeyNotFoundError",
    "MemoryKVStore",
    "NamespaceError",
    "RedisKVStore",
    "TTLError",
]
