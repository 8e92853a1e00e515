"""Computing a missing value once: the names and keys ``get_or_set`` and ``memoize`` use.

No I/O here: the sync and async logic lives in ``_compute_async.py`` (and its
generated twin ``_compute_sync.py``); this module holds what both share and
what docs/caching.md promises users:

* the **lease key** of a cached key (:func:`lease_key`): ``keyshelf-lease:``
  followed by the key (or by ``#`` and the key's SHA-256 when that would
  exceed the 255-character key limit), in the same namespace. Keys may not
  start with ``__``, so a hidden key is impossible; this prefix keeps the
  lease out of every pattern a user's own keys match unless the pattern
  starts with ``*``. A lease lives while a value is computed and, holding
  :data:`RELEASED`, until its ``lock_ttl`` runs out; then it expires;
* the **freshness mark** :data:`FRESH_UNTIL`: with ``stale_ttl`` the value is
  stored with TTL ``ttl + stale_ttl`` and this user-metadata entry (epoch
  milliseconds of the store's clock) says until when it is fresh. ``get``
  still returns the plain value;
* the **memoize key** (:func:`key_builder`): ``memoize:<module>.<qualname>:``
  and 32 hex digits of the SHA-256 of keyshelf's typed encoding of
  ``(args, sorted kwargs)``. The codec's encoding is deterministic in every
  process and Python run (never ``hash()``), so the key is too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from ._show import show
from .codec import Codec
from .errors import InvalidArgumentError, SerializationError
from .expiry import ttl_seconds
from .keys import MAX_KEY_LENGTH, check_key

__all__ = [
    "DEFAULT_LOCK_TTL",
    "FRESH_UNTIL",
    "LEASE_PREFIX",
    "MEMO_PREFIX",
    "RELEASED",
    "KeyBuilder",
    "check_options",
    "key_builder",
    "lease_key",
]

LEASE_PREFIX = "keyshelf-lease:"
MEMO_PREFIX = "memoize:"
#: What a lease holds once its owner is done (stored or failed): a waiter
#: that finds it takes the lease over by compare_and_swap, without waiting
#: for it to expire; nobody ever deletes a lease (a delete after a check
#: could remove the lease of the next owner).
RELEASED = "keyshelf-lease-released"
#: The user-metadata entry holding the freshness deadline (epoch ms).
FRESH_UNTIL = "keyshelf_fresh_until"
DEFAULT_LOCK_TTL = 30
_DIGITS = 32  # 128 bits of SHA-256: collisions are out of reach

KeyBuilder = Callable[[tuple[Any, ...], dict[str, Any]], str]

# The codec of keys: always the JSON codec (a pickle is not a stable key).
_KEY_CODEC = Codec()
# Argument types whose equal values always make the same key (see key_builder).
_ATOMIC = frozenset({str, int, float, bool, bytes, type(None)})


def _rememberable(value: object) -> bool:
    """True if every value equal to ``value`` with its type makes the same key.

    ``0.0 == -0.0`` (one hash, one type), yet the typed encoding keeps the
    sign, so zero floats are never remembered.
    """
    kind = type(value)
    return kind in _ATOMIC and (kind is not float or value != 0.0)


_MEMO_LIMIT = 4096


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def lease_key(key: str) -> str:
    """The name of the lease that guards the computation of ``key``."""
    name = LEASE_PREFIX + key
    if len(name) <= MAX_KEY_LENGTH:
        return name
    return LEASE_PREFIX + "#" + _sha(key)


def check_options(ttl: object, lock_ttl: object, stale_ttl: object) -> None:
    """Validate the TTL arguments of get_or_set/memoize before any I/O."""
    if ttl is not None:
        ttl_seconds(ttl)
    if lock_ttl is not None:
        ttl_seconds(lock_ttl)
    if stale_ttl is not None:
        ttl_seconds(stale_ttl)
        if ttl is None:
            raise InvalidArgumentError(
                "stale_ttl needs a ttl: a value is served stale only after its freshness ends"
            )


def check_flag(name: str, value: object) -> bool:
    if type(value) is not bool:
        raise InvalidArgumentError(f"{name} must be True or False, not {show(value)}")
    return value


def _loose(value: Any) -> Any:
    """``value`` with equal numbers made identical: ``True``, ``1`` and ``1.0`` -> ``1``.

    ``typed=False`` shares a cache entry between arguments that compare equal,
    as ``functools.lru_cache`` does; containers are normalized all the way down.
    """
    kind = type(value)
    if kind is bool:
        return int(value)
    if kind is float:
        return int(value) if value.is_integer() else value
    if kind is tuple:
        return tuple(_loose(item) for item in value)
    if kind is list:
        return [_loose(item) for item in value]
    if kind is dict:
        return {_loose(k): _loose(v) for k, v in value.items()}
    if kind is set or kind is frozenset:
        return kind(_loose(item) for item in value)
    return value


def key_builder(function: Callable[..., Any], typed: bool, key: object) -> KeyBuilder:
    """The function that makes the cache key of a call of ``function``."""
    name = f"{getattr(function, '__module__', None)}.{getattr(function, '__qualname__', None)}"
    if key is not None:
        if not callable(key):
            raise InvalidArgumentError(f"memoize key= must be a callable, not {show(key)}")
        custom = key

        def build_custom(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
            made = custom(*args, **kwargs)
            if type(made) is not str:
                raise InvalidArgumentError(
                    f"memoize key= of {name} must return a str, not {show(made)}"
                )
            return check_key(made)

        return build_custom

    prefix = f"{MEMO_PREFIX}{name}:"
    if len(prefix) + _DIGITS > MAX_KEY_LENGTH:
        prefix = f"{MEMO_PREFIX}#{_sha(name)[:_DIGITS]}:"
    encode = _KEY_CODEC.encode
    sha256 = hashlib.sha256
    # Keys already built in this process, by the arguments and their exact
    # types (so 1 and 1.0 have separate entries, whatever ``typed``): the hit
    # path of a memoized function then skips the encoding and the hash. Only
    # calls whose arguments are all rememberable (_rememberable) are entered, so
    # an entry can never answer for a container or another type that merely
    # compares equal (a tuple (1,) and (1.0,), a Decimal and an int). This
    # memo is an in-process speed-up of a pure function: hash() decides only
    # where an entry sits, never what the key is.
    memo: dict[Any, str] = {}

    def build(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        if not kwargs and len(args) == 1:  # the common case, cheapest probe
            arg = args[0]
            probe: Any = (arg, type(arg))
            try:
                return memo[probe]
            except (KeyError, TypeError):
                pass
            made = encoded(args, kwargs)
            if _rememberable(arg):
                if len(memo) >= _MEMO_LIMIT:
                    memo.clear()
                memo[probe] = made
            return made
        # One flat tuple: the arguments, their types, the keyword items and
        # their types (len(args) fixes where each part starts, so it is
        # unambiguous; the single-argument probe above has two elements and a
        # type last, which no probe here has).
        if kwargs:
            probe = (args, *map(type, args), *kwargs.items(), *map(type, kwargs.values()))
        else:
            probe = (args, *map(type, args))
        try:
            return memo[probe]
        except (KeyError, TypeError):  # not built yet, or an unhashable argument
            pass
        made = encoded(args, kwargs)
        if all(map(_rememberable, args)) and all(map(_rememberable, kwargs.values())):
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            memo[probe] = made
        return made

    def encoded(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        # Always the pair: f((1,), [("x", 2)]) and f(1, x=2) must differ.
        parts: Any = (args, sorted(kwargs.items()))
        if not typed:
            parts = _loose(parts)
        try:
            tag, payload = encode(parts)
        except SerializationError as exc:
            raise SerializationError(
                f"Cannot make a stable cache key for a call of {name}: {exc} "
                "(pass key= to memoize to build the key yourself)"
            ) from None
        data = payload if type(payload) is bytes else str(payload).encode()
        return prefix + sha256(tag.encode() + data).hexdigest()[:_DIGITS]

    return build
