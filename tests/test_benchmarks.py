"""Smoke test of the benchmark runner (``python -m benchmarks``), so that it cannot rot.

Runs every local group with tiny numbers and checks the shape of the report,
never a timing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("diskcache")
pytest.importorskip("sqlitedict")
pytest.importorskip("cachetools")


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.syspath_prepend(str(ROOT))
    sys.modules.pop("benchmarks", None)
    from benchmarks import run

    return run


def test_runner_smoke(runner: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.json"
    code = runner.main(  # type: ignore[attr-defined]
        [
            "--only=memory,sqlite,bulk,procs",
            "--rounds=2",
            "--calls=5",
            "--warmup=1",
            "--listing-keys=300",
            "--bulk=500",
            "--bulk-batch=200",
            "--procs=2",
            "--proc-calls=10",
            f"--json={out}",
            f"--workdir={tmp_path}",
            "--quiet",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "### memory backend" in printed
    assert "### SQLite backend" in printed
    assert "### Targets (issues 7 and 18)" in printed
    assert "### memory backend: what moves the figures" in printed

    report = json.loads(out.read_text())
    memory = report["groups"]["memory"]["operations"]
    sqlite = report["groups"]["sqlite"]["operations"]
    for op in ("set", "get hit", "get miss", "increment", "delete", "mset 100", "mget 100"):
        assert set(memory[op]) == {"keyshelf memory", "cachetools TTLCache", "dict + lock"}
        assert {
            "keyshelf sqlite",
            "bare sqlite3 WAL",
            "bare sqlite3 defaults",
            "raw sqlite3",
            "diskcache",
        } <= set(sqlite[op])
        assert sqlite[op]["keyshelf sqlite"]["calls"] == 10
        assert sqlite[op]["bare sqlite3 defaults"]["calls"] == 10
    variants = report["groups"]["memory variants"]["operations"]
    assert {"set, 1 KB value", "set, history=10000", "mset 100, history=10000"} <= set(variants)
    for by_name in variants.values():
        assert set(by_name) == {"keyshelf memory", "cachetools TTLCache"}
    issue18 = {t["what"] for t in report["targets"] if t["what"].startswith("issue 18")}
    assert "issue 18: SQLite set ÷ bare sqlite3 WAL" in issue18
    assert "issue 18: SQLite set (new value) ÷ bare sqlite3 WAL" in issue18
    ops = list(sqlite)
    assert ops[ops.index("set") + 1] == "set (new value)"
    assert "issue 18: memory mset 100 ÷ cachetools TTLCache" in issue18
    assert set(report["bulk"]["results"]) == {
        "keyshelf sqlite",
        "raw sqlite3",
        "diskcache",
        "sqlitedict",
    }
    assert report["bulk"]["results"]["keyshelf sqlite"]["bytes_per_key"] > 0
    procs = report["procs"]
    assert procs["keyshelf sqlite"]["lost_updates"] == 0
    assert procs["keyshelf sqlite"]["final"] == 20
    assert procs["raw sqlite3"]["lost_updates"] == 0
    assert all("met" in target for target in report["targets"])


def test_scale_smoke(runner: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import scale

    out = tmp_path / "scale.json"
    code = scale.main(
        [
            "--keys=600",
            "--small=200",
            "--batch=250",
            "--rounds=1",
            "--calls=5",
            "--warmup=1",
            f"--workdir={tmp_path}",
            f"--json={out}",
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    assert report["big"]["keys"] == 600
    assert set(report["latency"]) == {"get hit", "get miss", "set", "set with TTL"}
    assert "keyshelf SQLite scale run" in capsys.readouterr().out


def test_runner_servers_smoke(
    runner: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The Redis and PostgreSQL groups (bench_redis.py / bench_postgres.py cases)."""
    pytest.importorskip("redis")
    pytest.importorskip("psycopg")
    from tests.backends import redis_url
    from tests.backends.test_postgres_server import server_url

    out = tmp_path / "servers.json"
    code = runner.main(  # type: ignore[attr-defined]
        [
            "--only=redis,postgres,bulk",
            "--rounds=1",
            "--calls=3",
            "--warmup=1",
            "--bulk=2000",
            "--bulk-batch=1000",
            f"--redis-url={redis_url()}",
            f"--postgres-url={server_url()}",
            f"--json={out}",
            "--quiet",
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    assert not report["skipped"]
    redis_ops = report["groups"]["redis"]["operations"]
    postgres_ops = report["groups"]["postgres"]["operations"]
    assert {"get hit", "set", "increment", "mget 100", "mset 100"} <= set(redis_ops)
    assert {"get hit", "set", "increment", "mget 100", "mset 100"} <= set(postgres_ops)
    assert set(redis_ops["set"]) == {"keyshelf redis", "raw redis-py"}
    assert set(postgres_ops["set"]) == {"keyshelf postgres", "raw psycopg"}
    # The PostgreSQL bulk row of issue 18: public mset against one raw COPY,
    # each of the three loads timed (and the SQLite bulk beside it).
    pg_bulk = report["postgres bulk"]
    assert pg_bulk["keys"] == 2000
    assert set(pg_bulk["seconds"]) == {"keyshelf", "backend", "copy"}
    assert all(s > 0 for s in pg_bulk["seconds"].values())
    assert "keyshelf sqlite" in report["bulk"]["results"]
    printed = capsys.readouterr().out
    assert "### Redis backend" in printed
    assert "### PostgreSQL bulk load of 2,000 new keys" in printed
    assert "PostgreSQL bulk via mset keys/s ÷ raw COPY" in printed
    # Every Redis and PostgreSQL row of issue 18 is judged against its own limit.
    limits = {t["what"]: t["limit"] for t in report["targets"]}
    assert limits["issue 18: Redis set ÷ raw redis-py"] == 1.25
    assert limits["issue 18: Redis mset 100 ÷ raw redis-py"] == 1.5
    assert limits["issue 18: Redis mget 100 ÷ raw redis-py"] == 1.3
    assert limits["issue 18: PostgreSQL get hit ÷ raw psycopg"] == 1.15
    assert limits["issue 18: PostgreSQL mget 100 ÷ raw psycopg"] == 1.2


def test_stream_group_smoke(
    runner: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The streaming group (make bench: 1,000,000 keys) with a few keys: it
    # lists through every path, the CLI included, and checks the counts.
    out = tmp_path / "stream.json"
    code = runner.main(  # type: ignore[attr-defined]
        [
            "--only=stream",
            "--stream-keys=600",
            "--stream-rounds=1",
            f"--json={out}",
            f"--workdir={tmp_path}",
            "--quiet",
        ]
    )
    assert code == 0
    assert "### Streaming listings, SQLite, 600 keys" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["stream"]["under_prefix"] == 200
    assert set(report["stream"]["results"]) >= {
        "keys(prefix)",
        "iter_keys(prefix)",
        "CLI keys PREFIX*",
    }
    whats = {target["what"] for target in report["targets"]}
    assert "SQLite iter_keys(prefix) ÷ keys(prefix)" in whats


def test_compare_by_call_takes_turns() -> None:
    # by_call: within a round the contestants alternate call by call (warm-ups
    # first), each with its own iteration numbers; rounds still rotate.
    from benchmarks.timing import Op, compare

    seen: list[tuple[str, int]] = []

    def op(name: str) -> Op:
        return Op(lambda i: seen.append((name, i)))

    results = compare([("a", op("a")), ("b", op("b"))], rounds=2, calls=3, warmup=1, by_call=True)
    assert seen == [
        ("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 3), ("b", 3),
        ("b", 4), ("a", 4), ("b", 5), ("a", 5), ("b", 6), ("a", 6), ("b", 7), ("a", 7),
    ]  # fmt: skip
    assert [len(results[name].samples) for name in "ab"] == [6, 6]
