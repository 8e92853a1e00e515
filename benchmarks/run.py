"""The benchmark runner: keyshelf's backends and the libraries users would pick instead.

Usage (``make bench`` runs the defaults)::

    python -m benchmarks [--only memory,sqlite,bulk,procs,redis,postgres,stream]
                         (add s3 to --only for the S3 backend against moto)
                         [--rounds 5] [--calls 2000] [--warmup 300]
                         [--listing-keys 100000] [--bulk 1000000]
                         [--procs 4] [--proc-calls 5000]
                         [--stream-keys 1000000] [--stream-rounds 3] [--stall-seconds 5]
                         [--redis-url URL] [--postgres-url URL] [--json PATH]

Every group measures keyshelf and its anchors in the same run, interleaved
by rounds (see :mod:`benchmarks.timing`), prints a markdown table of medians,
p99 and the ratios keyshelf / anchor, checks the targets of issue 7, and
writes everything as JSON (default ``benchmarks/results/<timestamp>.json``).
Redis and PostgreSQL are included when their servers answer (URLs from the
options, ``$KEYSHELF_TEST_REDIS_URL`` / ``$KEYSHELF_TEST_POSTGRES_URL``, else
the local defaults) and skipped with a note otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from . import local, procs, stream
from .timing import Op, Summary, compare, fmt_ratio, fmt_us, markdown_table, ratio
from .workload import OPS, expected_listing

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
#: Loads of the PostgreSQL bulk run each way (the median is reported).
PG_BULK_REPEAT = 3
GROUPS = (
    "memory",
    "sqlite",
    "bulk",
    "procs",
    "redis",
    "postgres",
    "stream",
    "locks",
    "transactions",
    "memoize",
    "bounded",
    "async",
    "feed",
)
#: Run only when named in --only: "s3" starts its own moto server (bench_s3.py).
OPTIONAL_GROUPS = ("s3",)


@dataclass
class Group:
    """The results of one comparison: keyshelf's contestant and its anchors."""

    title: str
    ours: str
    anchors: list[str]
    results: dict[str, dict[str, Summary]] = field(default_factory=dict)  # op -> name -> summary

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "keyshelf": self.ours,
            "anchors": self.anchors,
            "operations": {
                op: {name: s.as_dict() for name, s in by_name.items()}
                for op, by_name in self.results.items()
            },
        }

    def median(self, op: str, name: str) -> float | None:
        summary = self.results.get(op, {}).get(name)
        return None if summary is None else summary.median_us

    def p99(self, op: str, name: str) -> float | None:
        summary = self.results.get(op, {}).get(name)
        return None if summary is None else summary.p99_us

    def table(self) -> str:
        names = [self.ours, *self.anchors]
        header = ["operation", *(f"{n} µs median (p99)" for n in names)]
        header += [f"÷ {a}" for a in self.anchors]
        header.append(f"{self.ours} spread")
        rows = []
        for op, by_name in self.results.items():
            row = [op]
            for name in names:
                s = by_name.get(name)
                row.append("—" if s is None else f"{fmt_us(s.median_us)} ({fmt_us(s.p99_us)})")
            mine = by_name[self.ours]
            for anchor in self.anchors:
                theirs = by_name.get(anchor)
                row.append(
                    "—" if theirs is None else fmt_ratio(ratio(mine.median_us, theirs.median_us))
                )
            low, high = mine.spread_us
            row.append(f"{fmt_us(low)}-{fmt_us(high)}")
            rows.append(row)
        return f"### {self.title}\n\n" + markdown_table(header, rows, align="l")


def _timing(args: argparse.Namespace) -> dict[str, int]:
    """The timing options every timed group takes (``--rounds``, ``--calls``, ``--warmup``)."""
    return {"rounds": args.rounds, "calls": args.calls, "warmup": args.warmup}


def run_group(
    group: Group,
    contestants: Sequence[Any],
    *,
    rounds: int,
    calls: int,
    warmup: int,
    log: Callable[[str], None],
    only_ops: Collection[str] | None = None,
    by_call: bool = False,
) -> Group:
    """Time every operation on every contestant (each offers ``ops()``).

    ``only_ops``: time these operations only (``--ops``); None times all.
    ``by_call``: contestants take turns call by call (:func:`timing.compare`).
    """
    all_ops = {c.name: c.ops() for c in contestants}
    order = []
    for op in OPS:
        if op in all_ops[group.ours]:
            order.append(op)
            if op == "set" and local.NEW_VALUE in all_ops[group.ours]:
                order.append(local.NEW_VALUE)  # next to the set it qualifies
    order += [op for op in all_ops[group.ours] if op not in order]
    if only_ops is not None:
        order = [op for op in order if op in only_ops]
    for op in order:
        entries = [(name, ops[op]) for name, ops in all_ops.items() if op in ops]
        started = time.perf_counter()
        group.results[op] = compare(
            entries, rounds=rounds, calls=calls, warmup=warmup, by_call=by_call
        )
        mine = group.results[op][group.ours].median_us
        others = ", ".join(
            f"{name} {s.median_us:.2f}"
            for name, s in group.results[op].items()
            if name != group.ours
        )
        log(
            f"  {group.title}: {op:<14} keyshelf {mine:8.2f} µs | {others} "
            f"({time.perf_counter() - started:.1f} s)"
        )
    return group


# ---------------------------------------------------------------------------
# groups
# ---------------------------------------------------------------------------


def bench_memory(args: argparse.Namespace, workdir: Path, log: Callable[[str], None]) -> Group:
    contestants = [
        local.KeyshelfStore(workdir, args.listing_keys, "memory://", "keyshelf memory"),
        local.CachetoolsTTL(workdir, args.listing_keys),
        local.LockedDict(workdir, args.listing_keys),
    ]
    return _run_local("memory backend", contestants, args, log)


def bench_memory_variants(
    args: argparse.Namespace, workdir: Path, log: Callable[[str], None]
) -> Group:
    """What moves the memory figures: a 1 KB value, the change feed on, the cache tier.

    Each row changes one condition of the main table (same keys, same
    timing), keyshelf ``memory://`` against a ``TTLCache`` given the same
    keys and values.
    """
    # Batches of 1 KB values take ~1 ms a call here: fewer of them per round.
    batch_calls = min(args.calls, 200)
    contestants: list[Any] = [
        local.MemoryVariants(workdir, args.listing_keys, batch_calls),
        local.CachetoolsVariants(workdir, args.listing_keys, batch_calls),
    ]
    return _run_local(
        "memory backend: what moves the figures", contestants, args, log, listing=False
    )


def bench_sqlite(args: argparse.Namespace, workdir: Path, log: Callable[[str], None]) -> Group:
    contestants = [
        local.KeyshelfStore(
            workdir, args.listing_keys, f"sqlite:///{workdir / 'keyshelf.db'}", "keyshelf sqlite"
        ),
        local.BareSQLite(workdir, args.listing_keys, wal=True),
        local.BareSQLite(workdir, args.listing_keys, wal=False, write_calls=min(args.calls, 200)),
        local.RawSQLite(workdir, args.listing_keys),
        local.DiskCache(workdir, args.listing_keys),
        local.SqliteDictStore(workdir, args.listing_keys),
    ]
    return _run_local("SQLite backend", contestants, args, log)


def _run_local(
    title: str,
    contestants: list[Any],
    args: argparse.Namespace,
    log: Callable[[str], None],
    *,
    listing: bool = True,
) -> Group:
    """Load every contestant, check they list alike (``listing``), time them; close them."""
    try:
        for c in contestants:
            started = time.perf_counter()
            c.load()
            log(
                f"  loaded {args.listing_keys:,} keys into {c.name} "
                f"({time.perf_counter() - started:.1f} s)"
            )
        expected = expected_listing(args.listing_keys)
        for c in contestants if listing else []:  # every side must return the same listing
            got = len(c.ops()["list user:1*"].run(0))
            if got != expected:
                raise AssertionError(f"{c.name} listed {got} keys, expected {expected}")
        group = Group(title, contestants[0].name, [c.name for c in contestants[1:]])
        return run_group(group, contestants, **_timing(args), log=log, only_ops=args.ops)
    finally:
        for c in contestants:
            c.close()


