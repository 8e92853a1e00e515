"""The workload every contestant runs: values, keys and the list of operations.

Values: :data:`SESSION`, a dict whose JSON is about 100 bytes (a web
session), and small ints. The store for single operations holds
``listing_keys`` keys ``user:0`` ... ``user:99999`` (sessions) before any
operation is timed, so reads and writes hit a store of realistic size and the
listing ``user:1*`` finds 11,111 of them (``user:1``, ``user:10`` ...).
"""

from __future__ import annotations

import functools

SESSION = {
    "user_id": 48213,
    "name": "Alice",
    "roles": ["admin", "editor"],
    "csrf": "9f8e7d6c5b4a",
    "login_at": 1700000000,
}

TTL = 3600
PREFIX = "user:1"
PATTERN = "user:1*"
BATCH = 100

#: Operation names, in table order. Single-key operations first.
OPS = (
    "set",
    "get hit",
    "get miss",
    "set with TTL",
    "set (int)",
    "get hit (int)",
    "increment",
    "delete",
    "mset 100",
    "mget 100",
    "list user:1*",
)
SINGLE_OPS = OPS[:8]


class Keys:
    """Precomputed keys, so that building a key string is never timed."""

    def __init__(self, listing_keys: int) -> None:
        self.n = listing_keys
        self.users = [f"user:{i}" for i in range(listing_keys)]
        # Reads and writes hop around the key space (7919 is prime).
        self.scattered = [self.users[(i * 7919) % listing_keys] for i in range(listing_keys)]
        self.misses = [f"nouser:{i}" for i in range(1000)]
        self.ttl = [f"ttl:{i}" for i in range(1000)]
        self.ints = [f"n:{i}" for i in range(1000)]
        self.deletes = [f"del:{i}" for i in range(100_000)]
        batches = max(1, min(1000, listing_keys // BATCH))
        self.batches = [self.users[b * BATCH : (b + 1) * BATCH] for b in range(batches)]
        self.mappings = [dict.fromkeys(batch, SESSION) for batch in self.batches]

    def hit(self, i: int) -> str:
        return self.scattered[i % self.n]

    def miss(self, i: int) -> str:
        return self.misses[i % 1000]

    def ttl_key(self, i: int) -> str:
        return self.ttl[i % 1000]

    def int_key(self, i: int) -> str:
        return self.ints[i % 1000]

    def delete(self, i: int) -> str:
        return self.deletes[i % 100_000]

    def batch(self, i: int) -> list[str]:
        return self.batches[i % len(self.batches)]

    def mapping(self, i: int) -> dict[str, object]:
        return self.mappings[i % len(self.mappings)]


@functools.cache
def keys_for(listing_keys: int) -> Keys:
    return Keys(listing_keys)


def expected_listing(listing_keys: int) -> int:
    """How many of ``user:0`` ... ``user:{n-1}`` start with ``user:1``."""
    return sum(1 for i in range(listing_keys) if str(i).startswith("1"))
