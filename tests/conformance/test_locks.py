"""Runs keyshelf.testing.conformance.test_locks on every backend (tests/conftest.py)."""

from keyshelf.testing.conformance.test_locks import *  # noqa: F403
