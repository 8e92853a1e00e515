"""``check_keys`` on long batches (checked as a whole first) agrees with ``check_key``.

A batch of 64 keys or more is first tested by a few passes over the whole
batch; anything unusual goes through the per-key loop. Each case below puts
one key among 100 plain ones, at the start, the middle and the end, and
requires the batch's verdict (and the error message) to be exactly the one
``check_key`` gives that key alone.
"""

from __future__ import annotations

import pytest

from keyshelf.errors import InvalidKeyError
from keyshelf.keys import check_key, check_keys

CASES: list[object] = [
    "plain",
    "__dunder",
    "_single",
    "a__b",
    "",
    "x" * 255,
    "x" * 256,
    "line\nbreak",
    "tab\there",
    "nul\0",
    "space ok",
    "nbsp\u00a0ok",
    "zwj\u200dok",
    "emoji 👩‍💻",
    "sep\u2028",
    "para\u2029",
    "surrogate\ud800",
    "control\x07",
    "unassigned\U000e0fff",
    1,
    None,
    b"bytes",
]


def _verdict(key: object) -> str:
    try:
        return "ok " + check_key(key)
    except InvalidKeyError as exc:
        return f"refused {exc}"


@pytest.mark.parametrize("key", CASES, ids=repr)
@pytest.mark.parametrize("where", [0, 50, 100])
def test_long_batch_agrees_with_check_key(key: object, where: int) -> None:
    batch: list[object] = [f"k{i}" for i in range(100)]
    batch.insert(where, key)
    alone = _verdict(key)
    try:
        checked = check_keys(batch)
    except InvalidKeyError as exc:
        assert alone.startswith("refused "), f"{key!r} alone is accepted, in a batch: {exc}"
        assert str(exc).startswith("Invalid key ")
        assert str(exc).endswith(alone.removeprefix("refused "))
    else:
        assert alone.startswith("ok "), f"{key!r} alone: {alone}; in a batch it was accepted"
        assert checked == batch


def test_long_batch_of_str_subclass_is_refused() -> None:
    class Sub(str):
        pass

    batch: list[object] = [f"k{i}" for i in range(100)] + [Sub("k")]
    with pytest.raises(InvalidKeyError):
        check_keys(batch)


def test_a_key_starting_with_underscores_in_the_middle_of_text() -> None:
    # "a\n__b" is refused for its newline, never mistaken for a "__" key (or
    # accepted): the whole-batch test only looks for "__" after a separator.
    batch: list[object] = [f"k{i}" for i in range(100)] + ["x__y", "__"]
    with pytest.raises(InvalidKeyError, match="cannot start with '__'"):
        check_keys(batch)
    assert check_keys([f"k{i}__" for i in range(100)]) == [f"k{i}__" for i in range(100)]
