"""tests/compat/seeds/ holds exact copies of the documents whose examples run.

Those are dataknobs-kv's README (001) and design plan (004) and kv-store-adapter's
README (003); the check runs where the original copies sit beside the checkout.
"""

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
