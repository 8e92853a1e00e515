"""Runs keyshelf.testing.conformance.test_patterns on every backend (tests/conftest.py)."""

from keyshelf.testing.conformance.test_patterns import *  # noqa: F403
