"""Runs keyshelf.testing.conformance.test_seed_examples on every backend (tests/conftest.py)."""

from keyshelf.testing.conformance.test_seed_examples import *  # noqa: F403
