"""Runs keyshelf.testing.conformance.test_metadata on every backend (tests/conftest.py)."""

from keyshelf.testing.conformance.test_metadata import *  # noqa: F403
