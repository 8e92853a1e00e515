"""The scale run: 10,000,000 keys in the SQLite backend (``make bench-scale``).

Usage::

    python -m benchmarks.scale [--keys 10000000] [--small 100000] [--batch 10000]
                               [--rounds 5] [--calls 2000] [--workdir DIR] [--json PATH]

Loads ``--keys`` sessions (the ~100-byte dict of the main benchmark) with
``kv.mset`` in batches, reporting the load rate as it goes, then the file size
per key (WAL checkpointed). A second store holds ``--small`` keys loaded the
same way. Then get and set latencies are measured on both stores, interleaved
by rounds, on 4,096 keys spread over the whole key space (every call touches a
different leaf page), after one warm-up pass over those keys (steady state:
their pages mapped, as in a long-running process), and the table compares them
(target: the 10M-key medians ≤ 1.3x the 100k-key ones). Not part of ``make test``: it takes
minutes and a couple of GB of disk.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keyshelf

from .local import checkpoint, file_bytes
from .run import RESULTS, machine
from .timing import Op, compare, fmt_ratio, fmt_us, markdown_table
from .workload import SESSION, TTL


def key(i: int) -> str:
    return f"session:{i:08d}"


def load(path: Path, n: int, batch: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Fill a fresh store with ``n`` sessions; seconds, keys/s and bytes per key."""
    took = 0.0
    next_report = 1_000_000
    with keyshelf.open(path) as kv:
        for start in range(0, n, batch):
            mapping = dict.fromkeys((key(i) for i in range(start, min(start + batch, n))), SESSION)
            t0 = time.perf_counter()
            kv.mset(mapping)
            took += time.perf_counter() - t0
            done = min(start + batch, n)
            if done >= next_report:
                log(f"  {done:>12,} keys  {done / took:>9,.0f} keys/s overall")
                next_report += 1_000_000
    checkpoint(path)
    size = file_bytes(path)
    return {
        "keys": n,
        "seconds": round(took, 2),
        "keys_per_s": round(n / took),
        "bytes_on_disk": size,
        "bytes_per_key": round(size / n, 1),
    }


def ops(kv: Any, n: int) -> dict[str, Op]:
    # Keys spread over the whole key space; the set keys are other keys than the get keys.
    gets = [key((i * 7_919_993) % n) for i in range(4096)]
    sets = [key((i * 7_919_993 + n // 2) % n) for i in range(4096)]
    misses = [f"missing:{i}" for i in range(4096)]
    return {
        "get hit": Op(lambda i: kv.get(gets[i % 4096])),
        "get miss": Op(lambda i: kv.get(misses[i % 4096])),
        "set": Op(lambda i: kv.set(sets[i % 4096], SESSION)),
        "set with TTL": Op(lambda i: kv.set(sets[(i + 2048) % 4096], SESSION, ttl=TTL)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.scale", description=__doc__.splitlines()[0]
    )
    p.add_argument("--keys", type=int, default=10_000_000)
    p.add_argument("--small", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--warmup", type=int, default=4096, help="one pass over the key set")
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("json", "workdir")},
    }
    with tempfile.TemporaryDirectory(prefix="keyshelf-scale-", dir=args.workdir) as tmp:
        small_path, big_path = Path(tmp) / "small.db", Path(tmp) / "big.db"
        log(f"loading {args.small:,} keys")
        report["small"] = load(small_path, args.small, args.batch, log)
        log(f"loading {args.keys:,} keys")
        report["big"] = load(big_path, args.keys, args.batch, log)
        small_label, big_label = f"{args.small:,} keys", f"{args.keys:,} keys"
        with keyshelf.open(small_path) as small, keyshelf.open(big_path) as big:
            small_ops, big_ops = ops(small, args.small), ops(big, args.keys)
            results = {}
            for op in small_ops:
                results[op] = compare(
                    [(small_label, small_ops[op]), (big_label, big_ops[op])],
                    rounds=args.rounds,
                    calls=args.calls,
                    warmup=args.warmup,
                )
                log(
                    f"  {op:<13} {results[op][small_label].median_us:7.2f} µs  "
                    f"{results[op][big_label].median_us:7.2f} µs"
                )
    report["latency"] = {
        op: {name: s.as_dict() for name, s in by.items()} for op, by in results.items()
    }
    rows = []
    for op, by in results.items():
        s, b = by[small_label], by[big_label]
        rows.append(
            [
                op,
                f"{fmt_us(s.median_us)} ({fmt_us(s.p99_us)})",
                f"{fmt_us(b.median_us)} ({fmt_us(b.p99_us)})",
                fmt_ratio(b.median_us / s.median_us),
            ]
        )
    load_rows = [
        [
            f"{r['keys']:,}",
            f"{r['seconds']:.1f}",
            f"{r['keys_per_s']:,}",
            f"{r['bytes_on_disk'] / 2**20:,.0f} MiB",
            f"{r['bytes_per_key']:.0f}",
        ]
        for r in (report["small"], report["big"])
    ]
    m = report["machine"]
    print(
        f"## keyshelf SQLite scale run — {report['started']}\n\n"
        f"{m['cpu']}, {m['cpus']} CPUs, Python {m['python']}, SQLite {m['sqlite']}.\n\n"
        + markdown_table(["keys", "load seconds", "keys/s", "file", "bytes/key"], load_rows)
        + "\n\n"
        + markdown_table(
            [
                "operation",
                f"{small_label} µs median (p99)",
                f"{big_label} µs median (p99)",
                "ratio",
            ],
            rows,
            "l",
        )
    )
    path = args.json or RESULTS / f"scale-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    log(f"JSON written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
