"""docs/transfer.md on every backend and API: export -> import round trips, streaming primitives."""

from __future__ import annotations

import io
from datetime import date
from typing import Any

import pytest

import keyshelf
from keyshelf.patterns import compile_pattern
from keyshelf.records import Write


def test_export_import_round_trip(kv: Any) -> None:
    kv.set("int", 1)
    kv.set("float", 1.0)
    kv.set("bool", True)
    kv.set("tuple", (1, b"x"), metadata={"when": date(2024, 1, 1)})
    kv.set("session", {"user": 1}, ttl=300, metadata={"ip": "::1"})
    kv.namespace("other").set("k", {1, 2})
    entries = {key: kv.get_entry(key) for key in kv.keys()}
    out = io.BytesIO()
    assert kv.export(out, all_namespaces=True) == 6
    assert kv.clear() == 5 and kv.clear_namespace("other") == 1
    out.seek(0)
    assert kv.import_(out) == 6
    assert kv.namespace("other").get("k") == {1, 2}
    for key, before in entries.items():
        after = kv.get_entry(key)
        assert after is not None and before is not None
        assert type(after.value) is type(before.value) and after.checksum == before.checksum
        assert after.metadata == before.metadata
        assert (after.expires_at is None) == (before.expires_at is None)
        if before.expires_at is not None:
            assert after.expires_at is not None
            assert abs((after.expires_at - before.expires_at).total_seconds()) < 1


def test_one_namespace_import_lands_in_the_store_namespace(kv: Any) -> None:
    kv.namespace("a").mset({"x": 1, "y": 2})
    out = io.StringIO()
    assert kv.namespace("a").export(out) == 2
    assert kv.namespace("b").import_(io.StringIO(out.getvalue())) == 2
    assert kv.namespace("b").dump() == {"x": 1, "y": 2}


def test_corrupt_import_writes_nothing(kv: Any) -> None:
    kv.mset({"a": 1, "b": 2})
    data = io.BytesIO()
    kv.export(data)
    damaged = data.getvalue().replace(b'"key":"b"', b'"key":"__b"').replace(b":1}", b":10}")
    kv.set("a", "before")
    with pytest.raises(keyshelf.ExportFormatError, match="line 3"):
        kv.import_(io.BytesIO(damaged))
    assert kv.dump() == {"a": "before", "b": 2}


def _backend_call(kv: Any, name: str, *args: Any) -> Any:
    """Call a backend primitive through either API."""
    backend = kv.backend
    result = getattr(backend, name)(*args)
    if kv.__class__.__name__ == "AsyncDriver":
        return kv._loop.run_until_complete(result)
    return result


def test_scan_records_and_put_records_primitives(kv: Any, clock: Any) -> None:
    kv.set("a", 1, metadata={"m": 1})
    kv.set("b", "two", ttl=100)
    kv.set("c", None)
    now = int(clock() * 1000)
    first = _backend_call(kv, "scan_records", "default", now, None, 2)
    assert [key for key, _ in first] == ["a", "b"]
    rest = _backend_call(kv, "scan_records", "default", now, "b", 2)
    assert [key for key, _ in rest] == ["c"]
    record = first[1][1]
    assert record.tag == "s" and record.expires_at is not None and record.version == 1
    writes = [("a", Write("i", 5, None, None)), ("d", Write("s", "new", now + 50_000, b'j{"x":1}'))]
    _backend_call(kv, "put_records", "default", writes, now)
    assert kv.get("a") == 5 and kv.get_metadata("a") == {}
    assert kv.get("d") == "new" and kv.get_metadata("d") == {"x": 1}
    assert 0 < (kv.ttl("d") or 0) <= 50.001
    entry = kv.get_entry("a")
    assert entry is not None and entry.version == 2
    matcher = compile_pattern("*")
    assert _backend_call(kv, "count", "default", matcher, now) == 4


# -- records this store's codec cannot decode --------------------------------------

_HEADER = b'{"format":"keyshelf.export","format_version":1}\n'
_GOOD = b'{"key":"a","tag":"s","value":"x"}\n'
# 1+2j pickled (protocol 5): only the pickle codec reads it, and nothing here does.
_PICKLE = (
    b'{"key":"p","tag":"p","bytes":"gAWVLQAAAAAAAACMCGJ1aWx0aW5zlIwHY29tcGxleJSTlEc/8AAAAAAAAEdA'
    b'AAAAAAAAAIaUUpQu"}\n'
)
_UNKNOWN = b'{"key":"z","tag":"zz","value":"payload"}\n'
_END = b'{"end":true,"records":2}\n'


@pytest.mark.parametrize(("record", "why"), [(_UNKNOWN, "tag 'zz'"), (_PICKLE, "pickle")])
def test_undecodable_record_is_refused_at_import(kv: Any, record: bytes, why: str) -> None:
    """All or nothing: the line is named and nothing is written."""
    kv.set("a", "before")
    with pytest.raises(keyshelf.ExportFormatError, match=f"line 3: .*{why}.*opaque=True") as info:
        kv.import_(io.BytesIO(_HEADER + _GOOD + record + _END))
    assert info.value.line == 3
    assert kv.keys() == ["a"] and kv.get("a") == "before"


def test_opaque_records_never_break_listings_of_other_keys(kv: Any) -> None:
    kv.set("b", 2)
    data = _HEADER + _GOOD + _PICKLE + _UNKNOWN + _END.replace(b"2", b"3")
    assert kv.import_(io.BytesIO(data), opaque=True) == 3
    # The keys are there: listings of keys count them ...
    assert kv.keys() == ["a", "b", "p", "z"]
    assert kv.key_count() == kv.size() == 4
    # ... listings of values leave them out, with a warning naming each.
    warning = keyshelf.UndecodableValueWarning
    with pytest.warns(warning) as caught:
        assert kv.dump() == {"a": "x", "b": 2}
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2
    assert "key 'p'" in messages[0] and "Refusing to unpickle" in messages[0]
    assert "key 'z'" in messages[1] and "tag 'zz'" in messages[1]
    with pytest.warns(warning):
        assert kv.values() == ["x", 2]
    with pytest.warns(warning):
        assert kv.get_pattern("*") == {"a": "x", "b": 2}
    with pytest.warns(warning):
        assert list(kv.iter_items()) == [("a", "x"), ("b", 2)]
    with pytest.warns(warning):
        assert list(kv.iter_items(batch_size=1)) == [("a", "x"), ("b", 2)]
    # Reading such a key by name is a clear error; the other keys read as ever.
    ns = kv.namespace_name
    with pytest.raises(keyshelf.SerializationError, match="Unknown value tag 'zz'") as info:
        kv.get("z")
    assert f"key 'z' in namespace {ns!r}" in str(info.value)
    with pytest.raises(keyshelf.SerializationError, match="Refusing to unpickle") as info:
        kv.get("p")
    assert f"key 'p' in namespace {ns!r}" in str(info.value)
    with pytest.raises(keyshelf.SerializationError, match="key 'z' in namespace"):
        kv.get_many(["a", "z"])
    with pytest.raises(keyshelf.SerializationError, match="key 'z' in namespace"):
        kv.mget(["z"])
    assert kv.get("a") == "x" and kv.get_many(["a", "b"]) == {"a": "x", "b": 2}
    # They travel on untouched (export never decodes), and can be deleted.
    out = io.BytesIO()
    assert kv.export(out) == 4
    assert b'"tag":"zz","value":"payload"' in out.getvalue()
    assert kv.delete("z", "p") == 2
    assert kv.dump() == {"a": "x", "b": 2}
