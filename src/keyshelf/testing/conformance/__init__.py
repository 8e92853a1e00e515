"""keyshelf's conformance suite: every test module, importable in one line.

``from keyshelf.testing.conformance import *`` brings every test of the suite
(and the fixtures they use, :mod:`keyshelf.testing.plugin`'s included) into
the importing test module; pytest collects them there and runs each on the
backend that the module's ``keyshelf_backend`` fixture gives, through the
sync and the async API. See :mod:`keyshelf.testing`.

The suite's modules (``test_*.py`` in this package) are written once and run
by keyshelf's own tests too, one module at a time. A test or fixture name
used by two of them would leave one out of the star import, so that raises
ImportError here.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import Any

from ..plugin import api, backend_name, clock, kv, opener

#: The suite's modules, in name order.
MODULES: tuple[ModuleType, ...] = tuple(
    importlib.import_module(f"{__name__}.{info.name}")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name)
    if info.name.startswith("test_")
)


def _is_fixture(value: Any) -> bool:
    # pytest >= 8.4 wraps fixtures in FixtureFunctionDefinition; older ones mark the function.
    return hasattr(value, "_fixture_function_marker") or hasattr(value, "_pytestfixturefunction")


def _exported(module: ModuleType) -> dict[str, Any]:
    """The tests, test classes and fixtures that ``module`` defines."""
    return {
        name: value
        for name, value in vars(module).items()
        if getattr(value, "__module__", None) == module.__name__
        and (name.startswith(("test_", "Test")) or _is_fixture(value))
    }


def _collect() -> dict[str, Any]:
    found: dict[str, Any] = {
        "api": api,
        "backend_name": backend_name,
        "clock": clock,
        "kv": kv,
        "opener": opener,
    }
    origin = dict.fromkeys(found, "keyshelf.testing.plugin")
    for module in MODULES:
        for name, value in _exported(module).items():
            if name in found:
                raise ImportError(
                    f"keyshelf.testing.conformance: {name!r} is defined by both "
                    f"{origin[name]} and {module.__name__}; rename one"
                )
            found[name] = value
            origin[name] = module.__name__
    return found


_suite = _collect()
globals().update(_suite)
__all__ = sorted(_suite)  # noqa: PLE0605
