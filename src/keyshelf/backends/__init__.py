"""Storage backends, and the interface a backend implements.

:class:`AsyncBackend` (async) and :class:`Backend` (its sync twin, generated
from it) are abstract base classes: a backend subclasses one of them and
writes its ten abstract primitives; every other method has a default built on
those, which it may override for speed. See docs/backends.md, "The interface".
The record types and decisions the primitives exchange are in
:mod:`keyshelf.records`.
"""

from ._base_async import AsyncBackend
from .base import Backend

__all__ = ["AsyncBackend", "Backend"]
