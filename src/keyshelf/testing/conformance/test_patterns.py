"""Pattern operations through the store: keys, key_count, get_pattern, delete_pattern."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

VECTORS = json.loads((Path(__file__).parents[1] / "data" / "redis-glob-vectors.json").read_text())


def test_seed000_keys_listing(kv: Any) -> None:
    """The glob ``keys`` example of cinchdb's KV store."""
    kv.set("user:1:profile", {"name": "Alice"})
    kv.set("user:2:profile", {"name": "Bob"})
    kv.set("user:1:settings", {"theme": "dark"})
    kv.set("session:abc", {"user": 1})
    assert kv.keys() == ["session:abc", "user:1:profile", "user:1:settings", "user:2:profile"]
    assert kv.keys("user:*:profile") == ["user:1:profile", "user:2:profile"]
    assert kv.keys("user:1:*") == ["user:1:profile", "user:1:settings"]
    assert kv.key_count() == 4
    assert kv.key_count("user:*") == 3


def test_redis_glob_vectors(kv: Any) -> None:
    """Every recorded answer of a real Redis server, on this backend."""
    for number, vector_set in enumerate(VECTORS["sets"]):
        space = kv.namespace(f"vectors{number}")
        space.mset({key: i for i, key in enumerate(vector_set["keys"])})
        failures = []
        for case in vector_set["cases"]:
            got = space.keys(case["pattern"])
            if got != sorted(case["matches"]):
                failures.append((case["pattern"], got, case["matches"]))
            assert space.key_count(case["pattern"]) == len(case["matches"])
        assert failures == []


def test_keys_sorted_by_code_point(kv: Any) -> None:
    for key in ["b", "a", "B", "é", "z", "🚀", "aa"]:
        kv.set(key, 1)
    assert kv.keys() == sorted(["b", "a", "B", "é", "z", "🚀", "aa"])


def test_question_mark_matches_one_multibyte_character(kv: Any) -> None:
    kv.set("status_🚀", 1)
    kv.set("caf\u00e9", 2)
    assert kv.keys("status_?") == ["status_🚀"]
    assert kv.keys("caf?") == ["caf\u00e9"]


def test_patterns_with_prefix_and_specials(kv: Any) -> None:
    kv.mset({"user:10": 1, "user:1": 2, "user:2": 3, "user:": 4, "userx": 5, "usr": 6})
    assert kv.keys("user:1*") == ["user:1", "user:10"]
    assert kv.keys("user:?") == ["user:1", "user:2"]
    assert kv.keys("user:[^1]") == ["user:2"]
    assert kv.keys("user:[0-1]*") == ["user:1", "user:10"]
    assert kv.keys("user\\:*") == ["user:", "user:1", "user:10", "user:2"]
    assert kv.keys("user:") == ["user:"]


def test_iter_keys_streams_in_order(kv: Any) -> None:
    kv.mset({f"k{i:04d}": i for i in range(2500)})
    kv.set("other", 1)
    assert list(kv.iter_keys("k*", batch_size=1000)) == [f"k{i:04d}" for i in range(2500)]
    assert [k for k, _ in kv.iter_items("k000*", batch_size=3)] == [f"k000{i}" for i in range(10)]


def test_get_pattern_and_delete_pattern(kv: Any) -> None:
    kv.mset({"app.temp.a": 1, "app.temp.b": 2, "app.name": "x"})
    assert kv.get_pattern("app.temp.*") == {"app.temp.a": 1, "app.temp.b": 2}
    assert kv.delete_pattern("app.temp.*") == 2
    assert kv.keys() == ["app.name"]
    assert kv.delete_pattern("nothing*") == 0


def test_default_dialect_star_crosses_dots(kv: Any) -> None:
    kv.mset({"a.b.c": 1, "a.b": 2})
    assert kv.keys("a.*") == ["a.b", "a.b.c"]
    assert kv.keys("a.**") == ["a.b", "a.b.c"]


