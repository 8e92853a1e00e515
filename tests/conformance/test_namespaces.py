"""Runs keyshelf.testing.conformance.test_namespaces on every backend (tests/conftest.py)."""

from keyshelf.testing.conformance.test_namespaces import *  # noqa: F403
