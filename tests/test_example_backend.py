"""The example third-party backend (examples/dbm_backend.py) passes the shipped conformance kit.

This module is what a backend's author writes: import the kit, give one
fixture. Every test of ``keyshelf.testing.conformance`` runs here on
``dbm://`` through both APIs, with the backend loaded from its file outside
the package and registered the way a third party registers one.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import keyshelf
from keyshelf.testing.conformance import *  # noqa: F403

EXAMPLE = Path(__file__).parents[1] / "examples" / "dbm_backend.py"


def load_example() -> object:
    """Import examples/dbm_backend.py as the module ``dbm_backend`` (once)."""
    if "dbm_backend" not in sys.modules:
        spec = importlib.util.spec_from_file_location("dbm_backend", EXAMPLE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["dbm_backend"] = module
        spec.loader.exec_module(module)
    return sys.modules["dbm_backend"]


keyshelf.register("dbm", "dbm_backend:create")
load_example()


@pytest.fixture
def keyshelf_backend(tmp_path: Path) -> Iterator[tuple[str, dict[str, object]]]:
    """A fresh dbm store in the test's own directory."""
    yield f"dbm://{tmp_path / 'store'}", {}
