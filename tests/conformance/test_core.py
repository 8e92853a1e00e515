"""Runs keyshelf.testing.conformance.test_core on every backend (tests/conftest.py)."""

from keyshelf.testing.conformance.test_core import *  # noqa: F403
