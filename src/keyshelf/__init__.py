"""keyshelf: a typed key-value store for Python.

Redis-like operations (TTL, atomic counters, set-if-absent, compare-and-swap,
batches, glob patterns) with exact type preservation, namespaces and per-key
metadata, behind one sync API (:func:`open`) and one async API
(:func:`open_async`), over interchangeable backends chosen by URL: an embedded
SQLite file by default, memory, a JSON file, Redis and PostgreSQL; :func:`migrate`
copies between them.
"""

from __future__ import annotations

from ._locks_async import AsyncLock
from ._locks_sync import Lock
from ._open import open, open_async
from ._store_async import AsyncStore
from ._store_sync import Store
from ._transactions_async import AsyncAtomic, AsyncTransaction
from ._transactions_sync import Atomic, Transaction
from ._watch_async import AsyncWatch
from ._watch_sync import Watch
from .changes import ChangeEvent
from .codec import Codec, PickleCodec
from .entry import Entry
from .errors import (
    AppendTypeError,
    BackendError,
    BackendUnavailableError,
    ChangesCompactedError,
    ExportFormatError,
    IncompatibleStoreError,
    IncrementOverflowError,
    InvalidArgumentError,
    InvalidKeyError,
    InvalidPatternError,
    InvalidTTLError,
    InvalidURLError,
    KeyNotFoundError,
    KeysNotFoundError,
    KVError,
    LockNotAcquiredError,
    LockNotOwnedError,
    NotNumericError,
    ReadOnlyStoreError,
    SerializationError,
    StoreClosedError,
    StoreFullError,
    StoreNotFoundError,
    TransactionConflictError,
    UndecodableValueWarning,
    UnsupportedOperationError,
    ValueTooLargeError,
)
from .migration import migrate, migrate_async
from .registry import register
from .transactions import CommitResult

__version__ = "0.1.0"

__all__ = [
    "AppendTypeError",
    "AsyncAtomic",
    "AsyncLock",
    "AsyncStore",
    "AsyncTransaction",
    "AsyncWatch",
    "Atomic",
    "BackendError",
    "BackendUnavailableError",
    "ChangeEvent",
    "ChangesCompactedError",
    "Codec",
    "CommitResult",
    "Entry",
    "ExportFormatError",
    "IncompatibleStoreError",
    "IncrementOverflowError",
    "InvalidArgumentError",
    "InvalidKeyError",
    "InvalidPatternError",
    "InvalidTTLError",
    "InvalidURLError",
    "KVError",
    "KeyNotFoundError",
    "KeysNotFoundError",
    "Lock",
    "LockNotAcquiredError",
    "LockNotOwnedError",
    "NotNumericError",
    "PickleCodec",
    "ReadOnlyStoreError",
    "SerializationError",
    "Store",
    "StoreClosedError",
    "StoreFullError",
    "StoreNotFoundError",
    "Transaction",
    "TransactionConflictError",
    "UndecodableValueWarning",
    "UnsupportedOperationError",
    "ValueTooLargeError",
    "Watch",
    "migrate",
    "migrate_async",
    "open",
    "open_async",
    "register",
]
