"""Runs keyshelf.testing.conformance.test_transactions on every backend (tests/conftest.py)."""

from keyshelf.testing.conformance.test_transactions import *  # noqa: F403
