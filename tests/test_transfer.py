"""Export and import: the line format, exact round trips, refusals (docs/transfer.md)."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import sqlite3
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

import keyshelf
from keyshelf.transfer import max_line_size

from .conformance.test_codec_plugins import Money, MoneyCodec
from .conftest import BACKENDS, FakeClock
from .test_migrate import assert_same, assert_values_equal, fill, snapshot, store_on


def exported(kv: Any, **options: Any) -> bytes:
    out = io.BytesIO()
    kv.export(out, **options)
    return out.getvalue()


def lines(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines()]


# -- round trips --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["path", "gzip-path", "binary", "text", "pathlike"])
def test_round_trip_is_exact(tmp_path: Path, kind: str) -> None:
    src = keyshelf.open("memory://")
    fill(src)
    expected = snapshot(src)
    dst = keyshelf.open("memory://")
    if kind in ("path", "gzip-path", "pathlike"):
        path = tmp_path / ("out.jsonl.gz" if kind == "gzip-path" else "out.jsonl")
        target: Any = path if kind == "pathlike" else str(path)
        count = src.export(target, all_namespaces=True)
        if kind == "gzip-path":
            assert path.read_bytes()[:2] == b"\x1f\x8b"
        assert dst.import_(target) == count
    elif kind == "binary":
        buffer = io.BytesIO()
        count = src.export(buffer, all_namespaces=True)
        buffer.seek(0)
        assert dst.import_(buffer) == count
    else:
        text = io.StringIO()
        count = src.export(text, all_namespaces=True)
        assert dst.import_(io.StringIO(text.getvalue())) == count
    assert count == sum(len(records) for records in expected.values())
    assert_same(snapshot(dst), expected)  # expiry instants exactly equal
    assert_values_equal(dst, src)


def test_format_lines(tmp_path: Path) -> None:
    kv = keyshelf.open("memory://")
    kv.set("user:1", {"name": "Alice"}, metadata={"owner": "ops"})
    kv.set("session", "abc", ttl=60)
    kv.set("raw", b"\x00")
    kv.namespace("other").set("x", 1)
    rows = lines(exported(kv))
    header, *records, end = rows
    assert header["format"] == "keyshelf.export" and header["format_version"] == 1
    assert header["all_namespaces"] is False and header["namespace"] == "default"
    assert "exported_at" in header
    assert [r["key"] for r in records] == ["raw", "session", "user:1"]
    assert all(r["ns"] == "default" for r in records)
    assert records[0] == {"ns": "default", "key": "raw", "tag": "y", "bytes": "AA=="}
    assert records[1]["tag"] == "s" and records[1]["value"] == "abc"
    assert isinstance(records[1]["expires_at"], int)
    assert records[2] == {
        "ns": "default",
        "key": "user:1",
        "tag": "j",
        "value": {"name": "Alice"},
        "metadata": {"owner": "ops"},
    }
    assert end == {"end": True, "records": 3}
    everything = lines(exported(kv, all_namespaces=True))
    assert everything[0]["all_namespaces"] is True
    assert [r.get("ns") for r in everything[1:-1]] == ["default"] * 3 + ["other"]


def test_one_namespace_export_goes_into_the_importing_namespace() -> None:
    src = keyshelf.open("memory://")
    src.namespace("a").set("k", 1)
    data = exported(src.namespace("a"))
    dst = keyshelf.open("memory://")
    assert dst.namespace("b").import_(io.BytesIO(data)) == 1
    assert dst.list_namespaces() == ["b"] and dst.namespace("b").get("k") == 1
    # An all-namespaces export goes back where it came from, whatever the view.
    dst2 = keyshelf.open("memory://")
    assert dst2.namespace("z").import_(io.BytesIO(exported(src, all_namespaces=True))) == 1
    assert dst2.list_namespaces() == ["a"]


def test_import_overwrites_and_keeps_other_keys() -> None:
    src = keyshelf.open("memory://")
    src.set("k", "new", metadata={"m": 2})
    dst = keyshelf.open("memory://")
    dst.set("k", "old", ttl=100, metadata={"m": 1, "x": 0})
    dst.set("other", 1)
    dst.import_(io.BytesIO(exported(src)))
    assert dst.get("k") == "new" and dst.ttl("k") is None
    assert dst.get_metadata("k") == {"m": 2}
    assert dst.get("other") == 1
    entry = dst.get_entry("k")
    assert entry is not None and entry.version == 2


def test_expired_keys_skipped_on_export_and_on_import() -> None:
    clock = FakeClock()
    kv = keyshelf.open("memory://", clock=clock)
    kv.set("gone", 1, ttl=1)
    kv.set("later", 2, ttl=10)
    kv.set("forever", 3)
    clock.advance(2)
    data = exported(kv)
    assert [r["key"] for r in lines(data)[1:-1]] == ["forever", "later"]
    clock.advance(10)
    dst = keyshelf.open("memory://", clock=clock)
    assert dst.import_(io.BytesIO(data)) == 1
    assert dst.keys() == ["forever"]


def test_progress() -> None:
    kv = keyshelf.open("memory://")
    kv.mset({f"k{i:02d}": i for i in range(25)})
    calls: list[tuple[int, int | None]] = []
    out = io.BytesIO()
    assert kv.export(out, batch_size=10, progress=lambda *a: calls.append(a)) == 25
    assert calls == [(0, 25), (10, 25), (20, 25), (25, 25)]
    calls.clear()
    out.seek(0)
    dst = keyshelf.open("memory://")
    assert dst.import_(out, batch_size=10, progress=lambda *a: calls.append(a)) == 25
    assert calls == [(0, 25), (10, 25), (20, 25), (25, 25)]


def test_custom_and_pickle_tags_travel_untouched() -> None:
    src = keyshelf.open("memory://", codec="pickle")
    src.set("p", 1 + 2j)  # refused by the typed codec, so pickled
    data = exported(src)
    assert lines(data)[1]["tag"] == "p"
    # Import never unpickles. A default-codec store could never read the
    # record back, so it takes it only when asked to carry it on opaquely.
    plain = keyshelf.open("memory://")
    with pytest.raises(keyshelf.ExportFormatError, match=r"line 2: .*pickle.*opaque=True"):
        plain.import_(io.BytesIO(data))
    assert plain.keys() == []
    assert plain.import_(io.BytesIO(data), opaque=True) == 1
    dst = keyshelf.open("memory://", codec="pickle")
    dst.import_(io.BytesIO(exported(plain)))
    assert dst.get("p") == 1 + 2j


def test_non_seekable_stream_is_spooled() -> None:
    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

        def readinto(self, buffer: Any) -> int:
            chunk = self._inner.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    src = keyshelf.open("memory://")
    fill(src)
    dst = keyshelf.open("memory://")
    dst.import_(io.BufferedReader(Pipe(exported(src, all_namespaces=True))))
    assert_same(snapshot(dst), snapshot(src))


def test_export_and_import_async(tmp_path: Path) -> None:
    async def main() -> None:
        async with keyshelf.open_async("memory://") as src:
            await src.set("k", {1, 2}, ttl=60, metadata={"m": (1,)})
            assert await src.export(tmp_path / "a.jsonl.gz") == 1
        async with keyshelf.open_async(f"file://{tmp_path / 's.json'}") as dst:
            assert await dst.import_(tmp_path / "a.jsonl.gz") == 1
            assert await dst.get("k") == {1, 2}
            assert await dst.get_metadata("k") == {"m": (1,)}

    asyncio.run(main())


@pytest.mark.parametrize("name", [name for name in BACKENDS if "+" not in name])
def test_readable_by_every_backend(name: str, tmp_path: Path) -> None:
    src = keyshelf.open("memory://")
    fill(src)
    data = exported(src, all_namespaces=True)
    with store_on(name, tmp_path, "dst") as dst:
        assert dst.import_(io.BytesIO(data)) == len(lines(data)) - 2
        assert_same(snapshot(dst), snapshot(src), tolerance=1.0)
        again = keyshelf.open("memory://")
        again.import_(io.BytesIO(exported(dst, all_namespaces=True)))
        assert_same(snapshot(again), snapshot(src), tolerance=1.0)


# -- refusals: all or nothing -----------------------------------------------------------


def corrupt(data: bytes, kind: str) -> tuple[bytes, int]:
    """A damaged copy of an export and the line the error must name."""
    rows = data.split(b"\n")  # the last item is "" (final newline)
    n = len(rows) - 1  # lines
    if kind == "bad-json":
        rows[3] = rows[3][:-5] + b"]]]"
        return b"\n".join(rows), 4
    if kind == "cut-mid-line":
        cut = data.rfind(b"\n", 0, len(data) - 1) + 1  # start of the end line
        cut = data.rfind(b"\n", 0, cut - 1) + 1  # start of the last record
        return data[: cut + 10], n - 1
    if kind == "cut-at-line":
        return b"\n".join(rows[: n - 1]) + b"\n", n
    if kind == "wrong-count":
        rows[n - 1] = b'{"end":true,"records":2}'
        return b"\n".join(rows), n
    if kind == "after-end":
        return data + b'{"ns":"default","key":"x","tag":"i","value":1}\n', n + 1
    if kind == "no-header":
        return b"\n".join(rows[1:]), 1
    if kind == "newer-version":
        rows[0] = rows[0].replace(b'"format_version":1', b'"format_version":7')
        return b"\n".join(rows), 1
    if kind == "empty":
        return b"", 1
    k02 = b'"key":"k02","tag":"i","value":2'
    replacements = {
        "bad-key": (b'"key":"k02"', b'"key":"__k02"'),
        "bad-namespace": (b'"ns":"default","key":"k02"', b'"ns":"a\\nb","key":"k02"'),
        "bad-int": (k02, b'"key":"k02","tag":"i","value":"2"'),
        "bad-tag": (k02, b'"key":"k02","tag":"","value":2'),
        "bad-ext": (k02, b'"key":"k02","tag":"x","value":{"$set":[[1]]}'),
        "bad-base64": (k02, b'"key":"k02","tag":"y","bytes":"@@"'),
        "bad-expiry": (k02, k02 + b',"expires_at":-5'),
        "bad-metadata": (k02, k02 + b',"metadata":[1]'),
        "too-large": (k02, b'"key":"k02","tag":"s","value":"' + b"x" * 200 + b'"'),
        "not-object": (b'{"ns":"default",' + k02 + b"}", b"[1, 2]"),
    }
    old, new = replacements[kind]
    assert old in data
    return data.replace(old, new), 4


KINDS = [
    "bad-json",
    "cut-mid-line",
    "cut-at-line",
    "wrong-count",
    "after-end",
    "no-header",
    "newer-version",
    "empty",
    "bad-key",
    "bad-namespace",
    "bad-int",
    "bad-tag",
    "bad-ext",
    "bad-base64",
    "bad-expiry",
    "bad-metadata",
    "too-large",
    "not-object",
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("backend", ["memory", "sqlite", "file"])
def test_corrupt_line_is_named_and_nothing_is_written(
    kind: str, backend: str, tmp_path: Path
) -> None:
    src = keyshelf.open("memory://")
    src.mset({f"k{i:02d}": i for i in range(10)})
    damaged, line = corrupt(exported(src), kind)
    with store_on(backend, tmp_path, "dst", max_value_size=100) as dst:
        dst.set("k05", "before")
        before = snapshot(dst)
        path = tmp_path / "damaged.jsonl"
        path.write_bytes(damaged)
        with pytest.raises(keyshelf.ExportFormatError) as info:
            dst.import_(path, batch_size=2)
        assert info.value.line == line
        assert f"line {line}:" in str(info.value) and str(path) in str(info.value)
        assert isinstance(info.value, ValueError)
        assert snapshot(dst) == before


def test_error_messages_say_what_is_wrong(tmp_path: Path) -> None:
    src = keyshelf.open("memory://")
    src.mset({f"k{i:02d}": i for i in range(10)})
    data = exported(src)
    dst = keyshelf.open("memory://")
    messages = {}
    for kind in ("cut-mid-line", "cut-at-line", "newer-version", "bad-key", "wrong-count"):
        damaged, _ = corrupt(data, kind)
        with pytest.raises(keyshelf.ExportFormatError) as info:
            dst.import_(io.BytesIO(damaged))
        messages[kind] = str(info.value)
    assert "truncated?" in messages["cut-mid-line"]
    assert "without its end line" in messages["cut-at-line"]
    assert "upgrade keyshelf" in messages["newer-version"]
    assert "Keys cannot start with '__'" in messages["bad-key"]
    assert "counts 2 records, but the export holds 10" in messages["wrong-count"]


def test_truncated_gzip_is_named(tmp_path: Path) -> None:
    src = keyshelf.open("memory://")
    src.mset({f"key{i:04d}": "x" * 40 for i in range(500)})
    path = tmp_path / "e.jsonl.gz"
    src.export(path)
    path.write_bytes(path.read_bytes()[:-400])
    dst = keyshelf.open("memory://")
    with pytest.raises(keyshelf.ExportFormatError, match=r"line \d+: truncated"):
        dst.import_(path)
    assert dst.keys() == []


class FailingWrites:
    """Lets ``ok`` put_records calls through, then fails like a lost connection."""

    def __init__(self, inner: Any, ok: int) -> None:
        self.inner = inner
        self.ok = ok

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put_records(self, *args: Any) -> None:
        if self.ok == 0:
            raise keyshelf.BackendUnavailableError("connection lost")
        self.ok -= 1
        self.inner.put_records(*args)


def test_backend_failure_mid_import_leaves_whole_batches_in_file_order(tmp_path: Path) -> None:
    src = keyshelf.open("memory://")
    src.mset({f"k{i:02d}": i for i in range(10)})
    data = exported(src)
    dst = keyshelf.open(tmp_path / "t.db")
    backend = dst._backend
    dst._backend = FailingWrites(backend, ok=2)
    with pytest.raises(keyshelf.BackendUnavailableError):
        dst.import_(io.BytesIO(data), batch_size=3)
    assert dst.keys() == ["k00", "k01", "k02", "k03", "k04", "k05"]
    # Importing again completes the job.
    dst._backend = backend
    assert dst.import_(io.BytesIO(data), batch_size=3) == 10
    assert dst.dump() == src.dump()


class FailingReads:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def scan_records(self, *args: Any) -> Any:
        self.calls += 1
        if self.calls > 1:
            raise keyshelf.BackendUnavailableError("connection lost")
        return self.inner.scan_records(*args)


def test_failed_export_leaves_no_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    kv = keyshelf.open("memory://")
    kv.mset({f"k{i}": i for i in range(10)})
    path = tmp_path / "backup.jsonl"
    path.write_bytes(b"previous backup\n")
    kv._backend = FailingReads(kv._backend)
    with pytest.raises(keyshelf.BackendUnavailableError):
        kv.export(path, batch_size=3)
    assert path.read_bytes() == b"previous backup\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup.jsonl"]
    with pytest.raises(keyshelf.InvalidArgumentError, match="does not exist"):
        kv.export(tmp_path / "missing" / "x.jsonl")


def test_bad_arguments(tmp_path: Path) -> None:
    kv = keyshelf.open("memory://")
    with pytest.raises(keyshelf.InvalidArgumentError):
        kv.export(42)  # type: ignore[arg-type]
    with pytest.raises(keyshelf.InvalidArgumentError):
        kv.import_(42)  # type: ignore[arg-type]
    with pytest.raises(keyshelf.InvalidArgumentError, match="batch_size"):
        kv.export(io.BytesIO(), batch_size=0)
    with pytest.raises(keyshelf.InvalidArgumentError, match="Cannot read"):
        kv.import_(tmp_path / "missing.jsonl")


def test_hand_written_import_with_iso_expiry(tmp_path: Path) -> None:
    path = tmp_path / "seed.jsonl"
    path.write_text(
        "\n".join(
            [
                '{"format":"keyshelf.export","format_version":1}',
                '{"key":"feature:dark","tag":"b","value":1}',
                '{"key":"banner","tag":"s","value":"hi","expires_at":"2999-01-01T00:00:00Z"}',
                "",
                '{"end":true,"records":2}',
            ]
        )
    )
    kv = keyshelf.open("memory://")
    assert kv.import_(path) == 2
    assert kv.get("feature:dark") is True
    entry = kv.get_entry("banner")
    assert entry is not None and entry.expires_at is not None
    assert entry.expires_at.year == 2999


def test_gzip_detected_whatever_the_name(tmp_path: Path) -> None:
    kv = keyshelf.open("memory://")
    kv.set("k", 1)
    path = tmp_path / "backup.data"
    path.write_bytes(gzip.compress(exported(kv)))
    dst = keyshelf.open("memory://")
    assert dst.import_(path) == 1


# -- line length ------------------------------------------------------------------


def _refused(api: str, source: Any, max_value_size: int) -> tuple[keyshelf.ExportFormatError, int]:
    """Import ``source``, expecting a refusal; the error and the traced memory peak."""
    tracemalloc.start()
    try:
        if api == "sync":
            kv = keyshelf.open("memory://", max_value_size=max_value_size)
            kv.set("before", 1)
            with pytest.raises(keyshelf.ExportFormatError) as info:
                kv.import_(source)
            after = kv.dump()
        else:

            async def run() -> tuple[Any, dict[str, Any]]:
                akv = keyshelf.open_async("memory://", max_value_size=max_value_size)
                await akv.set("before", 1)
                with pytest.raises(keyshelf.ExportFormatError) as info:
                    await akv.import_(source)
                after = await akv.dump()
                await akv.aclose()
                return info, after

            info, after = asyncio.run(run())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert after == {"before": 1}
    return info.value, peak


HEADER = b'{"format":"keyshelf.export","format_version":1}\n'


@pytest.mark.parametrize("api", ["sync", "async"])
@pytest.mark.parametrize("kind", ["path", "stream"])
def test_a_gzip_bomb_line_is_refused_in_bounded_memory(api: str, kind: str, tmp_path: Path) -> None:
    # 64 MiB of one line in ~64 KiB of gzip; the store takes values up to 1 MiB.
    path = tmp_path / "bomb.jsonl.gz"
    with gzip.open(path, "wb", compresslevel=9) as packed:
        packed.write(HEADER + b'{"key":"k","tag":"s","value":"')
        block = b"a" * (1 << 20)
        for _ in range(64):
            packed.write(block)
        packed.write(b'"}\n{"end":true,"records":1}\n')
    assert path.stat().st_size < 1 << 20
    limit = max_line_size(1 << 20)
    if kind == "path":
        error, peak = _refused(api, path, 1 << 20)
    else:
        with gzip.open(path, "rb") as stream:
            error, peak = _refused(api, stream, 1 << 20)
    assert error.line == 2
    assert f"line 2: longer than {limit} bytes" in str(error)
    # At most the limit and a few read buffers, never the 64 MiB line.
    assert peak < limit + (4 << 20)


@pytest.mark.parametrize("api", ["sync", "async"])
@pytest.mark.parametrize("kind", ["path", "stream"])
def test_dev_zero_is_refused_at_once(api: str, kind: str) -> None:
    # With the default max_value_size: the first chunk already cannot be JSON.
    if kind == "path":
        error, peak = _refused(api, "/dev/zero", 64 << 20)
    else:
        with open("/dev/zero", "rb") as stream:
            error, peak = _refused(api, stream, 64 << 20)
    assert error.line == 1
    assert "/dev/zero: line 1: not valid JSON" in str(error) or "line 1: not valid JSON" in str(
        error
    )
    assert peak < 4 << 20


class EndlessRecord(io.RawIOBase):
    """A stream that starts a record and never ends it."""

    def __init__(self) -> None:
        self._head = HEADER + b'{"key":"k","tag":"s","value":"'

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = len(buffer)
        chunk, self._head = self._head[:size], self._head[size:]
        chunk += b"a" * (size - len(chunk))
        buffer[:size] = chunk
        return size


@pytest.mark.parametrize("api", ["sync", "async"])
def test_an_endless_line_is_refused_in_bounded_memory(api: str) -> None:
    limit = max_line_size(1 << 20)
    error, peak = _refused(api, io.BufferedReader(EndlessRecord()), 1 << 20)
    assert error.line == 2 and "longer than" in str(error)
    assert peak < limit + (4 << 20)


def test_the_longest_records_are_accepted() -> None:
    """The bound is sound: the worst JSON expansion of a maximal record fits."""
    size = 1000
    src = keyshelf.open("memory://", max_value_size=size)
    key = "\U0001f680" * 255  # 4 bytes of UTF-8 each
    src.set(key, "\x01" * size, metadata={"m": "\x01" * (size // 6 - 10)})
    src.set("bytes", b"\xff" * size)
    data = exported(src)
    longest = max(len(line) + 1 for line in data.splitlines())
    assert longest > 6 * size  # every control character took 6 bytes
    assert longest <= max_line_size(size)
    # Hand-written escapes are longer still: the key as surrogate-pair escapes.
    escaped = data.replace(json.dumps(key, ensure_ascii=False).encode(), json.dumps(key).encode())
    assert len(escaped) > len(data)
    for source in (data, escaped):
        dst = keyshelf.open("memory://", max_value_size=size)
        assert dst.import_(io.BytesIO(source)) == 2
        assert dst.get(key) == "\x01" * size and dst.get("bytes") == b"\xff" * size


def test_export_refuses_a_record_that_import_could_not_read(tmp_path: Path) -> None:
    # Metadata has no limit of its own; a record line longer than import reads
    # (only possible with metadata far above max_value_size) is refused.
    kv = keyshelf.open("memory://", max_value_size=10)
    kv.set("k", 1, metadata={"m": "x" * (max_line_size(10) + 1)})
    path = tmp_path / "out.jsonl"
    with pytest.raises(keyshelf.ValueTooLargeError, match=r"'k'.*metadata"):
        kv.export(path)
    assert not path.exists()


# -- records this store's codec cannot decode ----------------------------------------


def test_a_custom_tag_is_accepted_by_the_codec_that_reads_it() -> None:
    src = keyshelf.open("memory://", codec=MoneyCodec)
    src.set("price", Money(995, "EUR"))
    src.set("plain", 1)
    data = exported(src)
    same = keyshelf.open("memory://", codec=MoneyCodec)
    assert same.import_(io.BytesIO(data)) == 2
    assert same.get("price") == Money(995, "EUR")
    plain = keyshelf.open("memory://")
    with pytest.raises(keyshelf.ExportFormatError, match=r"line 3: .*tag 'money'.*opaque=True"):
        plain.import_(io.BytesIO(data))
    assert plain.keys() == []
    assert plain.import_(io.BytesIO(data), opaque=True) == 2
    with pytest.warns(keyshelf.UndecodableValueWarning, match="'price'"):
        assert plain.dump() == {"plain": 1}
    # Carried on opaquely, it is still the codec's value at the end of the trip.
    assert same.import_(io.BytesIO(exported(plain))) == 2
    assert same.get("price") == Money(995, "EUR")


def test_a_record_planted_in_sqlite_never_breaks_listings(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with keyshelf.open(path) as kv:
        kv.mset({"a": 1, "b": 2, "c": 3})
    conn = sqlite3.connect(path)
    conn.execute("UPDATE keyshelf SET type = 'zz' WHERE key = 'b'")
    conn.commit()
    conn.close()
    with keyshelf.open(path) as kv:
        with pytest.warns(keyshelf.UndecodableValueWarning, match=r"'b'.*tag 'zz'"):
            assert kv.dump() == {"a": 1, "c": 3}
        with pytest.warns(keyshelf.UndecodableValueWarning):
            assert kv.get_pattern("*") == {"a": 1, "c": 3}
        with pytest.raises(keyshelf.SerializationError, match="Unknown value tag 'zz'"):
            kv.get("b")
        assert kv.keys() == ["a", "b", "c"]