@pytest.fixture
def tree(opener: Any) -> Any:
    store = opener(separator=".")
    store.mset(
        {
            "app": 0,
            "app.name": "MyApp",
            "app.version": "1.0.0",
            "app.config.debug": True,
            "app.config.database.host": "localhost",
            "app.config.database.port": 5432,
            "app.dev.config": "d",
            "app.prod.config": "p",
            "app.test.config": "t",
            "env.dev.config": 1,
            "env.prod.config": 2,
            "error": "top",
            "logs.error": "e1",
            "logs.web.error": "e2",
            "logs.2024-01": 1,
            "logs.2023-12": 2,
            "user.1.name": "a",
            "user.a.name": "b",
            "user.12.name": "c",
            "users.123.name": "John Doe",
            "users.123.email": "john@example.com",
            "users.123.settings.theme": "dark",
            "users.123.settings.notifications": True,
            "log.0.txt": 0,
            "log.9.txt": 9,
            "log.a.txt": "a",
        }
    )
    return store


def test_hierarchical_single_segment_star(tree: Any) -> None:
    assert tree.keys("app.*") == ["app.name", "app.version"]
    assert tree.keys("users.*.name") == ["users.123.name"]
    assert tree.keys("users.123.*") == ["users.123.email", "users.123.name"]
    assert tree.keys("*.config.*") == ["app.config.debug"]
    assert tree.keys("logs.2024-*") == ["logs.2024-01"]


def test_hierarchical_double_star(tree: Any) -> None:
    assert "app" not in tree.keys("app.**")
    assert tree.keys("app.**") == [
        "app.config.database.host",
        "app.config.database.port",
        "app.config.debug",
        "app.dev.config",
        "app.name",
        "app.prod.config",
        "app.test.config",
        "app.version",
    ]
    assert tree.keys("**.error") == ["error", "logs.error", "logs.web.error"]
    assert tree.keys("**.database.**") == [
        "app.config.database.host",
        "app.config.database.port",
    ]
    assert tree.key_count("**") == tree.size()


def test_hierarchical_a_doublestar_b(opener: Any) -> None:
    store = opener(separator=".")
    store.mset({"a.b": 1, "a.x.b": 2, "a.x.y.b": 3, "a.bb": 4, "ab": 5})
    assert store.keys("a.**.b") == ["a.b", "a.x.b", "a.x.y.b"]


def test_hierarchical_question_mark_and_classes(tree: Any) -> None:
    assert tree.keys("user.?.name") == ["user.1.name", "user.a.name"]
    assert tree.keys("log.[0-9].txt") == ["log.0.txt", "log.9.txt"]


def test_hierarchical_alternatives(tree: Any) -> None:
    assert tree.keys("env.{dev,prod}.config") == ["env.dev.config", "env.prod.config"]
    assert tree.keys("app.{dev,prod}.config") == ["app.dev.config", "app.prod.config"]


def test_hierarchical_get_and_delete_subtree(tree: Any) -> None:
    assert tree.get_pattern("app.config.database.*") == {
        "app.config.database.host": "localhost",
        "app.config.database.port": 5432,
    }
    assert tree.get_pattern("users.123.settings.*") == {
        "users.123.settings.notifications": True,
        "users.123.settings.theme": "dark",
    }
    assert tree.delete_pattern("users.123.**") == 4
    assert tree.keys("users.**") == []
    assert tree.delete_pattern("app.config.database.**") == 2
    assert tree.exists("app.config.debug")


@pytest.mark.parametrize("pattern", ["\x1f", "\x00", "a\x1f", "\x1fb*", "\x7f?", "x\u2028*"])
def test_patterns_no_key_can_match_find_nothing(kv: Any, pattern: str) -> None:
    # Keys are printable, so these patterns match nothing; a backend whose
    # storage cannot even name them (S3's object names) must not fail.
    kv.set("a", 1)
    kv.set("b", 2)
    assert kv.keys(pattern) == []
    assert kv.key_count(pattern) == 0
    assert kv.get_pattern(pattern) == {}
    assert kv.delete_pattern(pattern) == 0
    assert list(kv.iter_keys(pattern)) == []
    assert kv.keys() == ["a", "b"]
