"""A tour of keyshelf on the embedded SQLite default: ``python -m keyshelf.demo``.

It walks through the use cases of the documents keyshelf comes from —
sessions with a TTL, rate limiting with atomic increments, feature flags, a
cache, pattern listing, metadata and namespaces — and prints what it does. It
works in the ``demo`` namespace of the default store (``$KEYSHELF_URL``, else
``./keyshelf.db``) and clears that namespace first, so it can be run again.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from typing import Any

import keyshelf


def show(label: str, value: Any) -> None:
    print(f"  {label:<44} {value!r}")


def sessions(kv: keyshelf.Store) -> None:
    print("\n1. Sessions that expire")
    session_id = secrets.token_urlsafe(8)
    kv.set(f"session:{session_id}", {"user_id": 123, "ip": "192.168.1.1"}, ttl=1)
    show(f"get('session:{session_id}')", kv.get(f"session:{session_id}"))
    show("ttl() right after set(ttl=1)", round(kv.ttl(f"session:{session_id}") or 0, 3))
    time.sleep(1.05)
    show("get() 1.05 s later", kv.get(f"session:{session_id}"))
    show("exists() 1.05 s later", kv.exists(f"session:{session_id}"))


def rate_limit(kv: keyshelf.Store) -> None:
    print("\n2. Rate limiting with atomic increments (limit 3 per minute)")
    for request in range(1, 6):
        count = kv.increment("rate:user:123")
        if count == 1:
            kv.expire("rate:user:123", 60)
        verdict = "allowed" if count <= 3 else "refused"
        show(f"request {request}: increment('rate:user:123')", f"{count} -> {verdict}")
    show("ttl('rate:user:123') (window left)", round(kv.ttl("rate:user:123") or 0))


def feature_flags(kv: keyshelf.Store) -> None:
    print("\n3. Feature flags keep their types")
    kv.mset({"feature:dark-mode": True, "feature:beta-search": False, "feature:max-items": 50})
    for key in kv.keys("feature:*"):
        value = kv.get(key)
        show(f"get({key!r})", f"{value!r} ({type(value).__name__})")
    show(
        "compare_and_swap(dark-mode, True, False)",
        kv.compare_and_swap("feature:dark-mode", True, False),
    )


def cache(kv: keyshelf.Store) -> None:
    print("\n4. A cache in front of a slow function")
    calls = 0

    def slow_square(n: int) -> int:
        nonlocal calls
        calls += 1
        return n * n

    for n in (12, 12, 7):
        key = f"cache:square:{n}"
        cached = kv.get(key)
        if cached is None:
            cached = slow_square(n)
            kv.set(key, cached, ttl=300)
        show(f"square({n})", cached)
    show("slow calls made", calls)


def patterns(kv: keyshelf.Store) -> None:
    print("\n5. Pattern listing (Redis glob)")
    kv.set("user:1:profile", {"name": "Alice"})
    kv.set("user:2:profile", {"name": "Bob"})
    kv.set("user:1:settings", {"theme": "dark"})
    show("keys('user:*:profile')", kv.keys("user:*:profile"))
    show("keys('user:1:*')", kv.keys("user:1:*"))
    show("key_count('user:*')", kv.key_count("user:*"))
    tree = kv.namespace("demo-tree")
    tree.clear()
    print("   hierarchical keys (separator='.')")
    with keyshelf.open(
        os.environ.get("KEYSHELF_URL"), namespace="demo-tree", separator="."
    ) as dots:
        dots.mset(
            {"app.config.db.host": "localhost", "app.config.db.port": 5432, "app.name": "shop"}
        )
        show("keys('app.*')", dots.keys("app.*"))
        show("keys('app.**')", dots.keys("app.**"))
        show("get_pattern('app.config.db.*')", dots.get_pattern("app.config.db.*"))


def metadata(kv: keyshelf.Store) -> None:
    print("\n6. Metadata and system metadata")
    kv.set("doc:report", b"%PDF-1.4 ...", metadata={"author": "Jane", "tags": ["q3"]})
    kv.set_metadata("doc:report", {"reviewed": True})
    entry = kv.get_entry("doc:report")
    assert entry is not None
    show("get_metadata('doc:report')", kv.get_metadata("doc:report"))
    show("entry.version / size / content_type", (entry.version, entry.size, entry.content_type))


def namespaces(kv: keyshelf.Store) -> None:
    print("\n7. Namespaces isolate tenants")
    tenant1, tenant2 = kv.namespace("demo-customer1"), kv.namespace("demo-customer2")
    tenant1.set("plan", "pro")
    tenant2.set("plan", "free")
    show("customer1 get('plan')", tenant1.get("plan"))
    show("customer2 get('plan')", tenant2.get("plan"))
    show("list_namespaces() (demo ones)", [n for n in kv.list_namespaces() if n.startswith("demo")])
    for view in (tenant1, tenant2):
        view.clear()


async def async_tour() -> None:
    print("\n8. The same API, awaited")
    async with keyshelf.open_async(os.environ.get("KEYSHELF_URL"), namespace="demo") as akv:
        await akv.set("async:greeting", "hello")
        show("await get('async:greeting')", await akv.get("async:greeting"))
        show("await increment('async:counter', 5)", await akv.increment("async:counter", 5))


def main() -> None:
    with keyshelf.open(namespace="demo") as kv:
        kv.clear()
        print(f"keyshelf {keyshelf.__version__} demo on {kv.backend.location}")
        sessions(kv)
        rate_limit(kv)
        feature_flags(kv)
        cache(kv)
        patterns(kv)
        metadata(kv)
        namespaces(kv)
        asyncio.run(async_tour())
        print("\nStats of the demo namespace:", kv.stats())


if __name__ == "__main__":
    main()