def bench_bulk(
    args: argparse.Namespace, workdir: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    """Load ``--bulk`` fresh sessions into each SQLite contestant, one after another."""
    out: dict[str, Any] = {"keys": args.bulk, "batch": args.bulk_batch, "results": {}}
    for name, load in local.BULK.items():
        target = workdir / f"bulk-{name.replace(' ', '-')}"
        if name == "diskcache":
            target.mkdir()
        else:
            target = target.with_suffix(".db")
        took, size = load(target, args.bulk, args.bulk_batch)
        out["results"][name] = {
            "seconds": round(took, 3),
            "keys_per_s": round(args.bulk / took),
            "bytes_on_disk": size,
            "bytes_per_key": round(size / args.bulk, 1),
        }
        log(
            f"  bulk {args.bulk:,}: {name:<16} {args.bulk / took:>10,.0f} keys/s  "
            f"{size / args.bulk:6.1f} B/key"
        )
        local.remove(target)
    return out


def bench_procs(
    args: argparse.Namespace, workdir: Path, log: Callable[[str], None], remote: dict[str, str]
) -> dict[str, Any]:
    targets = {
        "keyshelf sqlite": ("keyshelf", f"sqlite:///{workdir / 'procs-keyshelf.db'}"),
        "raw sqlite3": ("raw sqlite3", str(workdir / "procs-raw.db")),
        "diskcache": ("diskcache", str(workdir / "procs-diskcache")),
        "sqlitedict": ("sqlitedict", str(workdir / "procs-sqlitedict.db")),
    }
    for name, url in remote.items():
        targets[f"keyshelf {name}"] = ("keyshelf", url)
    out: dict[str, Any] = {}
    for name, (kind, target) in targets.items():
        out[name] = procs.run(kind, target, args.procs, args.proc_calls)
        r = out[name]
        log(
            f"  {args.procs} processes x {args.proc_calls:,} increments: {name:<18} "
            f"{r['increments_per_s']:>8,}/s  lost {r['lost_updates']}"
        )
    return out


def bench_redis(args: argparse.Namespace, url: str, log: Callable[[str], None]) -> Group:
    from . import bench_redis as br

    prefix = f"keyshelf-bench-{os.getpid()}-{int(time.time())}"
    kv, r, cases = br.open_sync(url, prefix)
    try:
        contestants = [
            _Fixed("keyshelf redis", {_name(n): Op(_nullary(o)) for n, (o, _) in cases.items()}),
            _Fixed("raw redis-py", {_name(n): Op(_nullary(t)) for n, (_, t) in cases.items()}),
        ]
        group = Group("Redis backend", "keyshelf redis", ["raw redis-py"])
        return run_group(
            group, contestants, **_timing(args), log=log, only_ops=args.ops, by_call=True
        )
    finally:
        kv.close()
        r.close()
        br.cleanup(url, prefix)


def bench_postgres(args: argparse.Namespace, url: str, log: Callable[[str], None]) -> Group:
    from . import bench_postgres as bp

    bench = bp.Bench(url, args.rounds, args.calls)
    try:
        cases = bench.cases()
        contestants = [
            _Fixed("keyshelf postgres", {_name(n): Op(_nullary(o)) for n, o, _ in cases}),
            _Fixed("raw psycopg", {_name(n): Op(_nullary(t)) for n, _, t in cases}),
        ]
        group = Group("PostgreSQL backend", "keyshelf postgres", ["raw psycopg"])
        return run_group(
            group, contestants, **_timing(args), log=log, only_ops=args.ops, by_call=True
        )
    finally:
        bench.close()


def bench_postgres_bulk(
    args: argparse.Namespace, url: str, log: Callable[[str], None]
) -> dict[str, Any]:
    """``--bulk`` new keys into PostgreSQL: public ``mset`` against one raw binary COPY.

    Median seconds of :data:`PG_BULK_REPEAT` loads each way (and of the
    backend's ``put_many`` on batches encoded beforehand: what the core's
    checks and encoding add), each into a fresh table.
    """
    from . import bench_postgres as bp

    bench = bp.Bench(url, args.rounds, args.calls)
    try:
        seconds = bench.run_bulk(args.bulk, args.bulk_batch, PG_BULK_REPEAT)
    finally:
        bench.close()
    log(
        f"  postgres bulk {args.bulk:,}: keyshelf mset {seconds['keyshelf']:.2f} s | backend "
        f"put_many {seconds['backend']:.2f} s | raw COPY {seconds['copy']:.2f} s | mset keys/s "
        f"÷ COPY {seconds['copy'] / seconds['keyshelf']:.2f}"
    )
    return {"keys": args.bulk, "batch": args.bulk_batch, "seconds": seconds}


@dataclass
class _Fixed:
    name: str
    _ops: dict[str, Op]

    def ops(self) -> dict[str, Op]:
        return self._ops


def _name(op: str) -> str:
    """The scripts' ``get`` is a hit: name it as in the other tables."""
    return "get hit" if op == "get" else op


def _nullary(fn: Callable[[], Any]) -> Callable[[int], Any]:
    return lambda i: fn()


def reachable(kind: str, url: str) -> str | None:
    """None if the server answers, else why not."""
    try:
        if kind == "redis":
            import redis

            client = redis.Redis.from_url(url, socket_connect_timeout=2)
            client.ping()
            client.close()
        else:
            import psycopg

            psycopg.connect(url, connect_timeout=3).close()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".strip()
    return None


# ---------------------------------------------------------------------------
# targets (issue 7)
# ---------------------------------------------------------------------------


@dataclass
class Check:
    what: str
    value: float
    limit: float
    higher_is_better: bool = False

    @property
    def met(self) -> bool:
        return self.value >= self.limit if self.higher_is_better else self.value <= self.limit

    def line(self) -> str:
        sign = "≥" if self.higher_is_better else "≤"
        mark = "met" if self.met else "MISSED"
        return f"| {self.what} | {self.value:.2f} | {sign} {self.limit:g} | {mark} |"


# operation -> (target ÷ diskcache, target ÷ raw sqlite3)
SQLITE_TARGETS: dict[str, tuple[float | None, float | None]] = {
    "get hit": (0.75, 1.2),
    "get miss": (0.75, 1.2),
    "get hit (int)": (0.75, 1.2),
    "set": (0.35, 1.3),
    "set (int)": (0.35, 1.3),
    "set with TTL": (0.25, None),
    "increment": (0.75, None),
    "mset 100": (0.15, None),
    "mget 100": (0.5, None),
    "list user:1*": (0.1, 1.5),
}


# Issue 18: (group, operation, anchor, limit). The bare sqlite3 anchor is a
# user's own (key, value, expiry) table in WAL mode; "raw sqlite3" above runs
# keyshelf's own statements and stays as the reachable ceiling.
ISSUE18_TARGETS: tuple[tuple[str, str, str, float], ...] = (
    ("sqlite", "set", "bare sqlite3 WAL", 1.3),
    ("sqlite", local.NEW_VALUE, "bare sqlite3 WAL", 1.3),
    ("sqlite", "set with TTL", "diskcache", 0.25),
    ("sqlite", "delete", "diskcache", 0.5),
    ("sqlite", "mset 100", "diskcache", 0.15),
    ("memory", "set", "cachetools TTLCache", 2.0),
    ("memory", "set with TTL", "cachetools TTLCache", 2.0),
    ("memory", "mset 100", "cachetools TTLCache", 2.0),
    ("redis", "get hit", "raw redis-py", 1.1),
    ("redis", "set", "raw redis-py", 1.25),
    ("redis", "set with TTL", "raw redis-py", 1.25),
    ("redis", "increment", "raw redis-py", 1.25),
    ("redis", "mget 100", "raw redis-py", 1.3),
    ("redis", "mset 100", "raw redis-py", 1.5),
    ("postgres", "get hit", "raw psycopg", 1.15),
    ("postgres", "set", "raw psycopg", 1.2),
    ("postgres", "mget 100", "raw psycopg", 1.2),
)


def checks(report: dict[str, Any], groups: dict[str, Group]) -> list[Check]:
    out: list[Check] = []
    for key, op, anchor, limit in ISSUE18_TARGETS:
        g = groups.get(key)
        if g is None:
            continue
        mine, theirs = g.median(op, g.ours), g.median(op, anchor)
        if mine is not None and theirs:
            out.append(
                Check(f"issue 18: {g.title.split()[0]} {op} ÷ {anchor}", mine / theirs, limit)
            )
    sq = groups.get("sqlite")
    if sq is not None:
        for op, (vs_dc, vs_raw) in SQLITE_TARGETS.items():
            mine = sq.median(op, sq.ours)
            if mine is None:
                continue
            for anchor, limit in (("diskcache", vs_dc), ("raw sqlite3", vs_raw)):
                theirs = sq.median(op, anchor)
                if limit is not None and theirs:
                    out.append(Check(f"SQLite {op} ÷ {anchor}", mine / theirs, limit))
        for op in sq.results:
            mine_p99, theirs_p99 = sq.p99(op, sq.ours), sq.p99(op, "diskcache")
            if mine_p99 is not None and theirs_p99:
                out.append(Check(f"SQLite {op} p99 ÷ diskcache p99", mine_p99 / theirs_p99, 1.0))
    mem = groups.get("memory")
    if mem is not None:
        for op in mem.results:
            mine, theirs = mem.median(op, mem.ours), mem.median(op, "cachetools TTLCache")
            if mine is not None and theirs:
                out.append(Check(f"memory {op} ÷ cachetools", mine / theirs, 1.0))
    for key, anchor in (("redis", "raw redis-py"), ("postgres", "raw psycopg")):
        g = groups.get(key)
        if g is None:
            continue
        for op in g.results:
            mine, theirs = g.median(op, g.ours), g.median(op, anchor)
            if mine is not None and theirs:
                out.append(Check(f"{g.title.split()[0]} {op} ÷ {anchor}", mine / theirs, 1.1))
    bulk = report.get("bulk")
    if bulk:
        res = bulk["results"]
        ours, raw = res["keyshelf sqlite"], res["raw sqlite3"]
        out.append(
            Check("SQLite bulk keys/s ÷ raw", ours["keys_per_s"] / raw["keys_per_s"], 0.8, True)
        )
        out.append(Check("SQLite bytes per key (session)", ours["bytes_per_key"], 175))
    pg_bulk = report.get("postgres bulk")
    if pg_bulk:
        took = pg_bulk["seconds"]
        out.append(
            Check(
                "PostgreSQL bulk via mset keys/s ÷ raw COPY",
                took["copy"] / took["keyshelf"],
                0.8,
                True,
            )
        )
    for name, r in (report.get("procs") or {}).items():
        if name.startswith("keyshelf"):
            out.append(Check(f"{name} lost updates", r["lost_updates"], 0))
    if "async sqlite" in groups or "async memory" in groups or report.get("loop_stall"):
        from .bench_async import checks as async_checks

        out += async_checks(groups, report.get("loop_stall"))
    if "bounded sizes" in report:
        from .bench_bounded import checks as bounded_checks

        out += bounded_checks(
            {"SQLite": groups.get("bounded sqlite"), "memory": groups.get("bounded memory")},
            report["bounded sizes"],
        )
    if "memoize sqlite" in groups or "memoize memory" in groups:
        from .bench_memoize import checks as memoize_checks

        out += memoize_checks(
            {"SQLite": groups.get("memoize sqlite"), "memory": groups.get("memoize memory")}
        )
    for backend, r in (report.get("locks") or {}).items():
        out.append(Check(f"{backend} lock acquire+release ÷ setnx+delete", r["ratio"], 2.0))
    if report.get("feed"):
        from .bench_feed import checks as feed_checks

        out += [Check(*found) for found in feed_checks(report["feed"])]
    if report.get("transactions"):
        from .bench_transactions import checks as transaction_checks

        out += [Check(*found) for found in transaction_checks(report["transactions"])]
    streamed = report.get("stream")
    if streamed:
        res = streamed["results"]
        base = res["keys(prefix)"]["seconds"] or 1e-9
        out.append(
            Check(
                "SQLite iter_keys(prefix) ÷ keys(prefix)",
                res["iter_keys(prefix)"]["seconds"] / base,
                1.5,
            )
        )
        # The CLI pays a process start-up that keys(prefix) in a running
        # program does not; its anchor is a fresh process doing keys(prefix).
        floor = res["process: print keys(prefix)"]["seconds"] or 1e-9
        out.append(
            Check(
                "CLI keys PREFIX* ÷ process printing keys(prefix)",
                res["CLI keys PREFIX*"]["seconds"] / floor,
                1.5,
            )
        )
    return out


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for dist in ("keyshelf", "orjson", "cachetools", "diskcache", "sqlitedict", "redis", "psycopg"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "sqlite": sqlite3.sqlite_version,
        "libraries": versions,
    }


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(GROUPS), help="comma-separated groups")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=2000, help="timed calls per round")
    p.add_argument("--warmup", type=int, default=300, help="untimed calls per round")
    p.add_argument(
        "--ops",
        default=None,
        help="comma-separated operations of the memory, sqlite, redis and postgres tables "
        "(e.g. 'set,set (new value),set with TTL'; default all)",
    )
    p.add_argument("--listing-keys", type=int, default=100_000)
    p.add_argument("--bulk", type=int, default=1_000_000)
    p.add_argument("--bulk-batch", type=int, default=10_000)
    p.add_argument("--procs", type=int, default=4)
    p.add_argument("--proc-calls", type=int, default=5000)
    p.add_argument("--stream-keys", type=int, default=1_000_000, help="keys of the stream group")
    p.add_argument("--stream-rounds", type=int, default=3)
    p.add_argument(
        "--feed-changes", type=int, default=300, help="changes timed by the feed latency run"
    )
    p.add_argument(
        "--feed-sustained", type=int, default=10_000, help="sets of the feed pruning run"
    )
    p.add_argument(
        "--stall-seconds", type=float, default=5.0, help="each loop-stall run (async group)"
    )
    p.add_argument("--redis-url", default=os.environ.get("KEYSHELF_TEST_REDIS_URL", DEFAULT_REDIS))
    p.add_argument(
        "--postgres-url", default=os.environ.get("KEYSHELF_TEST_POSTGRES_URL", DEFAULT_POSTGRES)
    )
    p.add_argument("--json", type=Path, default=None, help="where to write the JSON results")
    p.add_argument("--workdir", type=Path, default=None, help="where the store files go")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = p.parse_args(argv)
    args.only = [g.strip() for g in args.only.split(",") if g.strip()]
    if args.ops is not None:
        args.ops = [op.strip() for op in args.ops.split(",") if op.strip()]
    unknown = set(args.only) - set(GROUPS) - set(OPTIONAL_GROUPS)
    if unknown:
        p.error(f"unknown groups: {', '.join(sorted(unknown))}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)

    def log(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("json", "workdir", "quiet")},
        "groups": {},
        "skipped": {},
    }
    groups: dict[str, Group] = {}
    remote: dict[str, str] = {}
    for kind, url in (("redis", args.redis_url), ("postgres", args.postgres_url)):
        # The locks and transactions groups measure every server that answers, too.
        if kind in args.only or {"locks", "transactions", "feed"} & set(args.only):
            why = reachable(kind, url)
            if why is None:
                remote[kind] = url
            else:
                report["skipped"][kind] = why
                log(f"  {kind}: skipped, {url} does not answer ({why})")

    with tempfile.TemporaryDirectory(prefix="keyshelf-bench-", dir=args.workdir) as tmp:
        workdir = Path(tmp)
        runners: dict[str, Callable[[], Group]] = {
            "memory": lambda: bench_memory(args, workdir, log),
            "sqlite": lambda: bench_sqlite(args, workdir / "sqlite", log),
            "redis": lambda: bench_redis(args, remote["redis"], log),
            "postgres": lambda: bench_postgres(args, remote["postgres"], log),
        }
        for name in ("memory", "sqlite", "redis", "postgres"):
            if name in args.only and (name in ("memory", "sqlite") or name in remote):
                if name == "sqlite":
                    (workdir / "sqlite").mkdir()
                groups[name] = runners[name]()
                report["groups"][name] = groups[name].as_dict()
            if name == "memory" and "memory" in args.only:
                variants = bench_memory_variants(args, workdir, log)
                groups["memory variants"] = variants
                report["groups"]["memory variants"] = variants.as_dict()
        if "s3" in args.only:
            from . import bench_s3

            log("  s3: keyshelf vs raw obstore, one moto server")
            report["s3"] = bench_s3.measure()
            for row in report["s3"]:
                log(f"  {bench_s3.render(row)}")
        if "bulk" in args.only and args.bulk:
            report["bulk"] = bench_bulk(args, workdir, log)
            if "postgres" in remote:
                report["postgres bulk"] = bench_postgres_bulk(args, remote["postgres"], log)
        if "stream" in args.only and args.stream_keys:
            report["stream"] = stream.run(
                workdir / "stream.db", args.stream_keys, args.stream_rounds, log
            )
        if "async" in args.only:
            from . import bench_async

            (workdir / "async").mkdir()
            timed = bench_async.latency(
                workdir / "async",
                **_timing(args),
                log=log,
            )
            for key, group in timed.items():
                groups[f"async {key}"] = group
                report["groups"][f"async {key}"] = group.as_dict()
            if args.stall_seconds:
                report["loop_stall"] = bench_async.stall(
                    workdir / "async", seconds=args.stall_seconds, log=log
                )
        if "memoize" in args.only:
            from . import bench_memoize

            (workdir / "memoize").mkdir()
            memoized = bench_memoize.run(
                workdir / "memoize",
                **_timing(args),
                log=log,
            )
            for title, group in memoized.items():
                groups[f"memoize {title.lower()}"] = group
                report["groups"][f"memoize {title.lower()}"] = group.as_dict()
        if "bounded" in args.only:
            from . import bench_bounded

            (workdir / "bounded").mkdir()
            bounded_groups, report["bounded sizes"] = bench_bounded.run(
                workdir / "bounded",
                **_timing(args),
                log=log,
            )
            for title, group in bounded_groups.items():
                groups[f"bounded {title.lower()}"] = group
                report["groups"][f"bounded {title.lower()}"] = group.as_dict()
        if "locks" in args.only:
            from . import bench_locks

            tag = f"keyshelf_bench_locks_{os.getpid()}"
            lock_urls = {"sqlite": f"sqlite:///{workdir / 'locks.db'}"}
            if "redis" in remote:
                lock_urls["redis"] = _with_query(remote["redis"], f"prefix={tag}")
            if "postgres" in remote:
                lock_urls["postgres"] = _with_query(remote["postgres"], f"schema={tag}")
            try:
                report["locks"] = bench_locks.run(lock_urls, **_timing(args), log=log)
            finally:
                _drop_remote(remote, tag)
        if "transactions" in args.only:
            from . import bench_transactions

            tag = f"keyshelf_bench_tx_{os.getpid()}"
            tx_urls = {"sqlite": f"sqlite:///{workdir / 'transactions.db'}"}
            if "redis" in remote:
                tx_urls["redis"] = _with_query(remote["redis"], f"prefix={tag}")
            if "postgres" in remote:
                tx_urls["postgres"] = _with_query(remote["postgres"], f"schema={tag}")
            try:
                report["transactions"] = bench_transactions.run(tx_urls, **_timing(args), log=log)
            finally:
                _drop_remote(remote, tag)
        if "feed" in args.only:
            from . import bench_feed

            tags = (
                f"keyshelf_bench_feed_off_{os.getpid()}",
                f"keyshelf_bench_feed_on_{os.getpid()}",
            )
            feed_urls = {
                "memory": ("memory://", "memory://"),
                "sqlite": tuple(f"sqlite:///{workdir / f'feed-{s}.db'}" for s in ("off", "on")),
                "file": tuple(f"file://{workdir / f'feed-{s}.json'}" for s in ("off", "on")),
            }
            if "redis" in remote:
                feed_urls["redis"] = tuple(
                    _with_query(remote["redis"], f"prefix={t}") for t in tags
                )
            if "postgres" in remote:
                feed_urls["postgres"] = tuple(
                    _with_query(remote["postgres"], f"schema={t}") for t in tags
                )
            try:
                report["feed"] = bench_feed.run(
                    feed_urls,  # type: ignore[arg-type]
                    **_timing(args),
                    latency_changes=args.feed_changes,
                    log=log,
                    sustained=args.feed_sustained,
                )
            finally:
                for tag in tags:
                    _drop_remote(remote, tag)
        if "procs" in args.only and args.procs:
            tag = f"keyshelf_bench_procs_{os.getpid()}"
            remote_urls = {}
            if "redis" in remote:
                remote_urls["redis"] = _with_query(remote["redis"], f"prefix={tag}")
            if "postgres" in remote:
                remote_urls["postgres"] = _with_query(remote["postgres"], f"schema={tag}")
            try:
                report["procs"] = bench_procs(args, workdir, log, remote_urls)
            finally:
                _drop_remote(remote, tag)

    found = checks(report, groups)
    report["targets"] = [
        {"what": c.what, "value": round(c.value, 4), "limit": c.limit, "met": c.met} for c in found
    ]
    print(render(report, groups, found))
    path = args.json or RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    log(f"\nJSON written to {path}")
    return 0


