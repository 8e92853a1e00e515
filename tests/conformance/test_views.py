"""Runs keyshelf.testing.conformance.test_views on every backend (tests/conftest.py)."""

from keyshelf.testing.conformance.test_views import *  # noqa: F403
