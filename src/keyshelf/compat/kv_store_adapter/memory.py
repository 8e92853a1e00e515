"""``MemoryKVStore`` (kv-store-adapter): keyshelf's ``memory://`` backend."""

from __future__ import annotations

from typing import Any

from ._store import KeyshelfKVStore

__all__ = ["MemoryKVStore"]


class MemoryKVStore(KeyshelfKVStore):
    """A private in-process store (thread-safe; lost when the process ends)."""

    def __init__(self, **options: Any) -> None:
        super().__init__("memory://", **options)
