"""``export``, ``import`` and ``migrate`` in-process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import keyshelf
from keyshelf.cli import transfer_commands

from .test_cli_support import (  # noqa: F401  (fixtures are used by name)
    invoke,
    no_env_store,
    one_error_line,
    snapshot,
    url_fixture,
)

VALUES: dict[str, Any] = {
    "int": 42,
    "float": 3.0,
    "bool": True,
    "none": None,
    "text": "héllo",
    "bytes": b"\x00\xff",
    "tuple": (1, "x"),
    "big": 2**80,
}


def populate(url: str) -> None:
    with keyshelf.open(url) as kv:
        kv.mset(VALUES)
        kv.set("temp", 1, ttl=3600, metadata={"owner": "ops"})
        kv.namespace("tenant1").set("k", [1, 2])


def assert_same_data(source: str, target: str) -> None:
    assert snapshot(target) == snapshot(source)
    with keyshelf.open(target) as kv:
        for key, value in VALUES.items():
            assert type(kv.get(key)) is type(value)
        assert 3500 < kv.ttl("temp") <= 3600.001


def test_export_then_import_a_file(url: str, tmp_path: Path) -> None:
    populate(url)
    file = tmp_path / "dump.jsonl"
    result = invoke("export", str(file), "--all-namespaces", "--url", url)
    assert (result.exit_code, result.stdout) == (0, f"exported 10 keys to {file}\n")
    records = [json.loads(line) for line in file.read_text().splitlines()]
    assert len(records) == 12  # a header, ten records, an end line
    target = f"sqlite:///{tmp_path / 'target.db'}"
    imported = invoke("import", str(file), "--url", target, "--json")
    assert (imported.exit_code, json.loads(imported.stdout)) == (0, {"imported": 10})
    assert_same_data(url, target)


def test_export_one_namespace_and_gzip(url: str, tmp_path: Path) -> None:
    populate(url)
    file = tmp_path / "tenant.jsonl.gz"
    result = invoke("export", str(file), "--namespace", "tenant1", "--url", url, "--json")
    assert json.loads(result.stdout) == {"exported": 1}
    target = f"sqlite:///{tmp_path / 't.db'}"
    assert invoke("import", str(file), "--namespace", "other", "--url", target).exit_code == 0
    with keyshelf.open(target, namespace="other") as kv:
        assert kv.dump() == {"k": [1, 2]}


def test_export_to_stdout_and_import_from_stdin(url: str, tmp_path: Path) -> None:
    populate(url)
    exported = invoke("export", "--all-namespaces", "--url", url)
    assert exported.exit_code == 0
    assert exported.stderr == "keyshelf: exported 10 keys\n"  # stdout is the data
    lines = exported.stdout.splitlines()
    assert all(json.loads(line) for line in lines)
    target = f"sqlite:///{tmp_path / 'target.db'}"
    imported = invoke("import", "-", "--url", target, input=exported.stdout_bytes)
    assert (imported.exit_code, imported.stdout) == (0, "imported 10 keys\n")
    assert_same_data(url, target)


def test_import_of_a_corrupt_file_is_a_usage_error_and_writes_nothing(
    url: str, tmp_path: Path
) -> None:
    populate(url)
    file = tmp_path / "dump.jsonl"
    invoke("export", str(file), "--url", url)
    lines = file.read_text().splitlines()
    file.write_text("\n".join(lines[:-1]) + "\n")  # truncated: no end line
    target = f"sqlite:///{tmp_path / 'target.db'}"
    result = invoke("import", str(file), "--url", target)
    assert result.exit_code == 2
    assert str(file) in one_error_line(result)
    assert snapshot(target) == {}


def test_import_of_a_missing_file_is_a_usage_error(url: str, tmp_path: Path) -> None:
    result = invoke("import", str(tmp_path / "nope.jsonl"), "--url", url)
    assert result.exit_code == 2
    assert "nope.jsonl" in one_error_line(result)


def test_migrate_copies_every_namespace(url: str, tmp_path: Path) -> None:
    populate(url)
    target = f"sqlite:///{tmp_path / 'target.db'}"
    result = invoke("migrate", "--url", url, "--to", target)
    assert (result.exit_code, result.stdout) == (0, "migrated 10 keys\n")
    assert_same_data(url, target)


def test_migrate_some_namespaces_with_a_batch_size(url: str, tmp_path: Path) -> None:
    populate(url)
    target = f"sqlite:///{tmp_path / 'target.db'}"
    result = invoke(
        "migrate", "--url", url, "--to", target, "--namespace", "tenant1", "--batch-size", "1"
    )
    assert result.exit_code == 0
    assert snapshot(target) == {"tenant1": snapshot(url)["tenant1"]}
    assert json.loads(
        invoke("migrate", "--url", url, "--to", target, "--json", "--batch-size", "3").stdout
    ) == {"migrated": 10}


def test_migrate_errors(url: str, tmp_path: Path) -> None:
    invoke("set", "k", "1", "--url", url)  # the source must exist (it is never created)
    missing_to = invoke("migrate", "--url", url)
    assert missing_to.exit_code == 2
    assert "--to" in one_error_line(missing_to)
    bad_target = invoke("migrate", "--url", url, "--to", "nosuch://x")
    assert bad_target.exit_code == 2
    (tmp_path / "dir.db").mkdir()
    broken = invoke("migrate", "--url", url, "--to", f"sqlite:///{tmp_path / 'dir.db'}")
    assert broken.exit_code == 3


def test_long_work_reports_progress(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    populate(url)
    seen: list[tuple[str, int, int | None]] = []

    class Recorder:
        def __init__(self, description: str, total: int | None) -> None:
            self.description = description

        def __enter__(self) -> Any:
            return lambda done, total: seen.append((self.description, done, total))

        def __exit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(transfer_commands, "progress", Recorder)
    target = f"sqlite:///{tmp_path / 'target.db'}"
    invoke("migrate", "--url", url, "--to", target)
    invoke("export", str(tmp_path / "d.jsonl"), "--url", url)
    invoke("import", str(tmp_path / "d.jsonl"), "--url", target)
    assert ("Migrating", 10, 10) in seen
    assert any(name == "Exporting" for name, _, _ in seen)
    assert any(name == "Importing" for name, _, _ in seen)


def test_import_of_dev_zero_is_a_usage_error_at_once(url: str) -> None:
    # It used to read one endless line until the kernel killed the process.
    populate(url)
    before = snapshot(url)
    result = invoke("import", "/dev/zero", "--url", url)
    assert result.exit_code == 2
    assert "/dev/zero: line 1: not valid JSON" in one_error_line(result)
    assert snapshot(url) == before


UNDECODABLE = (
    '{"format":"keyshelf.export","format_version":1}\n'
    '{"key":"a","tag":"s","value":"x"}\n'
    '{"key":"z","tag":"zz","value":"payload"}\n'
    '{"end":true,"records":2}\n'
)


def test_import_refuses_a_tag_the_store_cannot_decode_unless_opaque(
    url: str, tmp_path: Path
) -> None:
    populate(url)
    before = snapshot(url)
    file = tmp_path / "foreign.jsonl"
    file.write_text(UNDECODABLE)
    result = invoke("import", str(file), "--url", url)
    assert result.exit_code == 2
    assert "line 3: the value of key 'z' has tag 'zz'" in one_error_line(result)
    assert snapshot(url) == before
    result = invoke("import", str(file), "--opaque", "--url", url)
    assert result.exit_code == 0, result.output
    # The other keys still list and read; the foreign one is listed, not readable.
    with keyshelf.open(url) as kv:
        assert "z" in kv.keys()
        with pytest.warns(keyshelf.UndecodableValueWarning, match="'z'"):
            dumped = kv.dump()
    assert "z" not in dumped and dumped["a"] == "x"
    result = invoke("get", "z", "--url", url)
    assert result.exit_code != 0 and "Unknown value tag 'zz'" in result.stderr
    assert invoke("get", "a", "--url", url).stdout.strip() == '"x"'
