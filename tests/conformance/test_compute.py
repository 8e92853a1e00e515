"""Runs keyshelf.testing.conformance.test_compute on every backend (tests/conftest.py)."""

from keyshelf.testing.conformance.test_compute import *  # noqa: F403
