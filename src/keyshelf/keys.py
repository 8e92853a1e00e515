"""Key and namespace rules (docs/semantics.md), checked identically everywhere.

A key (and a namespace name) is a non-empty ``str`` of at most 255
characters, printable characters only (spaces, punctuation and emoji are
fine), and must not start with ``__``. Every operation that takes a key,
reads included, calls :func:`check_key` before touching a backend, so a
rejected key never changes anything.

Backends never concatenate namespace and key into one string without an
unambiguous encoding: SQL backends keep them in two columns, and
:func:`joined` gives the length-prefixed form used where one string is needed
(namespace ``"a:b"`` + key ``"c"`` can never collide with ``"a"`` + ``"b:c"``).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from ._show import show
from .errors import InvalidKeyError

MAX_KEY_LENGTH = 255
DEFAULT_NAMESPACE = "default"

_FORBIDDEN_WHITESPACE = frozenset("\n\r\t\0")
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})

# Keys seen valid recently: checking is pure, so a small set of known-good keys
# lets hot keys skip the character scan. Bounded so it cannot grow without limit.
_valid_cache: set[str] = set()
_VALID_CACHE_LIMIT = 4096


def _problem(key: object, what: str) -> str | None:
    """Return the documented message for an invalid key, or None if it is valid."""
    if type(key) is not str or not key:
        return f"{what} must be a non-empty string"
    if len(key) > MAX_KEY_LENGTH:
        return f"{what} length cannot exceed {MAX_KEY_LENGTH} characters"
    if key.startswith("__"):
        return f"{what}s cannot start with '__'"
    if not key.isprintable():
        if any(ch in _FORBIDDEN_WHITESPACE for ch in key):
            return f"{what} cannot contain newlines, tabs, or null bytes"
        # str.isprintable() also refuses spaces other than " ", format
        # characters such as the zero-width joiner inside emoji sequences, and
        # unassigned code points; users see those as printable, so only
        # control characters, lone surrogates and line/paragraph separators
        # are refused.
        if any(unicodedata.category(ch) in _REFUSED_CATEGORIES for ch in key):
            return f"{what} must contain only printable characters"
    return None


def _remember(key: str) -> str:
    if len(_valid_cache) >= _VALID_CACHE_LIMIT:
        _valid_cache.clear()
    _valid_cache.add(key)
    return key


def check_key(key: object) -> str:
    """Return ``key`` if it follows the key rules, else raise InvalidKeyError."""
    # Exact str only: an unhashable key must not reach the set, and a str
    # subclass equal to a cached key must not skip the type rule.
    if type(key) is str:
        if key in _valid_cache:
            return key
        # The rules of _problem for the common case, inline (as check_keys has
        # them): a key outside the cache, e.g. one of many keys written in
        # turn, costs a few string tests instead of _problem and _remember.
        if 0 < len(key) <= MAX_KEY_LENGTH and key.isprintable() and not key.startswith("__"):
            if len(_valid_cache) >= _VALID_CACHE_LIMIT:
                _valid_cache.clear()
            _valid_cache.add(key)
            return key
    message = _problem(key, "Key")
    if message is not None:
        raise InvalidKeyError(message)
    return _remember(key)  # type: ignore[arg-type]


# A batch at least this long is first checked as a whole (_plain_batch).
_BULK_BATCH = 64


def _plain_batch(batch: list[object]) -> bool:
    """True if every item is a ``str`` following the common key rules.

    The rules of the inline check, applied to the whole batch by a few C-level
    passes (bulk loads check millions of new keys; per key, this costs about a
    third of the loop). False sends the batch through the per-key loop, which
    finds and names the offending key (or accepts a key that only
    ``isprintable`` refused). Batch keys are not added to the cache of hot keys.
    """
    if set(map(type, batch)) != {str}:
        return False
    keys: list[str] = batch  # type: ignore[assignment]
    lengths = list(map(len, keys))
    return (
        min(lengths) > 0
        and max(lengths) <= MAX_KEY_LENGTH
        and "".join(keys).isprintable()
        # A key starting with "__": the separator is not printable, so it
        # cannot stand inside a key that passed the test above.
        and "\n__" not in "\n" + "\n".join(keys)
    )


def check_keys(keys: Iterable[object]) -> list[str]:
    """Validate a batch of keys; the message starts ``Invalid key`` and names it."""
    if isinstance(keys, (str, bytes)):
        raise InvalidKeyError(
            f"Invalid key batch: expected a list of keys, got a {type(keys).__name__}"
        )
    try:
        iterator = iter(keys)
    except TypeError:
        raise InvalidKeyError(
            f"Invalid key batch: expected an iterable of keys, got a {type(keys).__name__}"
        ) from None
    batch = list(iterator)
    if len(batch) >= _BULK_BATCH and _plain_batch(batch):
        return batch  # type: ignore[return-value]
    out: list[str] = []
    append = out.append
    cache = _valid_cache
    for key in batch:
        if type(key) is not str or key not in cache:
            # The rules of _problem for the common case, inline (bulk loads
            # check millions of new keys); anything unusual gets _problem.
            if not (
                type(key) is str
                and 0 < len(key) <= MAX_KEY_LENGTH
                and key.isprintable()
                and not key.startswith("__")
            ):
                message = _problem(key, "Key")
                if message is not None:
                    raise InvalidKeyError(f"Invalid key {show(key)}: {message}")
            if len(cache) >= _VALID_CACHE_LIMIT:  # _remember, inline
                cache.clear()
            cache.add(key)  # type: ignore[arg-type]
        append(key)  # type: ignore[arg-type]
    return out


def check_namespace(name: object) -> str:
    """Return ``name`` if it is a valid namespace name (the key rules apply)."""
    message = _problem(name, "Namespace")
    if message is not None:
        raise InvalidKeyError(f"Invalid namespace {show(name)}: {message}")
    assert isinstance(name, str)
    return name


def joined(namespace: str, key: str) -> str:
    """An unambiguous single-string form of (namespace, key).

    The namespace is length-prefixed, so no choice of separators in either part
    can make two different pairs produce the same string.
    """
    return f"{len(namespace)}:{namespace}:{key}"
