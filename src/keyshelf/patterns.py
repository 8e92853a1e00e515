"""Key patterns: the Redis glob dialect and the hierarchical dialect.

Every operation that takes a pattern (``keys``, ``key_count``, ``get_pattern``,
``delete_pattern``, the CLI) goes through :func:`compile_pattern`, so one
pattern means the same thing on every backend. This module is pure: no I/O,
no state beyond a bounded compile cache.

Default dialect (``separator=None``): Redis glob
------------------------------------------------

Matches exactly like Redis 7's ``stringmatchlen`` (``KEYS``/``SCAN MATCH``),
corner cases included, but over Python code points rather than bytes, so
``?`` matches one character even when it is ``"é"`` or an emoji:

* ``*`` matches any run of characters (``**`` and ``***`` are the same as ``*``);
* ``?`` matches exactly one character;
* ``[abc]`` one of the listed characters, ``[^abc]`` any other one, ``[a-z]``
  a range, and ``[z-a]`` the same range as ``[a-z]``; case-sensitive;
* ``\\`` makes the next character literal, also inside brackets.

The odd corners follow Redis, as recorded in ``redis-glob-vectors.json``:

* ``[`` opens a class even when no ``]`` follows: the class then takes the rest
  of the pattern (``[ab`` matches ``"a"`` or ``"b"``; ``a[`` matches nothing;
  ``[^`` matches any single character);
* ``]`` right after ``[`` or ``[^`` closes the class, so ``[]`` matches nothing
  and ``[^]`` matches any one character;
* in a class, ``x-y`` is a range whenever two more characters follow ``x``,
  even if ``y`` is ``]`` or ``\\``: ``[a-]b`` is one character among
  ``]``..``a`` and ``b`` (the range eats the ``]``, so the class runs to the
  end); an escaped member ``\\x`` is the literal ``x`` and never starts a
  range; ``!`` has no special meaning;
* a trailing ``\\`` matches a literal backslash.

Redis's recursion cap (1000 nested ``*``) never changes a result here: keys
are at most 255 characters and such a pattern needs more. The empty string is
not a valid key; for the record, ``"*"`` matches it here (Redis's matcher would
not), and the empty pattern matches only the empty string, so nothing.

Hierarchical dialect (``separator`` set, e.g. ``"."``)
------------------------------------------------------

Keys are paths of segments joined by the separator (any non-empty string,
usually one character). Like ``.gitignore``:

* ``*``, ``?`` and ``[...]`` (same class syntax as above) stay inside one
  segment: they never match a character that starts a separator;
* ``**`` forming a whole segment spans any number of segments: ``app.**`` is
  everything under ``app`` (``app.x``, ``app.x.y``, not ``app`` itself);
  ``**.error`` matches ``error``, ``a.error``, ``a.b.error``; ``a.**.b``
  matches ``a.b``, ``a.x.b``, ``a.x.y.b``; a bare ``**`` matches every key.
  A run of three or more stars counts as ``**``. Stars next to other
  characters of their segment (``a**b``) act like a single ``*``;
* ``{dev,prod}`` picks one of the comma-separated alternatives; groups nest
  (``{a,{b,c}d}``), alternatives may be empty or hold wildcards, separators
  and ``**``;
* ``\\`` makes the next character literal (``\\*``, ``\\{``, ``\\,``); a
  trailing ``\\`` is a literal backslash.

Decisions for odd input (a ``str`` pattern never raises):

* a ``{`` without a matching ``}``, a stray ``}``, and a ``,`` outside any group
  are literal characters; ``{}`` and ``{a}`` are groups (of one alternative);
  groups nested more than 32 deep are literal text;
* a ``[`` without a closing ``]`` is a literal ``[`` (unlike the Redis dialect,
  where it opens a class that runs to the end);
* a ``**`` counts as a whole segment when each of its sides is the pattern's
  start/end, a separator, or the edge of a brace alternative whose group is
  itself so bounded on that side (``x.{**,a}.y`` is ``x.**.y`` or ``x.a.y``),
  or, on its left, a group whose every alternative ends with a separator
  (``{a.,b.}**``). Otherwise a ``**`` against a group acts like ``*``
  (``**{.a}``, ``{a,b}**``), and a run of stars never continues across a
  brace (``*{*}`` is two ``*``): there, textual brace expansion would differ;
* an empty segment is a segment: ``a.**.b`` also matches ``a..b``.

Redis's server-side ``MATCH`` agrees with the default dialect when keys are
ASCII, or when the pattern has no ``?`` and no ``[...]`` (Redis matches bytes,
so its ``?`` is one byte of a UTF-8 key); otherwise scan by
:attr:`Matcher.prefix` and filter with :meth:`Matcher.match`.

Speed: each pattern is translated once into a compiled :mod:`re` pattern
(``fullmatch``, ``DOTALL``) and cached. Common shapes skip the regex: a
literal is ``==``, ``prefix*`` is ``startswith``, ``*suffix`` is ``endswith``,
``*text*`` is ``in``, a match-all is ``True``. Runs between two stars are
matched at their leftmost position inside atomic groups, the same insight as
Redis's own protection, so patterns like ``*a*a*a*b`` (or ``**.a.**.b.**``)
stay fast instead of backtracking combinatorially.

Bound: matching one key is polynomial for every pattern, never exponential.
A brace-free pattern costs O(len(pattern) x len(key)) steps, times len(key)
at worst when it has a ``**`` (the last one is not atomic). A pattern with
groups is expanded into its distinct brace-free forms (``{,}{,}b`` is just
``b``); up to 32 forms (patterns up to 256 characters) become one regex whose
branches are brace-free, so at most 32 times that bound. Beyond, and for
every pattern with a wildcard or group under a separator longer than one
character (where the atomic-chunk argument does not hold), the pattern runs
on a small automaton that visits each (state, key position) pair at most
twice: O(len(pattern) x len(key)). It is run as a lazily built, cached DFA,
so once a pattern is warm a key costs one dictionary lookup per character
(in Python rather than C). No pattern size is refused; the cost grows with
it linearly.

:attr:`Matcher.prefix` is the literal text every matching key starts with;
backends turn it into an index range scan with :func:`prefix_upper_bound`.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from keyshelf._show import show
from keyshelf.errors import InvalidPatternError

__all__ = ["Matcher", "compile_pattern", "prefix_upper_bound"]

_MAX_BRACE_DEPTH = 32
_CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class Matcher:
    """A compiled key pattern. Build one with :func:`compile_pattern`.

    Guarantees, for every key ``k``:

    * ``match(k)`` implies ``k.startswith(prefix)``;
    * if ``literal``, ``match(k)`` is exactly ``k == prefix`` (the pattern
      with its escapes removed);
    * if ``match_all``, ``match(k)`` is always ``True``;
    * if ``prefix_only``, ``match(k)`` is exactly ``k.startswith(prefix)``
      (``user:*``, ``app.**``), so a range scan of the prefix needs no test.

    Matchers are immutable, hashable, thread-safe and cheap to share.
    """

    pattern: str
    """The pattern as given."""
    separator: str | None
    """``None`` for the Redis glob dialect, else the hierarchical separator."""
    prefix: str
    """Longest literal text every matching key starts with (``""`` if none)."""
    literal: bool
    """The pattern has no wildcard: it matches the single key ``prefix``."""
    match_all: bool
    """The pattern matches every key (``*`` in the default dialect, ``**``)."""
    _test: Callable[[str], bool] = field(repr=False, compare=False)
    prefix_only: bool = field(default=False, compare=False)
    """The pattern matches exactly the keys that start with ``prefix``."""

    def match(self, key: str) -> bool:
        """Return whether ``key`` matches the pattern (case-sensitive)."""
        return self._test(key)


def compile_pattern(pattern: str, separator: str | None = None) -> Matcher:
    """Compile ``pattern`` in the default (``separator=None``) or hierarchical dialect.

    Results are cached (LRU, 1024 entries). Every ``str`` pattern is valid.

    Raises:
        InvalidPatternError: ``pattern`` is not a ``str``, or ``separator`` is
            neither ``None`` nor a non-empty ``str``.
    """
    if not isinstance(pattern, str):
        raise InvalidPatternError(f"Pattern must be a string, not {type(pattern).__name__}")
    if separator is not None and (not isinstance(separator, str) or not separator):
        raise InvalidPatternError(
            f"Pattern separator must be a non-empty string or None, not {show(separator)}"
        )
    return _compile_cached(pattern, separator)


def prefix_upper_bound(prefix: str) -> str | None:
    """Return the smallest string above every string that starts with ``prefix``.

    In code-point order (which is also UTF-8 byte order, so SQLite's BINARY
    and PostgreSQL's ``C`` collations agree), ``s.startswith(prefix)`` is
    equivalent to ``prefix <= s < upper`` for strings without surrogate code
    points (no valid key or UTF-8 text holds one): the increment skips the
    surrogate block, so ``upper`` is always encodable. Returns ``None`` when no
    upper bound exists: ``prefix`` is empty or made only of U+10FFFF, and the
    range scan is then ``s >= prefix`` alone.
    """
    stem = prefix.rstrip("\U0010ffff")
    if not stem:
        return None
    nxt = ord(stem[-1]) + 1
    if nxt == 0xD800:
        nxt = 0xE000
    return stem[:-1] + chr(nxt)


# --------------------------------------------------------------------------
# Tokens shared by both dialects.


@dataclass(frozen=True, slots=True)
class _Lit:
    char: str


@dataclass(frozen=True, slots=True)
class _One:
    """``?``: exactly one character."""


@dataclass(frozen=True, slots=True)
class _Class:
    negated: bool
    ranges: tuple[tuple[int, int], ...]

    def contains(self, codepoint: int) -> bool:
        inside = any(lo <= codepoint <= hi for lo, hi in self.ranges)
        return inside != self.negated


@dataclass(frozen=True, slots=True)
class _Star:
    """A run of ``run`` stars matching inside one segment (anywhere, by default)."""

    run: int = 1


@dataclass(frozen=True, slots=True)
class _GlobStar:
    """A whole-segment ``**``.

    ``eats_sep``: it was followed by a separator, which it absorbs, and means
    "zero or more whole segments, each with its separator"; otherwise it ends
    its sequence and means "anything".
    """

    eats_sep: bool


@dataclass(frozen=True, slots=True)
class _Alt:
    options: tuple[tuple[_Token, ...], ...]


_Token: TypeAlias = _Lit | _One | _Class | _Star | _GlobStar | _Alt

_ONE = _One()
_STAR = _Star()


def _scan_class(pattern: str, start: int) -> tuple[_Class, int, bool]:
    """Read the class whose ``[`` is at ``pattern[start]``, as Redis does.

    Returns the class, the index after it and whether a ``]`` closed it (an
    unclosed class takes the rest of the pattern).
    """
    n = len(pattern)
    i = start + 1
    negated = i < n and pattern[i] == "^"
    if negated:
        i += 1
    ranges: list[tuple[int, int]] = []
    closed = False
    while i < n:
        char = pattern[i]
        if char == "\\" and i + 1 < n:
            code = ord(pattern[i + 1])
            ranges.append((code, code))
            i += 2
        elif char == "]":
            closed = True
            i += 1
            break
        elif i + 2 < n and pattern[i + 1] == "-":
            # Redis takes a range whenever two characters follow, even "]".
            low, high = sorted((ord(char), ord(pattern[i + 2])))
            ranges.append((low, high))
            i += 3
        else:
            code = ord(char)
            ranges.append((code, code))
            i += 1
    return _Class(negated, tuple(ranges)), i, closed


def _class_closes(pattern: str) -> list[bool]:
    """For each index: would a class opened by a ``[`` there be closed by a ``]``?

    The same reading as :func:`_scan_class`, computed for every position at
    once from the right, so that a pattern with thousands of unclosed ``[``
    takes linear time instead of one scan to its end per ``[``.
    """
    n = len(pattern)
    # reaches[k]: reading class items from index k meets a closing "]".
    reaches = [False] * (n + 3)
    for k in range(n - 1, -1, -1):
        char = pattern[k]
        if char == "\\" and k + 1 < n:
            reaches[k] = reaches[k + 2]
        elif char == "]":
            reaches[k] = True
        elif k + 2 < n and pattern[k + 1] == "-":
            reaches[k] = reaches[k + 3]
        else:
            reaches[k] = reaches[k + 1]
    closes = [False] * n
    for i in range(n):
        if pattern[i] == "[":
            body = i + 2 if i + 1 < n and pattern[i + 1] == "^" else i + 1
            closes[i] = reaches[body]
    return closes


# --------------------------------------------------------------------------
# Parsing.


def _parse_redis(pattern: str) -> list[_Token]:
    tokens: list[_Token] = []
    n = len(pattern)
    i = 0
    while i < n:
        char = pattern[i]
        if char == "*":
            j = i
            while j < n and pattern[j] == "*":
                j += 1
            tokens.append(_Star(j - i))
            i = j
        elif char == "?":
            tokens.append(_ONE)
            i += 1
        elif char == "[":
            cls, i, _closed = _scan_class(pattern, i)
            tokens.append(cls)
        elif char == "\\" and i + 1 < n:
            tokens.append(_Lit(pattern[i + 1]))
            i += 2
        else:
            tokens.append(_Lit(char))
            i += 1
    return tokens


def _pair_braces(pattern: str, closes: Sequence[bool]) -> dict[int, int]:
    """Map each ``{`` that opens a group to its ``}``; others are literal."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    n = len(pattern)
    i = 0
    while i < n:
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            i = _scan_class(pattern, i)[1] if closes[i] else i + 1
            continue
        if char == "{":
            stack.append(i)
        elif char == "}" and stack:
            opening = stack.pop()
            if len(stack) < _MAX_BRACE_DEPTH:
                pairs[opening] = i
        i += 1
    return pairs


def _parse_hierarchical(
    pattern: str,
    start: int,
    end: int,
    pairs: dict[int, int],
    in_group: bool,
    closes: Sequence[bool],
) -> list[list[_Token]]:
    """Parse ``pattern[start:end]``; inside a group, split it at top-level commas."""
    options: list[list[_Token]] = [[]]
    i = start
    while i < end:
        char = pattern[i]
        tokens = options[-1]
        if char == "\\":
            if i + 1 < end:
                tokens.append(_Lit(pattern[i + 1]))
                i += 2
            else:
                tokens.append(_Lit("\\"))
                i += 1
        elif char == "*":
            j = i
            while j < end and pattern[j] == "*":
                j += 1
            tokens.append(_Star(j - i))
            i = j
        elif char == "?":
            tokens.append(_ONE)
            i += 1
        elif char == "[":
            if closes[i]:
                cls, i, _closed = _scan_class(pattern, i)
                tokens.append(cls)
            else:
                tokens.append(_Lit("["))
                i += 1
        elif char == "{" and i in pairs:
            close = pairs[i]
            inner = _parse_hierarchical(pattern, i + 1, close, pairs, True, closes)
            tokens.append(_Alt(tuple(tuple(option) for option in inner)))
            i = close + 1
        elif char == "," and in_group:
            options.append([])
            i += 1
        else:
            tokens.append(_Lit(char))
            i += 1
    return options


def _sep_at(seq: Sequence[_Token], k: int, sep: str) -> bool:
    """Whether literal tokens spelling ``sep`` start at ``seq[k]``."""
    if k < 0 or k + len(sep) > len(seq):
        return False
    for offset, char in enumerate(sep):
        tok = seq[k + offset]
        if not isinstance(tok, _Lit) or tok.char != char:
            return False
    return True


def _boundary_before(seq: Sequence[_Token], k: int, sep: str) -> bool:
    """Whether ``seq[:k]`` always ends with a separator (literal, or every alternative)."""
    if _sep_at(seq, k - len(sep), sep):
        return True
    last = seq[k - 1] if k > 0 else None
    return isinstance(last, _Alt) and all(
        _boundary_before(option, len(option), sep) for option in last.options
    )


def _ends_with_stars(seq: Sequence[_Token]) -> bool:
    """Whether ``seq`` (or one of its trailing alternatives) ends with ``**``."""
    if not seq:
        return False
    last = seq[-1]
    if isinstance(last, _Star):
        return last.run >= 2
    if isinstance(last, _Alt):
        return any(_ends_with_stars(option) for option in last.options)
    return False


def _distribute(seq: Sequence[_Token], sep: str) -> list[_Token]:
    """Move a separator that follows a group into its alternatives when needed.

    ``{a,**}.b`` becomes ``{a.,**.}b`` (the same language) so that the ``**``
    sees its separator and can match zero segments. What follows still sits
    on a segment boundary, since every alternative now ends with a separator.
    """
    out: list[_Token] = []
    n, width = len(seq), len(sep)
    k = 0
    while k < n:
        tok = seq[k]
        if (
            isinstance(tok, _Alt)
            and _sep_at(seq, k + 1, sep)
            and any(_ends_with_stars(option) for option in tok.options)
        ):
            sep_tokens = tuple(seq[k + 1 : k + 1 + width])
            out.append(_Alt(tuple(option + sep_tokens for option in tok.options)))
            k += 1 + width
            continue
        out.append(tok)
        k += 1
    return out


def _classify(seq: Sequence[_Token], sep: str, left: bool, right: bool) -> list[_Token]:
    """Turn whole-segment star runs into globstars; recurse into groups.

    ``left``/``right``: whether the edges of ``seq`` sit on segment boundaries.
    """
    seq = _distribute(seq, sep)
    out: list[_Token] = []
    n, width = len(seq), len(sep)
    k = 0
    while k < n:
        tok = seq[k]
        bounded_left = (k == 0 and left) or _boundary_before(seq, k, sep)
        sep_after = _sep_at(seq, k + 1, sep)
        bounded_right = (k == n - 1 and right) or sep_after
        if isinstance(tok, _Star):
            if tok.run >= 2 and bounded_left and bounded_right:
                out.append(_GlobStar(eats_sep=sep_after))
                k += 1 + width if sep_after else 1
                continue
            out.append(_STAR)
        elif isinstance(tok, _Alt):
            options = tuple(
                tuple(_classify(option, sep, bounded_left, bounded_right)) for option in tok.options
            )
            out.append(_Alt(options))
        else:
            out.append(tok)
        k += 1
    return out


# --------------------------------------------------------------------------
# Translation to a regular expression.


def _class_char(code: int) -> str:
    char = chr(code)
    if char.isascii() and char.isalnum():
        return char
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _class_regex(cls: _Class) -> str:
    if not cls.ranges:
        return "." if cls.negated else "(?!)"
    body = "".join(
        _class_char(lo) if lo == hi else f"{_class_char(lo)}-{_class_char(hi)}"
        for lo, hi in cls.ranges
    )
    return f"[{'^' if cls.negated else ''}{body}]"


@dataclass(frozen=True, slots=True)
class _Dialect:
    sep: str | None
    one: str  # regex for one character inside a segment
    sep_re: str
    atomic: bool  # whether the leftmost-chunk optimisation is valid

    @classmethod
    def for_separator(cls, sep: str | None, optimize: bool) -> _Dialect:
        if sep is None:
            return cls(None, ".", "", optimize)
        sep_re = re.escape(sep)
        if len(sep) == 1:
            return cls(sep, f"[^{_class_char(ord(sep))}]", sep_re, optimize)
        # The leftmost argument needs single-character separators; skip it.
        return cls(sep, f"(?:(?!{sep_re}).)", sep_re, False)


def _wildcard_regex(tok: _Star | _GlobStar, dialect: _Dialect, lazy: bool) -> str:
    q = "?" if lazy else ""
    if isinstance(tok, _Star):
        return f"{dialect.one}*{q}"
    if tok.eats_sep:
        return f"(?:.*{q}{dialect.sep_re}){'??' if lazy else '?'}"
    return f".*{q}"


def _chunk_end(seq: Sequence[_Token], i: int, dialect: _Dialect) -> int | None:
    """Index of the wildcard closing a chunk that may be matched leftmost.

    For ``W C W'`` where ``W`` and ``W'`` are both in-segment stars (or both
    globstars) and ``C`` matches a fixed extent from a given start, the
    leftmost match of ``C`` is as good as any later one: ``W'`` can absorb
    whatever a later choice would have skipped. So ``W C`` can be committed
    (an atomic group), which keeps backtracking polynomial.
    """
    start = seq[i]
    if not dialect.atomic or (isinstance(start, _GlobStar) and not start.eats_sep):
        return None
    sep0 = dialect.sep[0] if dialect.sep else None
    for k in range(i + 1, len(seq)):
        tok = seq[k]
        if isinstance(tok, _One | _Class):
            continue
        if isinstance(start, _Star):
            if isinstance(tok, _Lit) and tok.char != sep0:
                continue
            return k if isinstance(tok, _Star) and k > i + 1 else None
        # A globstar chunk: whole segments, each ending in a literal separator.
        if isinstance(tok, _Lit | _Star):
            continue
        return k if isinstance(tok, _GlobStar) else None
    return None


def _emit(seq: Sequence[_Token], dialect: _Dialect) -> str:
    parts: list[str] = []
    literal: list[str] = []
    i = 0
    while i < len(seq):
        tok = seq[i]
        if isinstance(tok, _Lit):
            literal.append(tok.char)
            i += 1
            continue
        if literal:
            parts.append(re.escape("".join(literal)))
            literal.clear()
        if isinstance(tok, _Star | _GlobStar):
            end = _chunk_end(seq, i, dialect)
            if end is not None:
                chunk = _emit(seq[i + 1 : end], dialect)
                parts.append(f"(?>{_wildcard_regex(tok, dialect, lazy=True)}{chunk})")
                i = end
                continue
            parts.append(_wildcard_regex(tok, dialect, lazy=False))
        elif isinstance(tok, _One):
            parts.append(dialect.one)
        elif isinstance(tok, _Class):
            regex = _class_regex(tok)
            if dialect.sep is not None and tok.contains(ord(dialect.sep[0])):
                regex = f"(?!{dialect.sep_re}){regex}"
            parts.append(regex)
        else:
            parts.append("(?:" + "|".join(_emit(option, dialect) for option in tok.options) + ")")
        i += 1
    if literal:
        parts.append(re.escape("".join(literal)))
    return "".join(parts)


def _tokens(pattern: str, separator: str | None) -> list[_Token]:
    if separator is None:
        return _parse_redis(pattern)
    closes = _class_closes(pattern)
    pairs = _pair_braces(pattern, closes)
    (top,) = _parse_hierarchical(pattern, 0, len(pattern), pairs, False, closes)
    return _classify(top, separator, left=True, right=True)


def _translate(pattern: str, separator: str | None = None, *, optimize: bool = True) -> str:
    """The regular expression (for ``re.fullmatch`` with ``re.DOTALL``) of a pattern.

    ``optimize=False`` leaves out the atomic groups (for tests comparing both).
    """
    return _emit(_tokens(pattern, separator), _Dialect.for_separator(separator, optimize))


# --------------------------------------------------------------------------
# Bounded matching of what the regular expression cannot bound.
#
# Python's ``re`` backtracks. Stars are kept polynomial by the atomic chunks
# above, but two shapes escape that argument: brace groups (``{,}{,}...b``
# has 2^n ways to match nothing, ``*{a,aa}*{a,aa}*b`` multiplies the star
# choices) and separators of more than one character (the leftmost-chunk
# argument needs a one-character separator). A pattern with groups (of at
# most _MAX_EXPANDED_LENGTH characters) is first expanded into its distinct
# brace-free forms; when there are at most _MAX_EXPANSIONS of them, their
# union is a regular expression of brace-free branches, each as bounded as
# any brace-free pattern (the common ``env.{dev,prod}.*`` stays a C-speed
# regex). Otherwise (and for long separators) the pattern runs on _Nfa, a
# Thompson automaton of O(len(pattern)) states simulated as a lazy DFA: a
# transition costs at most two visits per state when first computed, one
# lookup afterwards.

_MAX_EXPANSIONS = 32
# Bounds of each pattern's DFA cache (past them, transitions are not cached):
# automaton states held in all cached DFA states together, and transitions.
# About half a megabyte per pattern at most, for up to 1024 cached patterns.
_DFA_STATES = 8192
_DFA_TRANSITIONS = 2048
_MAX_EXPANDED_LENGTH = 256

_CONSUME, _SPLIT, _ACCEPT = 0, 1, 2
# What a consuming state accepts.
_T_LIT, _T_ONE, _T_CLASS, _T_ANY = 0, 1, 2, 3


def _join(head: tuple[_Token, ...], tail: tuple[_Token, ...]) -> tuple[_Token, ...]:
    """Concatenate two brace-free sequences, merging wildcards that meet.

    An in-segment star next to another is one star; two globstars are one
    globstar that absorbs a separator only if both do (``(?:.*s)?.*`` is
    ``.*``). Without this, ``*{*}`` * 20 would expand to 40 adjacent stars.
    """
    if not head or not tail:
        return head + tail
    last, first = head[-1], tail[0]
    if isinstance(last, _Star) and isinstance(first, _Star):
        return head + tail[1:]
    if isinstance(last, _GlobStar) and isinstance(first, _GlobStar):
        return (*head[:-1], _GlobStar(last.eats_sep and first.eats_sep), *tail[1:])
    return head + tail


def _brace_forms(seq: Sequence[_Token], limit: int) -> list[tuple[_Token, ...]] | None:
    """The distinct brace-free sequences ``seq`` stands for, or ``None`` past ``limit``.

    Concatenation distributes over alternation, so the union of the returned
    sequences matches exactly the keys ``seq`` matches.
    """
    forms: dict[tuple[_Token, ...], None] = {(): None}
    for tok in seq:
        if isinstance(tok, _Alt):
            choices: dict[tuple[_Token, ...], None] = {}
            for option in tok.options:
                expanded = _brace_forms(option, limit)
                if expanded is None:
                    return None
                choices.update(dict.fromkeys(expanded))
                if len(choices) > limit:
                    return None
        else:
            choices = {(tok,): None}
        forms = {_join(form, choice): None for form in forms for choice in choices}
        if len(forms) > limit:
            return None
    return list(forms)


def _has_alt(seq: Sequence[_Token]) -> bool:
    return any(isinstance(tok, _Alt) for tok in seq)


class _Nfa:
    """A Thompson automaton for a token sequence, run as a lazily built DFA.

    A DFA state is the set of automaton states reachable after a prefix of
    the key; transitions are computed on first use and cached (up to
    ``_DFA_STATES`` automaton states in all cached sets and
    ``_DFA_TRANSITIONS`` transitions per pattern, then computed without
    caching), so a key costs one dictionary lookup per
    character once the pattern is warm. A transition not yet cached costs at
    most two visits per automaton state. ``run`` returns that work beside the
    answer: at most ``(2 x size + 1) x (len(key) + 1)``, so tests can bound it
    exactly instead of timing it.
    """

    __slots__ = (
        "_accepting",
        "_ids",
        "_lock",
        "_sets",
        "_start_id",
        "_start_set",
        "_stored",
        "_trans",
        "kinds",
        "outs",
        "sep",
        "tests",
    )

    def __init__(self, tokens: Sequence[_Token], sep: str | None) -> None:
        self.sep = sep
        self.kinds: list[int] = []
        self.tests: list[tuple[int, object]] = []
        self.outs: list[list[int]] = []
        accept = self._node(_ACCEPT)
        start = self._sequence(tokens, accept)
        self._lock = threading.Lock()
        # DFA state 0 is the dead state: no automaton state left.
        self._sets: list[frozenset[int]] = [frozenset()]
        self._accepting: list[bool] = [False]
        self._ids: dict[frozenset[int], int] = {frozenset(): 0}
        self._stored = 0
        self._trans: dict[tuple[int, str, bool], int] = {}
        self._start_set = self._close([start], [0])
        self._start_id = self._intern(self._start_set)

    @property
    def size(self) -> int:
        """The number of automaton states."""
        return len(self.kinds)

    def _node(self, kind: int, test: tuple[int, object] = (_T_ANY, None), *outs: int) -> int:
        self.kinds.append(kind)
        self.tests.append(test)
        self.outs.append(list(outs))
        return len(self.kinds) - 1

    def _loop(self, test: tuple[int, object], after: int) -> int:
        """Zero or more characters passing ``test``, then ``after``."""
        split = self._node(_SPLIT)
        char = self._node(_CONSUME, test, split)
        self.outs[split] = [char, after]
        return split

    def _sequence(self, tokens: Sequence[_Token], after: int) -> int:
        for tok in reversed(tokens):
            after = self._token(tok, after)
        return after

    def _token(self, tok: _Token, after: int) -> int:
        guarded = self.sep is not None
        if isinstance(tok, _Lit):
            return self._node(_CONSUME, (_T_LIT, tok.char), after)
        if isinstance(tok, _One):
            return self._node(_CONSUME, (_T_ONE if guarded else _T_ANY, None), after)
        if isinstance(tok, _Class):
            return self._node(_CONSUME, (_T_CLASS, tok), after)
        if isinstance(tok, _Star):
            return self._loop((_T_ONE if guarded else _T_ANY, None), after)
        if isinstance(tok, _GlobStar):
            if not tok.eats_sep or self.sep is None:
                return self._loop((_T_ANY, None), after)
            # (?:.*sep)?: nothing, or any text that ends with a separator.
            sep_end = self._sequence([_Lit(char) for char in self.sep], after)
            return self._node(_SPLIT, (_T_ANY, None), after, self._loop((_T_ANY, None), sep_end))
        return self._node(
            _SPLIT, (_T_ANY, None), *(self._sequence(option, after) for option in tok.options)
        )

    def _close(self, roots: Iterable[int], work: list[int]) -> frozenset[int]:
        """The non-split states reachable from ``roots`` without reading a character."""
        kinds, outs = self.kinds, self.outs
        seen: set[int] = set()
        found: list[int] = []
        stack = list(roots)
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            work[0] += 1
            if kinds[node] == _SPLIT:
                stack.extend(outs[node])
            else:
                found.append(node)
        return frozenset(found)

    def _move(
        self, state: frozenset[int], char: str, at_sep: bool, work: list[int]
    ) -> frozenset[int]:
        """The state set after reading ``char`` (``at_sep``: a separator starts there)."""
        kinds, tests, outs = self.kinds, self.tests, self.outs
        moves: list[int] = []
        for node in state:
            work[0] += 1
            if kinds[node] != _CONSUME:
                continue
            kind, arg = tests[node]
            if kind == _T_LIT:
                ok = char == arg
            elif kind == _T_ONE:
                ok = not at_sep
            elif kind == _T_CLASS:
                # At a separator the character is its first one: never in-segment.
                ok = not at_sep and arg.contains(ord(char))  # type: ignore[attr-defined]
            else:
                ok = True
            if ok:
                moves.append(outs[node][0])
        return self._close(moves, work)

    def _intern(self, state: frozenset[int]) -> int:
        """The DFA id of ``state``, or -1 when the state cache is full."""
        found = self._ids.get(state)
        if found is not None:
            return found
        with self._lock:
            found = self._ids.get(state)
            if found is not None:
                return found
            if self._stored + len(state) > _DFA_STATES:
                return -1
            self._stored += len(state)
            self._sets.append(state)
            self._accepting.append(any(self.kinds[node] == _ACCEPT for node in state))
            ident = len(self._sets) - 1
            self._ids[state] = ident
            return ident

    def run(self, key: str) -> tuple[bool, int]:
        """Whether the automaton accepts all of ``key``, and the work it took."""
        sep = self.sep
        single = sep is not None and len(sep) == 1
        trans = self._trans
        work = [0]
        state = self._start_id
        if state < 0:  # even the start did not fit the cache
            return self._run_sets(key, 0, self._start_set, work)
        for position, char in enumerate(key):
            at_sep = (
                (char == sep) if single else (sep is not None and key.startswith(sep, position))
            )
            work[0] += 1
            nxt = trans.get((state, char, at_sep))
            if nxt is None:
                target = self._move(self._sets[state], char, at_sep, work)
                nxt = self._intern(target)
                if nxt < 0:
                    return self._run_sets(key, position + 1, target, work)
                if len(trans) < _DFA_TRANSITIONS:
                    trans[state, char, at_sep] = nxt
            if nxt == 0:
                return False, work[0]
            state = nxt
        return self._accepting[state], work[0]

    def _run_sets(
        self, key: str, position: int, state: frozenset[int], work: list[int]
    ) -> tuple[bool, int]:
        """Finish ``key`` from ``position`` without the cache (it is full)."""
        sep = self.sep
        for at in range(position, len(key)):
            if not state:
                return False, work[0]
            work[0] += 1
            at_sep = sep is not None and key.startswith(sep, at)
            state = self._move(state, key[at], at_sep, work)
        return any(self.kinds[node] == _ACCEPT for node in state), work[0]


def _plan(pattern: str, tokens: list[_Token], separator: str | None) -> str | _Nfa:
    """How a pattern without a plain-string test is matched: a regex, or an automaton."""
    dialect = _Dialect.for_separator(separator, optimize=True)
    if separator is not None and len(separator) > 1:
        if any(isinstance(tok, _Star | _GlobStar | _Alt) for tok in tokens):
            return _Nfa(tokens, separator)
        return _emit(tokens, dialect)
    if not _has_alt(tokens):
        return _emit(tokens, dialect)
    # Past _MAX_EXPANDED_LENGTH the expansion itself would cost too much.
    forms = None if len(pattern) > _MAX_EXPANDED_LENGTH else _brace_forms(tokens, _MAX_EXPANSIONS)
    if forms is None:
        return _Nfa(tokens, separator)
    return "|".join(f"(?:{_emit(form, dialect)})" for form in forms)


# --------------------------------------------------------------------------
# Compilation.


def _literal_text(tokens: Sequence[_Token]) -> str | None:
    """The text of ``tokens`` if they are all literal characters, else ``None``."""
    chars: list[str] = []
    for tok in tokens:
        if not isinstance(tok, _Lit):
            return None
        chars.append(tok.char)
    return "".join(chars)


def _fast_test(tokens: list[_Token], separator: str | None) -> Callable[[str], bool] | None:
    """A plain-string test for common pattern shapes, or ``None`` to use the regex."""
    if len(tokens) < 2:
        return None
    first, last = tokens[0], tokens[-1]
    head = _literal_text(tokens[:-1])
    tail = _literal_text(tokens[1:])
    middle = _literal_text(tokens[1:-1])
    if separator is None:
        if isinstance(last, _Star) and head is not None:  # prefix*
            return _startswith_test(head)
        if isinstance(first, _Star) and tail is not None:  # *suffix
            return _endswith_test(tail)
        if isinstance(first, _Star) and isinstance(last, _Star) and middle:  # *text*
            return _contains_test(middle)
        return None
    if isinstance(last, _GlobStar) and not last.eats_sep and head is not None:  # app.**
        return _startswith_test(head)
    if isinstance(last, _Star) and head is not None:  # logs.2024-*
        return _one_segment_test(head, separator)
    if isinstance(first, _GlobStar) and first.eats_sep:
        if tail is not None:  # **.error
            return _last_segments_test(tail, separator)
        if isinstance(last, _GlobStar) and not last.eats_sep and middle:  # **.db.**
            return _inner_segments_test(middle, separator)
    return None


def _startswith_test(prefix: str) -> Callable[[str], bool]:
    def test(key: str) -> bool:
        return key.startswith(prefix)

    test.startswith_prefix = prefix  # type: ignore[attr-defined]
    return test


def _endswith_test(suffix: str) -> Callable[[str], bool]:
    return lambda key: key.endswith(suffix)


def _contains_test(text: str) -> Callable[[str], bool]:
    return lambda key: text in key


def _one_segment_test(prefix: str, sep: str) -> Callable[[str], bool]:
    # "prefix*": the star may not reach a separator.
    size = len(prefix)
    return lambda key: key.startswith(prefix) and key.find(sep, size) < 0


def _last_segments_test(tail: str, sep: str) -> Callable[[str], bool]:
    # "**.tail": the whole key, or a suffix that follows a separator.
    dotted = sep + tail
    return lambda key: key == tail or key.endswith(dotted)


def _inner_segments_test(text: str, sep: str) -> Callable[[str], bool]:
    # "**.text.**", where text ends with the separator.
    dotted = sep + text
    return lambda key: key.startswith(text) or dotted in key


def _match_all_tokens(tokens: list[_Token], separator: str | None) -> bool:
    if not tokens:
        return False
    if separator is None:
        return all(isinstance(tok, _Star) for tok in tokens)
    # "**", "**.**", ...: globstars only, the last one open-ended.
    return all(isinstance(tok, _GlobStar) for tok in tokens) and tokens[-1] == _GlobStar(False)


def _leading_literal(tokens: Sequence[_Token]) -> str:
    chars: list[str] = []
    for tok in tokens:
        if not isinstance(tok, _Lit):
            break
        chars.append(tok.char)
    return "".join(chars)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _compile_cached(pattern: str, separator: str | None) -> Matcher:
    tokens = _tokens(pattern, separator)
    prefix = _leading_literal(tokens)
    literal = len(prefix) == len(tokens)
    match_all = _match_all_tokens(tokens, separator)
    test: Callable[[str], bool]
    prefix_only = False
    if literal:
        test = _equals_test(prefix)
    elif match_all:
        test = _always
    else:
        fast = _fast_test(tokens, separator)
        if fast is not None:
            test = fast
            prefix_only = getattr(fast, "startswith_prefix", None) == prefix
        else:
            plan = _plan(pattern, tokens, separator)
            if isinstance(plan, _Nfa):
                run = plan.run
                test = lambda key: run(key)[0]  # noqa: E731
            else:
                fullmatch = re.compile(plan, re.DOTALL).fullmatch
                test = lambda key: fullmatch(key) is not None  # noqa: E731
    return Matcher(pattern, separator, prefix, literal, match_all, test, prefix_only)


def _always(key: str) -> bool:
    return True


def _equals_test(text: str) -> Callable[[str], bool]:
    return lambda key: key == text
