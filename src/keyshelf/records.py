"""What backends store and exchange: encoded records and pure decisions.

Backends never see Python values, only ``(tag, payload)`` pairs from the
codec, instants in integer milliseconds and encoded user metadata. The
functions here decide, from the live record (or ``None``), what a
read-modify-write operation does to the key (write a new record, delete it,
or leave it) and what it returns. Backends without a native form of an
operation run these decisions inside one transaction (:meth:`Backend.update`),
so the decision logic exists exactly once, and a new operation is a new
decision here plus one store method: no backend changes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple, TypeVar

from ._bigint import int_from_text
from ._show import show
from .codec import (
    TAG_BIGINT,
    TAG_BOOL,
    TAG_BYTES,
    TAG_FLOAT,
    TAG_INT,
    TAG_SPECIAL_FLOAT,
    TAG_STR,
    Payload,
    payload_size,
    values_equal,
)
from .errors import AppendTypeError, IncrementOverflowError, NotNumericError, ValueTooLargeError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

Value = tuple[str, Payload]
"""An encoded value: (type tag, payload)."""


class LazyItems(Sequence[tuple[str, Value]]):
    """The items of a batch whose values are encoded as they are read.

    Given by the store to a backend that asks for it (``lazy_batches``) for a
    large ``mset`` of a plain dict: its keys are checked and unique
    (:attr:`keys`, the dict's order), its values not yet encoded, so that the
    backend can encode them while it streams the rows already written (the
    PostgreSQL ``COPY``) instead of before. Nothing is kept: the ``COPY``
    reads each value once, and a second read (an upsert after a ``COPY``
    that gave way) encodes again. Reading a value may raise what encoding
    raises (``SerializationError``, ``ValueTooLargeError``): a backend that
    takes lazy batches writes them in one transaction that such an error
    rolls back, so the batch stays all or nothing.
    """

    __slots__ = ("_encode", "_values", "keys")

    def __init__(
        self, keys: list[str], values: dict[str, object], encode: Callable[[str, object], Value]
    ) -> None:
        self.keys = keys
        self._values = values
        self._encode = encode

    def value(self, key: str) -> Value:
        """The encoded value of ``key`` (one of :attr:`keys`).

        A value that cannot be encoded raises what encoding every value first
        would have: the error of the first bad value in the batch's order,
        whichever the backend read first (the same error on every backend).
        """
        try:
            return self._encode(key, self._values[key])
        except Exception:
            self.encode_all()
            raise

    def encode_all(self) -> None:
        """Encode every value in the batch's order (raises at the first bad value)."""
        encode, values = self._encode, self._values
        for key in self.keys:
            encode(key, values[key])

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator[tuple[str, Value]]:
        value = self.value
        return ((key, value(key)) for key in self.keys)

    def __getitem__(self, index: int) -> tuple[str, Value]:  # type: ignore[override]
        key = self.keys[index]
        return key, self.value(key)


class Record(NamedTuple):
    """One live stored key, as a backend returns it."""

    tag: str
    payload: Payload
    expires_at: int | None  # ms since the epoch, None = never
    meta: bytes | None  # encoded user metadata, None = {}
    created_at: int  # ms
    updated_at: int  # ms
    version: int


class Write(NamedTuple):
    """The new state a decision asks the backend to store for one key.

    ``created_at`` and ``version`` are not part of it: the backend keeps
    ``created_at`` and adds 1 to ``version`` when a live record is replaced,
    and starts both afresh (now, 1) otherwise.
    """

    tag: str
    payload: Payload
    expires_at: int | None
    meta: bytes | None


class Delete:
    """Marker a decision returns to remove the key (:data:`DELETE`)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "DELETE"


DELETE = Delete()
"""What a decision returns to delete the key it was given."""

#: What a decision asks for: a new record, removal, or nothing.
Action = Write | Delete | None

R = TypeVar("R")
Decision = Callable[[Record | None], tuple[Action, R]]
"""A pure function from the live record (or None) to (action, result).

The action is a :class:`Write` (store this record: ``created_at`` kept and
``version`` + 1 if a live record is replaced), :data:`DELETE` (remove the key;
an expired record left under it may go too, as expired means gone) or None
(change nothing). The backend applies it in the same transaction as the read,
and only if the decision returns: a decision that raises changes nothing.
"""


def is_live(expires_at: int | None, now: int) -> bool:
    """True if a record with this expiry is visible at ``now`` (ms)."""
    return expires_at is None or expires_at > now


def new_record(write: Write, old: Record | None, now: int) -> Record:
    """The record to store for ``write`` replacing the live ``old`` (or none)."""
    if old is None:
        return Record(write.tag, write.payload, write.expires_at, write.meta, now, now, 1)
    return Record(
        write.tag, write.payload, write.expires_at, write.meta, old.created_at, now, old.version + 1
    )


class Keep:
    """Marker: keep the existing user metadata of a live key."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "KEEP"


KEEP = Keep()
Meta = bytes | None | Keep


def decide_put(
    value: Value,
    expires_at: int | None,
    meta: Meta,
    *,
    nx: bool = False,
    xx: bool = False,
    keep_ttl: bool = False,
) -> Decision[bool]:
    """``set`` with its conditions: returns whether it wrote."""

    def decide(old: Record | None) -> tuple[Write | None, bool]:
        if (nx and old is not None) or (xx and old is None):
            return None, False
        expiry = old.expires_at if keep_ttl and old is not None else expires_at
        kept = None if old is None else old.meta
        stored_meta = kept if isinstance(meta, Keep) else meta
        return Write(value[0], value[1], expiry, stored_meta), True

    return decide


def numeric(tag: str, payload: Payload) -> int | float | None:
    """The number a stored value holds, or None if it is not a number."""
    if tag in (TAG_INT, TAG_FLOAT):
        return payload  # type: ignore[return-value]
    if tag == TAG_BIGINT:
        return int_from_text(payload)  # type: ignore[arg-type]
    if tag == TAG_SPECIAL_FLOAT:
        return float(payload)  # type: ignore[arg-type]
    return None


def encode_number(number: int | float) -> Value:
    """Encode an increment result with the codec's numeric tags."""
    if type(number) is int:
        if not INT64_MIN <= number <= INT64_MAX:
            raise IncrementOverflowError(
                f"Increment result {show(number)} is outside the signed 64-bit range"
            )
        return TAG_INT, number
    assert type(number) is float
    if not math.isfinite(number):
        return TAG_SPECIAL_FLOAT, repr(number)
    if number == 0.0 and math.copysign(1.0, number) < 0:
        return TAG_SPECIAL_FLOAT, "-0.0"
    return TAG_FLOAT, number


def decide_increment(delta: int | float) -> Decision[int | float]:
    """Add ``delta``; a missing key starts from 0 with no TTL; keeps the TTL."""

    def decide(old: Record | None) -> tuple[Write | None, int | float]:
        if old is None:
            tag, payload = encode_number(delta)
            return Write(tag, payload, None, None), delta
        current = numeric(old.tag, old.payload)
        if current is None:
            raise NotNumericError("Cannot increment non-numeric value")
        try:
            result = current + delta
        except OverflowError:  # a float plus an int too large to be a float
            raise IncrementOverflowError(
                "Increment result is outside the range of a float"
            ) from None
        tag, payload = encode_number(result)
        return Write(tag, payload, old.expires_at, old.meta), result

    return decide


def decide_append(value: Value, max_size: int) -> Decision[Value]:
    """Append str to str or bytes to bytes; a missing key is created; keeps the TTL."""

    def decide(old: Record | None) -> tuple[Write | None, Value]:
        if old is None:
            return Write(value[0], value[1], None, None), value
        if old.tag != value[0] or old.tag not in (TAG_STR, TAG_BYTES):
            raise AppendTypeError(
                f"Cannot append {_type_name(value[0])} to a stored {_type_name(old.tag)} value"
            )
        joined: Payload = old.payload + value[1]  # type: ignore[operator]
        size = payload_size(old.tag, joined)
        if size > max_size:
            raise ValueTooLargeError(
                f"Appending would make the value {size} bytes, above max_value_size {max_size}"
            )
        return Write(old.tag, joined, old.expires_at, old.meta), (old.tag, joined)

    return decide


def decide_compare_and_swap(expected: Value, new: Value) -> Decision[bool]:
    """Swap if the live value has the same typed encoding as ``expected``."""

    def decide(old: Record | None) -> tuple[Write | None, bool]:
        if old is None or not values_equal(old.tag, old.payload, expected[0], expected[1]):
            return None, False
        return Write(new[0], new[1], old.expires_at, old.meta), True

    return decide


def decide_getdel(old: Record | None) -> tuple[Action, Value | None]:
    """``getdel``: the live value, deleting the key; None (and nothing done) if missing."""
    if old is None:
        return None, None
    return DELETE, (old.tag, old.payload)


def decide_getset(value: Value, expires_at: int | None) -> Decision[Value | None]:
    """``getset``: store ``value`` as a plain ``set`` does (metadata kept); return the old value."""

    def decide(old: Record | None) -> tuple[Write, Value | None]:
        meta = None if old is None else old.meta
        previous = None if old is None else (old.tag, old.payload)
        return Write(value[0], value[1], expires_at, meta), previous

    return decide


def decide_delete_if(expected: Value) -> Decision[bool]:
    """``delete_if``: delete if the live value has the typed encoding of ``expected``."""

    def decide(old: Record | None) -> tuple[Action, bool]:
        if old is None or not values_equal(old.tag, old.payload, expected[0], expected[1]):
            return None, False
        return DELETE, True

    return decide


def decide_expire_if(expected: Value, expires_at: int) -> Decision[bool]:
    """``expire_if``: set the expiry if the live value equals ``expected`` (typed).

    A write decided on the value, so unlike ``expire`` it gives the key a new
    version (a transaction that checked the old one then fails, as it should).
    """

    def decide(old: Record | None) -> tuple[Write | None, bool]:
        if old is None or not values_equal(old.tag, old.payload, expected[0], expected[1]):
            return None, False
        return Write(old.tag, old.payload, expires_at, old.meta), True

    return decide


def decide_set_metadata(
    merge: Callable[[bytes | None], bytes | None], expires_at: int | Keep | None
) -> Decision[bool]:
    """Replace the user metadata with ``merge(old meta)``; False if missing."""

    def decide(old: Record | None) -> tuple[Write | None, bool]:
        if old is None:
            return None, False
        expiry = old.expires_at if isinstance(expires_at, Keep) else expires_at
        return Write(old.tag, old.payload, expiry, merge(old.meta)), True

    return decide


# -- several keys at once (Backend.update_many, Backend.commit) -------------------

MultiDecision = Callable[[dict[str, Record | None]], tuple[dict[str, Action], R]]
"""A pure function from the live records of several keys to (actions, result).

It gets ``{key: live record or None}`` for every key asked for and returns
``({key: action}, result)``; a key left out of the actions, or mapped to None,
is not changed. Each action follows the rules of :data:`Decision`. The backend
applies every action in one transaction with the reads, and nothing if the
decision raises.
"""

#: Most mutations (and most checks) one commit may hold: every built-in
#: backend applies this many in one atomic step (docs/coordination.md).
MAX_MUTATIONS = 1000


class SetOp(NamedTuple):
    """A queued ``set``: the expiry is ``ttl_ms`` after the commit's ``now`` (None: none)."""

    key: str
    value: Value
    ttl_ms: int | None
    meta: Meta


class DeleteOp(NamedTuple):
    """A queued ``delete``."""

    key: str


class IncrementOp(NamedTuple):
    """A queued ``increment`` (the rules of :func:`decide_increment`)."""

    key: str
    delta: int | float


class ExpireOp(NamedTuple):
    """A queued ``expire``: the expiry becomes ``ttl_ms`` after the commit's ``now``."""

    key: str
    ttl_ms: int


#: One queued mutation of a commit.
Op = SetOp | DeleteOp | IncrementOp | ExpireOp

#: What a commit returns: (every check held, {key written: its new version}).
CommitOutcome = tuple[bool, dict[str, int]]


def commit_keys(checks: dict[str, int | None], ops: list[Op]) -> list[str]:
    """Every key a commit reads or writes, sorted (the order backends lock them in)."""
    return sorted({*checks, *(op.key for op in ops)})


def decide_commit(
    checks: dict[str, int | None], ops: list[Op], now: int
) -> MultiDecision[CommitOutcome]:
    """A checked commit: if each key's live version equals its check, apply ``ops`` in order.

    A check of None means the key must be absent. If any check fails, nothing
    is written and the result is ``(False, {})``. Otherwise the mutations are
    applied one after the other to the keys' state (a set then an increment of
    one key adds to the value set), and each key touched gets one action: its
    final state. A key written gets ``version`` + 1 of its live record (1 if
    it had none), even when several mutations touch it, and even a delete
    followed by a set (that is one replacement). An ``expire`` of a key that is
    absent at that point does nothing. Raises (writing nothing) what
    :func:`decide_increment` raises.
    """

    def decide(records: dict[str, Record | None]) -> tuple[dict[str, Action], CommitOutcome]:
        for key, version in checks.items():
            record = records[key]
            if (None if record is None else record.version) != version:
                return {}, (False, {})
        state: dict[str, Record | None] = {}
        for op in ops:
            key = op.key
            current = state[key] if key in state else records[key]
            if isinstance(op, SetOp):
                expires = None if op.ttl_ms is None else now + op.ttl_ms
                kept = None if current is None else current.meta
                meta = kept if isinstance(op.meta, Keep) else op.meta
                write: Action = Write(op.value[0], op.value[1], expires, meta)
            elif isinstance(op, IncrementOp):
                write = decide_increment(op.delta)(current)[0]
            elif isinstance(op, ExpireOp):
                if current is None:
                    continue
                write = Write(current.tag, current.payload, now + op.ttl_ms, current.meta)
            else:
                state[key] = None
                continue
            assert isinstance(write, Write)
            state[key] = new_record(write, records[key], now)
        actions: dict[str, Action] = {}
        versions: dict[str, int] = {}
        for key, final in state.items():
            if final is None:
                if records[key] is not None:
                    actions[key] = DELETE
                continue
            actions[key] = Write(final.tag, final.payload, final.expires_at, final.meta)
            versions[key] = final.version
        return actions, (True, versions)

    return decide


_TYPE_NAMES = {TAG_STR: "str", TAG_BYTES: "bytes", TAG_INT: "int", TAG_FLOAT: "float"}
_TYPE_NAMES.update({TAG_BOOL: "bool", TAG_BIGINT: "int", TAG_SPECIAL_FLOAT: "float"})


def _type_name(tag: str) -> str:
    return _TYPE_NAMES.get(tag, "non-string")


def stats_dict(total: int, active: int, with_ttl: int) -> dict[str, Any]:
    """The ``stats()`` mapping from three counts (docs/semantics.md, whole-namespace views)."""
    return {
        "total_keys": total,
        "active_keys": active,
        "expired_keys": total - active,
        "keys_with_ttl": with_ttl,
    }
