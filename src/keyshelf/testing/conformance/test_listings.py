"""Listings: complete without a pattern, whatever the dialect, and linear when streamed.

Every backend, both APIs. A listing without a pattern (``keys()``,
``key_count()``, ``iter_keys()``, ``iter_items()``, ``values()``, ``dump()``,
``iter(kv)``, ``len(kv)``) is every live key of the namespace, also when a
separator makes ``"*"`` a single segment. A streamed listing resumes each
page strictly after the last key returned, so a whole stream examines each
key about once; the tests count that work (matcher calls) rather than time
it. (keyshelf's own tests also count SQLite virtual-machine steps:
tests/conformance/test_listings.py.)
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keyshelf
import keyshelf._core
from keyshelf.patterns import Matcher

SEPARATORS = [None, ".", "/"]

# Keys made of short segments joined by ".", "/" and ":", so that every
# dialect sees keys with several segments.
SEGMENT = st.text(alphabet="ab", min_size=1, max_size=2)
KEYS = st.builds(
    lambda parts, joints: "".join(p + j for p, j in zip(parts, joints, strict=False)) + parts[-1],
    st.lists(SEGMENT, min_size=1, max_size=4),
    st.lists(st.sampled_from([".", "/", ":"]), max_size=3),
)
# Batches of writes: (key, True) sets it, (key, False) deletes it.
BATCHES = st.lists(st.lists(st.tuples(KEYS, st.booleans()), max_size=8), min_size=1, max_size=3)


def iterate(kv: Any) -> list[str]:
    """``list(kv)`` through either API (``async for`` for the async one)."""
    if getattr(kv, "api", "sync") == "async":

        async def collect() -> list[str]:
            return [key async for key in kv._store]

        loop: asyncio.AbstractEventLoop = kv._loop
        return loop.run_until_complete(collect())
    return list(kv)


def check_complete(kv: Any, model: dict[str, int]) -> None:
    """Every listing without a pattern is every live key, in order, with its value."""
    expected = sorted(model)
    assert kv.keys() == expected
    assert iterate(kv) == expected
    assert list(kv.iter_keys()) == expected
    assert list(kv.iter_keys(batch_size=2)) == expected
    assert list(kv.iter_items(batch_size=3)) == [(key, model[key]) for key in expected]
    assert kv.dump() == {key: model[key] for key in expected}
    assert list(kv.dump()) == expected
    assert kv.values() == [model[key] for key in expected]
    assert kv.key_count() == kv.size() == len(expected)
    assert kv.is_empty() == (not expected)
    if getattr(kv, "api", "sync") == "sync":
        assert len(kv) == len(expected)


@pytest.mark.parametrize("separator", SEPARATORS)
def test_listing_without_pattern_is_every_key(opener: Any, separator: str | None) -> None:
    # The report: with separator=".", list(kv), keys(), key_count(), dump()
    # and values() saw only "c" while len(kv) said 2.
    kv = opener(separator=separator)
    kv.set("a.b", 1)
    kv.set("c", 2)
    kv.set("x/y/z", 3)
    check_complete(kv, {"a.b": 1, "c": 2, "x/y/z": 3})
    # An explicit pattern keeps its dialect: "*" is one segment with a separator.
    top = {None: ["a.b", "c", "x/y/z"], ".": ["c", "x/y/z"], "/": ["a.b", "c"]}[separator]
    assert kv.keys("*") == top
    assert kv.key_count("*") == len(top)


def test_delete_pattern_still_needs_a_pattern(kv: Any) -> None:
    # Only listings take "no pattern"; a delete without one must not clear the store.
    kv.set("k", 1)
    with pytest.raises(keyshelf.InvalidPatternError):
        kv.delete_pattern(None)
    with pytest.raises(keyshelf.InvalidPatternError):
        kv.get_pattern(None)
    assert kv.keys() == ["k"]


@pytest.mark.parametrize("separator", SEPARATORS)
@settings(
    max_examples=12,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=BATCHES)
def test_listings_agree_property(opener: Any, separator: str | None, batches: Any) -> None:
    kv = opener(separator=separator)
    kv.clear()
    model: dict[str, int] = {}
    check_complete(kv, model)
    for number, batch in enumerate(batches):
        # Listings between the writes: backends that keep a sorted order of
        # the keys (memory) must fold the new and deleted keys in.
        for index, (key, keep) in enumerate(batch):
            if keep:
                kv.set(key, number * 100 + index)
                model[key] = number * 100 + index
            else:
                kv.delete(key)
                model.pop(key, None)
        check_complete(kv, model)
        for prefix in ("a", "a.", "b/", "ab:"):
            wanted = sorted(key for key in model if key.startswith(prefix))
            pattern = prefix.replace(".", "\\.") + "*" if separator is None else prefix + "**"
            if separator is not None and not prefix.endswith(separator):
                continue  # "**" is a whole segment only after a separator
            assert kv.keys(pattern) == wanted
            assert list(kv.iter_keys(pattern, batch_size=2)) == wanted
            assert kv.key_count(pattern) == len(wanted)


def test_stream_sees_writes_between_pages(kv: Any) -> None:
    # Each page resumes after the last key returned: a key created ahead of
    # the stream is listed, one created behind it is not, one deleted ahead
    # of it is not.
    kv.mset({f"k{i:02}": i for i in range(10)})
    if getattr(kv, "api", "sync") == "async":
        agen = kv._store.aiter_keys(batch_size=3)
        loop: asyncio.AbstractEventLoop = kv._loop

        def step() -> str | None:
            try:
                return loop.run_until_complete(agen.__anext__())  # type: ignore[no-any-return]
            except StopAsyncIteration:
                return None

    else:
        stream = kv.iter_keys(batch_size=3)

        def step() -> str | None:
            return next(stream, None)

    seen = [step(), step(), step()]
    kv.set("k025", "ahead")
    kv.set("k015", "behind")
    kv.delete("k07")
    while (key := step()) is not None:
        seen.append(key)
    assert seen == ["k00", "k01", "k02", "k025", "k03", "k04", "k05", "k06", "k08", "k09"]


def test_expired_keys_are_not_listed(kv: Any, clock: Any, backend_name: str) -> None:
    kv.set("short", 1, ttl=0.3)
    kv.set("long", 2)
    check_complete(kv, {"short": 1, "long": 2})
    clock.advance(0.5)
    check_complete(kv, {"long": 2})


# -- linear streaming -------------------------------------------------------


def counting_listing(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make every listing pattern count the keys its matcher tests."""
    calls = [0]
    original = keyshelf._core.compile_pattern  # type: ignore[attr-defined]

    def compile_counting(pattern: str, separator: str | None = None) -> Matcher:
        matcher = original(pattern, separator)
        test = matcher.match

        def counted(key: str) -> bool:
            calls[0] += 1
            return test(key)

        return dataclasses.replace(matcher, _test=counted)

    monkeypatch.setattr(keyshelf._core, "compile_pattern", compile_counting)
    return calls


def fill(kv: Any, n: int) -> None:
    """``n`` keys under "k:" between neighbours on both sides of the prefix."""
    kv.mset({f"a:{i:05}": i for i in range(50)})
    kv.mset({f"k:{i:05}": i for i in range(n)})
    kv.mset({f"z:{i:05}": i for i in range(50)})


def test_streaming_a_filtered_prefix_tests_each_key_about_once(
    kv: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "k:*7" is served by the range of "k:" and a test of each key in it.
    # Each page must resume after the last key returned: the old memory
    # backend tested (and sorted) the whole range again for every page.
    n, batch = 600, 10
    fill(kv, n)
    calls = counting_listing(monkeypatch)
    expected = [f"k:{i:05}" for i in range(n) if i % 10 == 7]
    assert kv.keys("k:*7") == expected
    whole = calls[0]
    assert 0 < whole <= n + 1
    calls[0] = 0
    assert list(kv.iter_keys("k:*7", batch_size=batch)) == expected
    pages = len(expected) // batch + 1
    # About one test per key, plus a bounded read-ahead per page.
    assert calls[0] <= 2 * whole + 32 * pages, (calls[0], whole)
