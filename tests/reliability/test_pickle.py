"""No unpickling unless the pickle codec was asked for (the diskcache/sqlitedict CVE class).

On every persistent backend a store opened with ``codec="pickle"`` writes a
value whose unpickling would create a marker file. The same store opened
with the default codec is then read through every path that could decode a
value — both APIs, the mapping protocol, export and import, the command line
— and the marker never appears: reads of the key raise ``SerializationError``
("Refusing to unpickle"), listings leave it out with an
``UndecodableValueWarning``, the rest never decode it. Finally the pickle
codec itself does unpickle it, which shows the payload was live all along.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import pathlib
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

import keyshelf

from .helpers import PERSISTENT, location


class Bomb:
    """Unpickling it touches ``marker`` (a stand-in for running any code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def _reads(kv: Any, sync: bool) -> list[tuple[str, Any]]:
    calls: list[tuple[str, Any]] = [
        ("get", lambda: kv.get("bomb")),
        ("mget", lambda: kv.mget(["bomb"])),
        ("get_many", lambda: kv.get_many(["bomb", "plain"])),
        ("get_entry", lambda: kv.get_entry("bomb")),
    ]
    if sync:
        calls.append(("kv[key]", lambda: kv["bomb"]))
    return calls


def _listings(kv: Any) -> list[tuple[str, Any, Any]]:
    # Listings leave the undecodable value out (with a warning) instead of
    # failing for every other key.
    return [
        ("get_pattern", lambda: kv.get_pattern("*"), {"plain": "safe"}),
        ("dump", kv.dump, {"plain": "safe"}),
        ("values", kv.values, ["safe"]),
        ("iter_items", lambda: list(kv.iter_items()), [("plain", "safe")]),
    ]


def _non_decoding(kv: Any) -> list[tuple[str, Any]]:
    return [
        ("exists", lambda: kv.exists("bomb")),
        ("keys", kv.keys),
        ("ttl", lambda: kv.ttl("bomb")),
        ("storage_size", lambda: kv.storage_size("bomb")),
        ("get_metadata", lambda: kv.get_metadata("bomb")),
        ("compare_and_swap", lambda: kv.compare_and_swap("bomb", "x", "y")),
        ("increment", lambda: kv.increment("bomb")),
        ("append", lambda: kv.append("bomb", "x")),
        ("stats", kv.stats),
    ]


def _check_every_path(kv: Any, marker: Path, sync: bool) -> None:
    for name, call in _reads(kv, sync):
        with pytest.raises(keyshelf.SerializationError, match="Refusing to unpickle"):
            call()
        assert not marker.exists(), f"{name} unpickled the value"
    for name, call, expected in _listings(kv):
        with pytest.warns(keyshelf.UndecodableValueWarning, match="Refusing to unpickle"):
            assert call() == expected, name
        assert not marker.exists(), f"{name} unpickled the value"
    for name, call in _non_decoding(kv):
        with contextlib.suppress(keyshelf.KVError):  # increment/append refuse the type
            call()
        assert not marker.exists(), f"{name} unpickled the value"
    assert kv.get("plain") == "safe"


class _AsyncFacade:
    """Drives an AsyncStore from sync code (one event loop)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self._loop = asyncio.new_event_loop()

    def __getattr__(self, name: str) -> Any:
        name = "aiter_items" if name == "iter_items" else name
        method = getattr(self._store, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if hasattr(result, "__anext__"):

                async def collect() -> list[Any]:
                    return [item async for item in result]

                return iter(self._loop.run_until_complete(collect()))
            return self._loop.run_until_complete(result)

        return call

    def close(self) -> None:
        self._loop.run_until_complete(self._store.aclose())
        self._loop.close()


def _cli_url(url: str, options: dict[str, Any]) -> str:
    query = {k: v for k, v in options.items() if k in ("prefix", "schema")}
    return f"{url}{'&' if '?' in url else '?'}{urlencode(query)}" if query else url


@pytest.mark.parametrize("backend", PERSISTENT)
def test_planted_pickle_is_never_unpickled_without_opting_in(backend: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    with location(backend, tmp_path) as (url, options):
        with keyshelf.open(url, codec="pickle", **options) as writer:
            writer.set("bomb", Bomb(marker), metadata={"note": "planted"})
            writer.set("plain", "safe")
        assert not marker.exists()

        kv = keyshelf.open(url, **options)
        try:
            _check_every_path(kv, marker, sync=True)
            # Export copies the stored payload without decoding it ...
            exported = io.BytesIO()
            assert kv.export(exported) == 2
            assert not marker.exists()
            # ... and importing it into a store that cannot read pickles is refused,
            # unless asked to copy the payload as it is (a migration must carry
            # pickled values between stores that trust them), still never decoded.
            with keyshelf.open("memory://") as target:
                exported.seek(0)
                with pytest.raises(keyshelf.ExportFormatError, match="pickle"):
                    target.import_(exported)
                exported.seek(0)
                assert target.import_(exported, opaque=True) == 2
                assert not marker.exists()
                with pytest.raises(keyshelf.SerializationError, match="Refusing to unpickle"):
                    target.get("bomb")
            assert not marker.exists()
        finally:
            kv.close()

        akv = _AsyncFacade(keyshelf.open_async(url, **options))
        try:
            _check_every_path(akv, marker, sync=False)
        finally:
            akv.close()

        # The command line uses the default codec too.
        cli = subprocess.run(
            [sys.executable, "-m", "keyshelf", "get", "bomb", "--url", _cli_url(url, options)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=tmp_path,
        )
        assert cli.returncode != 0, cli.stdout
        assert "unpickle" in cli.stderr.lower(), cli.stderr
        assert not marker.exists()

        # Opting in does unpickle: the payload was live all along.
        with keyshelf.open(url, codec="pickle", **options) as trusting:
            trusting.get("bomb")
        assert marker.exists()


def test_pickle_planted_by_someone_else_in_sqlite_is_not_unpickled(tmp_path: Path) -> None:
    """Bytes written straight into the database (not through keyshelf) fare no better."""
    import pickle

    marker = tmp_path / "pwned"
    path = tmp_path / "s.db"
    with keyshelf.open(path) as kv:
        kv.set("value", "x")
        kv.set("meta", "x", metadata={"m": 1})
    payload = pickle.dumps(Bomb(marker))
    conn = sqlite3.connect(path)
    conn.execute("UPDATE keyshelf SET type = 'p', value = ? WHERE key = 'value'", (payload,))
    conn.execute("UPDATE keyshelf SET meta = ? WHERE key = 'meta'", (payload,))
    conn.commit()
    conn.close()
    with keyshelf.open(path) as kv:
        with pytest.raises(keyshelf.SerializationError, match="Refusing to unpickle"):
            kv.get("value")
        with pytest.raises(keyshelf.SerializationError):
            kv.get_metadata("meta")
        with pytest.raises(keyshelf.SerializationError):
            kv.get_entry("meta")
        assert kv.get("meta") == "x"
    assert not marker.exists()
    # Metadata is never pickled, not even with the pickle codec.
    with keyshelf.open(path, codec="pickle") as kv, pytest.raises(keyshelf.SerializationError):
        kv.get_metadata("meta")
    assert not marker.exists()
