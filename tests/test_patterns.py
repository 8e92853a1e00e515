"""Unit tests for keyshelf.patterns: both dialects, prefixes and range bounds.

The default dialect is checked against every case a real Redis server answered
(``keyshelf/testing/data/redis-glob-vectors.json``, shipped with the
conformance kit) and, on random patterns, against ``redis_stringmatch``
below: an independent step-by-step transliteration of Redis's
``stringmatchlen`` loop. The hierarchical dialect is checked against
the examples of docs/semantics.md and of dataknobs-kv's documents, and, on
random patterns, against a segment-by-segment reference matcher and brace
expansion.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from keyshelf import patterns
from keyshelf.errors import InvalidPatternError
from keyshelf.patterns import (
    _MAX_EXPANDED_LENGTH,
    _MAX_EXPANSIONS,
    Matcher,
    _Alt,
    _brace_forms,
    _chunk_end,
    _Class,
    _Dialect,
    _GlobStar,
    _Lit,
    _Nfa,
    _One,
    _plan,
    _Star,
    _tokens,
    _translate,
    compile_pattern,
    prefix_upper_bound,
)

DATA = Path(__file__).parents[1] / "src/keyshelf/testing/data/redis-glob-vectors.json"
SHARED = Path(__file__).parents[2] / "shared/testdata/redis-glob-vectors.json"

VECTORS: dict[str, Any] = json.loads(DATA.read_text(encoding="utf-8"))
CASES = [
    (index, case["pattern"], tuple(vector_set["keys"]), case["matches"])
    for vector_set in VECTORS["sets"]
    for index, case in enumerate(vector_set["cases"])
]


def matches(pattern: str, key: str, separator: str | None = None) -> bool:
    return compile_pattern(pattern, separator).match(key)


# --------------------------------------------------------------------------
# Reference matchers (test oracles).


def redis_stringmatch(pattern: str, string: str) -> bool:
    """Redis 7 ``stringmatchlen`` (case-sensitive), transliterated over code points.

    Written to follow the C loop step by step, including its reading of the
    pattern's end, and without its early-exit optimisation (which never
    changes a result). Slow (exponential in the worst case): for short inputs.
    """
    p, s = pattern, string
    plen, slen = len(p), len(s)

    def run(pi: int, si: int) -> bool:
        while pi < plen and si < slen:
            char = p[pi]
            if char == "*":
                while pi + 1 < plen and p[pi + 1] == "*":
                    pi += 1
                if pi == plen - 1:
                    return True
                return any(run(pi + 1, start) for start in range(si, slen))
            if char == "?":
                si += 1
            elif char == "[":
                pi += 1
                negated = pi < plen and p[pi] == "^"
                if negated:
                    pi += 1
                hit = False
                while True:
                    if p[pi : pi + 1] == "\\" and plen - pi >= 2:
                        pi += 1
                        hit = hit or p[pi] == s[si]
                    elif p[pi : pi + 1] == "]":
                        break
                    elif pi >= plen:
                        pi -= 1  # unclosed: the class ran to the end
                        break
                    elif plen - pi >= 3 and p[pi + 1] == "-":
                        low, high = sorted((p[pi], p[pi + 2]))
                        hit = hit or low <= s[si] <= high
                        pi += 2
                    else:
                        hit = hit or p[pi] == s[si]
                    pi += 1
                if hit == negated:
                    return False
                si += 1
            else:
                if char == "\\" and plen - pi >= 2:
                    pi += 1
                if p[pi] != s[si]:
                    return False
                si += 1
            pi += 1
            if si == slen:
                while pi < plen and p[pi] == "*":
                    pi += 1
                break
        return pi == plen and si == slen

    return run(0, 0)


def _segment_glob(pattern: str, text: str) -> bool:
    """``*`` and ``?`` inside one segment (no separators on either side)."""
    if not pattern:
        return not text
    if pattern[0] == "*":
        return any(_segment_glob(pattern[1:], text[i:]) for i in range(len(text) + 1))
    if not text:
        return False
    return (pattern[0] == "?" or pattern[0] == text[0]) and _segment_glob(pattern[1:], text[1:])


def segment_match(pattern: str, key: str, sep: str = ".") -> bool:
    """Reference for brace-free hierarchical patterns over letters, sep, ``*``, ``?``.

    Splits both sides into segments; a segment of two or more stars spans zero
    or more segments, except at the end (after other segments), where it
    needs at least one: ``app.**`` is everything under ``app``, not ``app``.
    """
    psegs, ksegs = pattern.split(sep), key.split(sep)

    def go(i: int, j: int) -> bool:
        if i == len(psegs):
            return j == len(ksegs)
        seg = psegs[i]
        if len(seg) >= 2 and set(seg) == {"*"}:
            if i == len(psegs) - 1:
                return j < len(ksegs)
            return any(go(i + 1, jj) for jj in range(j, len(ksegs) + 1))
        return j < len(ksegs) and _segment_glob(seg, ksegs[j]) and go(i + 1, j + 1)

    return go(0, 0)


def test_redis_oracle_agrees_with_the_vectors() -> None:
    for _index, pattern, keys, expected in CASES:
        assert sorted(k for k in keys if redis_stringmatch(pattern, k)) == expected, pattern


# --------------------------------------------------------------------------
# Default dialect: real Redis answers.


def test_vector_copy_matches_shared_testdata() -> None:
    if not SHARED.exists():
        pytest.skip("shared/testdata not present")
    assert json.loads(SHARED.read_text(encoding="utf-8")) == VECTORS


def test_vectors_cover_356_patterns() -> None:
    assert len(CASES) == 356
    assert VECTORS["source"].startswith("KEYS on redis-server 7")


@pytest.mark.parametrize(
    ("pattern", "keys", "expected"),
    [pytest.param(p, k, m, id=f"{i:03d}:{p!r}") for i, p, k, m in CASES],
)
def test_redis_vector(pattern: str, keys: tuple[str, ...], expected: list[str]) -> None:
    matcher = compile_pattern(pattern)
    assert sorted(key for key in keys if matcher.match(key)) == expected
    for key in expected:
        assert key.startswith(matcher.prefix)


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("*", "a.b:c", True),
        ("**", "anything at all", True),
        ("a*", "a.b.c", True),  # * crosses separators in the default dialect
        ("*.b", "a.x.b", True),
        ("h?llo", "hello", True),
        ("h?llo", "hllo", False),
        ("h[ae]llo", "hallo", True),
        ("h[^e]llo", "hello", False),
        ("h[a-b]llo", "hbllo", True),
        ("h[b-a]llo", "hbllo", True),  # reversed range
        ("h\\*llo", "h*llo", True),
        ("h\\*llo", "hello", False),
        ("[\\]]", "]", True),  # escape inside a class
        ("[ab", "b", True),  # unclosed class runs to the end
        ("a[", "a", False),
        ("[^", "x", True),
        ("[]", "]", False),  # "]" right after "[" closes an empty class
        ("[^]", "x", True),
        ("[a-]b", "^", True),  # the range a..] eats the "]"
        ("[!a]x", "!x", True),  # "!" is not negation
        ("abc\\", "abc\\", True),  # trailing backslash is literal
        ("User:*", "user:1", False),  # case-sensitive
        ("", "", True),
        ("", "a", False),
    ],
)
def test_default_dialect(pattern: str, key: str, expected: bool) -> None:
    assert matches(pattern, key) is expected


REDIS_ALPHABET = "ab*?[]^-\\!é"
KEY_ALPHABET = "ab]^-\\!é[*?"


@settings(max_examples=1500, deadline=None)
@given(
    pattern=st.text(alphabet=REDIS_ALPHABET, max_size=10),
    key=st.text(alphabet=KEY_ALPHABET, min_size=1, max_size=8),
)
def test_default_dialect_equals_redis_algorithm(pattern: str, key: str) -> None:
    assert matches(pattern, key) is redis_stringmatch(pattern, key)


@settings(max_examples=500, deadline=None)
@given(
    pattern=st.text(alphabet="ab*?[]\\", max_size=12),
    key=st.text(alphabet="ab", min_size=1, max_size=12),
)
def test_default_dialect_optimised_regex_is_equivalent(pattern: str, key: str) -> None:
    optimised = re.fullmatch(_translate(pattern), key, re.DOTALL) is not None
    plain = re.fullmatch(_translate(pattern, optimize=False), key, re.DOTALL) is not None
    assert optimised is plain is matches(pattern, key)


# --------------------------------------------------------------------------
# Multi-byte characters: ``?`` is one code point.


@pytest.mark.parametrize("separator", [None, "."])
@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("h?llo", "héllo", True),
        ("h?llo", "h🚀llo", True),
        ("h??llo", "h🚀llo", False),
        ("??", "é🚀", True),
        ("?", "🚀", True),
        ("[é]", "é", True),
        ("[^é]", "é", False),
        ("[a-ë]", "é", True),
        ("日本*", "日本語", True),
        ("*🚀", "go🚀", True),
    ],
)
def test_multibyte(pattern: str, key: str, expected: bool, separator: str | None) -> None:
    assert matches(pattern, key, separator) is expected


# --------------------------------------------------------------------------
# Hierarchical dialect: docs/semantics.md and the examples of dataknobs-kv's documents.

HIERARCHICAL = [
    # dataknobs-kv README, "Pattern Matching"
    ("users.*.name", "users.123.name", True),
    ("users.*.name", "users.123.settings.name", False),
    ("users.*.name", "users.name", False),
    ("*.config.*", "app.config.debug", True),
    ("*.config.*", "app.config.database.host", False),
    ("*.config.*", "x.app.config.debug", False),
    ("logs.2024-*", "logs.2024-01-31", True),
    ("logs.2024-*", "logs.2024-01.errors", False),
    ("logs.2024-*", "logs.2023-12", False),
    ("app.**", "app.x", True),
    ("app.**", "app.x.y", True),
    ("app.**", "app", False),
    ("app.**", "application.x", False),
    ("**.error", "error", True),
    ("**.error", "a.error", True),
    ("**.error", "a.b.error", True),
    ("**.error", "a.errors", False),
    ("**.error", "aerror", False),
    ("**.error", "error.a", False),
    ("user.?.name", "user.1.name", True),
    ("user.?.name", "user.a.name", True),
    ("user.?.name", "user.12.name", False),
    ("user.?.name", "user...name", False),
    ("log.[0-9].txt", "log.0.txt", True),
    ("log.[0-9].txt", "log.9.txt", True),
    ("log.[0-9].txt", "log.a.txt", False),
    ("log.[0-9].txt", "log.10.txt", False),
    ("env.{dev,prod}.config", "env.dev.config", True),
    ("env.{dev,prod}.config", "env.prod.config", True),
    ("env.{dev,prod}.config", "env.test.config", False),
    ("env.{dev,prod}.config", "env.devprod.config", False),
    ("app.*", "app.config", True),
    ("app.*", "app.config.debug", False),
    ("app.config.*", "app.config.debug", True),
    ("users.123.*", "users.123.name", True),
    ("users.123.*", "users.123.settings.theme", False),
    ("users.123.settings.*", "users.123.settings.theme", True),
    ("users.123.**", "users.123.settings.theme", True),
    ("users.123.**", "users.1234.name", False),
    ("app.temp.*", "app.temp.x", True),
    # dataknobs-kv design plan, "Pattern Matching"
    ("**.database.**", "database.host", True),
    ("**.database.**", "app.config.database.host", True),
    ("**.database.**", "a.database.b.c", True),
    ("**.database.**", "app.database", False),
    ("**.database.**", "database", False),
    ("**.database.**", "mydatabase.host", False),
    ("user.?.settings", "user.1.settings", True),
    ("app.{dev,prod}.config", "app.dev.config", True),
    ("app.{dev,prod}.config", "app.prod.config", True),
    ("app.{dev,prod}.config", "app.stage.config", False),
    ("app.config.database.*", "app.config.database.host", True),
    ("app.config.database.**", "app.config.database.pool.size", True),
    ("app.config.**", "app.config", False),
    # docs/semantics.md, patterns
    ("a.**.b", "a.b", True),
    ("a.**.b", "a.x.b", True),
    ("a.**.b", "a.x.y.b", True),
    ("a.**.b", "a.xb", False),
    ("a.**.b", "ab", False),
    ("**", "a", True),
    ("**", "a.b.c", True),
    ("***", "a.b.c", True),
    ("*", "a", True),
    ("*", "a.b", False),
    ("**.**", "a.b", True),
    ("a**b", "axyzb", True),  # ** inside a segment acts like *
    ("a**b", "ax.yb", False),
    ("a.b**", "a.bc", True),
    ("a.b**", "a.b.c", False),
    ("**b", "ab", True),
    ("**b", "a.b", False),
    # alternatives: nesting, wildcards, empty ones
    ("{a,{b,c}d}", "a", True),
    ("{a,{b,c}d}", "bd", True),
    ("{a,{b,c}d}", "cd", True),
    ("{a,{b,c}d}", "b", False),
    ("{a,{b,c}d}", "ad", False),
    ("env.{dev,prod*}.x", "env.production.x", True),
    ("env.{dev,prod*}.x", "env.prod.y.x", False),
    ("{a.b,c}.d", "a.b.d", True),
    ("{a.b,c}.d", "c.d", True),
    ("{a,}b", "b", True),
    ("{a,}b", "ab", True),
    ("a{}b", "ab", True),
    ("a{b}c", "abc", True),
    ("{**.x,y}", "p.q.x", True),
    ("{**.x,y}", "x", True),
    ("{**.x,y}", "y", True),
    ("{a,**}.b", "a.b", True),
    ("{a,**}.b", "b", True),
    ("{a,**}.b", "p.q.b", True),
    ("{a,**}.b", "ab", False),
    ("x.{**,a}.y", "x.y", True),
    ("x.{**,a}.y", "x.a.y", True),
    ("x.{**,a}.y", "x.p.q.y", True),
    ("x.{**,a}.y", "xy", False),
    ("{{a,**},c}.b", "b", True),
    ("{{a,**},c}.b", "z.z.b", True),
    ("{dev,prod}.**", "dev.x.y", True),
    ("{dev,prod}.**", "dev", False),
    ("{a,**}.**", "b", True),
    ("{a,**}.**", "a.b.c", True),
    ("{a.,b.}**", "a.x.y", True),
    ("{a.,b.}**", "a", False),
    ("{a,b}**", "ax", True),  # no boundary on the left: acts like *
    ("{a,b}**", "ax.y", False),
    ("a.{**}", "a.b.c", True),
    ("a.{**}", "a", False),
    ("{**}", "a.b", True),
    ("x{**}", "xab", True),  # not a whole segment: acts like *
    ("x{**}", "xa.b", False),
    # escapes
    ("a\\.b", "a.b", True),
    ("a\\*", "a*", True),
    ("a\\*", "ab", False),
    ("\\{a,b\\}", "{a,b}", True),
    ("\\{a,b\\}", "a", False),
    ("{a\\,b,c}", "a,b", True),
    ("{a\\,b,c}", "c", True),
    ("{a\\,b,c}", "b", False),
    ("a\\", "a\\", True),
    ("\\**", "*x", True),
    # odd input is literal
    ("{a,b", "{a,b", True),
    ("{a,b", "a", False),
    ("a}b", "a}b", True),
    ("a,b", "a,b", True),
    ("{a,{b}", "{a,b", True),
    ("[abc", "[abc", True),
    ("[abc", "a", False),
    ("x[}]y", "x}y", True),
    ("{[},a]}", "}", True),
    ("{[},a]}", "a", True),
    # classes never match the separator
    ("a[.]b", "a.b", False),
    ("a[^x]b", "a.b", False),
    ("a[^x]b", "a-b", True),
    ("a[!-/]b", "a-b", True),
    ("a[!-/]b", "a.b", False),
    ("a?b", "a.b", False),
]


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [pytest.param(p, k, e, id=f"{p} {'~' if e else '!~'} {k}") for p, k, e in HIERARCHICAL],
)
def test_hierarchical(pattern: str, key: str, expected: bool) -> None:
    matcher = compile_pattern(pattern, ".")
    assert matcher.match(key) is expected
    if expected:
        assert key.startswith(matcher.prefix)


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("a::*", "a::b", True),
        ("a::*", "a::b::c", False),
        ("a::**", "a::b::c", True),
        ("a::**", "a", False),
        ("**::c", "c", True),
        ("**::c", "a::b::c", True),
        ("a::?", "a::b", True),
        ("a.*", "a.b.c", True),  # "." is an ordinary character here
        ("{x,y}::*", "y::z", True),
        ("*::[a-z]", "q::m", True),
        ("*a*a*b", "xaab", True),
        ("*a*a*b", "xa::ab", False),
    ],
)
def test_multi_character_separator(pattern: str, key: str, expected: bool) -> None:
    assert matches(pattern, key, "::") is expected


def test_other_separators() -> None:
    assert matches("logs/**", "logs/2024/01", "/")
    assert not matches("logs/*", "logs/2024/01", "/")
    assert matches("**/error", "a/b/error", "/")
    assert matches("a:*:c", "a:b:c", ":")
    assert not matches("a:*", "a:b:c", ":")


SEGMENT_PATTERN = st.text(alphabet="ab.*?", max_size=10)
SEGMENT_KEY = st.text(alphabet="ab.", min_size=1, max_size=8)


@settings(max_examples=1500, deadline=None)
@given(pattern=SEGMENT_PATTERN, key=SEGMENT_KEY)
def test_hierarchical_equals_segment_reference(pattern: str, key: str) -> None:
    assert matches(pattern, key, ".") is segment_match(pattern, key)


Tree = list[Any]  # items: a character, or a list of alternatives (each a Tree)


def _trees(depth: int = 2) -> st.SearchStrategy[Tree]:
    char = st.sampled_from("ab.*?")
    if depth == 0:
        return st.lists(char, max_size=4)
    group = st.lists(_trees(depth - 1), min_size=1, max_size=3)
    return st.lists(st.one_of(char, char, group), max_size=4)


def _render(tree: Tree) -> str:
    return "".join(
        item if isinstance(item, str) else "{" + ",".join(_render(alt) for alt in item) + "}"
        for item in tree
    )


def _expand(tree: Tree) -> list[str]:
    choices = [[item] if isinstance(item, str) else _expand_group(item) for item in tree]
    return ["".join(parts) for parts in itertools.product(*choices)]


def _expand_group(alternatives: list[Tree]) -> list[str]:
    return [text for alt in alternatives for text in _expand(alt)]


@settings(max_examples=800, deadline=None)
@given(tree=_trees(), key=SEGMENT_KEY)
def test_braces_equal_expansion(tree: Tree, key: str) -> None:
    expansions = _expand(tree)
    # Without "**", a brace group is exactly the union of its expansions.
    assume(not any("**" in text for text in expansions))
    expected = any(segment_match(text, key) for text in expansions)
    assert matches(_render(tree), key, ".") is expected


@settings(max_examples=800, deadline=None)
@given(
    pattern=st.text(alphabet="ab.*?{},[]\\", max_size=12),
    key=st.text(alphabet="ab.", min_size=1, max_size=10),
)
def test_hierarchical_optimised_regex_is_equivalent(pattern: str, key: str) -> None:
    optimised = re.fullmatch(_translate(pattern, "."), key, re.DOTALL) is not None
    plain = re.fullmatch(_translate(pattern, ".", optimize=False), key, re.DOTALL) is not None
    assert optimised is plain is matches(pattern, key, ".")


# --------------------------------------------------------------------------
# prefix, literal, match_all.


@pytest.mark.parametrize(
    ("pattern", "separator", "prefix", "literal", "match_all"),
    [
        ("*", None, "", False, True),
        ("**", None, "", False, True),
        ("***", None, "", False, True),
        ("a*", None, "a", False, False),
        ("user:*", None, "user:", False, False),
        ("h[ae]llo", None, "h", False, False),
        ("abc", None, "abc", True, False),
        ("a\\*b", None, "a*b", True, False),
        ("abc\\", None, "abc\\", True, False),
        ("\\[x", None, "[x", True, False),
        ("[a]", None, "", False, False),
        ("{a,b}", None, "{a,b}", True, False),  # no braces in the default dialect
        ("", None, "", True, False),
        ("**", ".", "", False, True),
        ("***", ".", "", False, True),
        ("**.**", ".", "", False, True),
        ("*", ".", "", False, False),
        ("a.**", ".", "a.", False, False),
        ("a.**.b", ".", "a.", False, False),
        ("env.{dev,prod}", ".", "env.", False, False),
        ("a{b}", ".", "a", False, False),
        ("{a", ".", "{a", True, False),
        ("a\\{b\\}", ".", "a{b}", True, False),
        ("[ab", ".", "[ab", True, False),
        ("users.123.name", ".", "users.123.name", True, False),
    ],
)
def test_matcher_attributes(
    pattern: str, separator: str | None, prefix: str, literal: bool, match_all: bool
) -> None:
    matcher = compile_pattern(pattern, separator)
    assert (matcher.pattern, matcher.separator) == (pattern, separator)
    assert (matcher.prefix, matcher.literal, matcher.match_all) == (prefix, literal, match_all)
    if literal:
        assert matcher.match(prefix)


ANY_PATTERN = st.text(alphabet="ab.:*?[]^-\\{},!é", max_size=12)
ANY_SEPARATOR = st.sampled_from([None, ".", ":", "::"])


@st.composite
def pattern_and_keys(draw: st.DrawFn) -> tuple[str, str | None, list[str]]:
    pattern = draw(ANY_PATTERN)
    separator = draw(ANY_SEPARATOR)
    chars = st.text(alphabet="ab.:[]{}\\é*?,", max_size=8)
    prefix = compile_pattern(pattern, separator).prefix
    keys = draw(st.lists(chars, max_size=5)) + [prefix + tail for tail in draw(st.lists(chars))]
    return pattern, separator, [key for key in keys if key]


@settings(max_examples=1500, deadline=None)
@given(pattern_and_keys())
def test_prefix_is_conservative(case: tuple[str, str | None, list[str]]) -> None:
    pattern, separator, keys = case
    matcher = compile_pattern(pattern, separator)
    for key in keys:
        if matcher.match(key):
            assert key.startswith(matcher.prefix)
        if matcher.literal:
            assert matcher.match(key) is (key == matcher.prefix)
        if matcher.match_all:
            assert matcher.match(key)
    if matcher.literal:
        assert matcher.match(matcher.prefix)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=20), ANY_SEPARATOR)
def test_any_text_compiles(pattern: str, separator: str | None) -> None:
    matcher = compile_pattern(pattern, separator)
    assert isinstance(matcher.match("some.key"), bool)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="a\\*?[]{},.", min_size=1, max_size=8))
def test_escaped_text_is_literal(text: str) -> None:
    escaped = "".join("\\" + char for char in text)
    for separator in (None, "."):
        matcher = compile_pattern(escaped, separator)
        assert matcher.literal
        assert matcher.prefix == text
        assert matcher.match(text)


# --------------------------------------------------------------------------
# prefix_upper_bound.


@pytest.mark.parametrize(
    ("prefix", "upper"),
    [
        ("", None),
        ("abc", "abd"),
        ("user:", "user;"),
        ("a\U0010ffff", "b"),
        ("a\U0010ffff\U0010ffff", "b"),
        ("\U0010ffff", None),
        ("\ud7ff", "\ue000"),  # skips the surrogate block
        ("é", "ê"),
    ],
)
def test_prefix_upper_bound_examples(prefix: str, upper: str | None) -> None:
    assert prefix_upper_bound(prefix) == upper


PREFIX_TEXT = st.text(
    alphabet=st.one_of(st.characters(), st.sampled_from(["\U0010ffff", "\ud7ff", "a", "b"])),
    max_size=6,
)


@settings(max_examples=1000, deadline=None)
@given(PREFIX_TEXT, st.text(max_size=6), st.lists(st.text(max_size=6), max_size=5))
def test_prefix_upper_bound_brackets_exactly_the_prefixed_strings(
    prefix: str, suffix: str, others: list[str]
) -> None:
    upper = prefix_upper_bound(prefix)
    candidates = [prefix + suffix, *others, prefix[:-1], prefix[:-1] + suffix]
    if upper is not None:
        candidates += [upper, upper + suffix, upper[:-1]]
    for s in candidates:
        inside = prefix <= s and (upper is None or s < upper)
        assert inside is s.startswith(prefix), (prefix, s, upper)


# --------------------------------------------------------------------------
# Errors, caching, speed.


@pytest.mark.parametrize(
    ("pattern", "name"), [(5, "int"), (None, "NoneType"), (b"a*", "bytes"), (["a"], "list")]
)
def test_non_str_pattern_is_refused(pattern: object, name: str) -> None:
    with pytest.raises(InvalidPatternError, match=f"^Pattern must be a string, not {name}$"):
        compile_pattern(pattern)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        compile_pattern(pattern, ".")  # type: ignore[arg-type]


@pytest.mark.parametrize("separator", ["", 1, b"."])
def test_bad_separator_is_refused(separator: object) -> None:
    with pytest.raises(InvalidPatternError, match="separator"):
        compile_pattern("a.*", separator)  # type: ignore[arg-type]


def test_nul_is_an_ordinary_character() -> None:
    assert matches("a\0*", "a\0b")
    assert compile_pattern("a\0").literal


def test_compile_is_cached_and_matchers_are_values() -> None:
    assert compile_pattern("user:*") is compile_pattern("user:*")
    assert compile_pattern("a.*", ".") is not compile_pattern("a.*")
    matcher = compile_pattern("a.*", ".")
    assert isinstance(matcher, Matcher)
    assert hash(matcher) == hash(compile_pattern("a.*", "."))
    with pytest.raises(AttributeError):
        matcher.prefix = "x"  # type: ignore[misc]


def test_deep_brace_nesting_does_not_raise() -> None:
    # The 32 outer groups are groups; deeper braces are literal text.
    deep = "{" * 200 + "a" + "}" * 200
    assert matches(deep, "{" * 168 + "a" + "}" * 168, ".")
    assert not matches(deep, "a", ".")
    assert matches("{" * 32 + "a" + "}" * 32, "a", ".")


# --------------------------------------------------------------------------
# Bounded work on hostile patterns.
#
# Patterns whose regular expression could backtrack without bound (brace
# groups with many brace-free forms, separators longer than one character)
# run on the automaton, whose work is counted exactly: at most one visit per
# (state, key position). Everything else is a regular expression built from
# brace-free forms, whose stars are matched in atomic chunks. The timeout
# marks are only a safety net: a regression shows up as a failed bound or a
# wrong route long before it shows up as time.


def automaton(pattern: str, separator: str | None) -> _Nfa:
    return _Nfa(_tokens(pattern, separator), separator)


def assert_bounded(pattern: str, separator: str | None, key: str) -> bool:
    """Match ``key``, asserting the route's bound; return the answer."""
    tokens = _tokens(pattern, separator)
    reference = _Nfa(tokens, separator)
    answer, steps = reference.run(key)
    # The automaton's own bound holds on every pattern, from a cold cache.
    assert steps <= (2 * reference.size + 1) * (len(key) + 1)
    plan = _plan(pattern, tokens, separator)
    if isinstance(plan, _Nfa):
        # A warm cache only ever does less: one lookup per character.
        assert plan.run(key) == (answer, steps)
        warm_answer, warm_steps = plan.run(key)
        assert warm_answer is answer and warm_steps <= steps
    else:
        # The regular expression only ever sees brace-free forms, few of
        # them, and never a long separator together with a wildcard.
        forms = _brace_forms(tokens, _MAX_EXPANSIONS)
        assert forms is not None and len(forms) <= _MAX_EXPANSIONS
        assert len(pattern) <= _MAX_EXPANDED_LENGTH or not any(isinstance(t, _Alt) for t in tokens)
        assert not any(isinstance(tok, _Alt) for form in forms for tok in form)
        if separator is not None and len(separator) > 1:
            assert all(isinstance(tok, _Lit | _One | _Class) for tok in tokens)
        for form in forms:
            free = backtracking_wildcards(form, separator)
            # At most one star and one globstar may backtrack freely: the
            # work is then O(len(pattern) x len(key)^2) at worst.
            assert sum(isinstance(form[i], _Star) for i in free) <= 1, (pattern, form)
            assert sum(isinstance(form[i], _GlobStar) for i in free) <= 1, (pattern, form)
    assert compile_pattern(pattern, separator).match(key) is answer
    return answer


