"""The exceptions of kv-store-adapter, as keyshelf's own classes.

They are the same classes, not copies, so ``except KeyNotFoundError`` catches
what keyshelf raises, and ``except keyshelf.KeyNotFoundError`` what the
facade raises:

* :data:`KVStoreError` is :class:`keyshelf.KVError` (the root of every error);
* :data:`KeyNotFoundError` is :class:`keyshelf.KeyNotFoundError` (a ``KeyError``);
* :data:`TTLError` is :class:`keyshelf.InvalidTTLError` (a ``ValueError``);
* :data:`NamespaceError` is :class:`keyshelf.InvalidKeyError` (a ``ValueError``),
  which keyshelf raises for a bad namespace name as for a bad key.
"""

from __future__ import annotations

from ...errors import InvalidKeyError, InvalidTTLError, KeyNotFoundError, KVError

KVStoreError = KVError
TTLError = InvalidTTLError
NamespaceError = InvalidKeyError

__all__ = ["KVStoreError", "KeyNotFoundError", "NamespaceError", "TTLError"]
