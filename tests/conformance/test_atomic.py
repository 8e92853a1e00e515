"""Runs keyshelf.testing.conformance.test_atomic on every backend (tests/conftest.py)."""

from keyshelf.testing.conformance.test_atomic import *  # noqa: F403
