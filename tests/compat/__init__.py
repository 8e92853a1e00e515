"""Tests of keyshelf.compat: the seed documents' examples run against the facades."""
