"""Opening stores: URLs, options, the registry and install hints (docs/semantics.md)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

import keyshelf
from keyshelf import registry
from keyshelf.backends.memory import MemoryBackend
from keyshelf.backends.sqlite import SQLiteBackend


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KEYSHELF_URL", raising=False)
    return tmp_path


def test_default_is_sqlite_file_in_cwd(in_tmp: Path) -> None:
    with keyshelf.open() as kv:
        kv.set("k", 1)
        assert isinstance(kv.backend, SQLiteBackend)
    assert (in_tmp / "keyshelf.db").exists()


def test_keyshelf_url_environment(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYSHELF_URL", "memory://")
    with keyshelf.open() as kv:
        assert isinstance(kv.backend, MemoryBackend)
    assert not (in_tmp / "keyshelf.db").exists()


def test_bare_path_and_sqlite_urls(in_tmp: Path) -> None:
    (in_tmp / "data").mkdir()
    with keyshelf.open("app.db") as kv:
        kv.set("k", "bare")
    with keyshelf.open("sqlite:///app.db") as kv:
        assert kv.get("k") == "bare"
    with keyshelf.open("sqlite:///data/app.db") as kv:
        kv.set("k", "relative")
    assert (in_tmp / "data" / "app.db").exists()
    absolute = in_tmp / "abs.db"
    with keyshelf.open(f"sqlite:///{absolute}") as kv:
        kv.set("k", "absolute")
    assert absolute.exists()
    with keyshelf.open(Path("app.db")) as kv:
        assert kv.get("k") == "bare"


def test_memory_stores_are_private() -> None:
    one, two = keyshelf.open("memory://"), keyshelf.open("memory://")
    one.set("k", 1)
    assert two.get("k") is None


def test_options_as_query_parameters(in_tmp: Path) -> None:
    with keyshelf.open("memory://?namespace=tenant&separator=.&max_value_size=10") as kv:
        assert kv.namespace_name == "tenant"
        kv.set("a.b.c", 1)
        assert kv.keys("a.*") == []
        with pytest.raises(keyshelf.ValueTooLargeError):
            kv.set("big", "x" * 11)


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("nosuch://x", {}, "Unknown store URL scheme 'nosuch'"),
        ("memory://", {"bogus": 1}, "Unknown option(s) for memory:// stores: bogus"),
        ("memory://host", {}, "memory:// takes no host"),
        ("sqlite://host/x.db", {}, "sqlite:// URLs take no host"),
        ("sqlite://", {}, "needs a file path"),
        ("sqlite:///:memory:", {}, "needs a file path"),
        ("sqlite:///x.db", {"table": "bad name"}, "not a plain identifier"),
        ("sqlite:///x.db", {"durable": "maybe"}, "Option durable must be true or false"),
        ("sqlite:///x.db", {"timeout": -1}, "Option timeout must be greater than 0"),
        ("sqlite:///x.db", {"journal_mode": "weird"}, "Unknown SQLite journal_mode"),
        ("sqlite:///x.db", {"nope": 1}, "Unknown option(s) for sqlite:// stores: nope"),
        ("memory://", {"auto_cleanup": "sometimes"}, "auto_cleanup must be true or false"),
        ("memory://", {"cleanup_interval": 0}, "cleanup_interval must be greater than 0"),
        ("memory://", {"max_value_size": "big"}, "max_value_size must be an integer"),
        ("memory://", {"clock": 5}, "clock must be a callable"),
        ("memory://", {"codec": "yaml"}, "codec"),
        ("", {}, "non-empty string"),
    ],
)
def test_bad_urls_and_options_refused_at_open(
    in_tmp: Path, url: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(keyshelf.InvalidURLError) as info:
        keyshelf.open(url, **options)
    assert isinstance(info.value, ValueError)
    assert message in str(info.value)
    with pytest.raises(keyshelf.InvalidURLError):
        keyshelf.open_async(url, **options)
    assert not (in_tmp / "x.db").exists()


def test_bad_namespace_refused_at_open() -> None:
    with pytest.raises(keyshelf.InvalidKeyError):
        keyshelf.open("memory://", namespace="__internal")


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    registry.register("needsx", "keyshelf_tests_missing_driver:create", extra="needsx")
    monkeypatch.setitem(sys.modules, "keyshelf_tests_missing_driver", None)
    with pytest.raises(ImportError, match=r"pip install 'keyshelf\[needsx\]'"):
        keyshelf.open("needsx://host")


def test_third_party_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Any] = []

    def create(url: Any, options: dict[str, Any], asynchronous: bool) -> Any:
        made.append((url.netloc, options, asynchronous))
        return MemoryBackend()

    registry.register("custom", create)
    with keyshelf.open("custom://somewhere") as kv:
        kv.set("k", 1)
        assert kv.get("k") == 1
    assert made == [("somewhere", {}, False)]


class Point:
    def __init__(self, x: int) -> None:
        self.x = x


def test_pickle_codec_is_opt_in() -> None:
    with keyshelf.open("memory://") as kv, pytest.raises(keyshelf.SerializationError):
        kv.set("p", Point(1))
    with keyshelf.open("memory://", codec="pickle") as kv:
        kv.set("p", Point(1))
        assert kv.get("p").x == 1


def test_pickled_data_is_not_unpickled_by_default(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    with keyshelf.open(path, codec="pickle") as kv:
        kv.set("p", complex(1, 2))
    with keyshelf.open(path) as kv, pytest.raises(keyshelf.SerializationError):
        kv.get("p")


def test_async_open_and_context(tmp_path: Path) -> None:
    async def main() -> Any:
        async with keyshelf.open_async(tmp_path / "a.db") as akv:
            await akv.set("k", {"v": 1})
            assert [key async for key in akv] == ["k"]
            return await akv.get("k")

    assert asyncio.run(main()) == {"v": 1}
    with keyshelf.open(tmp_path / "a.db") as kv:
        assert kv.get("k") == {"v": 1}


def test_every_error_importable_from_package() -> None:
    from keyshelf import errors

    for name in errors.__all__:
        assert getattr(keyshelf, name) is getattr(errors, name)
        assert issubclass(getattr(errors, name), keyshelf.KVError)
    assert issubclass(keyshelf.SerializationError, TypeError)
    assert issubclass(keyshelf.SerializationError, ValueError)
    assert issubclass(keyshelf.KeyNotFoundError, KeyError)
    assert issubclass(keyshelf.IncrementOverflowError, OverflowError)
