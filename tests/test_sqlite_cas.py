"""SQLite's one-statement compare_and_swap decides exactly as the shared decision does."""

from __future__ import annotations

import itertools
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import keyshelf

VALUES: list[Any] = [
    1, 1.0, True, 0, 0.0, -0.0, False, 2**63 - 1, 2**80, -(2**80), math.nan, math.inf,
    "1", "", "é", b"1", b"", None, [1], [1.0], {"a": 1, "b": 2}, {"b": 2, "a": 1},
    (1,), {1, 2}, Decimal("1.0"), Decimal("1.00"),
]  # fmt: skip


def test_fast_compare_and_swap_agrees_with_the_shared_decision(tmp_path: Path) -> None:
    # Every (stored, expected) pair: the result, the value, the version, the
    # expiry and the metadata afterwards are those of the memory backend,
    # which runs records.decide_compare_and_swap.
    with (
        keyshelf.open(f"sqlite:///{tmp_path / 's.db'}") as fast,
        keyshelf.open("memory://") as shared,
    ):
        for i, (stored, expected) in enumerate(itertools.product(VALUES, VALUES)):
            key = f"k{i}"
            outcomes = []
            for kv in (fast, shared):
                kv.set(key, stored, ttl=600, metadata={"m": i})
                swapped = kv.compare_and_swap(key, expected, "new")
                entry = kv.get_entry(key)
                assert entry is not None
                outcomes.append(
                    (swapped, repr(entry.value), entry.version, entry.metadata, kv.ttl(key) > 590)
                )
            assert outcomes[0] == outcomes[1], (stored, expected, outcomes)
        # A missing or expired key never matches.
        assert fast.compare_and_swap("absent", None, 1) is False
