"""Runs keyshelf.testing.conformance.test_watch on every backend (tests/conftest.py)."""

from keyshelf.testing.conformance.test_watch import *  # noqa: F403
