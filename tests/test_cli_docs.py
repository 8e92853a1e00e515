"""The CLI's documentation is complete and true.

- Every command has a section in docs/cli.md, a description and an example
  in its ``--help``.
- Every transcript in docs/cli.md and in the README (``sh`` blocks whose
  lines start with ``$ ``) is run, and the output must match: the docs
  cannot drift from the program.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from keyshelf.cli.app import cli

from .test_cli_support import invoke, no_env_store  # noqa: F401  (autouse fixture)

ROOT = Path(__file__).parents[1]
CLI_DOC = ROOT / "docs" / "cli.md"
README = ROOT / "README.md"
COMMANDS = sorted(cli.commands)


def transcripts(path: Path) -> list[str]:
    """The ``sh`` blocks of ``path`` that are transcripts (have ``$ `` lines)."""
    blocks = re.findall(r"```sh\n(.*?)```", path.read_text(), flags=re.DOTALL)
    return [block for block in blocks if any(line.startswith("$ ") for line in block.splitlines())]


def matches(expected: str, actual: str) -> bool:
    """``expected`` equals ``actual``, where ``...`` stands for any text."""
    pattern = ".*".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual) is not None


def run_transcript(block: str, where: str) -> None:
    """Run each ``$ `` command of a block and compare what it prints."""
    lines = block.splitlines()
    last_code = 0
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        assert line.startswith("$ "), f"{where}: expected a '$ ' command, got {line!r}"
        command = line[2:]
        expected: list[str] = []
        while index < len(lines) and not lines[index].startswith("$ "):
            expected.append(lines[index])
            index += 1
        if command == "echo $?":
            assert expected == [str(last_code)], f"{where}: {command} after the previous line"
            continue
        stdin = None
        piped = re.fullmatch(r"echo (.*?) \| (keyshelf .*)", command)
        if piped:
            stdin = shlex.split(piped[1])[0] + "\n"
            command = piped[2]
        words = shlex.split(command)
        assert words[0] == "keyshelf", f"{where}: only keyshelf commands can run: {command!r}"
        result = invoke(*words[1:], input=stdin, COLUMNS="100")
        last_code = result.exit_code
        assert "Traceback" not in result.output
        actual = result.output.splitlines()
        assert len(actual) == len(expected) and all(
            matches(e, a) for e, a in zip(expected, actual, strict=True)
        ), f"{where}: {command!r} printed:\n{result.output}\nexpected:\n" + "\n".join(expected)


def test_the_cli_docs_have_transcripts() -> None:
    assert len(transcripts(CLI_DOC)) >= 20


def test_cli_doc_transcripts_run() -> None:
    # One store for the whole page: its sections build on each other.
    for number, block in enumerate(transcripts(CLI_DOC), 1):
        run_transcript(block, f"docs/cli.md transcript {number}")


def test_readme_transcripts_run() -> None:
    blocks = transcripts(README)
    assert blocks, "the README's command line section has no transcript"
    for number, block in enumerate(blocks, 1):
        run_transcript(block, f"README.md transcript {number}")


def test_readme_points_to_the_cli_guide() -> None:
    text = README.read_text()
    assert "## Command line" in text and "docs/cli.md" in text


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_is_documented(name: str) -> None:
    assert f"### `keyshelf {name}`" in CLI_DOC.read_text(), f"docs/cli.md lacks keyshelf {name}"


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_with_an_example(name: str) -> None:
    command = cli.commands[name]
    assert command.help and len(command.get_short_help_str()) > 10
    result = invoke(name, "--help")
    assert result.exit_code == 0
    assert f"Usage: keyshelf {name}" in result.stdout
    examples = result.stdout.split("Examples:\n", 1)
    assert len(examples) == 2, f"keyshelf {name} --help has no example"
    assert f"keyshelf {name}" in examples[1] or (name == "set" and "keyshelf set" in examples[1])
    assert invoke(name, "-h").stdout == result.stdout


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_takes_the_common_options(name: str) -> None:
    params = {opt for param in cli.commands[name].params for opt in param.opts}
    assert {"--url", "--namespace", "--json"} <= params


def test_the_group_help_lists_every_command_and_the_exit_codes() -> None:
    text = invoke("--help").stdout
    for name in COMMANDS:
        assert name in text
    assert "Exit codes" in text


def test_commands_are_click_commands() -> None:
    assert all(isinstance(cli.commands[name], click.Command) for name in COMMANDS)
