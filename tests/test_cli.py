"""The key commands in-process: typed values, options, output modes, exit codes, errors."""

from __future__ import annotations

import base64
import json
import math
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

import keyshelf

from .test_cli_support import (  # noqa: F401  (fixtures are used by name)
    invoke,
    no_env_store,
    one_error_line,
    snapshot,
    url_fixture,
)


def stored(url: str, key: str, namespace: str = "default") -> Any:
    with keyshelf.open(url, namespace=namespace) as kv:
        return kv.get(key, KeyError)


# --------------------------------------------------------------------------
# set / get: typed values
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("42", 42),
        ("-3", -3),
        ("true", True),
        ("false", False),
        ("null", None),
        ("3.0", 3.0),
        ("-0.0", -0.0),
        ("1e16", 1e16),
        ('"text"', "text"),
        ('"42"', "42"),
        ('{"a": 1}', {"a": 1}),
        ("[1, 2.5, null]", [1, 2.5, None]),
        ("123456789012345678901234567890", 123456789012345678901234567890),
        ("[18446744073709551616]", [18446744073709551616]),
        ('{"$bytes": "YWI="}', b"ab"),
        ('{"$tuple": [1, "x"]}', (1, "x")),
        ('{"$set": [1, 2]}', {1, 2}),
        ('{"$float": "nan"}', "nan"),
        ('{"$decimal": "1.10"}', Decimal("1.10")),
        (
            '{"$uuid": "12345678-1234-5678-1234-567812345678"}',
            UUID(int=0x12345678123456781234567812345678),
        ),
        ('{"$datetime": "2024-01-02T00:00:00+00:00"}', datetime(2024, 1, 2, tzinfo=UTC)),
        ('{"$map": [["$ref", 1]]}', {"$ref": 1}),
        ('"caf\\u00e9 \\ud83d\\ude00"', "café 😀"),
    ],
)
def test_set_reads_json_literals_with_their_types(url: str, typed: str, expected: Any) -> None:
    result = invoke("set", "k", typed, "--url", url)
    assert result.exit_code == 0, result.output
    assert result.stdout == "OK\n"
    value = stored(url, "k")
    if expected == "nan":
        assert isinstance(value, float) and math.isnan(value)
        return
    assert value == expected
    assert type(value) is type(expected)
    if isinstance(expected, float):
        assert str(value) == str(expected)  # -0.0 keeps its sign


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (42, "42"),
        (True, "true"),
        (None, "null"),
        (3.0, "3.0"),
        ("42", '"42"'),
        (b"\x00\xff", '{"$bytes": "AP8="}'),
        ((1, 2), '{"$tuple": [1, 2]}'),
        (2**70, '{"$int": "1180591620717411303424"}'),
        (float("inf"), '{"$float": "inf"}'),
        (-0.0, "-0.0"),
        ({"a": [1, b"x"]}, '{"a": [1, {"$bytes": "eA=="}]}'),
    ],
)
def test_get_shows_the_type(url: str, value: Any, shown: str) -> None:
    with keyshelf.open(url) as kv:
        kv.set("k", value)
    human = invoke("get", "k", "--url", url)
    assert human.exit_code == 0
    assert human.stdout == shown + "\n"
    machine = invoke("get", "k", "--url", url, "--json")
    assert json.loads(machine.stdout) == json.loads(shown)
    # What get --json prints, set reads back as the same value.
    assert invoke("set", "copy", machine.stdout, "--url", url).exit_code == 0
    copy = stored(url, "copy")
    assert repr(copy) == repr(value) and type(copy) is type(value)


def test_get_indents_large_containers_and_json_stays_one_line(url: str) -> None:
    value = {"name": "Alice Wonderland", "roles": ["admin", "ops"], "address": {"street": "x" * 70}}
    with keyshelf.open(url) as kv:
        kv.set("user", value)
    human = invoke("get", "user", "--url", url).stdout
    assert human.startswith("{\n") and '"roles": ["admin", "ops"]' in human
    assert json.loads(human) == value
    machine = invoke("get", "user", "--url", url, "--json").stdout
    assert machine.count("\n") == 1 and json.loads(machine) == value


