"""kill -9 at random moments: the store opens, is intact, and lost nothing acknowledged.

A writer process (``crash_writer.py``) runs ``mset`` batches (every key of a
batch carries the batch id and size), ``increment("counter")`` and
``delete_pattern`` of whole batches, announcing each call before making it
and acknowledging it after. The test kills it with SIGKILL at a random moment
(sometimes while it is still opening the store), then checks:

* the store opens again (and ``PRAGMA integrity_check`` says ``ok`` for SQLite;
  the JSON document parses for the file backend);
* every batch is entirely present or entirely absent;
* every acknowledged batch is present unless an acknowledged delete removed
  it; the operation in flight may have happened or not;
* the counter equals the acknowledged increments, or one more when the kill
  hit an increment after its commit but before its acknowledgement.

The default run kills each backend 5 times (both APIs); ``make stress`` 60.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

import keyshelf

WRITER = Path(__file__).with_name("crash_writer.py")


@dataclass
class Ledger:
    """What the test knows the store must hold, from acknowledged operations."""

    counter: int = 0
    live: dict[int, int] = field(default_factory=dict)  # batch -> size
    next_batch: int = 0
    kills: int = 0
    in_flight: dict[str, int] = field(default_factory=dict)  # "M committed" -> count
    operations: int = 0


def store_url(backend: str, tmp_path: Path) -> tuple[str, Path]:
    if backend == "sqlite":
        path = tmp_path / "crash.db"
        return f"sqlite:///{path}", path
    path = tmp_path / "crash.json"
    return f"file://{path}", path


class Writer:
    """One writer process, its output read continuously by a thread."""

    def __init__(self, url: str, api: str, seed: int, ledger: Ledger, live_file: Path) -> None:
        live_file.write_text(json.dumps(sorted(ledger.live)))
        self.process = subprocess.Popen(
            [sys.executable, str(WRITER), url, api, str(seed), str(ledger.next_batch),
             str(live_file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("R"):
                self.ready.set()
        self.ready.set()

    def kill(self) -> str:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        self.reader.join(30)
        assert not self.reader.is_alive()
        assert self.process.stderr is not None
        return self.process.stderr.read()


def settle(ledger: Ledger, lines: list[str]) -> tuple[str, Any] | None:
    """Apply acknowledged operations to the ledger; return the one in flight, if any."""
    pending: tuple[str, Any] | None = None
    for line in lines:
        kind, _, rest = line.partition(" ")
        if kind == "R":
            continue
        if kind == "B":
            assert pending is None, f"two operations in flight: {pending} then {line}"
            parts = rest.split()
            if parts[0] == "M":
                pending = ("M", (int(parts[1]), int(parts[2])))
                ledger.next_batch = int(parts[1]) + 1  # never reuse a batch id
            elif parts[0] == "I":
                pending = ("I", None)
            else:
                pending = ("D", int(parts[1]))
            continue
        assert kind == "A" and pending is not None, line
        op, arg = pending
        ledger.operations += 1
        if op == "M":
            batch, size = arg
            ledger.live[batch] = size
        elif op == "I":
            ledger.counter += 1
            assert int(rest) == ledger.counter, "increment returned a wrong count"
        else:
            assert int(rest) == ledger.live.pop(arg), "delete_pattern removed a partial batch"
        pending = None
    return pending


def check_file_intact(backend: str, path: Path) -> None:
    if not path.exists():
        return  # killed before it created the store
    if backend == "sqlite":
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        finally:
            conn.close()
    else:
        raw = path.read_bytes()
        if raw:  # an empty file is a store that was created but never written
            document = orjson.loads(raw)
            assert document["format"] == "keyshelf.file"


def verify(url: str, ledger: Ledger, in_flight: tuple[str, Any] | None) -> None:
    """Check the store against the ledger; adopt the in-flight outcome into it."""
    with keyshelf.open(url) as kv:
        found: dict[int, dict[int, Any]] = {}
        for key, value in kv.get_pattern("batch:*").items():
            batch, index = (int(part) for part in key.split(":")[1:])
            assert value["batch"] == batch and value["index"] == index
            found.setdefault(batch, {})[index] = value
        for batch, members in found.items():
            size = next(iter(members.values()))["size"]
            assert sorted(members) == list(range(size)), f"batch {batch} is partial"
            assert all(v["size"] == size for v in members.values())
        present = set(found)
        expected = set(ledger.live)
        op, arg = in_flight or ("", None)
        if op == "M" and arg[0] in present:
            expected.add(arg[0])
            ledger.live[arg[0]] = arg[1]
            ledger.in_flight["mset committed"] = ledger.in_flight.get("mset committed", 0) + 1
        elif op == "M":
            ledger.in_flight["mset not committed"] = (
                ledger.in_flight.get("mset not committed", 0) + 1
            )
        if op == "D" and arg not in present:
            expected.discard(arg)
            ledger.live.pop(arg, None)
            ledger.in_flight["delete committed"] = ledger.in_flight.get("delete committed", 0) + 1
        elif op == "D":
            ledger.in_flight["delete not committed"] = (
                ledger.in_flight.get("delete not committed", 0) + 1
            )
        assert present == expected, (
            f"missing acknowledged batches {sorted(expected - present)}, "
            f"unexpected batches {sorted(present - expected)}"
        )
        for batch in present:
            assert len(found[batch]) == ledger.live[batch]
        counter = kv.get("counter", 0)
        if op == "I" and counter == ledger.counter + 1:
            ledger.counter += 1  # committed, killed before the acknowledgement
            ledger.in_flight["increment committed"] = (
                ledger.in_flight.get("increment committed", 0) + 1
            )
        elif op == "I":
            ledger.in_flight["increment not committed"] = (
                ledger.in_flight.get("increment not committed", 0) + 1
            )
        assert counter == ledger.counter, f"counter {counter}, acknowledged {ledger.counter}"
        stats = kv.stats()
        expected_keys = sum(ledger.live.values()) + (1 if kv.exists("counter") else 0)
        assert stats["total_keys"] == stats["active_keys"] == expected_keys


def run_kills(backend: str, tmp_path: Path, kills: int, seed: int) -> Ledger:
    rng = random.Random(seed)
    url, path = store_url(backend, tmp_path)
    ledger = Ledger()
    live_file = tmp_path / "live.json"
    for round_ in range(kills):
        api = "sync" if round_ % 2 == 0 else "async"
        writer = Writer(url, api, rng.randrange(2**32), ledger, live_file)
        if rng.random() < 0.15:
            time.sleep(rng.uniform(0.0, 0.3))  # maybe while it is still opening the store
        else:
            assert writer.ready.wait(30), "the writer did not open the store"
            time.sleep(rng.uniform(0.02, 0.4))
        stderr = writer.kill()
        assert writer.process.returncode == -signal.SIGKILL, stderr
        ledger.kills += 1
        in_flight = settle(ledger, writer.lines)
        check_file_intact(backend, path)
        verify(url, ledger, in_flight)
    if backend == "file":
        assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []
    return ledger


def report(backend: str, ledger: Ledger) -> None:
    print(
        f"\n{backend}: {ledger.kills} kills survived, {ledger.operations} acknowledged "
        f"operations, counter {ledger.counter}, {len(ledger.live)} batches live, "
        f"in flight at the kill: {dict(sorted(ledger.in_flight.items()))}"
    )


@pytest.mark.parametrize("backend", ["sqlite", "file"])
def test_kill_9_loses_nothing_acknowledged(backend: str, tmp_path: Path) -> None:
    ledger = run_kills(backend, tmp_path, kills=5, seed=random.randrange(2**32))
    report(backend, ledger)
    assert ledger.operations > 0


@pytest.mark.stress
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("backend", ["sqlite", "file"])
def test_kill_9_soak(backend: str, tmp_path: Path) -> None:
    seed = random.randrange(2**32)
    print(f"\nseed {seed}")
    ledger = run_kills(backend, tmp_path, kills=60, seed=seed)
    report(backend, ledger)
    assert ledger.kills == 60 and ledger.operations > 100
    # The kills must have hit operations in flight, not only idle moments.
    assert sum(ledger.in_flight.values()) >= 30
