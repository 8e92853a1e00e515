"""The installed ``keyshelf`` command and ``python -m keyshelf``, in real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import keyshelf

SCRIPT = Path(sys.executable).with_name("keyshelf")


def env_without_store() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "KEYSHELF_URL"}
    env.pop("KEYSHELF_DEBUG", None)
    return env


def run(
    *args: str, cwd: Path, stdin: str | None = None, module: bool = False
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "keyshelf"] if module else [str(SCRIPT)]
    return subprocess.run(
        [*command, *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        env=env_without_store(),
        timeout=60,
        check=False,
    )


@pytest.fixture
def script() -> Path:
    if not SCRIPT.exists():
        pytest.fail(
            f"the console script is not installed next to {sys.executable}: pip install -e ."
        )
    return SCRIPT


def test_console_script_end_to_end(script: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e2e.db'}"
    assert run("set", "n", "42", "--url", url, cwd=tmp_path).stdout == "OK\n"
    assert run("set", "s", '"text"', "--url", url, cwd=tmp_path).returncode == 0
    assert (
        run("set", "b", "--bytes-hex", "00ff", "--url", url, "--ttl", "1h", cwd=tmp_path).returncode
        == 0
    )
    assert run("incr", "n", "-2", "--url", url, cwd=tmp_path).stdout == "40\n"
    got = run("mget", "n", "s", "b", "--url", url, "--json", cwd=tmp_path)
    assert json.loads(got.stdout) == {"n": 40, "s": "text", "b": {"$bytes": "AP8="}}
    # The library sees exactly the types the command line wrote.
    with keyshelf.open(url) as kv:
        assert kv.get("n") == 40 and type(kv.get("n")) is int
        assert kv.get("b") == b"\x00\xff" and kv.ttl("b") is not None
    missing = run("get", "nope", "--url", url, cwd=tmp_path)
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr == "keyshelf: key 'nope' not found\n"


def test_exit_codes_and_one_line_errors_in_a_real_process(script: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e2e.db'}"
    bad = run("set", "__x", "1", "--url", url, cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr == "keyshelf: error: Keys cannot start with '__'\n"
    scheme = run("get", "k", "--url", "nosuch://", cwd=tmp_path)
    assert scheme.returncode == 2 and len(scheme.stderr.splitlines()) == 1
    (tmp_path / "dir.db").mkdir()
    backend = run("get", "k", "--url", f"sqlite:///{tmp_path / 'dir.db'}", cwd=tmp_path)
    assert backend.returncode == 3 and len(backend.stderr.splitlines()) == 1
    assert "Traceback" not in bad.stderr + scheme.stderr + backend.stderr


def test_default_store_is_keyshelf_db_in_the_working_directory(
    script: Path, tmp_path: Path
) -> None:
    assert run("set", "k", "[1, 2]", cwd=tmp_path).returncode == 0
    assert (tmp_path / "keyshelf.db").exists()
    with keyshelf.open(str(tmp_path / "keyshelf.db")) as kv:
        assert kv.get("k") == [1, 2]


def test_piped_output_has_no_progress_or_colour(script: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e2e.db'}"
    with keyshelf.open(url) as kv:
        kv.mset({f"k{i:04d}": i for i in range(3000)})
    listed = run("keys", "--url", url, cwd=tmp_path)
    assert listed.stdout.splitlines() == [f"k{i:04d}" for i in range(3000)]
    assert listed.stderr == ""
    exported = run("export", str(tmp_path / "out.jsonl"), "--url", url, cwd=tmp_path)
    assert exported.stderr == "" and "\x1b[" not in exported.stdout


def test_broken_pipe_is_quiet(script: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e2e.db'}"
    with keyshelf.open(url) as kv:
        kv.mset({f"k{i:05d}": i for i in range(20000)})
    head = subprocess.run(
        f"'{script}' keys --url '{url}' | head -1",
        shell=True,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env_without_store(),
        timeout=60,
        check=False,
    )
    assert head.stdout == "k00000\n"
    assert "Traceback" not in head.stderr and "BrokenPipe" not in head.stderr


def test_shell_in_a_real_process(script: Path, tmp_path: Path) -> None:
    result = run("shell", "--url", "memory://", cwd=tmp_path, stdin="set n 1\nincr n\nget n\n")
    assert (result.returncode, result.stdout) == (0, "OK\n2\n2\n")


def test_python_dash_m(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    assert run("set", "k", "3.0", "--url", url, cwd=tmp_path, module=True).stdout == "OK\n"
    assert run("get", "k", "--url", url, cwd=tmp_path, module=True).stdout == "3.0\n"
    helped = run("--help", cwd=tmp_path, module=True)
    assert helped.returncode == 0 and "Commands:" in helped.stdout


def test_the_library_does_not_import_the_cli(tmp_path: Path) -> None:
    code = "import sys, keyshelf; print('click' in sys.modules, 'rich' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout == "False False\n"
