"""File backend guarantees: format, atomic writes, processes, refusals (docs/file.md)."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import multiprocessing
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

import keyshelf
from keyshelf.backends import file as file_backend
from keyshelf.backends.file import FORMAT, FORMAT_VERSION, FileBackend


def url(path: Path) -> str:
    return f"file://{path}"


def document(path: Path) -> Any:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return json.loads(raw)


# -- the document -----------------------------------------------------------------


def test_document_is_readable_json_keeping_every_type(tmp_path: Path) -> None:
    path = tmp_path / "store.json"
    with keyshelf.open(url(path)) as kv:
        kv.set("flag", True)
        kv.set("n", 42)
        kv.set("f", 3.0)
        kv.set("big", 2**80)
        kv.set("raw", b"\x00\xff")
        kv.set("user", {"name": "Alice"}, metadata={"owner": "ops"})
        kv.set("pair", (1, 2), ttl=60)
        kv.namespace("other").set("none", None)
        entry = kv.get_entry("pair")
        assert entry is not None
    doc = document(path)
    assert doc["format"] == FORMAT and doc["format_version"] == FORMAT_VERSION
    spaces = doc["namespaces"]
    assert list(spaces) == ["default", "other"]
    default = spaces["default"]
    assert list(default) == sorted(default)  # keys in code-point order
    assert default["flag"]["tag"] == "b" and default["flag"]["value"] == 1
    assert default["n"] == {**default["n"], "tag": "i", "value": 42}
    assert default["big"]["tag"] == "I" and default["big"]["value"] == str(2**80)
    assert default["raw"]["bytes"] == "AP8="
    assert default["user"]["value"] == {"name": "Alice"}
    assert default["user"]["metadata"] == {"owner": "ops"}
    assert default["pair"]["value"] == {"$tuple": [1, 2]}
    assert entry.expires_at is not None
    assert default["pair"]["expires_at"] == round(entry.expires_at.timestamp() * 1000)
    assert default["pair"]["version"] == 1
    assert "expires_at" not in default["n"] and "metadata" not in default["n"]
    assert spaces["other"]["none"]["value"] is None
    # One record per line: a diff of two versions shows the keys that changed.
    text = path.read_text()
    assert text.count("\n") == 18


def test_float_and_int_payloads_stay_apart(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    values = [1, 1.0, -0.0, 1e16, 2**63 - 1, -(2**63), float("inf"), float("nan"), True]
    with keyshelf.open(url(path)) as kv:
        for index, value in enumerate(values):
            kv.set(f"k{index}", value)
            kv.set(f"l{index}", [value])
    with keyshelf.open(url(path)) as kv:
        for index, value in enumerate(values):
            got = kv.get(f"k{index}")
            assert type(got) is type(value) and repr(got) == repr(value)
            assert repr(kv.get(f"l{index}")) == repr([value])


def test_persistence_across_instances_seed003(tmp_path: Path) -> None:
    # kv-store-adapter's DiskKVStore example: data persists across instances.
    store1 = keyshelf.open(url(tmp_path / "data.json"))
    store1.set("persistent_key", "persistent_value")
    store1.set("session", {"user": "alice"}, ttl=3600, metadata={"by": "test"})
    store1.close()
    store2 = keyshelf.open(url(tmp_path / "data.json"))
    assert store2.get("persistent_key") == "persistent_value"
    entry = store2.get_entry("session")
    assert entry is not None and entry.metadata == {"by": "test"}
    assert 3590 < (store2.ttl("session") or 0) <= 3600.001
    store2.close()


def test_a_second_store_sees_committed_writes(tmp_path: Path) -> None:
    path = tmp_path / "shared.json"
    with keyshelf.open(url(path)) as one, keyshelf.open(url(path)) as two:
        one.set("k", 1)
        assert two.get("k") == 1
        two.set("k", 2)
        assert one.get("k") == 2
        one.delete("k")
        assert two.exists("k") is False
        assert one.increment("n") == 1 and two.increment("n") == 2 and one.get("n") == 2


def test_same_size_rewrites_are_seen(tmp_path: Path) -> None:
    # Each rewrite is a new inode with the same size: identity must still move.
    path = tmp_path / "same.json"
    with keyshelf.open(url(path)) as one, keyshelf.open(url(path)) as two:
        for value in range(10, 60):
            one.set("k", value)
            assert two.get("k") == value


def test_hand_written_minimal_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "format": FORMAT,
                "format_version": 1,
                "namespaces": {"default": {"debug": {"tag": "b", "value": 1}}},
            }
        )
    )
    with keyshelf.open(url(path)) as kv:
        assert kv.get("debug") is True
        entry = kv.get_entry("debug")
        assert entry is not None and entry.version == 1
        kv.set("timeout", 30)
    assert document(path)["namespaces"]["default"]["timeout"]["value"] == 30


def test_empty_file_is_an_empty_store(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.touch()
    with keyshelf.open(url(path)) as kv:
        assert kv.keys() == []
        assert path.read_bytes() == b""  # opening alone does not write
        kv.set("k", 1)
    assert document(path)["namespaces"]["default"]["k"]["value"] == 1


def test_new_file_created_at_open(tmp_path: Path) -> None:
    path = tmp_path / "new.json"
    keyshelf.open(url(path)).close()
    assert document(path) == {"format": FORMAT, "format_version": 1, "namespaces": {}}
    assert Path(f"{path}.lock").exists()


def test_gzip_by_suffix_and_by_option(tmp_path: Path) -> None:
    for path, options in [
        (tmp_path / "a.json.gz", {}),
        (tmp_path / "b.json", {"compression": "gzip"}),
    ]:
        with keyshelf.open(url(path), **options) as kv:
            kv.set("k", [1, 2, 3])
        assert path.read_bytes()[:2] == b"\x1f\x8b"
        assert document(path)["namespaces"]["default"]["k"]["value"] == [1, 2, 3]
        with keyshelf.open(url(path), **options) as kv:
            assert kv.get("k") == [1, 2, 3]
    with keyshelf.open(url(tmp_path / "c.json") + "?compression=gzip") as kv:
        kv.set("k", 1)
    assert (tmp_path / "c.json").read_bytes()[:2] == b"\x1f\x8b"
    with keyshelf.open(url(tmp_path / "d.json.gz"), compression="none") as kv:
        kv.set("k", 1)
    assert document(tmp_path / "d.json.gz")["namespaces"]["default"]["k"]["value"] == 1
    assert (tmp_path / "d.json.gz").read_bytes()[:1] == b"{"


def test_seed001_config_options(tmp_path: Path) -> None:
    # dataknobs-kv: config={"path": ..., "format": "json", "compression": "gzip"}.
    path = tmp_path / "kv_store.json"
    with keyshelf.open("file://", path=str(path), format="json", compression="gzip") as kv:
        kv.set("k", "v")
    assert gzip.decompress(path.read_bytes())
    with pytest.raises(keyshelf.InvalidURLError, match="JSON only"):
        keyshelf.open(url(path), format="yaml")
    with pytest.raises(keyshelf.InvalidURLError, match="compression"):
        keyshelf.open(url(path), compression="zstd")


def test_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    with keyshelf.open("file://./data/rel.json") as kv:
        kv.set("k", 1)
    assert (tmp_path / "data" / "rel.json").exists()
    with keyshelf.open(f"file://localhost{tmp_path}/data/rel.json") as kv:
        assert kv.get("k") == 1
    with keyshelf.open(f"file://{tmp_path}/data/with%20space.json") as kv:
        kv.set("k", 1)
    assert (tmp_path / "data" / "with space.json").exists()
    for bad in ["file://host/x.json", "file://", f"file://{tmp_path}/"]:
        with pytest.raises(keyshelf.InvalidURLError):
            keyshelf.open(bad)
    with pytest.raises(keyshelf.InvalidURLError, match="Unknown option"):
        keyshelf.open(url(tmp_path / "x.json"), table="t")


def test_async_api(tmp_path: Path) -> None:
    async def main() -> None:
        async with keyshelf.open_async(url(tmp_path / "a.json")) as akv:
            await akv.set("k", {1, 2})
            assert await akv.increment("n", 5) == 5
        async with keyshelf.open_async(url(tmp_path / "a.json")) as akv:
            assert await akv.get("k") == {1, 2}

    asyncio.run(main())


# -- refusals -----------------------------------------------------------------------


def foreign_files(tmp_path: Path) -> dict[str, Path]:
    good = tmp_path / "good.json"
    with keyshelf.open(url(good)) as kv:
        kv.mset({f"k{i}": "x" * 50 for i in range(50)})
    text = good.read_text()
    contents: dict[str, bytes] = {
        "random": os.urandom(4096),
        "text": b"just some notes, not JSON\n" * 20,
        "other-json": json.dumps({"name": "package", "version": "1.0"}).encode(),
        "json-list": b"[1, 2, 3]",
        "newer-version": text.replace('"format_version": 1', '"format_version": 99').encode(),
        "bad-version": text.replace('"format_version": 1', '"format_version": "1"').encode(),
        "truncated": text[: len(text) // 2].encode(),
        "bad-record": text.replace('"tag":"s"', '"tag":5', 1).encode(),
        "bad-key": text.replace('"k1":', '"__k1":', 1).encode(),
        "bad-base64": text.replace('"tag":"s","value":"x', '"tag":"y","bytes":"!x', 1).encode(),
        "sqlite": b"SQLite format 3\x00" + bytes(4080),
        "gzip-garbage": b"\x1f\x8b" + os.urandom(200),
        "gzip-truncated": gzip.compress(text.encode())[:100],
    }
    files = {}
    for name, data in contents.items():
        files[name] = tmp_path / f"{name}.json"
        files[name].write_bytes(data)
    return files


@pytest.mark.parametrize(
    "kind",
    [
        "random",
        "text",
        "other-json",
        "json-list",
        "newer-version",
        "bad-version",
        "truncated",
        "bad-record",
        "bad-key",
        "bad-base64",
        "sqlite",
        "gzip-garbage",
        "gzip-truncated",
    ],
)
@pytest.mark.parametrize("api", ["sync", "async"])
def test_foreign_files_refused_unchanged(tmp_path: Path, kind: str, api: str) -> None:
    path = foreign_files(tmp_path)[kind]
    before = path.read_bytes()
    mode = path.stat().st_mode
    opener = keyshelf.open if api == "sync" else keyshelf.open_async
    with pytest.raises(keyshelf.IncompatibleStoreError) as info:
        opener(url(path))
    assert str(path) in str(info.value)
    if kind == "newer-version":
        assert "version 99" in str(info.value) and "upgrade keyshelf" in str(info.value)
    assert path.read_bytes() == before
    assert path.stat().st_mode == mode
    assert not Path(f"{path}.lock").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_file_replaced_by_garbage_while_open(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    with keyshelf.open(url(path)) as kv:
        kv.set("k", 1)
        path.write_bytes(b"garbage")
        with pytest.raises(keyshelf.IncompatibleStoreError, match=str(path)):
            kv.get("k")
        with pytest.raises(keyshelf.IncompatibleStoreError):
            kv.set("k", 2)
        assert path.read_bytes() == b"garbage"


def test_directory_and_missing_parent(tmp_path: Path) -> None:
    with pytest.raises(keyshelf.IncompatibleStoreError, match="is a directory"):
        keyshelf.open(url(tmp_path))
    missing = tmp_path / "no" / "such" / "store.json"
    with pytest.raises(keyshelf.BackendUnavailableError, match="does not exist"):
        keyshelf.open(url(missing))
    assert not (tmp_path / "no").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_directory_refused_at_open(tmp_path: Path) -> None:
    directory = tmp_path / "ro"
    directory.mkdir()
    directory.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(keyshelf.BackendUnavailableError, match="lock file"):
            keyshelf.open(url(directory / "s.json"))
    finally:
        directory.chmod(stat.S_IRWXU)


def test_file_mode_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "private.json"
    with keyshelf.open(url(path)) as kv:
        kv.set("k", 1)
    path.chmod(0o600)
    with keyshelf.open(url(path)) as kv:
        kv.set("k", 2)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_file_deleted_while_open_is_an_empty_store(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    with keyshelf.open(url(path)) as kv:
        kv.set("k", 1)
        path.unlink()
        assert kv.get("k") is None
        kv.set("j", 2)
        assert kv.keys() == ["j"]
    assert list(document(path)["namespaces"]["default"]) == ["j"]


def test_orphan_temporary_files_are_removed_at_open(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    keyshelf.open(url(path)).close()
    orphan = tmp_path / ".s.json.abc123.tmp"
    orphan.write_text("half a document")
    other = tmp_path / ".other.json.abc123.tmp"
    other.write_text("not ours")
    keyshelf.open(url(path)).close()
    assert not orphan.exists() and other.exists()


def test_failed_write_leaves_the_file_and_the_store_consistent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.json"
    with keyshelf.open(url(path)) as kv:
        kv.set("k", 1)
        before = path.read_bytes()

        def no_space(fd: int, data: Any) -> int:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(file_backend.os, "write", no_space)
        with pytest.raises(keyshelf.BackendError, match="No space left"):
            kv.set("k", 2)
        with pytest.raises(keyshelf.BackendError):
            kv.mset({"a": 1, "b": 2})
        monkeypatch.undo()
        assert path.read_bytes() == before
        assert kv.get("k") == 1 and kv.keys() == ["k"]
        assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []
        kv.set("k", 3)
        assert kv.get("k") == 3


def test_large_file_warns_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(file_backend, "_LARGE", 1000)
    with (
        caplog.at_level(logging.WARNING, logger="keyshelf"),
        keyshelf.open(url(tmp_path / "s.json")) as kv,
    ):
        for index in range(40):
            kv.set(f"key{index}", "x" * 50)
    warnings = [r for r in caplog.records if "meant for small stores" in r.getMessage()]
    assert len(warnings) == 1


def test_backend_holds_one_old_version_open(tmp_path: Path) -> None:
    with keyshelf.open(url(tmp_path / "s.json")) as kv:
        backend = kv.backend
        assert isinstance(backend, FileBackend)
        for value in range(20):
            kv.set("k", value)
        fd_dir = Path(f"/proc/{os.getpid()}/fd")
        if fd_dir.exists():
            targets = [os.readlink(fd) for fd in fd_dir.iterdir() if _readable(fd)]
            assert sum(1 for t in targets if t.startswith(str(tmp_path / "s.json"))) <= 2


def _readable(fd: Path) -> bool:
    try:
        os.readlink(fd)
    except OSError:
        return False
    return True


# -- threads and processes ------------------------------------------------------------


def test_threads_and_two_stores_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    stores = [keyshelf.open(url(path)), keyshelf.open(url(path))]

    def work(kv: Any) -> None:
        for _ in range(100):
            kv.increment("counter")

    threads = [threading.Thread(target=work, args=(stores[i % 2],)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert stores[0].get("counter") == 600 and stores[1].get("counter") == 600
    for kv in stores:
        kv.close()


def _increment_many(path: str, count: int) -> None:
    with keyshelf.open(f"file://{path}") as kv:
        for _ in range(count):
            kv.increment("counter")
            kv.set_metadata("counter", {"pid": os.getpid()})


def test_processes_incrementing_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "p.json")
    keyshelf.open(f"file://{path}").close()
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_increment_many, args=(path, 500)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=240)
        assert worker.exitcode == 0
    with keyshelf.open(f"file://{path}") as kv:
        assert kv.get("counter") == 2000
        entry = kv.get_entry("counter")
        assert entry is not None and entry.version == 4000


_WRITER = textwrap.dedent(
    """
    import sys, keyshelf
    kv = keyshelf.open(sys.argv[1])
    start = int(sys.argv[2])
    for i in range(start, start + 100000):
        kv.set(f"k{i:07d}", {"i": i, "pad": "x" * (1000 + i % 97)})
        print(i, flush=True)
    """
)


def test_kill_9_mid_write_never_tears_the_file(tmp_path: Path) -> None:
    """Kill a writer at random moments: the file always parses and holds every
    acknowledged write, in order (a prefix of the writes, maybe one more)."""
    path = tmp_path / "crash.json"
    store_url = url(path)
    acked = -1
    for round_ in range(6):
        process = subprocess.Popen(
            [sys.executable, "-c", _WRITER, store_url, str(acked + 1)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        deadline = time.monotonic() + 0.3 + 0.15 * round_
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            acked = int(line)
        process.send_signal(signal.SIGKILL)
        for line in process.stdout:  # acknowledgements still in the pipe
            acked = int(line)
        process.wait()
        if not path.exists():  # killed before it opened the store
            continue
        doc = orjson.loads(path.read_bytes())
        keys = sorted(doc["namespaces"].get("default", {}))
        assert keys == [f"k{i:07d}" for i in range(len(keys))]
        assert len(keys) - 1 in (acked, acked + 1)
        acked = len(keys) - 1
        with keyshelf.open(store_url) as kv:
            assert kv.get(f"k{acked:07d}") == {"i": acked, "pad": "x" * (1000 + acked % 97)}
    assert acked > 20
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []
