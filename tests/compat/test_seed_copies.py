"""tests/compat/seeds/ holds exact copies of the seed documents whose examples run."""

from __future__ import annotations

import pytest

from .examples import SEEDS, SHARED


@pytest.mark.parametrize("seed", ["001", "003", "004"])
def test_copy_matches_shared_seed(seed: str) -> None:
    (copy,) = SEEDS.glob(f"{seed}_*.txt")
    original = SHARED / copy.name
    if not SHARED.is_dir():
        pytest.skip("../shared/seeds not present")
    assert original.read_bytes() == copy.read_bytes()
