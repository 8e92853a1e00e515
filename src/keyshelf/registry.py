"""URL scheme -> backend factory, with install hints for optional backends.

A factory takes the parsed URL, the backend options (keyword arguments and
query parameters that are not store options) and whether the async API asked,
and returns a sync :class:`~keyshelf.backends.base.Backend` or an
:class:`~keyshelf.backends._base_async.AsyncBackend`. It must refuse an
unusable URL or option with :class:`InvalidURLError` right away, never at the
first operation.

Built-in backends are imported lazily, so ``import keyshelf`` needs no
optional dependency; a missing one raises an ImportError naming the extra to
install. Third parties add schemes with :func:`register`, or without any call
by declaring an entry point in the ``keyshelf.backends`` group of their
package's metadata (name: the scheme; value: ``"module:function"``, the
factory), e.g. in ``pyproject.toml``::

    [project.entry-points."keyshelf.backends"]
    mydb = "mydb_keyshelf:create"

Built-in schemes and :func:`register` win over an entry point of the same
name. Entry points are read once per process, at the first lookup of a scheme
that is neither built in nor registered (or the first call of
:func:`schemes`), and their modules are imported only when a URL uses them.

A factory may return a sync :class:`~keyshelf.backends.Backend` even when the
async API asked: the async store then runs its calls one at a time in a worker
thread of its own (never on the event loop), so a backend written once, sync,
serves both APIs.
"""

from __future__ import annotations

import functools
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


#: The entry-point group third-party backends declare their factories in.
ENTRY_POINT_GROUP = "keyshelf.backends"


@functools.cache
def _entry_points() -> dict[str, str]:
    """scheme -> "module:function" declared in the ``keyshelf.backends`` group."""
    from importlib.metadata import entry_points

    return {entry.name.lower(): entry.value for entry in entry_points(group=ENTRY_POINT_GROUP)}


def register(scheme: str, factory: Factory | str, *, extra: str | None = None) -> None:
    """Make ``keyshelf.open("<scheme>://...")`` use ``factory``.

    ``factory`` may be a callable or a ``"module:function"`` string imported on
    first use; ``extra`` names the pip extra suggested when that import fails.
    """
    _registry[scheme.lower()] = factory
    if extra is not None:
        _extras[scheme.lower()] = extra


def schemes() -> list[str]:
    """Every URL scheme: built in, registered, or declared by an entry point."""
    return sorted({*_registry, *_entry_points()})


def factory_for(scheme: str) -> Factory:
    """The factory for ``scheme``; InvalidURLError if unknown, ImportError if not installed."""
    entry = _registry.get(scheme.lower()) or _entry_points().get(scheme.lower())
    if entry is None:
        known = ", ".join(f"{s}://" for s in schemes())
        raise InvalidURLError(f"Unknown store URL scheme {scheme!r}; known schemes: {known}")
    if not isinstance(entry, str):
        return _bridged(entry)
    module_name, _, attribute = entry.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = _extras.get(scheme.lower())
        if extra is None and not module_name.startswith("keyshelf."):
            raise ImportError(
                f"The {scheme}:// backend's module {module_name} cannot be imported: {exc}"
            ) from exc
        if extra is None or (module_name.startswith("keyshelf.") and exc.name == module_name):
            raise InvalidURLError(
                f"The {scheme}:// backend is not available in this keyshelf version"
            ) from exc
        raise ImportError(
            f"The {scheme}:// backend needs an optional dependency ({exc.name}): "
            f"pip install 'keyshelf[{extra}]'"
        ) from exc
    factory: Factory = getattr(module, attribute)
    return _bridged(factory)


def _bridged(factory: Factory) -> Factory:
    """``factory``, with a sync backend returned for the async API served by a thread."""

    @functools.wraps(factory)
    def create(url: SplitResult, options: dict[str, Any], asynchronous: bool) -> Any:
        backend = factory(url, options, asynchronous)
        if asynchronous:
            from .backends import Backend
            from .backends._bridge import AsyncBridge

            if isinstance(backend, Backend):
                # One worker thread: a backend written for sync use is never
                # called from two threads at once, nor from the event loop.
                return AsyncBridge(backend, threads=1)
        return backend

    return create