def backtracking_wildcards(form: tuple[Any, ...], separator: str | None) -> list[int]:
    """Positions of the wildcards of a brace-free form that the regex may retry.

    Mirrors the translation: a wildcard that opens an atomic chunk commits to
    its leftmost match, and an in-segment star whose run ends at a separator
    literal (``*a.``) can end at one place only. Every other wildcard is a
    backtracking point; polynomial work needs a fixed number of them.
    """
    dialect = _Dialect.for_separator(separator, optimize=True)
    free: list[int] = []
    i = 0
    while i < len(form):
        tok = form[i]
        if isinstance(tok, _Star | _GlobStar):
            end = _chunk_end(form, i, dialect)
            if end is not None:
                i = end
                continue
            if not (
                isinstance(tok, _Star) and separator and _ends_at_separator(form, i, separator)
            ):
                free.append(i)
        i += 1
    return free


def _ends_at_separator(form: tuple[Any, ...], i: int, separator: str) -> bool:
    for tok in form[i + 1 :]:
        if isinstance(tok, _Lit) and tok.char == separator[0]:
            return True
        if not isinstance(tok, _Lit | _One | _Class):
            return False
    return False


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("pattern", "separator", "key"),
    [
        ("*a" * 40 + "*b", None, "a" * 255),
        ("*a*?" * 30 + "b", None, "a" * 255),
        ("*a" * 40 + "*b", ".", "a" * 255),
        ("*a" * 40 + "*b", "::", "a" * 255),
        (".".join(["**", "a"] * 10) + ".b", ".", ".".join(["a"] * 127)),
        ("::".join(["**", "a"] * 10) + "::b", "::", "::".join(["a"] * 85)),
        (".".join(["**", "a*"] * 10) + ".b.**", ".", ".".join(["aa"] * 85)),
        # Brace groups: 2^30 ways to match nothing before the "b" (was 22 s).
        ("{,}" * 30 + "b", ".", "a"),
        ("{,}" * 200 + "b", ".", "a" * 255),
        ("{,,}" * 100 + "*b", "::", "a" * 255),
        # Alternatives that overlap, between stars (was more than 30 s).
        ("*{a,aa}" * 4 + "*b", ".", "a" * 247),
        ("*{a,aa}" * 40 + "*b", ".", "a" * 255),
        ("*{a,aa,aaa}" * 40 + "*b", "::", "a" * 255),
        ("{a,b}" * 40 + "*{a,aa}" * 10 + "*b", ".", "a" * 255),
        ("{*,**}" * 50 + "b", ".", "a" * 255),
        ("{**.,*.}" * 40 + "b", ".", ".".join(["a"] * 127)),
        ("{" * 32 + "a*,a" + "}*" * 32 + "b", ".", "a" * 255),
        ("{a,aa}" * 300 + "*b", ".", "a" * 255),
    ],
)
def test_pathological_patterns_do_bounded_work(
    pattern: str, separator: str | None, key: str
) -> None:
    assert not assert_bounded(pattern, separator, key)


