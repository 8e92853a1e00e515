"""Opening stores: URLs, options, the registry and install hints (docs/semantics.md)."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path
from typing import Any

import pytest

import keyshelf
from keyshelf import registry
from keyshelf.backends._bridge import AsyncBridge
from keyshelf.backends.memory import MemoryBackend
from keyshelf.backends.sqlite import SQLiteBackend
from keyshelf.options import refuse_unknown


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
        if issubclass(getattr(errors, name), Warning):
            continue  # UndecodableValueWarning is a warning, never raised as an error
        assert issubclass(getattr(errors, name), keyshelf.KVError)
    assert issubclass(keyshelf.SerializationError, TypeError)
    assert issubclass(keyshelf.SerializationError, ValueError)
    assert issubclass(keyshelf.KeyNotFoundError, KeyError)
    assert issubclass(keyshelf.IncrementOverflowError, OverflowError)


# --------------------------------------------------------------------------
# mistyped URLs: refused with the URL most likely meant, nothing created
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "meant"),
    [
        ("sqlite:app.db", "sqlite:///app.db"),
        ("sqlite:/abs/app.db", "sqlite:////abs/app.db"),
        ("SQLite:app.db", "sqlite:///app.db"),
        ("file:cfg.json", "file://./cfg.json"),
        ("file:/etc/app/cfg.json", "file:///etc/app/cfg.json"),
        ("memory", "memory://"),
        ("memory:", "memory://"),
        ("MEMORY", "memory://"),
        ("redis:localhost", "redis://localhost"),
        ("redis:localhost:6379/0", "redis://localhost:6379/0"),
        ("redis", "redis://localhost:6379/0"),
        ("rediss:cache.example:6380", "rediss://cache.example:6380"),
        ("unix:/run/redis.sock", "unix:///run/redis.sock"),
        ("postgresql:app@db/app", "postgresql://app@db/app"),
        ("postgres:db", "postgres://db"),
        ("sqlite", "sqlite:///keyshelf.db"),
        ("cfg.json", "file://./cfg.json"),
        ("./cfg.json", "file://./cfg.json"),
        ("conf/app.json.gz", "file://./conf/app.json.gz"),
        ("Settings.JSON", "file://./Settings.JSON"),
    ],
)
def test_mistyped_urls_are_refused_with_a_hint(in_tmp: Path, url: str, meant: str) -> None:
    (in_tmp / "conf").mkdir()
    for opener in (keyshelf.open, keyshelf.open_async):
        with pytest.raises(keyshelf.InvalidURLError) as info:
            opener(url)
        assert f"did you mean {meant!r}" in str(info.value)
    assert sorted(p.name for p in in_tmp.iterdir()) == ["conf"]
    assert list((in_tmp / "conf").iterdir()) == []


def test_mistyped_url_in_the_environment_and_as_a_path(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYSHELF_URL", "sqlite:app.db")
    with pytest.raises(keyshelf.InvalidURLError, match=re.escape("sqlite:///app.db")):
        keyshelf.open()
    with pytest.raises(keyshelf.InvalidURLError, match=re.escape("file://./cfg.json")):
        keyshelf.open(Path("cfg.json"))
    assert list(in_tmp.iterdir()) == []


def test_a_registered_third_party_scheme_is_checked_too(in_tmp: Path) -> None:
    registry.register("keyshelftestscheme", lambda url, options, asynchronous: MemoryBackend())
    with pytest.raises(keyshelf.InvalidURLError, match="keyshelftestscheme://somewhere"):
        keyshelf.open("keyshelftestscheme:somewhere")
    assert list(in_tmp.iterdir()) == []


@pytest.mark.parametrize(
    "path",
    [
        "data/app.db",
        "./x:y.db",
        "notascheme:x.db",
        "./memory",
        "./sqlite:app.db",
        "C:/app.db",
        "app.json.db",
        "sqlite:///cfg.json",
    ],
)
def test_paths_that_only_look_odd_still_open(in_tmp: Path, path: str) -> None:
    # Only a registered scheme directly followed by ':' and a path ending in
    # .json/.json.gz are refused; a one-letter "scheme" is a drive letter.
    (in_tmp / "data").mkdir()
    (in_tmp / "C:").mkdir()
    with keyshelf.open(path) as kv:
        kv.set("k", 1)
        assert isinstance(kv.backend, SQLiteBackend)
    name = path.removeprefix("sqlite:///")
    with keyshelf.open(f"sqlite:///{name}") as kv:
        assert kv.get("k") == 1


# --------------------------------------------------------------------------
# create=False and readonly=True: checked here, passed on only when set
# --------------------------------------------------------------------------


def _recording_scheme(name: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def create(url: Any, options: dict[str, Any], asynchronous: bool) -> Any:
        seen.append(dict(options))
        options.pop("create", None)
        options.pop("readonly", None)
        return AsyncBridge(MemoryBackend()) if asynchronous else MemoryBackend()

    registry.register(name, create)
    return seen


@pytest.mark.parametrize(
    ("url", "options", "passed"),
    [
        ("rec://", {}, {}),
        ("rec://", {"create": True, "readonly": False}, {}),
        ("rec://?create=true&readonly=no", {}, {}),
        ("rec://", {"create": False}, {"create": False}),
        ("rec://?create=false", {}, {"create": False}),
        ("rec://?create=0", {}, {"create": False}),
        ("rec://", {"readonly": True}, {"readonly": True}),
        ("rec://?readonly=yes", {}, {"readonly": True}),
        ("rec://?create=off", {"readonly": "on"}, {"create": False, "readonly": True}),
        ("rec://?create=off", {"create": True}, {}),  # the keyword wins
    ],
)
def test_create_and_readonly_reach_the_factory_only_when_not_default(
    url: str, options: dict[str, Any], passed: dict[str, Any]
) -> None:
    seen = _recording_scheme("rec")
    keyshelf.open(url, **options).close()
    keyshelf.open(url, cache="memory", **options).close()
    asyncio.run(keyshelf.open_async(url, **options).aclose())
    assert seen == [passed, passed, passed]
    assert all(type(value) is bool for value in passed.values())


@pytest.mark.parametrize("name", ["create", "readonly"])
@pytest.mark.parametrize("value", ["maybe", "", 1, None, "2"])
def test_create_and_readonly_must_be_booleans(name: str, value: Any) -> None:
    seen = _recording_scheme("rec")
    with pytest.raises(keyshelf.InvalidURLError, match=f"Option {name} must be true or false"):
        keyshelf.open("rec://", **{name: value})
    query = "" if value in (None, 1) else str(value)
    with pytest.raises(keyshelf.InvalidURLError, match=f"Option {name} must be true or false"):
        keyshelf.open_async(f"rec://?{name}={query}")
    assert seen == []


def test_a_factory_that_does_not_know_them_refuses_them_by_name() -> None:
    def strict(url: Any, options: dict[str, Any], asynchronous: bool) -> Any:
        refuse_unknown("strict", options)
        return MemoryBackend()

    registry.register("strict", strict)
    keyshelf.open("strict://").close()  # defaults pass nothing
    with pytest.raises(keyshelf.InvalidURLError, match="strict:// stores: create"):
        keyshelf.open("strict://", create=False)
    with pytest.raises(keyshelf.InvalidURLError, match="strict:// stores: readonly"):
        keyshelf.open("strict://?readonly=true", cache="memory")


def test_readonly_with_auto_cleanup_cannot_work() -> None:
    seen = _recording_scheme("rec")
    with pytest.raises(keyshelf.InvalidURLError, match=r"auto_cleanup.*readonly"):
        keyshelf.open("rec://?readonly=true&auto_cleanup=true")
    assert seen == []


@pytest.mark.parametrize("url", ["memory://", "memory://?cache=memory"])
def test_memory_with_create_false_is_not_found(url: str) -> None:
    # A memory store is always new: there is never an existing one to open.
    with pytest.raises(keyshelf.StoreNotFoundError, match="always new"):
        keyshelf.open(url, create=False)
    with pytest.raises(keyshelf.StoreNotFoundError):
        keyshelf.open_async(f"{url}{'&' if '?' in url else '?'}create=false")
    assert isinstance(keyshelf.StoreNotFoundError("x"), keyshelf.BackendError)


@pytest.mark.parametrize("url", ["memory://?readonly=true", "memory://?readonly=1&cache=memory"])
def test_memory_cannot_be_readonly(url: str) -> None:
    with pytest.raises(keyshelf.InvalidURLError, match="memory:// cannot be opened readonly"):
        keyshelf.open(url)
    with pytest.raises(keyshelf.InvalidURLError, match="memory:// cannot be opened readonly"):
        keyshelf.open_async(url)


def test_memory_create_true_and_readonly_false_are_the_defaults() -> None:
    with keyshelf.open("memory://?create=true&readonly=false") as kv:
        kv.set("k", 1)
        assert kv.get("k") == 1


# --------------------------------------------------------------------------
# options in the URL that cannot work: InvalidURLError
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("namespace=", "Store URL option namespace: Invalid namespace ''"),
        ("namespace=__sys", "Store URL option namespace"),
        ("namespace=a%0Ab", "Store URL option namespace"),
        ("separator=", "Option separator must be a non-empty string"),
        ("codec=", "Unknown codec ''"),
        ("max_value_size=", "Option max_value_size must be an integer"),
        ("auto_cleanup=", "Option auto_cleanup must be true or false"),
        ("cleanup_interval=", "Option cleanup_interval must be a number"),
        ("cache=", "Unknown cache ''"),
        ("cache=memory&cache_ttl=", "Option cache_ttl must be a number"),
        ("cache=memory&cache_size=", "Option cache_size must be an integer"),
        ("create=", "Option create must be true or false"),
        ("readonly=", "Option readonly must be true or false"),
    ],
)
def test_empty_or_bad_url_options_are_invalid_urls(query: str, message: str) -> None:
    for opener in (keyshelf.open, keyshelf.open_async):
        with pytest.raises(keyshelf.InvalidURLError) as info:
            opener(f"memory://?{query}")
        assert message in str(info.value)


def test_a_keyword_namespace_keeps_the_key_rules_error() -> None:
    # As Store.namespace() does; only a namespace inside the URL is a URL error.
    with pytest.raises(keyshelf.InvalidKeyError):
        keyshelf.open("memory://", namespace="")
    with keyshelf.open("memory://?namespace=__bad", namespace="fine") as kv:
        assert kv.namespace_name == "fine"


def test_an_empty_separator_keyword_is_refused() -> None:
    with pytest.raises(keyshelf.InvalidURLError, match="separator"):
        keyshelf.open("memory://", separator="")


@pytest.mark.parametrize(("namespace", "query"), [("__sys", ""), (None, "?namespace=")])
def test_a_bad_namespace_creates_no_file(in_tmp: Path, namespace: Any, query: str) -> None:
    options = {} if namespace is None else {"namespace": namespace}
    with pytest.raises((keyshelf.InvalidKeyError, keyshelf.InvalidURLError)):
        keyshelf.open(f"sqlite:///new.db{query}", **options)
    assert list(in_tmp.iterdir()) == []
