"""keyshelf's PostgreSQL backend against raw psycopg running the same statements.

Usage::

    python benchmarks/bench_postgres.py [--url URL] [--rounds 15] [--ops 500]
                                        [--bulk 1000000] [--batch 10000] [--api sync|async|both]

The server is ``--url``, else ``$KEYSHELF_BENCH_POSTGRES_URL``, else
``$KEYSHELF_TEST_POSTGRES_URL``, else ``postgresql://postgres@127.0.0.1:5432/test``.
Everything runs in a schema of its own, dropped at the end.

"Raw psycopg" is the lower bound: one long-lived autocommit connection,
the very SQL text keyshelf sends (taken from the backend), server-side
prepared (``prepare=True``), binary results, parameters already encoded. The
keyshelf side is the public API (``kv.get``, ``kv.set`` ...): key checks,
encoding, the pool, decoding. Each round runs ``--ops`` calls of one
operation on each side, alternating which side goes first; the table shows
the median time per call and the ratio keyshelf / raw (1.00 = no overhead).

The bulk load compares ``kv.mset`` in batches of ``--batch`` new keys with
psycopg's fastest bulk path, one binary ``COPY`` of the same rows into an
empty table of the same layout; a third line loads the same batches through
the backend's ``put_many`` directly, already encoded, to separate the
backend's own cost from the store's key checks and value encoding. Ratios
are throughput over raw throughput (higher is better, 1.00 = as fast).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql as pgsql

import keyshelf
from keyshelf.backends._postgres_sql import NOW, columns

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
NS = "default"


def median_us(samples: list[float], ops: int) -> float:
    return statistics.median(samples) / ops * 1e6


def report(name: str, ours: float, raw: float) -> None:
    print(f"  {name:<16} keyshelf {ours:8.1f} us   raw {raw:8.1f} us   x{ours / raw:.2f}",
          file=sys.stderr)  # fmt: skip


class Bench:
    def __init__(self, url: str, rounds: int, ops: int) -> None:
        self.url = url
        self.rounds = rounds
        self.ops = ops
        self.schema = f"keyshelf_bench_{uuid.uuid4().hex[:12]}"
        self.kv = keyshelf.open(url, schema=self.schema, min_size=1, max_size=4)
        backend: Any = self.kv.backend
        self.sql = backend._sql
        # The plain driver as its docs show it: one autocommit connection,
        # default settings, each statement executed with prepare=True. (With
        # prepare_threshold=None, as this baseline once had, psycopg prepares
        # nothing, prepare=True included: both sides then parsed every call
        # and the ratios hid keyshelf's own missing preparation.)
        self.raw = psycopg.connect(url, autocommit=True)
        self.rows: list[tuple[str, float, float]] = []

    def close(self) -> None:
        self.kv.close()
        self.raw.execute(
            pgsql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(pgsql.Identifier(self.schema))
        )
        self.raw.close()

    def compare(self, name: str, ours: Callable[[], Any], raw: Callable[[], Any]) -> None:
        ours()
        raw()  # warm up: prepare statements, fill caches
        mine: list[float] = []
        theirs: list[float] = []
        for round_ in range(self.rounds):
            order = [(ours, mine), (raw, theirs)]
            if round_ % 2:
                order.reverse()
            for fn, samples in order:
                start = time.perf_counter()
                for _ in range(self.ops):
                    fn()
                samples.append(time.perf_counter() - start)
        k, r = median_us(mine, self.ops), median_us(theirs, self.ops)
        self.rows.append((name, k, r))
        report(name, k, r)

    def cases(self) -> list[tuple[str, Callable[[], Any], Callable[[], Any]]]:
        """(name, keyshelf call, raw call) for each operation, keys in place.

        Also used by the shared runner (``python -m benchmarks``).
        """
        kv, raw, sql = self.kv, self.raw, self.sql
        kv.set("bench:get", "value-" * 8)
        kv.set("bench:counter", 0)
        keys = [f"bench:m:{i:04d}" for i in range(100)]
        mapping = {key: f"value-{i}" for i, key in enumerate(keys)}
        kv.mset(mapping)

        get_sql = sql.get
        value = "value-" * 8
        put_sql = sql.put(False, False, True)
        put_params = (NS, "bench:set", "s", *columns("s", value), None, None)
        inc_sql = sql.increment_int
        many_sql = sql.get_many
        put_many_sql = sql.put_many
        ordered = sorted(mapping)
        cols = [columns("s", mapping[key]) for key in ordered]
        many_params = (
            NS,
            None,
            ordered,
            ["s"] * len(ordered),
            [c[0] for c in cols],
            [c[1] for c in cols],
            [c[2] for c in cols],
            [c[3] for c in cols],
        )
        return [
            (
                "get",
                lambda: kv.get("bench:get"),
                lambda: raw.execute(
                    get_sql, (NS, "bench:get"), prepare=True, binary=True
                ).fetchone(),
            ),
            (
                "set",
                lambda: kv.set("bench:set", value),
                lambda: raw.execute(put_sql, put_params, prepare=True),
            ),
            (
                "increment",
                lambda: kv.increment("bench:counter"),
                lambda: raw.execute(
                    inc_sql, (NS, "bench:counter", 1), prepare=True, binary=True
                ).fetchone(),
            ),
            (
                "mget 100",
                lambda: kv.mget(keys),
                lambda: raw.execute(many_sql, (NS, keys), prepare=True, binary=True).fetchall(),
            ),
            (
                "mset 100",
                lambda: kv.mset(mapping),
                lambda: raw.execute(put_many_sql, many_params, prepare=True),
            ),
        ]

    def run_ops(self) -> None:
        for name, ours, raw in self.cases():
            self.compare(name, ours, raw)

    def run_async_ops(self) -> None:
        """The same five operations through the async API (one event loop)."""

        async def main() -> None:
            async with keyshelf.open_async(self.url, schema=self.schema, max_size=4) as akv:
                loop_rows: list[tuple[str, float, float]] = []
                keys = [f"bench:m:{i:04d}" for i in range(100)]
                mapping = {key: f"value-{i}" for i, key in enumerate(keys)}
                araw = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
                sql = self.sql
                value = "value-" * 8
                put_sql = sql.put(False, False, True)
                put_params = (NS, "bench:set", "s", *columns("s", value), None, None)

                async def raw_get() -> Any:
                    cur = await araw.execute(sql.get, (NS, "bench:get"), prepare=True, binary=True)
                    return await cur.fetchone()

                async def raw_set() -> Any:
                    return await araw.execute(put_sql, put_params, prepare=True)

                async def raw_inc() -> Any:
                    cur = await araw.execute(
                        sql.increment_int, (NS, "bench:counter", 1), prepare=True, binary=True
                    )
                    return await cur.fetchone()

                async def raw_mget() -> Any:
                    cur = await araw.execute(sql.get_many, (NS, keys), prepare=True, binary=True)
                    return await cur.fetchall()

                ordered = sorted(mapping)
                cols = [columns("s", mapping[key]) for key in ordered]
                many_params = (NS, None, ordered, ["s"] * len(ordered))
                many_params += tuple([c[i] for c in cols] for i in range(4))

                async def raw_mset() -> Any:
                    return await araw.execute(sql.put_many, many_params, prepare=True)

                cases: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
                    ("async get", lambda: akv.get("bench:get"), raw_get),
                    ("async set", lambda: akv.set("bench:set", value), raw_set),
                    ("async incr", lambda: akv.increment("bench:counter"), raw_inc),
                    ("async mget 100", lambda: akv.mget(keys), raw_mget),
                    ("async mset 100", lambda: akv.mset(mapping), raw_mset),
                ]
                for name, ours, raw in cases:
                    await ours()
                    await raw()
                    mine: list[float] = []
                    theirs: list[float] = []
                    for round_ in range(self.rounds):
                        order = [(ours, mine), (raw, theirs)]
                        if round_ % 2:
                            order.reverse()
                        for fn, samples in order:
                            start = time.perf_counter()
                            for _ in range(self.ops):
                                await fn()
                            samples.append(time.perf_counter() - start)
                    k, r = median_us(mine, self.ops), median_us(theirs, self.ops)
                    loop_rows.append((name, k, r))
                    report(name, k, r)
                await araw.close()
                self.rows.extend(loop_rows)

        asyncio.run(main())

    def run_bulk(self, total: int, batch: int, repeat: int) -> dict[str, float]:
        """Median seconds to load ``total`` fresh keys, three ways, each into a fresh table.

        ``keyshelf``: the public ``kv.mset`` in batches (key checks and
        encoding included); ``backend``: the backend's ``put_many`` on batches
        encoded beforehand (what the backend itself costs); ``copy``: raw
        psycopg, one binary COPY of the same rows.
        """
        raw = self.raw
        schema = pgsql.Identifier(self.schema)
        times: dict[str, list[float]] = {"keyshelf": [], "backend": [], "copy": []}
        for attempt in range(repeat):
            tables = [f"bulk_{attempt}", f"backend_{attempt}"]
            with keyshelf.open(self.url, schema=self.schema, table=tables[0], max_size=2) as kv:
                start = time.perf_counter()
                chunk: dict[str, Any] = {}
                for i in range(total):
                    chunk[f"key:{i:08d}"] = i
                    if len(chunk) == batch:
                        kv.mset(chunk)
                        chunk = {}
                if chunk:
                    kv.mset(chunk)
                times["keyshelf"].append(time.perf_counter() - start)
            with keyshelf.open(self.url, schema=self.schema, table=tables[1], max_size=2) as kv:
                backend: Any = kv.backend
                batches = [
                    [(f"key:{i:08d}", ("i", i)) for i in range(lo, min(lo + batch, total))]
                    for lo in range(0, total, batch)
                ]
                now = kv._now()
                start = time.perf_counter()
                for items in batches:
                    backend.put_many(NS, items, None, now)
                times["backend"].append(time.perf_counter() - start)
                del batches
            copy_table = f"copy_{attempt}"
            raw.execute(
                pgsql.SQL("CREATE TABLE {}.{} (LIKE {}.{} INCLUDING ALL)").format(
                    schema, pgsql.Identifier(copy_table), schema, pgsql.Identifier(tables[0])
                )
            )
            copy = pgsql.SQL(
                "COPY {}.{} (ns, key, tag, ival, created_at, updated_at, version) "
                "FROM STDIN (FORMAT BINARY)"
            ).format(schema, pgsql.Identifier(copy_table))
            start = time.perf_counter()
            at = raw.execute(f"SELECT {NOW}").fetchone()[0]  # type: ignore[index]
            with raw.cursor() as cur, cur.copy(copy) as writer:
                writer.set_types(["text", "text", "text", "int8", "int8", "int8", "int4"])
                for i in range(total):
                    writer.write_row((NS, f"key:{i:08d}", "i", i, at, at, 1))
            times["copy"].append(time.perf_counter() - start)
            for name in (*tables, *(f"{t}_meta" for t in tables), copy_table):
                raw.execute(pgsql.SQL("DROP TABLE {}.{}").format(schema, pgsql.Identifier(name)))
            print(
                f"  bulk {total:,}: keyshelf {times['keyshelf'][-1]:.2f} s   backend "
                f"{times['backend'][-1]:.2f} s   COPY {times['copy'][-1]:.2f} s",
                file=sys.stderr,
            )
        return {name: statistics.median(values) for name, values in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=None)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--ops", type=int, default=500)
    parser.add_argument("--bulk", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--bulk-repeat", type=int, default=3)
    parser.add_argument("--api", choices=["sync", "async", "both"], default="both")
    args = parser.parse_args()
    url = (
        args.url
        or os.environ.get("KEYSHELF_BENCH_POSTGRES_URL")
        or os.environ.get("KEYSHELF_TEST_POSTGRES_URL")
        or DEFAULT_URL
    )
    bench = Bench(url, args.rounds, args.ops)
    try:
        if args.api in ("sync", "both"):
            bench.run_ops()
        if args.api in ("async", "both"):
            bench.run_async_ops()
        bulk = bench.run_bulk(args.bulk, args.batch, args.bulk_repeat) if args.bulk else None
    finally:
        bench.close()
    server = psycopg.connect(url).info.server_version
    print(
        f"\nPostgreSQL {server // 10000}.{server % 10000}, psycopg {psycopg.__version__}, "
        f"Python {sys.version.split()[0]}; medians of {args.rounds} rounds x {args.ops} calls\n"
    )
    print("| operation | keyshelf (us/op) | raw psycopg (us/op) | ratio |")
    print("|---|---:|---:|---:|")
    for name, k, r in bench.rows:
        print(f"| {name} | {k:.1f} | {r:.1f} | {k / r:.2f}x |")
    if bulk is not None:
        copy = bulk["copy"]
        print(
            f"\n| bulk load of {args.bulk:,} new keys | seconds | keys/s | throughput vs COPY |\n"
            "|---|---:|---:|---:|"
        )
        labels = {
            "keyshelf": f"keyshelf `mset`, batches of {args.batch:,}",
            "backend": f"backend `put_many` alone (pre-encoded batches of {args.batch:,})",
            "copy": "raw psycopg, one binary COPY",
        }
        for name, label in labels.items():
            took = bulk[name]
            print(f"| {label} | {took:.2f} | {args.bulk / took:,.0f} | {copy / took:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
