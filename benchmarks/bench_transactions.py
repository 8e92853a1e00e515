"""Benchmark: a checked commit against the plain writes it guards.

``kv.atomic()`` with 2 checks and 2 sets, committed, against two plain
``set`` calls (what a user writes without the guarantee), on the same store in
the same run, interleaved by rounds (:func:`benchmarks.timing.compare`). The
commit checks the versions its previous commit returned, as a
read-modify-write loop does, and writes two keys of its own; the plain sets
write two other keys. Target on SQLite: within 1.5x. On Redis and PostgreSQL
the round trips of one commit are counted through a loopback proxy
(:mod:`benchmarks.roundtrips`): target 1, the same as one ``get``.

Run as the ``transactions`` group of ``python -m benchmarks`` (SQLite always,
Redis and PostgreSQL when their servers answer).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keyshelf

from .roundtrips import counting
from .timing import Op, compare

COMMIT = "commit (2 checks + 2 sets)"
PLAIN = "2 plain sets"
TARGET = 1.5
ROUND_TRIPS = 1


def _ops(kv: keyshelf.Store) -> list[tuple[str, Op]]:
    kv.mset({"tx:a": 0, "tx:b": 0, "plain:a": 0, "plain:b": 0})
    versions = {key: kv.get_entry(key).version for key in ("tx:a", "tx:b")}  # type: ignore[union-attr]

    def commit(i: int) -> None:
        result = (
            kv.atomic()
            .check("tx:a", versions["tx:a"])
            .check("tx:b", versions["tx:b"])
            .set("tx:a", i)
            .set("tx:b", -i)
            .commit()
        )
        if not result.ok:
            raise AssertionError("a commit of this benchmark failed its checks")
        versions.update(result.versions)

    def plain(i: int) -> None:
        kv.set("plain:a", i)
        kv.set("plain:b", -i)

    return [(COMMIT, Op(commit)), (PLAIN, Op(plain))]


def round_trips(url: str) -> dict[str, int]:
    """Round trips of one ``get`` and of one commit with 2 checks + 2 sets (the last of 5)."""
    with counting(url) as (proxy, through), keyshelf.open(through) as kv:
        kv.mset({"rt:a": 0, "rt:b": 0})
        counts = {"get": 0, "commit": 0}
        for i in range(5):
            a, b = kv.get_entry("rt:a"), kv.get_entry("rt:b")
            assert a is not None and b is not None
            before = proxy.count
            kv.get("rt:a")
            counts["get"] = proxy.count - before
            builder = kv.atomic().check("rt:a", a.version).check("rt:b", b.version)
            before = proxy.count
            if not builder.set("rt:a", i).set("rt:b", i).commit().ok:
                raise AssertionError("a commit of this benchmark failed its checks")
            counts["commit"] = proxy.count - before
        kv.delete("rt:a", "rt:b")
        return counts


def run(
    urls: dict[str, str],
    *,
    rounds: int,
    calls: int,
    warmup: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """``{backend: {COMMIT: summary, PLAIN: summary, "ratio": ..., "round_trips": ...}}``.

    ``round_trips`` (Redis and PostgreSQL only): ``{"get": n, "commit": n}``.
    """
    out: dict[str, Any] = {}
    for backend, url in urls.items():
        with keyshelf.open(url) as kv:
            results = compare(_ops(kv), rounds=rounds, calls=calls, warmup=warmup)
        mine, theirs = results[COMMIT].median_us, results[PLAIN].median_us
        out[backend] = {
            COMMIT: results[COMMIT].as_dict(),
            PLAIN: results[PLAIN].as_dict(),
            "ratio": mine / theirs,
        }
        line = (
            f"  transactions {backend:<9} {COMMIT} {mine:8.1f} µs | {PLAIN} {theirs:8.1f} µs "
            f"| ratio {mine / theirs:.2f}"
        )
        if backend in ("redis", "postgres"):
            trips = out[backend]["round_trips"] = round_trips(url)
            line += f" | round trips: commit {trips['commit']}, get {trips['get']}"
        log(line)
    return out


def checks(report: dict[str, Any]) -> list[tuple[str, float, float]]:
    """``(what, value, limit)`` of the group's targets: SQLite ratio, round trips per commit."""
    found: list[tuple[str, float, float]] = []
    for backend, r in report.items():
        if backend == "sqlite":
            found.append((f"{backend} commit (2 checks + 2 sets) ÷ 2 sets", r["ratio"], TARGET))
        if "round_trips" in r:
            found.append(
                (f"{backend} round trips per commit", r["round_trips"]["commit"], ROUND_TRIPS)
            )
    return found
