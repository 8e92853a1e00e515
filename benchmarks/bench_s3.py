"""Benchmark: keyshelf's S3 backend against raw obstore doing the same work.

Run: ``python benchmarks/bench_s3.py [--endpoint http://127.0.0.1:9000 --bucket B] [--keys 10000]``

Without ``--endpoint`` it starts the tests' moto server (tests/backends/s3_server.py)
on a free loopback port. Both sides use obstore against the same server in the
same run: raw ``get``/``put`` of the very bytes keyshelf stores for the value,
and a raw paginated LIST of the same prefix; ``mset`` of 100 keys (all or
nothing) against 100 raw PUTs, which is no target but the price of the
guarantee. Calls are timed one by one,
keyshelf and raw interleaved in alternating blocks; the table shows medians
and the ratio keyshelf / raw (targets: get and set <= 1.2, listing <= 1.5).
Everything lives under a unique prefix, removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import obstore
from obstore.store import S3Store

import keyshelf

BLOCK = 20  # calls per side before switching


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _interleaved(
    calls: int, ours: Callable[[], Any], raw: Callable[[], Any]
) -> tuple[float, float]:
    mine: list[float] = []
    theirs: list[float] = []
    while len(mine) < calls:
        for fn, out in ((ours, mine), (raw, theirs)):
            for _ in range(BLOCK):
                start = time.perf_counter()
                fn()
                out.append(time.perf_counter() - start)
    return _median_ms(mine), _median_ms(theirs)


def _row(case: str, ours: float, theirs: float) -> dict[str, Any]:
    return {"case": case, "keyshelf_ms": ours, "raw_ms": theirs, "ratio": ours / theirs}


def render(row: dict[str, Any]) -> str:
    """One result as a line of the table."""
    return (
        f"{row['case']:<18} keyshelf {row['keyshelf_ms']:9.2f} ms  "
        f"raw {row['raw_ms']:9.2f} ms  {row['ratio']:5.2f}x"
    )


def run(
    endpoint: str, bucket: str, options: dict[str, Any], calls: int, keys: int
) -> list[dict[str, Any]]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    config: dict[str, Any] = {"endpoint": endpoint, "region": options.get("region", "us-east-1")}
    config["virtual_hosted_style_request"] = False
    if "aws_access_key_id" in options:
        config["access_key_id"] = options["aws_access_key_id"]
        config["secret_access_key"] = options["aws_secret_access_key"]
    raw = S3Store(bucket, config=config, client_options={"allow_http": True})  # type: ignore[arg-type]
    rows: list[dict[str, Any]] = []
    with keyshelf.open(f"s3://{bucket}/{prefix}", **options) as kv:
        kv.set("g", "value")
        body = obstore.get(raw, f"{prefix}/d/default/g").bytes().to_bytes()
        obstore.put(raw, f"{prefix}/raw/g", body)
        ours, theirs = _interleaved(
            calls, lambda: kv.get("g"), lambda: obstore.get(raw, f"{prefix}/raw/g").bytes()
        )
        rows.append(_row("get", ours, theirs))
        ours, theirs = _interleaved(
            calls, lambda: kv.set("s", "value"), lambda: obstore.put(raw, f"{prefix}/raw/s", body)
        )
        rows.append(_row("set", ours, theirs))

        # A batch: all or nothing through a commit object (about 4 requests per
        # key), against the 100 plain PUTs a user would send without atomicity.
        # Not a target: the price of the guarantee (docs/s3.md).
        batch = {f"m{i:03d}": "value" for i in range(100)}
        ours, theirs = _interleaved(
            max(1, calls // 40),
            lambda: kv.mset(batch),
            lambda: [obstore.put(raw, f"{prefix}/raw/{key}", body) for key in batch],
        )
        rows.append(_row("mset 100 keys", ours, theirs))

        # Listing: `keys` live keys written through keyshelf, listed by prefix.
        async def fill() -> None:
            async with keyshelf.open_async(f"s3://{bucket}/{prefix}", **options) as akv:
                batch = 64
                for start in range(0, keys, batch):
                    await asyncio.gather(
                        *(akv.set(f"L{i:06d}", i) for i in range(start, min(keys, start + batch)))
                    )

        asyncio.run(fill())

        def raw_list() -> int:
            stream = obstore.list(raw, f"{prefix}/d/default", offset=None, chunk_size=1000)
            return sum(
                1 for page in stream for meta in page if str(meta["path"]).rpartition("/")[2] >= "L"
            )

        ours, theirs = _interleaved(3, lambda: kv.keys("L*"), raw_list)
        assert len(kv.keys("L*")) == keys
        rows.append(_row(f"list {keys} keys", ours, theirs))
    for page in obstore.list(raw, prefix, chunk_size=1000):
        obstore.delete(raw, [str(meta["path"]) for meta in page])
    return rows


def measure(
    endpoint: str | None = None,
    bucket: str = "keyshelf-test",
    calls: int = 400,
    keys: int = 10_000,
) -> list[dict[str, Any]]:
    """Run every case; without ``endpoint``, against a moto server started for it."""
    if endpoint:
        return run(endpoint, bucket, {"endpoint_url": endpoint}, calls, keys)
    from backends import s3_server

    server = s3_server.S3Server()
    server.start()
    try:
        options = {"endpoint_url": server.url, **s3_server.CREDENTIALS}
        return run(server.url, s3_server.BUCKET, options, calls, keys)
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", help="an S3-compatible endpoint (default: start moto)")
    parser.add_argument("--bucket", default="keyshelf-test")
    parser.add_argument("--calls", type=int, default=400, help="timed calls per side")
    parser.add_argument("--keys", type=int, default=10_000, help="keys for the listing case")
    args = parser.parse_args(argv)
    for row in measure(args.endpoint, args.bucket, args.calls, args.keys):
        print(render(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
