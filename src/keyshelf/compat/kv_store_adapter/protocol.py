"""``KVStoreProtocol``: the abstract interface of kv-store-adapter, unchanged."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import timedelta
from typing import Any

__all__ = ["KVStoreProtocol"]


class KVStoreProtocol(ABC):
    """What every store of kv-store-adapter implements (all three here do)."""

    @abstractmethod
    def get(self, key: str, namespace: str | None = None) -> Any:
        """The value of ``key``; raises KeyNotFoundError if it is missing."""

    @abstractmethod
    def set(
        self,
        key: str,
        value: Any,
        namespace: str | None = None,
        ttl: int | float | timedelta | None = None,
    ) -> None:
        """Store ``value``, expiring after ``ttl`` (seconds or timedelta) if given."""

    @abstractmethod
    def delete(self, key: str, namespace: str | None = None) -> bool:
        """Delete ``key``; True if it existed."""

    @abstractmethod
    def ttl(self, key: str, namespace: str | None = None) -> float | None:
        """Seconds left before ``key`` expires; None without expiry (or if missing)."""

    @abstractmethod
    def exists(self, key: str, namespace: str | None = None) -> bool:
        """True if ``key`` exists and has not expired."""

    @abstractmethod
    def keys(self, namespace: str | None = None, pattern: str = "*") -> list[str]:
        """Keys of the namespace matching the glob ``pattern``."""

    @abstractmethod
    def clear_namespace(self, namespace: str) -> int:
        """Delete every key of ``namespace``; how many there were."""

    @abstractmethod
    def list_namespaces(self) -> list[str]:
        """Names of the namespaces that hold keys."""
