"""``keyshelf shell`` driven by feeding it lines on stdin."""

from __future__ import annotations

import json

import pytest

import keyshelf
from keyshelf.cli import shell as shell_module

from .test_cli_support import (  # noqa: F401  (fixtures are used by name)
    invoke,
    no_env_store,
    url_fixture,
)


def feed(*lines: str, args: tuple[str, ...] = ()) -> tuple[int, str, str]:
    result = invoke("shell", *args, input="".join(f"{line}\n" for line in lines))
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


def test_shell_runs_commands_against_one_open_store() -> None:
    # memory:// is a new store on every open: the values surviving from one
    # line to the next prove the shell keeps one store open.
    code, out, err = feed(
        "set n 1",
        "incr n 5",
        "get n",
        "set name '\"Alice\"'",
        "mget n name --json",
        "keys",
        args=("--url", "memory://"),
    )
    assert code == 0, err
    assert out.splitlines() == [
        "OK",
        "6",
        "6",
        "OK",
        '{"n":6,"name":"Alice"}',
        "n",
        "name",
    ]
    assert err == ""


def test_shell_writes_to_the_store(url: str) -> None:
    code, _, _ = feed("set a '{\"x\": [1, 2]}'", "set b --bytes-hex 00ff", args=("--url", url))
    assert code == 0
    with keyshelf.open(url) as kv:
        assert kv.get("a") == {"x": [1, 2]} and kv.get("b") == b"\x00\xff"


def test_errors_are_one_line_and_the_shell_goes_on() -> None:
    code, out, err = feed(
        "get missing",
        "set __x 1",
        "set k hello",
        "frob",
        "set 'unclosed",
        "set k 1",
        "get k",
        args=("--url", "memory://"),
    )
    assert code == 0  # the status of the last line
    assert out.splitlines() == ["OK", "1"]
    lines = err.splitlines()
    assert lines[0] == "keyshelf: key 'missing' not found"
    assert "Keys cannot start with '__'" in lines[1]
    assert "is not JSON" in lines[2]
    assert "No such command 'frob'" in lines[3]
    assert "cannot read the line" in lines[4]
    assert len(lines) == 5


def test_exit_status_is_the_last_commands() -> None:
    assert feed("set k 1", "exists nope", args=("--url", "memory://"))[0] == 1
    assert feed("set k 1", "set k oops", args=("--url", "memory://"))[0] == 2
    assert feed("exists nope", "quit", "set k 1", args=("--url", "memory://"))[0] == 1


def test_help_use_comments_and_quit() -> None:
    code, out, err = feed(
        "help",
        "help get",
        "# a comment",
        "",
        "use",
        "use tenant1",
        "set k 1",
        "namespaces --json",
        "use __bad",
        "quit",
        "get k",  # never runs
        args=("--url", "memory://"),
    )
    assert code == 2  # 'use __bad' was the last line before quit
    assert "Commands" in out and "use NAMESPACE" in out
    assert "Usage: keyshelf get" in out and "Examples:" in out
    assert "\ndefault\n" in out
    assert json.loads(out.strip().splitlines()[-1]) == {"tenant1": 1}
    assert "Namespaces cannot start with '__'" in err


def test_namespace_and_url_options_on_a_line(url: str) -> None:
    code, out, _ = feed(
        "set k 1 --namespace other",
        "get k --namespace other",
        "exists k",
        f"set elsewhere 2 --url {url}",
        args=("--url", "memory://"),
    )
    assert code == 0
    assert out.splitlines() == ["OK", "1", "false", "OK"]
    with keyshelf.open(url) as kv:
        assert kv.get("elsewhere") == 2


def test_shell_json_mode_and_pasted_keyshelf_prefix() -> None:
    code, out, _ = feed("keyshelf set k 1", "get k", args=("--url", "memory://", "--json"))
    assert (code, out.splitlines()) == (0, ["true", "1"])


def test_stdin_commands_are_refused_inside_the_shell() -> None:
    code, _, err = feed("set k", "import -", "shell", args=("--url", "memory://"))
    lines = err.splitlines()
    assert "cannot read it from stdin" in lines[0]
    assert "already in the shell" in lines[-1]
    assert code == 2


def test_interactive_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shell_module, "stdin_is_terminal", lambda: True)
    answers = iter(["set k 1", "use t", "get k"])
    prompts: list[str] = []

    def fake_input(prompt: str) -> str:
        prompts.append(prompt)
        try:
            return next(answers)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr("builtins.input", fake_input)
    result = invoke("shell", "--url", "memory://")
    assert prompts == [
        "keyshelf[default]> ",
        "keyshelf[default]> ",
        "keyshelf[t]> ",
        "keyshelf[t]> ",
    ]
    assert "Type 'help'" in result.stderr
    assert result.exit_code == 1  # 'get k' in namespace t: not found
