"""The read-through cache tier (``keyshelf.open(url, cache="memory")``, as in dataknobs-kv).

A wrapper backend keeps the records of hot keys in process memory in front of
any backend, sync or async, so the backends themselves are untouched. What is
cached: the record (value, expiry, metadata) a single-key read fetched, or the
fact that the key was missing. Reads of one key (``get``, ``exists``,
``ttl``, ``get_entry``, ``get_metadata``, and the hits of ``get_many``/
``mget``) are served from it; listings, counts, patterns and sizes always go
to the backend.

Bounds and guarantees:

* **Entries**: at most ``cache_size`` keys (default 1000), least recently
  used evicted first.
* **Staleness**: an entry is served for at most ``cache_ttl`` seconds
  (default 60) after it was fetched, measured on the store's clock. Writes
  made by *other* stores or processes become visible within that bound.
* **Writes through this store** invalidate the keys they touch when they
  complete: every write primitive (``set`` and its conditions, batches,
  ``delete``, patterns, ``clear``, increments, ``append``, compare-and-swap,
  metadata, ``expire``/``persist``, import and migration). A read that was in
  flight while such a write completed is not cached, so this store never
  reads its own writes stale.
* **Expiry**: an entry keeps the record's absolute expiry and is never served
  at or after it; an expired key reads as missing.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, NamedTuple

from .._show import show
from ..errors import InvalidURLError
from ..options import as_number
from ..patterns import Matcher
from ..records import Record

DEFAULT_TTL = 60.0
DEFAULT_SIZE = 1000

_TRUE = {"memory", "true", "1", "yes", "on"}
# An empty value ("?cache=") is refused like every other empty option.
_FALSE = {"false", "0", "no", "off", "none"}
# Generation counters, one per stripe of keys: a write bumps the stripes of
# the keys it touched, and a read fills the cache only if its stripe did not
# move while the read was in flight.
_STRIPES = 64


class CacheConfig(NamedTuple):
    """The cache options of :func:`keyshelf.open`."""

    ttl: float
    size: int


def cache_options(options: dict[str, Any]) -> CacheConfig | None:
    """Pop ``cache``, ``cache_ttl`` and ``cache_size`` from open() options.

    ``cache=True`` or ``"memory"`` enables the cache; ``False``, ``None`` or
    ``"none"`` leave it off. Raises InvalidURLError for anything else, and for
    ``cache_ttl``/``cache_size`` without ``cache``.
    """
    cache = options.pop("cache", None)
    ttl = options.pop("cache_ttl", None)
    size = options.pop("cache_size", None)
    if cache is True or (isinstance(cache, str) and cache.lower() in _TRUE):
        enabled = True
    elif cache is None or cache is False or (isinstance(cache, str) and cache.lower() in _FALSE):
        enabled = False
    else:
        raise InvalidURLError(
            f"Unknown cache {show(cache)}: use cache='memory' (or True) for the in-memory cache"
        )
    if not enabled:
        if cache is None and (ttl is not None or size is not None):
            name = "cache_ttl" if ttl is not None else "cache_size"
            raise InvalidURLError(f"Option {name} needs cache='memory'")
        return None
    if isinstance(size, float) and not size.is_integer():
        raise InvalidURLError(f"Option cache_size must be an integer, got {show(size)}")
    return CacheConfig(
        as_number("cache_ttl", DEFAULT_TTL if ttl is None else ttl),
        as_number("cache_size", DEFAULT_SIZE if size is None else size, integer=True),
    )


def wrap(backend: Any, config: CacheConfig, asynchronous: bool) -> Any:
    """Put the cache tier in front of a backend built by a factory."""
    if asynchronous:
        from ._cache_async import AsyncCachedBackend

        return AsyncCachedBackend(backend, RecordCache(config))
    from ._cache_sync import CachedBackend

    return CachedBackend(backend, RecordCache(config))


class RecordCache:
    """A thread-safe LRU of records (or misses) with fetch times. No I/O.

    Times are milliseconds on the store's clock (the ``now`` every backend
    primitive receives).
    """

    def __init__(self, config: CacheConfig) -> None:
        self.size = config.size
        self.ttl_ms = max(1, round(config.ttl * 1000))
        self._entries: OrderedDict[tuple[str, str], tuple[Record | None, int]] = OrderedDict()
        self._gens = [0] * _STRIPES
        self._lock = threading.Lock()
        #: Reads answered from the cache / sent to the backend (for tests, stats).
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _stripe(ns: str, key: str) -> int:
        return hash((ns, key)) % _STRIPES

    def lookup(self, ns: str, key: str, now: int) -> tuple[bool, Record | None]:
        """``(True, record or None)`` on a fresh hit, ``(False, None)`` on a miss.

        A hit on a record expired at ``now`` answers None (missing).
        """
        slot = (ns, key)
        with self._lock:
            entry = self._entries.get(slot)
            if entry is not None:
                record, fetched = entry
                age = now - fetched
                # A clock that went backwards cannot prove freshness either.
                if 0 <= age < self.ttl_ms:
                    self._entries.move_to_end(slot)
                    self.hits += 1
                    expires = None if record is None else record.expires_at
                    if expires is not None and expires <= now:
                        return True, None
                    return True, record
                del self._entries[slot]
            self.misses += 1
            return False, None

    def ticket(self, ns: str, key: str) -> int:
        """Take before a backend read; pass to :meth:`fill`."""
        return self._gens[self._stripe(ns, key)]

    def fill(self, ns: str, key: str, record: Record | None, fetched: int, ticket: int) -> None:
        """Cache what a read fetched, unless a write touched the key meanwhile."""
        with self._lock:
            if self._gens[self._stripe(ns, key)] != ticket:
                return
            slot = (ns, key)
            self._entries[slot] = (record, fetched)
            self._entries.move_to_end(slot)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def invalidate(self, ns: str, keys: Any) -> None:
        """Forget ``keys`` of ``ns`` (call when a write to them completed)."""
        with self._lock:
            for key in keys:
                self._gens[self._stripe(ns, key)] += 1
                self._entries.pop((ns, key), None)

    def invalidate_matching(self, ns: str, matcher: Matcher | None) -> None:
        """Forget the keys of ``ns`` matching ``matcher`` (every key if None)."""
        with self._lock:
            for index in range(_STRIPES):
                self._gens[index] += 1
            doomed = [
                slot
                for slot in self._entries
                if slot[0] == ns and (matcher is None or matcher.match(slot[1]))
            ]
            for slot in doomed:
                del self._entries[slot]

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            for index in range(_STRIPES):
                self._gens[index] += 1
            self._entries.clear()