HOSTILE_PIECES = [
    "*",
    "**",
    "?",
    "a",
    "aa",
    ".",
    "::",
    "[ab]",
    "{,}",
    "{a,aa}",
    "{*,a*}",
    "{a,b}",
    "{**.,a.}",
    "{,{,a}}",
    "{*a,a*,*}",
    "{.**.,.}",
]


@pytest.mark.timeout(120)
@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(HOSTILE_PIECES), min_size=1, max_size=60),
    tail=st.sampled_from(["b", "*b", ".b", "b.**", ""]),
    separator=st.sampled_from([None, ".", "::"]),
    key=st.one_of(
        st.integers(1, 255).map(lambda n: "a" * n),
        st.integers(1, 127).map(lambda n: ".".join(["a"] * n)),
        st.integers(1, 85).map(lambda n: "::".join(["a"] * n)),
        st.text(alphabet="ab.:", min_size=1, max_size=40),
    ),
)
def test_hostile_pattern_families_do_bounded_work(
    pieces: list[str], tail: str, separator: str | None, key: str
) -> None:
    assert_bounded("".join(pieces) + tail, separator, key)


@settings(max_examples=1000, deadline=None)
@given(
    pattern=st.text(alphabet="ab.:*?{},[]\\", max_size=12),
    key=st.text(alphabet="ab.:", min_size=1, max_size=10),
    separator=st.sampled_from([None, ".", "::"]),
)
def test_automaton_equals_regex(pattern: str, key: str, separator: str | None) -> None:
    answer, _steps = automaton(pattern, separator).run(key)
    plain = re.fullmatch(_translate(pattern, separator, optimize=False), key, re.DOTALL)
    assert answer is (plain is not None) is matches(pattern, key, separator)
    assert assert_bounded(pattern, separator, key) is answer


