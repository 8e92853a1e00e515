"""Runs keyshelf.testing.conformance.test_getdel on every backend (tests/conftest.py)."""

from keyshelf.testing.conformance.test_getdel import *  # noqa: F403
