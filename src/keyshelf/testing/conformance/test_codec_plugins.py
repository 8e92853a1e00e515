"""Pluggable serialization (dataknobs-kv's "Custom Serialization"), on every backend."""

from __future__ import annotations

import json
from typing import Any

import keyshelf
from keyshelf.codec import Payload


class Money:
    def __init__(self, cents: int, currency: str) -> None:
        self.cents, self.currency = cents, currency

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Money) and (self.cents, self.currency) == (
            other.cents,
            other.currency,
        )

    def __hash__(self) -> int:
        return hash((self.cents, self.currency))


class MoneyCodec(keyshelf.Codec):
    """Adds a tag of its own for one application type; everything else as usual."""

    name = "money"

    def encode(self, value: object) -> tuple[str, Payload]:
        if type(value) is Money:
            return "money", json.dumps([value.cents, value.currency]).encode()
        return super().encode(value)

    def decode(self, tag: str, payload: Payload) -> object:
        if tag == "money":
            assert isinstance(payload, bytes | memoryview | str)
            cents, currency = json.loads(
                bytes(payload) if not isinstance(payload, str) else payload
            )
            return Money(cents, currency)
        return super().decode(tag, payload)


def test_custom_codec_round_trips_its_type(opener: Any) -> None:
    kv = opener(codec=MoneyCodec())
    kv.set("price", Money(1999, "EUR"))
    kv.set("plain", {"a": 1})
    assert kv.get("price") == Money(1999, "EUR")
    assert kv.get("plain") == {"a": 1}
    assert kv.get_pattern("*") == {"plain": {"a": 1}, "price": Money(1999, "EUR")}
    assert kv.compare_and_swap("price", Money(1999, "EUR"), Money(2499, "EUR")) is True
    assert kv.get("price") == Money(2499, "EUR")
