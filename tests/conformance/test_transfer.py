"""Runs keyshelf.testing.conformance.test_transfer on every backend (tests/conftest.py)."""

from keyshelf.testing.conformance.test_transfer import *  # noqa: F403
