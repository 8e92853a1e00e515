"""Runs keyshelf.testing.conformance.test_codec_plugins on every backend (tests/conftest.py)."""

from keyshelf.testing.conformance.test_codec_plugins import *  # noqa: F403
