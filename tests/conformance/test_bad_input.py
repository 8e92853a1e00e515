"""Runs keyshelf.testing.conformance.test_bad_input on every backend (tests/conftest.py)."""

from keyshelf.testing.conformance.test_bad_input import *  # noqa: F403
