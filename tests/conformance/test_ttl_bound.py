"""Runs keyshelf.testing.conformance.test_ttl_bound on every backend (tests/conftest.py)."""

from keyshelf.testing.conformance.test_ttl_bound import *  # noqa: F403