def _with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


def _drop_remote(remote: dict[str, str], tag: str) -> None:
    """Remove what the process contest left on the servers: its prefix, its schema."""
    if "redis" in remote:
        from .bench_redis import cleanup

        cleanup(remote["redis"], tag)
    if "postgres" in remote:
        import psycopg
        from psycopg import sql

        with psycopg.connect(remote["postgres"], autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(tag)))


def _section(title: str, headers: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of one table of the report: a blank line, its title, its table."""
    return ["", title, "", markdown_table(headers, rows, "l")]


def render(report: dict[str, Any], groups: dict[str, Group], found: list[Check]) -> str:
    m = report["machine"]
    s = report["settings"]
    parts = [
        f"## keyshelf benchmarks — {report['started']}",
        "",
        f"{m['cpu']}, {m['cpus']} CPUs, Python {m['python']}, SQLite {m['sqlite']}. "
        f"{s['rounds']} rounds x {s['calls']:,} timed calls (after {s['warmup']} warm-up "
        f"calls) per operation and contestant, interleaved; {s['listing_keys']:,} keys "
        "present. Cells: median µs (p99); ratios: keyshelf median ÷ anchor median; "
        "spread: lowest-highest round median.",
    ]
    for group in groups.values():
        parts += ["", group.table()]
    bulk = report.get("bulk")
    if bulk:
        rows = [
            [name, f"{r['seconds']:.1f}", f"{r['keys_per_s']:,}", f"{r['bytes_per_key']:.0f}"]
            for name, r in bulk["results"].items()
        ]
        parts += _section(
            f"### Bulk load of {bulk['keys']:,} sessions (batches of {bulk['batch']:,})",
            ["contestant", "seconds", "keys/s", "bytes/key on disk"],
            rows,
        )
    pg_bulk = report.get("postgres bulk")
    if pg_bulk:
        took = pg_bulk["seconds"]
        labels = {
            "keyshelf": f"keyshelf `mset`, batches of {pg_bulk['batch']:,}",
            "backend": "the backend's `put_many` alone (batches encoded beforehand)",
            "copy": "raw psycopg, one binary `COPY`",
        }
        rows = [
            [
                label,
                f"{took[name]:.2f}",
                f"{pg_bulk['keys'] / took[name]:,.0f}",
                f"{took['copy'] / took[name]:.2f}x",
            ]
            for name, label in labels.items()
        ]
        parts += _section(
            f"### PostgreSQL bulk load of {pg_bulk['keys']:,} new keys "
            f"(median of {PG_BULK_REPEAT})",
            ["contestant", "seconds", "keys/s", "keys/s ÷ COPY"],
            rows,
        )
    st = report.get("stream")
    if st:
        rows = [
            [
                name,
                f"{r['seconds']:.3f}",
                f"{r['spread'][0]:.3f}-{r['spread'][1]:.3f}",
                f"{r['vs_keys_prefix']:.2f}x",
            ]
            for name, r in st["results"].items()
        ]
        parts += _section(
            f"### Streaming listings, SQLite, {st['keys']:,} keys "
            f"({st['under_prefix']:,} under the prefix), median of {st['rounds']}",
            ["listing", "seconds", "spread", "÷ keys(prefix)"],
            rows,
        )
    stalls = report.get("loop_stall")
    if stalls:
        from .bench_async import render as render_stalls

        parts += ["", render_stalls(stalls)]
    if report.get("feed"):
        from .bench_feed import render as render_feed

        parts += render_feed(report["feed"])
    locks = report.get("locks")
    if locks:
        from .bench_locks import LOCK, SETNX

        rows = [
            [
                backend,
                f"{r[LOCK]['median_us']:.1f} ({r[LOCK]['p99_us']:.1f})",
                f"{r[SETNX]['median_us']:.1f} ({r[SETNX]['p99_us']:.1f})",
                f"{r['ratio']:.2f}x",
            ]
            for backend, r in locks.items()
        ]
        parts += _section(
            "### Uncontended lock: kv.lock acquire + release against setnx + delete",
            ["backend", f"{LOCK} µs median (p99)", f"{SETNX} µs median (p99)", "ratio"],
            rows,
        )
    transactions = report.get("transactions")
    if transactions:
        from .bench_transactions import COMMIT, PLAIN

        rows = [
            [
                backend,
                f"{r[COMMIT]['median_us']:.1f} ({r[COMMIT]['p99_us']:.1f})",
                f"{r[PLAIN]['median_us']:.1f} ({r[PLAIN]['p99_us']:.1f})",
                f"{r['ratio']:.2f}x",
                str(r["round_trips"]["commit"]) if "round_trips" in r else "-",
            ]
            for backend, r in transactions.items()
        ]
        parts += _section(
            "### Checked commit: kv.atomic() with 2 checks + 2 sets against 2 plain sets",
            [
                "backend",
                f"{COMMIT} µs median (p99)",
                f"{PLAIN} µs median (p99)",
                "ratio",
                "round trips per commit",
            ],
            rows,
        )
    pr = report.get("procs")
    if pr:
        first = next(iter(pr.values()))
        rows = [
            [name, f"{r['increments_per_s']:,}", f"{r['final']:,}", str(r["lost_updates"])]
            for name, r in pr.items()
        ]
        parts += _section(
            f"### {first['processes']} processes x {first['calls_per_process']:,} "
            "increments of one key",
            ["contestant", "increments/s", "final value", "lost updates"],
            rows,
        )
    for kind, why in report["skipped"].items():
        parts += ["", f"{kind}: skipped ({why})"]
    if found:
        parts += [
            "",
            "### Targets (issues 7 and 18)",
            "",
            "| target | value | limit | |",
            "|---|---:|---|---|",
        ]
        parts += [c.line() for c in found]
        missed = sum(1 for c in found if not c.met)
        parts += ["", f"{len(found) - missed} of {len(found)} targets met."]
    return "\n".join(parts)


if __name__ == "__main__":
    sys.exit(main())
