"""Tests of keyshelf.compat: dataknobs-kv's and kv-store-adapter's examples run on the facades."""
