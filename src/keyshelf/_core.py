"""What the sync and the async store share: state, validation, encoding. No I/O.

:class:`StoreCore` holds every decision that does not touch a backend, so
that the two generated shells (``AsyncStore`` and ``Store``) contain nothing
but the calls to their backend.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Generic, Self, TypeVar

from ._show import show
from .codec import Codec, payload_size
from .errors import (
    AppendTypeError,
    InvalidArgumentError,
    SerializationError,
    UndecodableValueWarning,
    ValueTooLargeError,
)
from .expiry import MAX_TTL_SECONDS, Clock, expires_at, now_ms, ttl_seconds
from .keys import _valid_cache as _valid_keys
from .keys import check_key, check_keys, check_namespace
from .patterns import Matcher, compile_pattern
from .records import KEEP, LazyItems, Meta, Value

B = TypeVar("B")

DEFAULT_MAX_VALUE_SIZE = 64 * 1024 * 1024
MISSING: Any = object()

_floor = math.floor


#: Keys from which an ``mset`` of a plain dict may reach a backend unencoded
#: (:meth:`StoreCore._batch`): a batch this large is a bulk load.
LAZY_MIN = 1000


class StoreCore(Generic[B]):
    """State and pure helpers of a store bound to one namespace."""

    _backend: B

    def __init__(
        self,
        backend: B,
        *,
        namespace: str,
        separator: str | None,
        codec: Codec,
        clock: Clock,
        max_value_size: int,
        cleanup_interval: float | None,
    ) -> None:
        self._backend = backend
        self._ns = check_namespace(namespace)
        self._separator = separator
        self._codec = codec
        self._clock = clock
        self._max_value_size = max_value_size
        self._cleanup_interval = cleanup_interval
        self._owner = True
        # Every key, whatever the separator: the default-dialect "*".
        self._all = compile_pattern("*")

    # -- public, no I/O -----------------------------------------------------

    @property
    def namespace_name(self) -> str:
        """The namespace every method of this store acts on."""
        return self._ns

    @property
    def backend(self) -> B:
        """The backend object (for diagnostics and tests)."""
        return self._backend

    def namespace(self, name: str) -> Self:
        """A view of the same store bound to namespace ``name``.

        Cheap: it shares the backend and its connections. Closing a view does
        nothing; close the store it came from.
        """
        view = copy.copy(self)
        view._ns = check_namespace(name)
        view._owner = False
        view._on_view()
        return view

    def _on_view(self) -> None:
        """Hook: a view must not own the cleanup sweeper."""

    # -- helpers ------------------------------------------------------------

    def _now(self) -> int:
        return now_ms(self._clock)

    def _times(self, ttl: object) -> tuple[int, int | None]:
        """(now, absolute expiry or None) from one clock reading."""
        now = now_ms(self._clock)
        if ttl is None:
            return now, None
        # Whole milliseconds rounded down: ttl() never reads above the TTL.
        return now, expires_at(now, ttl)

    def _encode(self, key: str, value: object) -> Value:
        tag, payload = self._codec.encode(value)
        # Bytes payloads (containers) are measured inline; the rest by the codec.
        size = len(payload) if type(payload) is bytes else payload_size(tag, payload)
        if size > self._max_value_size:
            raise self._too_large(key, size)
        return tag, payload

    def _too_large(self, key: str, size: int) -> ValueTooLargeError:
        return ValueTooLargeError(
            f"Value for key {key!r} is {size} bytes encoded, "
            f"above max_value_size {self._max_value_size}"
        )

    def _encode_items(self, mapping: object) -> list[tuple[str, Value]]:
        if not isinstance(mapping, Mapping):
            raise InvalidArgumentError(
                f"Expected a mapping of keys to values, got {type(mapping).__name__}"
            )
        keys = check_keys(list(mapping))
        if type(mapping) is not dict:
            return [(key, self._encode(key, mapping[key])) for key in keys]
        # A plain dict (the bulk path): its values in key order, _encode inlined.
        encode, limit = self._codec.encode, self._max_value_size
        out: list[tuple[str, Value]] = []
        append = out.append
        for key, value in zip(keys, mapping.values(), strict=True):
            tag, payload = encode(value)
            size = len(payload) if type(payload) is bytes else payload_size(tag, payload)
            if size > limit:
                raise self._too_large(key, size)
            append((key, (tag, payload)))
        return out

    def _batch(
        self, mapping: object, ttl: object
    ) -> tuple[Sequence[tuple[str, Value]], int, int | None]:
        """An ``mset``'s items, its ``now`` and expiry: everything checked before any I/O.

        The values are encoded now, or (see :class:`LazyItems`) as they are
        written: lazily only for a plain dict of at least :data:`LAZY_MIN`
        keys given to a backend that asks for it (``lazy_batches``:
        PostgreSQL's sync backend, whose ``COPY`` then encodes while the
        server takes the rows already sent). Keys are checked here either
        way. The errors are the same either way: a value that cannot be
        encoded is reported before a bad ``ttl``, and the first such value in
        the batch's order.
        """
        if not (
            type(mapping) is dict
            and len(mapping) >= LAZY_MIN
            and getattr(self._backend, "lazy_batches", False)
        ):
            items = self._encode_items(mapping)
            return (items, *self._times(ttl))
        lazy = LazyItems(check_keys(list(mapping)), mapping, self._encode)
        try:
            now, expires = self._times(ttl)
        except Exception:
            lazy.encode_all()  # a value's error comes first, as when eager
            raise
        return lazy, now, expires

    def _matcher(self, pattern: object) -> Matcher:
        return compile_pattern(pattern, self._separator)  # type: ignore[arg-type]

    def _listing(self, pattern: object) -> Matcher:
        """The matcher of a listing: no pattern means every live key.

        In both dialects; with a separator, ``"*"`` would be one segment only.
        Only listings accept ``None``: ``delete_pattern(None)`` stays an
        error rather than clearing the namespace.
        """
        if pattern is None:
            return self._all
        return compile_pattern(pattern, self._separator)  # type: ignore[arg-type]

    def _metadata(self, metadata: object) -> tuple[dict[str, Any], object]:
        """Split user metadata from a ``ttl`` entry (as dataknobs-kv does); validate it."""
        if not isinstance(metadata, dict):
            raise InvalidArgumentError(f"Metadata must be a dict, not {type(metadata).__name__}")
        for name in metadata:
            if type(name) is not str:
                raise InvalidArgumentError(f"Metadata keys must be strings, not {show(name)}")
        user = dict(metadata)
        ttl = user.pop("ttl", None)
        if ttl is not None:
            ttl_seconds(ttl)
        return user, ttl

    def _prepare_set(
        self, key: object, value: object, ttl: object, metadata: object, keep_ttl: bool
    ) -> tuple[str, Value, Meta, int, int | None]:
        """Validate and encode everything ``set`` needs before any I/O."""
        # check_key's cache hit inlined: a key written before skips the call.
        checked = key if type(key) is str and key in _valid_keys else check_key(key)
        # _encode, inlined: every set runs it.
        tag, payload = self._codec.encode(value)
        size = len(payload) if type(payload) is bytes else payload_size(tag, payload)
        if size > self._max_value_size:
            raise self._too_large(checked, size)
        encoded = (tag, payload)
        meta: Meta = KEEP
        if metadata is not None:
            user, meta_ttl = self._metadata(metadata)
            if ttl is None:
                ttl = meta_ttl
            meta = self._codec.encode_metadata(user)
        now = _floor(self._clock() * 1000)  # _times and now_ms inlined
        if ttl is None:
            return checked, encoded, meta, now, None
        if keep_ttl:
            raise InvalidArgumentError("keep_ttl cannot be combined with a ttl")
        if type(ttl) is int and 0 < ttl <= MAX_TTL_SECONDS:
            # What expires_at() computes for a whole number of seconds: exact
            # in floats up to MAX_TTL_SECONDS * 1000 < 2**53, so no rounding.
            return checked, encoded, meta, now, now + ttl * 1000
        return checked, encoded, meta, now, expires_at(now, ttl)

    def _merge_metadata(self, metadata: dict[str, Any], replace: bool) -> Any:
        codec = self._codec
        # Encoded now so an unencodable value fails before any I/O; a
        # replacement then writes these very bytes instead of encoding again.
        encoded = codec.encode_metadata(metadata)

        def merge(old: bytes | None) -> bytes | None:
            if replace:
                return encoded
            return codec.encode_metadata({**codec.decode_metadata(old), **metadata})

        return merge

    def _decode(self, value: Value, key: str) -> Any:
        try:
            return self._codec.decode(value[0], value[1])
        except SerializationError as exc:
            raise self._undecodable_value(key, exc) from exc

    def _undecodable_value(self, key: str, exc: SerializationError) -> SerializationError:
        """The error of a read whose stored value this store's codec cannot decode.

        Names the key and namespace: the codec's own message does not know them.
        """
        return SerializationError(
            f"Cannot decode the value of key {key!r} in namespace {self._ns!r}: {exc}"
        )

    def _decode_listed(self, rows: Iterable[tuple[str, Value | None]]) -> dict[str, Any]:
        """Decode the values of a listing, leaving out (with a warning) any it cannot.

        One record this codec cannot decode (imported with ``opaque=True``,
        or written by another program or codec) must never make a listing of
        the other keys fail; reading it by name (``get``) still raises.
        """
        decode = self._codec.decode
        listed: dict[str, Any] = {}
        for key, value in rows:
            if value is None:
                continue
            try:
                listed[key] = decode(value[0], value[1])
            except SerializationError as exc:
                self._undecodable(key, value[0], exc)
        return listed

    def _undecodable(self, key: str, tag: str, exc: SerializationError) -> None:
        warnings.warn(
            UndecodableValueWarning(
                f"Left key {key!r} of namespace {self._ns!r} out of a listing: its value "
                f"(tag {tag!r}) cannot be decoded by this store's codec: {exc}"
            ),
            stacklevel=4,
        )


def check_delta(delta: object) -> int | float:
    """Validate an increment amount: an int or float, never a bool."""
    if type(delta) is not int and type(delta) is not float:
        raise InvalidArgumentError("Amount must be numeric")
    return delta


def check_append(value: object) -> bytes | str:
    """Only ``str`` and bytes-like values can be appended."""
    if type(value) is str or type(value) is bytes:
        return value
    if isinstance(value, (bytearray, memoryview)):
        try:
            return bytes(value)
        except ValueError as exc:  # a released memoryview
            raise SerializationError(f"Value is not JSON serializable: {exc}") from None
    raise AppendTypeError(f"Cannot append a {type(value).__name__}: append takes str or bytes")
