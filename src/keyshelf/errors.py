"""The keyshelf error tree, shared by the sync and the async API.

Every exception keyshelf raises on purpose derives from :class:`KVError`.
Usage errors also derive from the builtin that callers of cinchdb's KV store,
dataknobs-kv and kv-store-adapter already catch, so ``except ValueError`` keeps working::

    KVError
    ├── InvalidKeyError            (also ValueError)   bad key or namespace
    ├── InvalidPatternError        (also ValueError)   bad pattern
    ├── InvalidTTLError            (also ValueError)   zero, negative, nan, bool ...
    ├── InvalidURLError            (also ValueError)   unusable URL or option
    ├── KeysNotFoundError          (also ValueError)   mget with missing keys
    ├── ValueTooLargeError         (also ValueError)   above max_value_size
    ├── NotNumericError            (also ValueError)   increment on a non-number
    ├── AppendTypeError            (also ValueError)   append of mismatched types
    ├── InvalidArgumentError       (also ValueError)   bad delta, metadata, option ...
    ├── IncrementOverflowError     (also OverflowError) int result beyond 64 bits
    ├── SerializationError         (also TypeError and ValueError)
    ├── KeyNotFoundError           (also KeyError)     kv[key] on a missing key
    ├── ExportFormatError          (also ValueError)   import_ of a corrupt export (names the line)
    ├── LockNotAcquiredError                           kv.lock(...): held by another owner
    ├── LockNotOwnedError                              extend/release of a lock no longer held
    ├── TransactionConflictError                       transaction(): conflicts beyond retries
    ├── UnsupportedOperationError                      not on this backend (multi-key commit)
    ├── ChangesCompactedError                          watch(since=N): history pruned past N
    └── BackendError                                   the storage failed
        ├── BackendUnavailableError                    cannot connect / timed out
        ├── StoreClosedError                           the store was closed
        ├── StoreNotFoundError                         open(create=False) of a missing store
        ├── ReadOnlyStoreError                         a write to a store opened readonly=True
        └── IncompatibleStoreError                     not a keyshelf store, or a newer schema

A rejected call never changes the store. Backend failures carry the driver's
exception as ``__cause__``; no driver exception escapes the public API.
"""

from __future__ import annotations


class KVError(Exception):
    """Root of every error keyshelf raises."""


class InvalidKeyError(KVError, ValueError):
    """A key or namespace breaks the key rules (docs/semantics.md, keys and namespaces)."""


class InvalidPatternError(KVError, ValueError):
    """A pattern is not a string or cannot be used."""


class InvalidTTLError(KVError, ValueError):
    """A TTL is not a positive, finite number of seconds or timedelta."""


class InvalidURLError(KVError, ValueError):
    """A store URL or open() option cannot work; raised at open time."""


class KeysNotFoundError(KVError, ValueError):
    """``mget`` was asked for keys that are missing or expired.

    The message is ``Keys not found: [...]`` and ``missing`` lists them.
    """

    def __init__(self, missing: list[str]) -> None:
        super().__init__(f"Keys not found: {missing!r}")
        self.missing = missing


class ValueTooLargeError(KVError, ValueError):
    """An encoded value is larger than ``max_value_size``."""


class StoreFullError(KVError):
    """A write to a bounded store with ``eviction="none"`` would exceed a limit.

    Raised instead of evicting when the write would take the store above
    ``max_keys`` or ``max_bytes``; nothing was changed (docs/caching.md).
    """


class NotNumericError(KVError, ValueError):
    """``increment``/``decrement`` on a value that is not an int or float."""


class AppendTypeError(KVError, ValueError):
    """``append`` of a value whose type does not match the stored one."""


class InvalidArgumentError(KVError, ValueError):
    """An argument other than a key, TTL or value is unusable (delta, metadata...)."""


class IncrementOverflowError(KVError, OverflowError):
    """An integer increment would leave the signed 64-bit range."""


class SerializationError(KVError, TypeError, ValueError):
    """A value cannot be encoded by the store's codec (nothing was written)."""


class UndecodableValueWarning(UserWarning):
    """A listing left out a key whose stored value the store's codec cannot decode.

    Such a record (a pickle read without ``codec="pickle"``, another codec's
    custom tag, copied with ``import_(..., opaque=True)`` or written by
    another program) never makes a listing of the other keys fail:
    ``dump``, ``values``, ``get_pattern`` and ``iter_items`` leave it out and
    warn; ``get`` of that key raises :class:`SerializationError`.
    """


class KeyNotFoundError(KVError, KeyError):
    """``kv[key]`` or ``del kv[key]`` on a missing or expired key."""

    def __str__(self) -> str:
        # KeyError quotes its argument; keep the message readable.
        return str(self.args[0]) if self.args else ""


class ExportFormatError(KVError, ValueError):
    """An export being imported is corrupt or truncated; nothing was imported.

    The message names the source and the line; ``line`` holds the number.
    """

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


class LockNotAcquiredError(KVError):
    """A lock is held by another owner: at once with ``blocking=False``, or after ``timeout``.

    Nothing was changed.
    """


class LockNotOwnedError(KVError):
    """``extend`` or ``release`` of a lock this owner no longer holds; nothing was changed.

    The lease ended (by the store's clock), the lock was released, or another
    owner took it over: the work it guarded may have overlapped another
    holder's (docs/coordination.md).
    """


class TransactionConflictError(KVError):
    """``kv.transaction(fn)``: a key it read kept changing; gave up after ``retries``.

    Nothing of the last attempt was written (docs/coordination.md).
    """


class UnsupportedOperationError(KVError):
    """The backend cannot do this operation (names the backend); nothing was changed.

    Raised by ``kv.atomic().commit()`` and ``kv.transaction()`` on a backend
    that cannot change several keys in one atomic step.
    """


class ChangesCompactedError(KVError):
    """``kv.watch(since=N)``: changes after revision ``N`` were pruned from the history.

    ``oldest`` is the oldest revision still kept: every change with a revision
    ``>= oldest`` can be replayed, so ``watch(since=err.oldest - 1)`` works
    (docs/changes.md). Nothing was delivered for the pruned range.
    """

    def __init__(self, message: str, oldest: int) -> None:
        super().__init__(message)
        self.oldest = oldest

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self), self.oldest))


class BackendError(KVError):
    """The storage backend failed; the driver's exception is chained."""


class BackendUnavailableError(BackendError):
    """The backend cannot be reached or did not answer in time."""


class StoreClosedError(BackendError):
    """An operation was attempted on a closed store."""


class IncompatibleStoreError(BackendError):
    """The target is not a keyshelf store or holds a newer schema version."""


class StoreNotFoundError(BackendError):
    """``open(..., create=False)`` found no store there; nothing was created."""


class ReadOnlyStoreError(BackendError):
    """A write was attempted on a store opened with ``readonly=True``; nothing changed."""


__all__ = [
    "AppendTypeError",
    "BackendError",
    "BackendUnavailableError",
    "ChangesCompactedError",
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
    "LockNotAcquiredError",
    "LockNotOwnedError",
    "NotNumericError",
    "ReadOnlyStoreError",
    "SerializationError",
    "StoreClosedError",
    "StoreFullError",
    "StoreNotFoundError",
    "TransactionConflictError",
    "UndecodableValueWarning",
    "UnsupportedOperationError",
    "ValueTooLargeError",
]
