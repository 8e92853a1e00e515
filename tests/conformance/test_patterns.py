"""Runs keyshelf.testing.conformance.test_patterns on every backend (tests/conftest.py).

One test is sized here for S3: ``test_iter_keys_streams_in_order`` writes 2,500
keys, about 10,000 HTTP requests and ~20 s per API on the moto server. The
default run streams 250 keys in pages of 100 on S3 (the same shape: three
pages, the last one partial, a key outside the prefix); ``make stress`` runs
the full size on S3 too. Every other backend runs the full size by default.
"""

from typing import Any

import pytest

from keyshelf.testing.conformance import test_patterns as suite
from keyshelf.testing.conformance.test_patterns import *  # noqa: F403

from ..conftest import BACKENDS


@pytest.mark.parametrize(
    "backend_name",
    [pytest.param(name, marks=pytest.mark.stress) if name == "s3" else name for name in BACKENDS],
    indirect=True,
)
def test_iter_keys_streams_in_order(kv: Any) -> None:
    suite.test_iter_keys_streams_in_order(kv)


@pytest.mark.parametrize("backend_name", ["s3"], indirect=True)
def test_iter_keys_streams_in_order_small_on_s3(kv: Any) -> None:
    kv.mset({f"k{i:04d}": i for i in range(250)})
    kv.set("other", 1)
    assert list(kv.iter_keys("k*", batch_size=100)) == [f"k{i:04d}" for i in range(250)]
    assert [k for k, _ in kv.iter_items("k000*", batch_size=3)] == [f"k000{i}" for i in range(10)]