def test_get_prints_markup_like_text_verbatim(url: str) -> None:
    invoke("set", "k", "--str", "[bold]not markup[/bold] :smile:", "--url", url)
    assert invoke("get", "k", "--url", url).stdout == '"[bold]not markup[/bold] :smile:"\n'


def test_get_missing_key_exits_1_with_a_note(url: str) -> None:
    invoke("set", "other", "1", "--url", url)  # the store exists; the key does not
    result = invoke("get", "nope", "--url", url)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert one_error_line(result) == "keyshelf: key 'nope' not found"
    assert invoke("get", "nope", "--url", url, "--json").exit_code == 1


def test_get_raw(url: str) -> None:
    with keyshelf.open(url) as kv:
        kv.set("s", "hello\nworld")
        kv.set("b", b"\x00\x01binary")
        kv.set("n", 5)
    assert invoke("get", "--raw", "s", "--url", url).stdout == "hello\nworld\n"
    assert invoke("get", "--raw", "b", "--url", url).stdout_bytes == b"\x00\x01binary"
    assert invoke("get", "--raw", "n", "--url", url).stdout == "5\n"


def test_set_value_formats(url: str) -> None:
    assert invoke("set", "s", "--str", "hello world", "--url", url).exit_code == 0
    assert stored(url, "s") == "hello world"
    assert invoke("set", "s2", "--str", "42", "--url", url).exit_code == 0
    assert stored(url, "s2") == "42"
    assert invoke("set", "h", "--bytes-hex", "00ff10", "--url", url).exit_code == 0
    assert stored(url, "h") == b"\x00\xff\x10"
    b64 = base64.b64encode(b"\x00binary\xff").decode()
    assert invoke("set", "b", "--bytes-b64", b64, "--url", url).exit_code == 0
    assert stored(url, "b") == b"\x00binary\xff"


def test_set_reads_the_value_from_stdin(url: str) -> None:
    assert invoke("set", "k", "--url", url, input='{"a": [1, 2]}\n').exit_code == 0
    assert stored(url, "k") == {"a": [1, 2]}
    assert invoke("set", "t", "--str", "--url", url, input="line\n").exit_code == 0
    assert stored(url, "t") == "line\n"  # --str keeps the text exactly


def test_set_negative_numbers_are_values_not_options(url: str) -> None:
    assert invoke("set", "n", "-3", "--url", url).exit_code == 0
    assert stored(url, "n") == -3
    assert invoke("set", "f", "-2.5", "--ttl", "60", "--url", url).exit_code == 0
    assert stored(url, "f") == -2.5


def test_set_ttl_nx_xx_keep_ttl(url: str) -> None:
    assert invoke("set", "k", "1", "--ttl", "1h", "--url", url).exit_code == 0
    with keyshelf.open(url) as kv:
        assert 3599 < kv.ttl("k") <= 3600.001
    refused = invoke("set", "k", "2", "--nx", "--url", url)
    assert refused.exit_code == 1
    assert refused.stdout == "not set: key 'k' already exists\n"
    assert stored(url, "k") == 1
    assert invoke("set", "k", "2", "--nx", "--url", url, "--json").stdout == "false\n"
    assert invoke("set", "new", "1", "--xx", "--url", url).exit_code == 1
    assert stored(url, "new") is KeyError
    assert invoke("set", "k", "3", "--xx", "--keep-ttl", "--url", url).exit_code == 0
    with keyshelf.open(url) as kv:
        assert kv.get("k") == 3 and kv.ttl("k") is not None
    assert invoke("set", "k", "4", "--url", url, "--json").stdout == "true\n"
    with keyshelf.open(url) as kv:
        assert kv.ttl("k") is None  # a plain set replaces the TTL


@pytest.mark.parametrize(
    ("ttl", "seconds"),
    [("30", 30), ("1.5", 1.5), ("500ms", 0.5), ("2m", 120), ("1h", 3600), ("1d", 86400)],
)
def test_ttl_units(url: str, ttl: str, seconds: float) -> None:
    assert invoke("set", "k", "1", "--ttl", ttl, "--url", url).exit_code == 0
    with keyshelf.open(url) as kv:
        left = kv.ttl("k")
    assert seconds - 1 < left <= seconds + 0.001


