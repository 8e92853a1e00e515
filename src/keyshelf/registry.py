"""URL scheme -> backend factory, with install hints for optional backends.

A factory takes the parsed URL, the backend options (keyword arguments and
query parameters that are not store options) and whether the async API asked,
and returns a sync :class:`~keyshelf.backends.base.Backend` or an
:class:`~keyshelf.backends._base_async.AsyncBackend`. It must refuse an
unusable URL or option with :class:`InvalidURLError` right away, never at the
first operation.

Built-in backends are imported lazily, so ``import keyshelf`` needs no
optional dependency; a missing one raises an ImportError naming the extra to
install. Third parties add schemes with :func:`register`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any
from urllib.parse import SplitResult

from .errors import InvalidURLError

Factory = Callable[[SplitResult, dict[str, Any], bool], Any]

# scheme -> "module:function" for lazy import, or a factory.
_registry: dict[str, str | Factory] = {
    "sqlite": "keyshelf.backends.sqlite:create",
    "memory": "keyshelf.backends.memory:create",
    "redis": "keyshelf.backends.redis:create",
    "rediss": "keyshelf.backends.redis:create",
    "unix": "keyshelf.backends.redis:create",
    "postgresql": "keyshelf.backends.postgres:create",
    "postgres": "keyshelf.backends.postgres:create",
    "file": "keyshelf.backends.file:create",
    "s3": "keyshelf.backends.s3:create",
}

# scheme -> extra that provides its driver.
_extras = {
    "redis": "redis",
    "rediss": "redis",
    "unix": "redis",
    "postgresql": "postgres",
    "postgres": "postgres",
    "s3": "s3",
}


def register(scheme: str, factory: Factory | str, *, extra: str | None = None) -> None:
    """Make ``keyshelf.open("<scheme>://...")`` use ``factory``.

    ``factory`` may be a callable or a ``"module:function"`` string imported on
    first use; ``extra`` names the pip extra suggested when that import fails.
    """
    _registry[scheme.lower()] = factory
    if extra is not None:
        _extras[scheme.lower()] = extra


def schemes() -> list[str]:
    """Every registered URL scheme."""
    return sorted(_registry)


def factory_for(scheme: str) -> Factory:
    """The factory for ``scheme``; InvalidURLError if unknown, ImportError if not installed."""
    entry = _registry.get(scheme.lower())
    if entry is None:
        known = ", ".join(f"{s}://" for s in schemes())
        raise InvalidURLError(f"Unknown store URL scheme {scheme!r}; known schemes: {known}")
    if not isinstance(entry, str):
        return entry
    module_name, _, attribute = entry.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = _extras.get(scheme.lower())
        if extra is None or (module_name.startswith("keyshelf.") and exc.name == module_name):
            raise InvalidURLError(
                f"The {scheme}:// backend is not available in this keyshelf version"
            ) from exc
        raise ImportError(
            f"The {scheme}:// backend needs an optional dependency ({exc.name}): "
            f"pip install 'keyshelf[{extra}]'"
        ) from exc
    factory: Factory = getattr(module, attribute)
    return factory
