"""What the sync and the async transactions share: the commit result and the queue.

No I/O. :class:`Mutations` validates and encodes every check and mutation
of a builder (``kv.atomic()``) or a transaction (``kv.transaction(fn)``) at
the call that takes it, so bad input raises there, before anything is
written; the commit itself is one backend call (:meth:`Backend.commit`),
whose decision is :func:`keyshelf.records.decide_commit`. The I/O shells are
``_transactions_async.py`` and its generated twin (docs/coordination.md).
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any, Self

from ._core import StoreCore, check_delta
from ._show import show
from .errors import InvalidArgumentError
from .keys import check_key
from .records import MAX_MUTATIONS, DeleteOp, ExpireOp, IncrementOp, Op, SetOp

__all__ = ["MAX_MUTATIONS", "CommitResult", "Mutations", "check_retries"]


@dataclasses.dataclass(frozen=True)
class CommitResult:
    """What ``commit()`` returns.

    ``ok``: every check held and every mutation was applied, in one atomic
    step; False when a check failed, and then nothing was written.
    ``versions``: the new ``version`` of each key written (set, incremented or
    given an expiry), as ``get_entry`` reports it afterwards; deleted keys are
    not in it; empty when ``ok`` is False.
    """

    ok: bool
    versions: dict[str, int]


def check_version(version: object) -> int | None:
    """A check's version: a positive int (``get_entry(key).version``) or None (absent)."""
    if version is None:
        return None
    if type(version) is not int:
        raise InvalidArgumentError(
            f"A check's version must be an int (Entry.version) or None, not {show(version)}"
        )
    if version < 1:
        raise InvalidArgumentError(f"Versions start at 1; a check of {version} can never hold")
    return version


def check_retries(retries: object) -> int:
    """``transaction(retries=...)``: a non-negative int."""
    if type(retries) is not int or retries < 0:
        raise InvalidArgumentError(f"retries must be an int >= 0, not {show(retries)}")
    return retries


class Mutations:
    """The checks and mutations queued for one commit, validated and encoded.

    At most :data:`MAX_MUTATIONS` mutations and as many checks: the call that
    would queue one more raises :class:`InvalidArgumentError`, so an oversized
    commit is refused before anything is written.
    """

    def __init__(self, store: StoreCore[Any]) -> None:
        self._store = store
        self._checks: dict[str, int | None] = {}
        self._ops: list[Op] = []

    def _queue(self, op: Op) -> None:
        if len(self._ops) >= MAX_MUTATIONS:
            raise InvalidArgumentError(
                f"A commit holds at most {MAX_MUTATIONS} mutations; nothing was written"
            )
        self._ops.append(op)

    def _ttl_ms(self, ttl: int | float | timedelta) -> int:
        now, expires = self._store._times(ttl)
        assert expires is not None
        return expires - now

    def _add_check(self, key: str, version: int | None) -> None:
        if key in self._checks:
            if self._checks[key] != version:
                raise InvalidArgumentError(
                    f"Key {key!r} is already checked at version {self._checks[key]!r}"
                )
            return
        if len(self._checks) >= MAX_MUTATIONS:
            raise InvalidArgumentError(
                f"A commit holds at most {MAX_MUTATIONS} checks; nothing was written"
            )
        self._checks[key] = version

    # -- the builder's calls; each returns the builder ---------------------------

    def check(self, key: str, version: int | None) -> Self:
        """Commit only if ``key``'s live version is ``version`` (None: the key is absent)."""
        self._add_check(check_key(key), check_version(version))
        return self

    def set(
        self,
        key: str,
        value: Any,
        ttl: int | float | timedelta | None = None,
        *,
        metadata: dict[str, Any] | None = None,
    ) -> Self:
        """Queue ``set(key, value, ttl, metadata=...)``: the rules of ``set``.

        The TTL counts from the commit. Without ``metadata`` the key keeps
        its user metadata; a ``ttl`` entry in ``metadata`` sets the expiry
        when ``ttl`` is not given.
        """
        checked, encoded, meta, now, expires = self._store._prepare_set(
            key, value, ttl, metadata, False
        )
        self._queue(SetOp(checked, encoded, None if expires is None else expires - now, meta))
        return self

    def delete(self, key: str) -> Self:
        """Queue the deletion of ``key`` (nothing happens if it is absent)."""
        self._queue(DeleteOp(check_key(key)))
        return self

    def increment(self, key: str, delta: int | float = 1) -> Self:
        """Queue ``increment(key, delta)``: the rules of ``increment``.

        A non-numeric stored value or an overflow raises at commit, and then
        nothing is written.
        """
        self._queue(IncrementOp(check_key(key), check_delta(delta)))
        return self

    def expire(self, key: str, ttl: int | float | timedelta) -> Self:
        """Queue a TTL for ``key`` (counted from the commit); nothing if it is absent then.

        Unlike ``expire()`` outside a commit, this is a write: the key gets a
        new version (and is listed in ``versions``).
        """
        checked = check_key(key)
        if ttl is None:
            raise InvalidArgumentError("expire needs a TTL")
        self._queue(ExpireOp(checked, self._ttl_ms(ttl)))
        return self