# --------------------------------------------------------------------------
# bad input: exit 2, one line, nothing changed
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["set", "__x", "1"], "Keys cannot start with '__'"),
        (["set", "a\tb", "1"], "Key cannot contain newlines, tabs, or null bytes"),
        (["set", "k", "1", "--ttl", "0"], "TTL must be positive"),
        (["set", "k", "1", "--ttl", "-1"], "TTL must be positive"),
        (["set", "k", "1", "--ttl", "abc"], "invalid TTL 'abc'"),
        (["set", "k", "1", "--ttl", "inf"], "TTL"),
        (["set", "k", "hello"], "value 'hello' is not JSON: quote a string"),
        (["set", "k", "{bad json"], "value is not valid JSON"),
        (["set", "k", "[1, 2"], "value is not valid JSON"),
        (["set", "k", "NaN"], "NaN is not JSON"),
        (["set", "k", "1e400"], "out of range"),
        (["set", "k", '{"a": 1, "a": 2}'], "duplicate key 'a'"),
        (["set", "k", '{"$nope": 1}'], "unknown extended JSON type"),
        (["set", "k", "--bytes-hex", "xyz"], "not hexadecimal"),
        (["set", "k", "--bytes-b64", "!!!"], "not standard base64"),
        (["set", "k", "1", "--nx", "--xx"], "nx and xx cannot both be set"),
        (["set", "k", "--tll", "5"], "No such option '--tll' (see 'keyshelf set --help')"),
        (["set"], "Missing argument 'KEY'"),
        (["set", "k", "1", "--namespace", "__ns"], "Namespaces cannot start with '__'"),
        (["get", "__x"], "Keys cannot start with '__'"),
        (["mset", "a", "1", "b"], "expected KEY VALUE pairs"),
        (["mset", "a", "1", "__b", "2"], "__b"),
        (["mset", "a", "1", "a", "2"], "given twice"),
        (["mset", "[1, 2]"], "must be a JSON object"),
        (["incr", "k", "abc"], "invalid amount 'abc'"),
        (["incr", "k", "1", "--by", "2"], "not both"),
        (["expire", "k", "0"], "TTL must be positive"),
        (["expire", "k", "-1"], "TTL must be positive"),
        (["keys", "--limit", "0"], "--limit"),
        (["frobnicate"], "No such command 'frobnicate'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    url: str, args: list[str], message: str
) -> None:
    with keyshelf.open(url) as kv:
        kv.set("k", "before")
        kv.set("counter", 1)
    before = snapshot(url)
    result = invoke(*args, "--url", url) if args != ["frobnicate"] else invoke(*args)
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert line.startswith("keyshelf: error: ")
    assert message in line
    assert result.stdout == ""
    assert snapshot(url) == before


def test_unknown_url_scheme_is_a_usage_error() -> None:
    result = invoke("get", "k", "--url", "nosuch://x")
    assert result.exit_code == 2
    assert "Unknown store URL scheme 'nosuch'" in one_error_line(result)


def test_incr_on_a_string_is_a_usage_error(url: str) -> None:
    invoke("set", "s", '"text"', "--url", url)
    result = invoke("incr", "s", "--url", url)
    assert result.exit_code == 2
    assert "Cannot increment non-numeric value" in one_error_line(result)


def test_incr_overflow_is_a_usage_error(url: str) -> None:
    invoke("set", "n", str(2**63 - 1), "--url", url)
    result = invoke("incr", "n", "--url", url)
    assert result.exit_code == 2
    assert stored(url, "n") == 2**63 - 1


# --------------------------------------------------------------------------
# backend errors: exit 3
# --------------------------------------------------------------------------


def test_a_directory_is_a_backend_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    result = invoke("get", "k", "--url", f"sqlite:///{tmp_path / 'dir.db'}")
    assert result.exit_code == 3
    assert "is a directory" in one_error_line(result)


def test_a_file_that_is_not_a_database_is_a_backend_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    result = invoke("set", "k", "1", "--url", f"sqlite:///{junk}")
    assert result.exit_code == 3
    assert "not an SQLite database" in one_error_line(result)
    assert junk.read_bytes() == b"this is not sqlite" * 100


