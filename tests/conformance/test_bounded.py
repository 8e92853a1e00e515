"""Runs keyshelf.testing.conformance.test_bounded on every backend (tests/conftest.py)."""

from keyshelf.testing.conformance.test_bounded import *  # noqa: F403
