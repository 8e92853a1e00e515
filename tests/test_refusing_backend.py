"""A backend without multi-key commits: the transaction suite on it, both APIs.

Every built-in backend implements ``update_many``; a backend written before
it existed does not. This one is the memory backend with the interface's
default ``update_many`` (which raises) and ``multi_key_atomic = False``,
registered like a third-party backend. The conformance module of
transactions then checks, through both APIs, that every ``commit()`` and
``transaction()`` raises ``UnsupportedOperationError`` naming the backend and
changes nothing, while the single-key atoms (``getset``, ``delete_if``,
``expire_if``) work as on every backend.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult

import pytest

import keyshelf
from keyshelf.backends.base import Backend
from keyshelf.backends.memory import MemoryBackend
from keyshelf.testing import BackendCase
from keyshelf.testing.conformance.test_transactions import *  # noqa: F403


class OldBackend(MemoryBackend):
    """The memory backend as a backend written without ``update_many`` would be."""

    multi_key_atomic = False
    update_many = Backend.update_many  # the interface's default: it refuses


def create(url: SplitResult, options: dict[str, Any], asynchronous: bool) -> OldBackend:
    return OldBackend()


keyshelf.register("oldbackend", create)


@pytest.fixture
def keyshelf_backend() -> BackendCase:
    # Every open() is a new private store, as for memory://.
    return BackendCase("oldbackend://", shared=False)


def test_the_refusal_names_the_backend_and_changes_nothing() -> None:
    with keyshelf.open("oldbackend://") as kv:
        kv.set("a", 1)
        assert kv.backend.multi_key_atomic is False
        with pytest.raises(keyshelf.UnsupportedOperationError, match="OldBackend"):
            kv.atomic().set("a", 2).set("b", 3).commit()
        calls: list[int] = []
        with pytest.raises(keyshelf.UnsupportedOperationError, match="several keys"):
            kv.transaction(lambda tx: calls.append(1))
        assert calls == []  # refused before fn ran
        assert kv.dump() == {"a": 1}
        assert kv.getset("a", 4) == 1 and kv.delete_if("a", 4) is True
