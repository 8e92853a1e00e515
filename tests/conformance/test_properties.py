"""Runs keyshelf.testing.conformance.test_properties on every backend (tests/conftest.py)."""

from keyshelf.testing.conformance.test_properties import *  # noqa: F403