@settings(max_examples=300, deadline=None)
@given(
    pattern=st.text(alphabet="ab.:*?{},[]", max_size=12),
    keys=st.lists(st.text(alphabet="ab.:", min_size=1, max_size=10), min_size=1, max_size=4),
    separator=st.sampled_from([None, ".", "::"]),
)
def test_automaton_with_a_full_cache_gives_the_same_answers(
    pattern: str, keys: list[str], separator: str | None
) -> None:
    # Past its cache bounds the automaton steps through state sets uncached.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(patterns, "_DFA_STATES", 3)
        patch.setattr(patterns, "_DFA_TRANSITIONS", 2)
        nfa = automaton(pattern, separator)
        regex = re.compile(_translate(pattern, separator, optimize=False), re.DOTALL)
        for key in keys * 2:
            answer, steps = nfa.run(key)
            assert answer is (regex.fullmatch(key) is not None)
            assert steps <= (2 * nfa.size + 1) * (len(key) + 1)


def test_many_brace_forms_use_the_automaton() -> None:
    few = "x.{a,b}.{c,d}.*"
    assert isinstance(_plan(few, _tokens(few, "."), "."), str)
    assert matches(few, "x.b.c.z", ".")
    many = "{a,b}" * 6
    plan = _plan(many, _tokens(many, "."), ".")
    assert isinstance(plan, _Nfa)
    plan.run("abbaab")
    assert plan.run("abbaab") == (True, 6)  # warm: one lookup per character
    assert matches(many, "abbaab", ".")
    assert not matches(many, "abbaa", ".")
    # A long pattern with groups is not expanded (that would cost its length
    # times the forms at every step): it runs on the automaton.
    long = "{a,b}{c,d}{e,f}{g,h}{i,j}" + "x" * 20_000 + "{,}" * 1000
    assert isinstance(_plan(long, _tokens(long, "."), "."), _Nfa)
    assert matches(long, "acegi" + "x" * 20_000, ".")
    # So many alternatives that not even the start fits the automaton's cache.
    wide = "{" + ",".join(f"a{i}" for i in range(9000)) + "}.*"
    assert isinstance(_plan(wide, _tokens(wide, "."), "."), _Nfa)
    assert matches(wide, "a8999.x", ".") and not matches(wide, "a9000.x", ".")
