"""User metadata, system metadata and Entry (as in dataknobs-kv)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest


def test_metadata_round_trip_and_ttl_entry(kv: Any) -> None:
    assert kv.set(
        "document.report.pdf",
        b"%PDF-1.4",
        metadata={
            "content_type": "application/pdf",
            "author": "John Doe",
            "created": "2024-01-15",
            "tags": ["quarterly", "finance"],
            "ttl": 86400,
        },
    )
    metadata = kv.get_metadata("document.report.pdf")
    assert metadata == {
        "content_type": "application/pdf",
        "author": "John Doe",
        "created": "2024-01-15",
        "tags": ["quarterly", "finance"],
    }
    assert 86399 < kv.ttl("document.report.pdf") <= 86400.001
    assert kv.set_metadata("document.report.pdf", {"reviewed": True, "reviewer": "Jane Smith"})
    assert kv.get_metadata("document.report.pdf") == {
        **metadata,
        "reviewed": True,
        "reviewer": "Jane Smith",
    }
    assert kv.get_entry("document.report.pdf").content_type == "application/pdf"


def test_metadata_defaults(kv: Any) -> None:
    assert kv.get_metadata("missing") is None
    assert kv.set_metadata("missing", {"a": 1}) is False
    assert kv.exists("missing") is False
    kv.set("k", 1)
    assert kv.get_metadata("k") == {}


def test_set_without_metadata_keeps_it_and_with_metadata_replaces(kv: Any) -> None:
    kv.set("k", 1, metadata={"a": 1})
    kv.set("k", 2)
    assert kv.get_metadata("k") == {"a": 1}
    kv.set("k", 3, metadata={"b": 2})
    assert kv.get_metadata("k") == {"b": 2}
    kv.mset({"k": 4})
    assert kv.get_metadata("k") == {"b": 2}


def test_set_metadata_replace(kv: Any) -> None:
    kv.set("k", 1, metadata={"a": 1, "b": 2})
    assert kv.set_metadata("k", {"c": 3}, replace=True) is True
    assert kv.get_metadata("k") == {"c": 3}


def test_explicit_ttl_wins_over_metadata_ttl(kv: Any) -> None:
    kv.set("k", 1, ttl=10, metadata={"ttl": 1000})
    assert 9 < kv.ttl("k") <= 10.001
    assert kv.get_metadata("k") == {}


def test_metadata_keeps_types(kv: Any) -> None:
    when = datetime(2024, 1, 15, 10, 30, tzinfo=UTC)
    kv.set("k", 1, metadata={"when": when, "ids": (1, 2), "raw": b"\x00"})
    assert kv.get_metadata("k") == {"when": when, "ids": (1, 2), "raw": b"\x00"}


def test_deleted_key_forgets_metadata(kv: Any) -> None:
    kv.set("k", 1, metadata={"a": 1})
    kv.delete("k")
    kv.set("k", 2)
    assert kv.get_metadata("k") == {}


def test_entry_system_metadata(kv: Any, clock: Any) -> None:
    before = datetime.fromtimestamp(clock() - 1, tz=UTC)
    kv.set("user.123.profile", {"name": "John", "age": 30}, metadata={"tags": ["vip"]}, ttl=60)
    entry = kv.get_entry("user.123.profile")
    assert entry.key == "user.123.profile"
    assert entry.value == {"name": "John", "age": 30}
    assert entry.metadata == {"tags": ["vip"]}
    assert entry.version == 1
    assert entry.created_at.tzinfo is not None and entry.created_at >= before
    assert entry.updated_at == entry.created_at
    assert entry.expires_at is not None and entry.expires_at > entry.created_at
    assert entry.size == len(b'{"name":"John","age":30}')
    assert entry.checksum and isinstance(entry.checksum, str)
    assert entry.content_type == "application/json"
    assert kv.get_entry("missing") is None


def test_entry_created_at_survives_overwrite_and_resets_after_delete(kv: Any, clock: Any) -> None:
    kv.set("k", 1)
    first = kv.get_entry("k")
    clock.advance(0.05)
    kv.set("k", 2)
    second = kv.get_entry("k")
    assert second.created_at == first.created_at
    assert second.updated_at > first.updated_at
    assert second.version == 2
    kv.delete("k")
    clock.advance(0.05)
    kv.set("k", 3)
    third = kv.get_entry("k")
    assert third.created_at > first.created_at
    assert third.version == 1


def test_entry_recreated_after_expiry(kv: Any, clock: Any) -> None:
    kv.set("k", 1, ttl=0.1)
    first = kv.get_entry("k")
    clock.advance(0.2)
    kv.set("k", 2)
    entry = kv.get_entry("k")
    assert entry.version == 1 and entry.created_at > first.created_at
    assert entry.expires_at is None


def test_checksum_identifies_values(kv: Any) -> None:
    kv.set("a", {"x": 1})
    kv.set("b", {"x": 1})
    kv.set("c", {"x": 2})
    assert kv.get_entry("a").checksum == kv.get_entry("b").checksum
    assert kv.get_entry("a").checksum != kv.get_entry("c").checksum


@pytest.mark.parametrize("bad", [["a"], "text", 1, {1: "non-str key"}])
def test_bad_metadata_refused(kv: Any, bad: Any) -> None:
    kv.set("k", 1, metadata={"keep": True})
    with pytest.raises(ValueError):
        kv.set("k", 2, metadata=bad)
    with pytest.raises(ValueError):
        kv.set_metadata("k", bad)
    assert kv.get("k") == 1
    assert kv.get_metadata("k") == {"keep": True}
