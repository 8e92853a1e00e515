"""Command-line mistakes that must neither create a store nor surprise.

- Commands that cannot add a key open with ``create=False``: a missing store
  is one line on stderr, exit 4, and nothing is created.
- Arguments are checked before the store is opened: bad input creates nothing.
- ``--json`` prints one line per document, for every command.
- Numbers that cannot be read exactly are usage errors (exit 2), and an empty
  ``--separator`` is refused.
- Errors inside ``keyshelf shell`` point to the shell's ``help``.
- ``keys`` and ``count`` without a pattern list every key, whatever the dialect.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import keyshelf

from .test_cli_support import (  # noqa: F401  (fixtures are used by name)
    invoke,
    no_env_store,
    one_error_line,
    snapshot,
    url_fixture,
)

HUGE = "1" + "0" * 5000  # beyond Python's 4300-digit limit for int(str)

# Every command that cannot add a key, with arguments that would otherwise work.
NEVER_CREATE = [
    ["get", "k"],
    ["exists", "k"],
    ["ttl", "k"],
    ["info", "k"],
    ["mget", "a", "b"],
    ["keys"],
    ["keys", "user:*"],
    ["count"],
    ["count", "user:*"],
    ["stats"],
    ["namespaces"],
    ["export", "backup.jsonl"],
    ["export", "-"],
    ["migrate", "--to", "target.db"],
    ["delete", "k"],
    ["expire", "k", "10"],
    ["persist", "k"],
    ["cleanup"],
    ["clear-namespace", "tenant1", "--yes"],
]


def files(where: Path) -> list[str]:
    return sorted(p.name for p in where.iterdir())


# --------------------------------------------------------------------------
# a missing store: exit 4, nothing created
# --------------------------------------------------------------------------


@pytest.mark.parametrize("args", NEVER_CREATE, ids=" ".join)
def test_commands_that_cannot_add_a_key_never_create_a_store(
    tmp_path: Path, args: list[str]
) -> None:
    typo = invoke(*args, "--url", "app-typo.db")
    assert typo.exit_code == 4
    line = one_error_line(typo)
    assert line.startswith("keyshelf: error: no store at 'app-typo.db'")
    assert typo.stdout == ""
    # No URL at all: the default ./keyshelf.db is not created either.
    default = invoke(*args)
    assert default.exit_code == 4
    assert "no store at 'sqlite:///keyshelf.db'" in one_error_line(default)
    assert files(tmp_path) == []


@pytest.mark.parametrize("args", NEVER_CREATE, ids=" ".join)
def test_they_still_work_on_an_existing_store(url: str, args: list[str]) -> None:
    assert invoke("mset", "a", "1", "b", "2", "k", "3", "--url", url).exit_code == 0
    result = invoke(*args, "--url", url)
    assert result.exit_code in (0, 1), result.output  # 1: e.g. persist of a key without TTL


def test_commands_that_add_keys_create_the_store(tmp_path: Path) -> None:
    for args in (["set", "k", "1"], ["mset", "a", "1"], ["incr", "n"], ["decr", "n"]):
        target = tmp_path / f"{args[0]}.db"
        assert invoke(*args, "--url", str(target)).exit_code == 0
        assert target.exists()
    export = tmp_path / "e.jsonl"
    assert invoke("export", str(export), "--url", str(tmp_path / "set.db")).exit_code == 0
    assert invoke("import", str(export), "--url", str(tmp_path / "new.db")).exit_code == 0
    assert (tmp_path / "new.db").exists()
    migrated = invoke("migrate", "--url", str(tmp_path / "set.db"), "--to", "moved.db")
    assert migrated.exit_code == 0 and (tmp_path / "moved.db").exists()


def test_a_missing_store_in_a_real_process(tmp_path: Path) -> None:
    # The scenario from a bug report: a typo in --url exported 0 keys, exit 0,
    # and left the typo'd file behind.
    result = subprocess.run(
        [sys.executable, "-m", "keyshelf", "export", "backup.jsonl", "--url", "app-typo.db"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 4
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "no store at 'app-typo.db'" in result.stderr
    assert files(tmp_path) == []


def test_memory_reads_say_why_they_cannot_work() -> None:
    result = invoke("keys", "--url", "memory://")
    assert result.exit_code == 4
    assert "use memory:// inside 'keyshelf shell'" in one_error_line(result)


def test_a_shell_line_with_a_missing_url_fails_and_the_shell_goes_on(tmp_path: Path) -> None:
    result = invoke(
        "shell",
        "--url",
        "memory://",
        input="set k 1\nget k --url typo.db\nget k\n",
    )
    assert result.exit_code == 0
    assert result.stdout.splitlines() == ["OK", "1"]
    assert "no store at 'typo.db'" in one_error_line(result)
    assert files(tmp_path) == []


@pytest.mark.parametrize(
    "args",
    [
        ["set", "__x", "1"],
        ["set", "k", "hello"],
        ["set", "k", "1", "--ttl", "0"],
        ["set", "k", "1", "--ttl", "inf"],
        ["set", "k", "1", "--namespace", "__ns"],
        ["set", "k", HUGE],
        ["mset", "a", "1", "__b", "2"],
        ["mset", '{"a": 1, "__b": 2}'],
        ["incr", "__n"],
        ["incr", "n", "1e400"],
        ["get", "__x"],
        ["delete", "ok", "__x"],
        ["expire", "k", "0"],
        ["clear-namespace", "__x", "--yes"],
    ],
    ids=lambda a: " ".join(a)[:40],
)
def test_bad_arguments_are_refused_before_the_store_is_opened(
    tmp_path: Path, args: list[str]
) -> None:
    result = invoke(*args, "--url", "new.db")
    assert result.exit_code == 2, result.output
    one_error_line(result)
    assert files(tmp_path) == []


# --------------------------------------------------------------------------
# --json: one line per document
# --------------------------------------------------------------------------


def json_commands(tmp_path: Path) -> list[list[str]]:
    return [
        ["set", "x", "[1, 2]"],
        ["set", "x", "1", "--nx"],  # false, exit 1
        ["get", "doc"],
        ["exists", "doc"],
        ["ttl", "doc"],
        ["ttl", "t"],
        ["expire", "doc", "1h"],
        ["persist", "doc"],
        ["incr", "n"],
        ["decr", "n", "0.5"],
        ["mget", "doc", "n"],
        ["mset", "p", "1", "q", '{"a": [1, {"b": 2}]}'],
        ["info", "doc"],
        ["keys"],
        ["keys", "k*"],
        ["keys", "nothing*"],
        ["keys", "--limit", "3"],
        ["count"],
        ["stats"],
        ["namespaces"],
        ["delete", "p"],
        ["cleanup"],
        ["export", str(tmp_path / "out.jsonl")],
        ["import", str(tmp_path / "out.jsonl")],
        ["migrate", "--to", f"sqlite:///{tmp_path / 'copy.db'}"],
        ["clear-namespace", "other", "--yes"],
    ]


def test_every_json_output_is_one_line(url: str, tmp_path: Path) -> None:
    with keyshelf.open(url) as kv:
        # Several listing batches, and values that a pretty printer would
        # spread over several lines.
        kv.mset({f"k{i:05d}": i for i in range(2500)})
        kv.set("doc", {"nested": {"list": [1, 2, 3], "text": "a\nb"}}, metadata={"m": [1]})
        kv.set("t", 1, ttl=3600)
        kv.namespace("other").set("z", 1)
    for args in json_commands(tmp_path):
        result = invoke(*args, "--url", url, "--json")
        assert result.exit_code in (0, 1), (args, result.output)
        assert result.stdout.endswith("\n") and result.stdout.count("\n") == 1, (
            args,
            result.stdout[:300],
        )
        json.loads(result.stdout)
    listed = invoke("keys", "--url", url, "--json").stdout
    assert json.loads(listed)[:2] == ["doc", "k00000"]
    assert len(json.loads(listed)) == 2505  # + x, n, q written above


def test_keys_json_when_empty_and_in_the_shell(url: str) -> None:
    invoke("set", "a", "1", "--url", url)
    assert invoke("keys", "zzz*", "--url", url, "--json").stdout == "[]\n"
    shell = invoke("shell", "--url", url, "--json", input="keys\nkeys a*\ncount\n")
    assert shell.stdout == '["a"]\n["a"]\n1\n'


# --------------------------------------------------------------------------
# numbers from the command line, and --separator ''
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["set", "k", HUGE], "integer has 5001 digits"),
        (["set", "k", f"[1, {HUGE}]"], "integer has 5001 digits"),
        (["set", "k", f"-{HUGE}"], "integer has 5001 digits"),
        (["set", "k", "1", "--ttl", HUGE], "has 5001 digits"),
        (["set", "k", "1", "--ttl", f"{HUGE}ms"], "out of range"),
        (["set", "k", "1", "--ttl", "1e999"], "out of range"),
        (["mset", "a", "1", "--ttl", HUGE], "has 5001 digits"),
        (["expire", "k", HUGE], "has 5001 digits"),
        (["incr", "k", HUGE], "amount has 5001 digits"),
        (["incr", "k", "--by", HUGE], "amount has 5001 digits"),
        (["decr", "k", f"-{HUGE}"], "amount has 5001 digits"),
        (["incr", "k", "--by", "1e400"], "out of range"),
        (["incr", "k", "-1e400"], "out of range"),
        (["incr", "k", "inf"], "invalid amount 'inf'"),
        (["incr", "k", "--by", "nan"], "invalid amount 'nan'"),
        (["incr", "k", "1_000"], "invalid amount"),
        (["set", "k", "1e999999"], "out of range for a float"),
        (["set", "k", "-1e400"], '{"$float": "-inf"}'),
    ],
    ids=lambda a: " ".join(a)[:40] if isinstance(a, list) else "",
)
def test_numbers_that_cannot_be_read_are_usage_errors(
    url: str, args: list[str], message: str
) -> None:
    invoke("set", "k", "5", "--url", url)
    before = snapshot(url)
    result = invoke(*args, "--url", url)
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert message in line
    assert "unexpected" not in line
    assert snapshot(url) == before


def test_explicit_infinity_and_exact_numbers_still_work(url: str) -> None:
    assert invoke("set", "f", '{"$float": "inf"}', "--url", url).exit_code == 0
    big = "9" * 4300  # the longest integer Python reads from text
    assert invoke("set", "big", big, "--url", url).exit_code == 0
    assert invoke("incr", "n", "--by", "1e3", "--url", url).stdout == "1000.0\n"
    assert invoke("incr", "n", "-0.5", "--url", url).stdout == "999.5\n"
    assert invoke("set", "t", "1", "--ttl", "1e3", "--url", url).exit_code == 0
    with keyshelf.open(url) as kv:
        assert kv.get("f") == float("inf")
        assert kv.get("big") == int(big)
        assert 999 < kv.ttl("t") <= 1000


@pytest.mark.parametrize(
    "args",
    [
        ["keys", "--separator", ""],
        ["--separator", "", "count"],
        ["set", "k", "1", "--separator="],
        ["shell", "--separator", ""],
    ],
)
def test_an_empty_separator_is_refused(tmp_path: Path, args: list[str]) -> None:
    result = invoke(*args, "--url", "x.db")
    assert result.exit_code == 2
    assert "separator must not be empty" in one_error_line(result)
    assert files(tmp_path) == []


def test_an_empty_separator_on_a_shell_line() -> None:
    result = invoke("shell", "--url", "memory://", input="keys --separator ''\n")
    assert result.exit_code == 2
    assert "separator must not be empty" in one_error_line(result)


# --------------------------------------------------------------------------
# the shell's errors point to the shell's help
# --------------------------------------------------------------------------


def test_shell_errors_point_to_the_shell_help() -> None:
    result = invoke(
        "shell",
        "--url",
        "memory://",
        input="get\nset k 1 --tll 5\nfrob\nkeys --limit 0\nhelp get\n",
    )
    lines = result.stderr.splitlines()
    assert len(lines) == 4, result.stderr
    assert lines[0].endswith("(see 'help get')")
    assert lines[1].endswith("(see 'help set')")
    assert lines[2].endswith("(see 'help')")
    assert lines[3].endswith("(see 'help keys')")
    assert "keyshelf --help" not in result.stderr
    assert "keyshelf get --help" not in result.stderr
    assert "Usage: keyshelf get" in result.stdout  # 'help get' works


def test_outside_the_shell_errors_still_point_to_keyshelf_help() -> None:
    assert one_error_line(invoke("get")).endswith("(see 'keyshelf get --help')")
    assert one_error_line(invoke("frob")).endswith("(see 'keyshelf --help')")


# --------------------------------------------------------------------------
# keys and count without a pattern: every key, whatever the dialect
# --------------------------------------------------------------------------


def test_keys_and_count_without_a_pattern_list_every_key(url: str) -> None:
    invoke("mset", "a.b", "1", "c", "2", "x.y.z", "3", "--url", url)
    every = ["a.b", "c", "x.y.z"]
    for sep in ([], ["--separator", "."]):
        assert invoke("keys", *sep, "--url", url).stdout.splitlines() == every
        assert json.loads(invoke("keys", *sep, "--url", url, "--json").stdout) == every
        assert invoke("count", *sep, "--url", url).stdout == "3\n"
        assert invoke("keys", "--limit", "1", *sep, "--url", url).stdout == "a.b\n"
    # An explicit "*" is still one segment in the hierarchical dialect.
    assert invoke("keys", "*", "--separator", ".", "--url", url).stdout == "c\n"
    assert invoke("count", "*", "--separator", ".", "--url", url).stdout == "1\n"
    assert invoke("count", "**", "--separator", ".", "--url", url).stdout == "3\n"


def test_keys_and_count_pass_no_pattern_to_the_store(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoke("set", "a.b", "1", "--url", url)
    calls: list[tuple[str, tuple[object, ...]]] = []
    iter_keys, key_count = keyshelf.Store.iter_keys, keyshelf.Store.key_count

    def spy_iter(self: keyshelf.Store, *args: object, **kwargs: object) -> object:
        calls.append(("iter_keys", args))
        return iter_keys(self, *args, **kwargs)  # type: ignore[arg-type]

    def spy_count(self: keyshelf.Store, *args: object) -> int:
        calls.append(("key_count", args))
        return key_count(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(keyshelf.Store, "iter_keys", spy_iter)
    monkeypatch.setattr(keyshelf.Store, "key_count", spy_count)
    invoke("keys", "--separator", ".", "--url", url)
    invoke("count", "--separator", ".", "--url", url)
    invoke("keys", "a*", "--url", url)
    assert calls == [("iter_keys", ()), ("key_count", ()), ("iter_keys", ("a*",))]


@pytest.mark.parametrize(
    ("url", "meant"),
    [
        ("sqlite:app.db", "sqlite:///app.db"),
        ("cfg.json", "file://./cfg.json"),
        ("memory", "memory://"),
        ("redis:localhost", "redis://localhost"),
    ],
)
def test_a_mistyped_url_is_a_usage_error_with_a_hint(tmp_path: Path, url: str, meant: str) -> None:
    for args in (["set", "k", "1"], ["get", "k"]):
        result = invoke(*args, "--url", url)
        assert result.exit_code == 2
        assert f"did you mean {meant!r}" in one_error_line(result)
    assert files(tmp_path) == []


def test_a_separator_on_a_memory_shell_line_says_it_opens_another_store() -> None:
    result = invoke("shell", "--url", "memory://", input="set a.b 1\nkeys --separator .\n")
    assert result.exit_code == 4
    assert "give --separator when starting the shell" in one_error_line(result)
    started = invoke("shell", "--url", "memory://", "--separator", ".", input="set a.b 1\nkeys\n")
    assert (started.exit_code, started.stdout) == (0, "OK\na.b\n")


@pytest.mark.parametrize("url", ["file://./missing.json", "file://./missing.json.gz"])
def test_a_missing_file_store_is_not_created_either(tmp_path: Path, url: str) -> None:
    for args in (["keys"], ["get", "k"], ["export", "-"]):
        result = invoke(*args, "--url", url)
        assert result.exit_code == 4
        assert f"no store at {url!r}" in one_error_line(result)
    assert files(tmp_path) == []
    assert invoke("set", "k", "1", "--url", url).exit_code == 0
    assert invoke("get", "k", "--url", url).stdout == "1\n"
