"""The names of a Redis store's keys and what its record hashes hold.

No I/O, no redis import.

Key layout
----------

With the default prefix ``keyshelf``, namespace ``default`` and key
``user:1``::

    keyshelf:{default}:user:1    HASH  the record (fields below)
    keyshelf:{default}#keys      ZSET  every key of the namespace, score 0 (lex index)
    keyshelf:{default}#ttl       ZSET  keys with an expiry, scored by expiry (server ms)

The namespace sits between braces, percent-encoded so that it never holds a
brace (``%`` -> ``%25``, ``{`` -> ``%7B``, ``}`` -> ``%7D``); the prefix may not
hold braces either. The first ``}`` therefore ends the namespace, a data key
continues with ``:`` and bookkeeping keys with ``#``: no (namespace, key) pair
can produce the name of another pair, of a bookkeeping key, or of a key of
another prefix. The braces are also a Redis Cluster hash tag: every key of one
namespace lives in one slot, so every Lua script touches one slot only
(scripts that walk an index derive record names from it, in the same slot),
which is what lets the backend run on a cluster (``cluster=true``).

Record hash fields:

====  ===============================================================
``t``  payload kind + value tag: ``n`` None, ``i`` int, ``f`` float,
       ``s`` str, ``b`` bytes, then the codec tag (``"ii"``, ``"sF"``...)
``v``  the payload: ints as Redis integers (so ``HINCRBY`` works), floats
       as shortest round-trip text, str as UTF-8, bytes raw
``m``  encoded user metadata (absent when there is none)
``c``  created_at (ms, the store's clock)
``u``  updated_at (ms)
``n``  version
====  ===============================================================

Expiry is native: the hash carries a Redis TTL, so Redis alone decides when a
key is gone (one clock: the server's). The ``#ttl`` index exists only to find
the leftover ``#keys`` entries of expired keys, which scripts remove lazily
("tidying"); it is never used to decide liveness.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import unquote

from ..patterns import Matcher, compile_pattern


class Space(NamedTuple):
    """The Redis names of one namespace."""

    base: str  # data key = base + key
    catalog: str  # ZSET of every key (the lex index), "#keys"
    expiring: str  # ZSET of the keys with an expiry, "#ttl"
    feed: str  # HASH of the change feed (revision, retention): "<prefix>:#feed"
    log: str  # STREAM of recorded changes: "<prefix>:#log"
    #: ``base`` and (catalog, expiring, feed, log) as the bytes sent: the hot
    #: paths pass bytes, which redis-py sends without converting them.
    bbase: bytes
    bnames: tuple[bytes, bytes, bytes, bytes]


def glob_escape(text: str) -> str:
    """Escape ``text`` for Redis's MATCH glob (every character literal)."""
    return "".join("\\" + c if c in "\\*?[]" else c for c in text)


class Layout:
    """Names every Redis key of one prefix; see the module docstring."""

    def __init__(self, prefix: str, *, cluster: bool = False) -> None:
        self.prefix = prefix
        self.cluster = cluster
        #: The store-wide change feed (a single server): its hash and stream.
        self.feed = prefix + ":#feed"
        self.log = prefix + ":#log"
        self._spaces: dict[str, Space] = {}
        head = glob_escape(prefix) + ":{*}"
        #: SCAN MATCH patterns for every namespace's index / ttl set.
        self.index_match = head + "#keys"
        self.ttl_match = head + "#ttl"
        self.any_match = glob_escape(prefix) + ":{*"

    def space(self, ns: str) -> Space:
        found = self._spaces.get(ns)
        if found is None:
            if len(self._spaces) > 4096:
                self._spaces.clear()
            head = f"{self.prefix}:{{{_brace_safe(ns)}}}"
            if self.cluster:  # a script touches one slot: one feed per namespace
                feed, log = head + "#feed", head + "#log"
            else:
                feed, log = self.feed, self.log
            names = (head + "#keys", head + "#ttl", feed, log)
            found = Space(
                head + ":",
                *names,
                (head + ":").encode(),
                tuple(name.encode() for name in names),  # type: ignore[arg-type]
            )
            self._spaces[ns] = found
        return found

    def namespace_of(self, name: bytes | str, suffix: str) -> str | None:
        """The namespace whose bookkeeping key is ``name`` (``suffix`` "#keys"/"#ttl")."""
        text = name.decode("utf-8", "replace") if isinstance(name, bytes) else name
        head = self.prefix + ":{"
        if not text.startswith(head) or not text.endswith("}" + suffix):
            return None
        inner = text[len(head) : -len(suffix) - 1]
        if "}" in inner or "{" in inner or not inner:
            return None
        return unquote(inner)


def split_data_key(prefix: str, name: str) -> tuple[str, str] | None:
    """``(namespace, key)`` of a data key name, None if it is not one of ``prefix``."""
    head = prefix + ":{"
    if not name.startswith(head):
        return None
    end = name.find("}", len(head))
    if end < 0 or name[end + 1 : end + 2] != ":":
        return None
    return unquote(name[len(head) : end]), name[end + 2 :]


def _brace_safe(ns: str) -> str:
    return ns.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


def prefix_only(matcher: Matcher) -> bool:
    """True if the pattern means exactly "starts with ``matcher.prefix``"."""
    if matcher.separator is not None or matcher.literal or matcher.match_all:
        return False
    pattern = matcher.pattern
    if not pattern.endswith("*") or pattern.endswith("**"):
        return False
    head = compile_pattern(pattern[:-1])
    return head.literal and head.prefix == matcher.prefix


def lex_range(prefix: str, after: str | None, upper: str | None) -> tuple[str, str]:
    """ZRANGEBYLEX bounds for keys starting with ``prefix``, strictly after ``after``.

    Code-point order equals UTF-8 byte order, which is how Redis compares
    members, so the range holds exactly the keys in that order.
    """
    low = "[" + prefix if prefix else "-"
    if after is not None and after >= prefix:
        low = "(" + after
    high = "(" + upper if upper is not None else "+"
    return low, high