def test_an_unreachable_server_is_a_backend_error() -> None:
    pytest.importorskip("redis")
    # Port 1 on the loopback address refuses connections at once.
    result = invoke("get", "k", "--url", "redis://127.0.0.1:1/0")
    assert result.exit_code == 3
    assert one_error_line(result).startswith("keyshelf: error: ")


def test_an_unexpected_exception_is_one_line_exit_3(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(keyshelf, "open", boom)
    result = invoke("get", "k")
    assert result.exit_code == 3
    assert "unexpected RuntimeError: boom" in one_error_line(result)
    monkeypatch.setenv("KEYSHELF_DEBUG", "1")
    with pytest.raises(RuntimeError):
        invoke("get", "k")


# --------------------------------------------------------------------------
# the other key commands
# --------------------------------------------------------------------------


def test_delete_prints_the_count(url: str) -> None:
    invoke("mset", "a", "1", "b", "2", "--url", url)
    result = invoke("delete", "a", "b", "missing", "--url", url)
    assert (result.exit_code, result.stdout) == (0, "2\n")
    assert invoke("delete", "a", "--url", url, "--json").stdout == "0\n"


def test_exists(url: str) -> None:
    invoke("set", "k", "null", "--url", url)
    present = invoke("exists", "k", "--url", url)
    assert (present.exit_code, present.stdout) == (0, "true\n")
    absent = invoke("exists", "nope", "--url", url, "--json")
    assert (absent.exit_code, absent.stdout) == (1, "false\n")


def test_ttl_expire_persist(url: str) -> None:
    invoke("set", "k", "1", "--url", url)
    assert invoke("ttl", "k", "--url", url).stdout == "no expiry\n"
    assert invoke("ttl", "k", "--url", url, "--json").stdout == "null\n"
    assert invoke("expire", "k", "90", "--url", url).stdout == "OK\n"
    left = float(invoke("ttl", "k", "--url", url).stdout)
    assert 89 < left <= 90.001
    assert 89 < json.loads(invoke("ttl", "k", "--url", url, "--json").stdout) <= 90.001
    assert invoke("persist", "k", "--url", url).stdout == "OK\n"
    again = invoke("persist", "k", "--url", url, "--json")
    assert (again.exit_code, again.stdout) == (1, "false\n")
    missing = invoke("expire", "nope", "10", "--url", url)
    assert (missing.exit_code, missing.stdout) == (1, "key 'nope' not found\n")
    gone = invoke("ttl", "nope", "--url", url)
    assert gone.exit_code == 1 and one_error_line(gone) == "keyshelf: key 'nope' not found"


def test_incr_decr(url: str) -> None:
    assert invoke("incr", "n", "--url", url).stdout == "1\n"
    assert invoke("incr", "n", "5", "--url", url).stdout == "6\n"
    assert invoke("incr", "n", "--by", "-2", "--url", url).stdout == "4\n"
    assert invoke("decr", "n", "--url", url).stdout == "3\n"
    assert invoke("decr", "n", "-3", "--url", url).stdout == "6\n"
    assert invoke("incr", "n", "0.5", "--url", url, "--json").stdout == "6.5\n"
    assert stored(url, "n") == 6.5
    assert invoke("decr", "x", "2", "--url", url).stdout == "-2\n"


def test_incr_keeps_the_ttl(url: str) -> None:
    invoke("set", "n", "1", "--ttl", "1h", "--url", url)
    invoke("incr", "n", "--url", url)
    with keyshelf.open(url) as kv:
        assert kv.get("n") == 2 and kv.ttl("n") is not None


def test_mget(url: str) -> None:
    invoke("mset", "a", "1", "b", '"x"', "c", '{"$bytes": "eA=="}', "--url", url)
    machine = invoke("mget", "a", "b", "c", "--url", url, "--json")
    assert machine.exit_code == 0
    assert json.loads(machine.stdout) == {"a": 1, "b": "x", "c": {"$bytes": "eA=="}}
    human = invoke("mget", "a", "b", "c", "--url", url)
    assert human.exit_code == 0
    for cell in ("a", "1", '"x"', '{"$bytes": "eA=="}'):
        assert cell in human.stdout
    missing = invoke("mget", "a", "nope", "--url", url)
    assert missing.exit_code == 1 and missing.stdout == ""
    assert one_error_line(missing) == "keyshelf: error: Keys not found: ['nope']"


def test_mset_pairs_and_object(url: str) -> None:
    assert invoke("mset", "a", "1", "b", "true", "--url", url).stdout == "OK\n"
    assert stored(url, "a") == 1 and stored(url, "b") is True
    assert invoke("mset", "--str", "first", "Alice", "n", "42", "--url", url).exit_code == 0
    assert stored(url, "first") == "Alice" and stored(url, "n") == "42"
    obj = '{"x": [1, 2], "y": {"$tuple": [1]}, "z": -1}'
    assert invoke("mset", obj, "--ttl", "10m", "--url", url, "--json").stdout == "true\n"
    assert stored(url, "y") == (1,)
    with keyshelf.open(url) as kv:
        assert 599 < kv.ttl("x") <= 600.001
    assert invoke("mset", "-", "--url", url, input='{"from_stdin": 1}').exit_code == 0
    assert stored(url, "from_stdin") == 1


def test_info(url: str) -> None:
    with keyshelf.open(url) as kv:
        kv.set("k", (1, 2), ttl=60, metadata={"owner": "ops"})
    machine = invoke("info", "k", "--url", url, "--json")
    data = json.loads(machine.stdout)
    assert data["key"] == "k" and data["type"] == "tuple"
    assert data["value"] == {"$tuple": [1, 2]}
    assert data["metadata"] == {"owner": "ops"}
    assert data["version"] == 1 and 59 < data["ttl"] <= 60.001
    assert data["checksum"].startswith("blake2b:")
    human = invoke("info", "k", "--url", url)
    assert human.exit_code == 0
    for text in ("tuple", '{"$tuple": [1, 2]}', "owner", "version"):
        assert text in human.stdout
    assert invoke("info", "nope", "--url", url).exit_code == 1


# --------------------------------------------------------------------------
# common options
# --------------------------------------------------------------------------


def test_common_options_before_or_after_the_command(url: str) -> None:
    assert invoke("--url", url, "--namespace", "t1", "set", "k", "1").exit_code == 0
    assert stored(url, "k", namespace="t1") == 1
    assert stored(url, "k") is KeyError
    # The option after the command wins over the one before it.
    result = invoke("--namespace", "other", "get", "k", "--namespace", "t1", "--url", url)
    assert result.stdout == "1\n"
    assert invoke("--json", "--url", url, "--namespace", "t1", "get", "k").stdout == "1\n"


def test_url_defaults_to_the_environment_then_keyshelf_db(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_url = f"sqlite:///{tmp_path / 'env.db'}"
    assert invoke("set", "k", "1", KEYSHELF_URL=env_url).exit_code == 0
    assert stored(env_url, "k") == 1
    assert invoke("set", "k", "2").exit_code == 0  # no URL anywhere: ./keyshelf.db
    assert stored(str(tmp_path / "keyshelf.db"), "k") == 2


def test_separator_gives_hierarchical_patterns(url: str) -> None:
    invoke("mset", "app.a", "1", "app.b.c", "2", "--url", url)
    assert invoke("keys", "app.*", "--url", url).stdout == "app.a\napp.b.c\n"
    dotted = invoke("keys", "app.*", "--url", url, "--separator", ".")
    assert dotted.stdout == "app.a\n"
    assert invoke("count", "app.**", "--url", url, "--separator", ".").stdout == "2\n"


def test_memory_store_works(tmp_path: Path) -> None:
    # Each process (and each open) of memory:// is a new store: a write works,
    # and a read can only see a new, empty store, so it says so (exit 4)
    # instead of answering "not found".
    result = invoke("mset", "a", "1", "--url", "memory://")
    assert result.exit_code == 0
    read = invoke("get", "a", "--url", "memory://")
    assert read.exit_code == 4
    assert "use memory:// inside 'keyshelf shell'" in one_error_line(read)


def test_no_command_prints_help_and_version() -> None:
    result = invoke()
    assert result.exit_code == 0 and "Commands:" in result.stdout
    version = invoke("--version")
    assert version.exit_code == 0 and keyshelf.__version__ in version.stdout
