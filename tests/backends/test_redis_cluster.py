"""The Redis backend against a real three-node Redis Cluster (``cluster=true``).

The cluster is started from the installed ``redis-server`` for this module
(three primaries, no persistence, slots split evenly) and stopped afterwards.
The whole conformance suite also runs against a cluster when
``KEYSHELF_TEST_REDIS_URL`` names one (``redis://host:port/0?cluster=true``).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

import keyshelf

from . import REDIS_SERVER, RedisServer, delete_prefix

redis = pytest.importorskip("redis")

SLOTS = 16384


def _free_cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Three primaries sharing the 16384 slots; yields a cluster URL."""
    if not os.path.exists(REDIS_SERVER):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{REDIS_SERVER} is needed on CI")
        pytest.skip(f"{REDIS_SERVER} is not installed")
    folder = tmp_path_factory.mktemp("cluster")
    nodes = []
    try:
        for number in range(3):
            node = RedisServer(_free_cluster_port())
            node.extra_args = [
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(folder / f"nodes-{number}.conf"),
                "--cluster-node-timeout", "2000",
                "--dir", str(folder),
            ]  # fmt: skip
            node.start()
            nodes.append(node)
        clients = [redis.Redis(port=node.port) for node in nodes]
        bounds = [0, SLOTS // 3, 2 * SLOTS // 3, SLOTS]
        for i, client in enumerate(clients):
            client.execute_command("CLUSTER ADDSLOTS", *range(bounds[i], bounds[i + 1]))
        for node in nodes[1:]:
            clients[0].execute_command("CLUSTER MEET", "127.0.0.1", node.port)
        deadline = time.monotonic() + 30
        while not all(
            c.execute_command("CLUSTER INFO")["cluster_state"] == "ok"
            and len(c.execute_command("CLUSTER NODES")) == 3
            for c in clients
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the test cluster did not converge")
            time.sleep(0.1)
        for client in clients:
            client.close()
        yield f"redis://127.0.0.1:{nodes[0].port}/0?cluster=true"
    finally:
        for node in nodes:
            node.stop()


@pytest.fixture
def prefix(cluster: str) -> Iterator[str]:
    name = f"keyshelf-test-{os.urandom(8).hex()}"
    yield name
    delete_prefix(cluster, name)


@pytest.fixture
def kv(cluster: str, prefix: str) -> Iterator[keyshelf.Store]:
    with keyshelf.open(cluster, prefix=prefix) as store:
        yield store


def _raw(cluster: str) -> Any:
    return redis.RedisCluster.from_url(cluster.partition("?")[0])


def test_namespaces_spread_over_the_nodes(cluster: str, kv: Any, prefix: str) -> None:
    names = [f"tenant{i}" for i in range(30)]
    for name in names:
        space = kv.namespace(name)
        space.mset({f"k{i}": i for i in range(5)}, ttl=100)
        space.set("forever", name)
    assert kv.list_namespaces() == sorted(names)
    raw = _raw(cluster)
    try:
        owners = set()
        for name in names:
            slots = {raw.keyslot(key) for key in raw.scan_iter(match=f"{prefix}:{{{name}}}*")}
            assert len(slots) == 1  # a namespace lives in one slot
            owners.add(raw.get_node_from_key(f"{prefix}:{{{name}}}:k0").name)
        assert len(owners) == 3  # and namespaces spread over every node
    finally:
        raw.close()
    assert kv.namespace("tenant7").get("forever") == "tenant7"
    assert kv.namespace("tenant7").stats()["keys_with_ttl"] == 5


def test_every_kind_of_operation(kv: Any) -> None:
    kv.set("a", 1, ttl=60, metadata={"owner": "me"})
    assert kv.increment("a", 2) == 3
    assert 59 < kv.ttl("a") <= 60.001
    assert kv.set("a", 4, nx=True) is False
    assert kv.compare_and_swap("a", 3, 5) is True
    assert kv.append("log", "x") == "x" and kv.append("log", "y") == "xy"
    kv.mset({f"user:{i}:name": i for i in range(20)} | {f"user:{i}:mail": i for i in range(20)})
    assert kv.mget(["a", "log"]) == {"a": 5, "log": "xy"}
    assert kv.key_count("user:*") == 40
    assert kv.delete_pattern("user:*:mail") == 20  # WATCH/MULTI on the cluster
    assert kv.set_metadata("a", {"seen": True}) is True  # WATCH/MULTI on the cluster
    assert kv.get_metadata("a") == {"owner": "me", "seen": True}
    assert kv.get_entry("a").version == 4
    assert kv.storage_size("a", "log") == {"a": 8, "log": 2}
    assert list(kv.iter_keys("user:1*", batch_size=3)) == sorted(
        f"user:{i}:name" for i in (1, *range(10, 20))
    )
    assert kv.delete_pattern("user:*") == 20
    assert kv.clear() == 2 and kv.size() == 0


def _primaries(cluster: str) -> list[Any]:
    raw = _raw(cluster)
    try:
        return [redis.Redis(host=n.host, port=n.port) for n in raw.get_primaries()]
    finally:
        raw.close()


@pytest.mark.parametrize("api", ["sync", "async"])
def test_scripts_are_loaded_on_every_primary(cluster: str, prefix: str, api: str) -> None:
    from keyshelf.backends._redis_common import SCRIPTS

    shas = [script.sha for script in SCRIPTS]
    primaries = _primaries(cluster)
    try:
        for node in primaries:
            node.script_flush()
        if api == "sync":
            with keyshelf.open(cluster, prefix=prefix) as kv:
                kv.set("k", 1)
        else:

            async def run() -> None:
                async with keyshelf.open_async(cluster, prefix=prefix) as akv:
                    await akv.set("k", 1)

            asyncio.run(run())
        assert len(primaries) == 3
        for node in primaries:
            assert all(node.script_exists(*shas)), node
        # A primary that loses its scripts (restart, failover) gets them again.
        for node in primaries:
            node.script_flush()
        with keyshelf.open(cluster, prefix=prefix) as kv:
            for node in primaries:
                node.script_flush()
            for i in range(30):  # namespaces on every node
                assert kv.namespace(f"n{i}").increment("c") == 1
        for node in primaries:
            assert all(node.script_exists(*shas)), node
    finally:
        for node in primaries:
            node.close()


def test_async_cold_start_with_many_concurrent_calls(cluster: str, prefix: str) -> None:
    async def run() -> Any:
        async with keyshelf.open_async(cluster, prefix=prefix) as akv:
            await asyncio.gather(*(akv.increment("n") for _ in range(400)))
            await akv.set("big", {"x": list(range(10))}, ttl=30)
            return await akv.get("n"), await akv.get("big"), await akv.list_namespaces()

    assert asyncio.run(run()) == (400, {"x": list(range(10))}, ["default"])


def _increment_many(url: str, prefix: str, count: int) -> None:
    with keyshelf.open(url, prefix=prefix) as kv:
        for _ in range(count):
            kv.increment("counter")


def test_processes_incrementing_lose_nothing(cluster: str, kv: Any, prefix: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_increment_many, args=(cluster, prefix, 500)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=240)
        assert worker.exitcode == 0
    assert kv.get("counter") == 2000


def test_mode_mismatches_are_refused_at_open(cluster: str, where_standalone: str) -> None:
    node = cluster.partition("?")[0]
    with pytest.raises(keyshelf.InvalidURLError, match="cluster=true"):
        keyshelf.open(node)
    with pytest.raises(keyshelf.InvalidURLError, match="not a Redis Cluster"):
        keyshelf.open(where_standalone, cluster=True)
    with pytest.raises(keyshelf.InvalidURLError, match="only database 0"):
        keyshelf.open(node.rsplit("/", 1)[0] + "/1", cluster=True)
    with pytest.raises(keyshelf.InvalidURLError, match="TCP"):
        keyshelf.open("unix:///tmp/redis.sock", cluster=True)


@pytest.fixture
def where_standalone() -> Iterator[str]:
    from . import redis_url

    yield redis_url()


def test_atoms_and_transactions_on_the_cluster(kv: Any) -> None:
    # Each namespace is one hash slot: a commit is one WATCH/MULTI on one node.
    for name in ("tenant1", "tenant2", "tenant3"):
        space = kv.namespace(name)
        space.set("a", 10)
        assert space.getset("a", 11) == 10
        assert space.delete_if("a", 10) is False
        assert space.expire_if("a", 11, 60) is True
        version = space.get_entry("a").version
        result = space.atomic().check("a", version).check("b", None).increment("a").set("b", 1)
        assert result.commit().versions == {"a": version + 1, "b": 1}

        def move(tx: Any) -> int:
            a, b = tx.get("a"), tx.get("b")
            tx.set("a", a - 2)
            tx.set("b", b + 2)
            return int(a + b)

        assert space.transaction(move) == 13
        assert space.dump() == {"a": 10, "b": 3}
        assert space.delete_if("b", 3) is True


def test_async_commits_on_the_cluster(cluster: str, prefix: str) -> None:
    # The script path (one EVALSHA) and the general path (WATCH/MULTI on one
    # node: a stored int beyond 2^53 is incremented) through the async client.
    async def run() -> Any:
        async with keyshelf.open_async(cluster, prefix=prefix) as akv:
            space = akv.namespace("tenant9")
            await space.mset({"a": 2**60, "b": 0})
            a = await space.get_entry("a")
            native = await space.atomic().check("b", 1).set("b", 1).set("c", "x").commit()
            general = await space.atomic().check("a", a.version).increment("a").commit()

            async def move(tx: Any) -> int:
                b = await tx.get("b")
                tx.set("b", b + 1)
                return int(b)

            moved = await space.transaction(move)
            return native, general, moved, await space.dump()

    native, general, moved, dump = asyncio.run(run())
    assert native.ok and native.versions == {"b": 2, "c": 1}
    assert general.ok and general.versions == {"a": 2}
    assert moved == 1
    assert dump == {"a": 2**60 + 1, "b": 2, "c": "x"}


def test_change_feed_is_kept_per_namespace(cluster: str, prefix: str) -> None:
    """On a cluster each namespace has its own feed hash, stream and revisions (one slot)."""
    with keyshelf.open(cluster, prefix=prefix) as writer:
        writer.namespace("t1").set("k", 0)  # opened, and written, before the feed is on
        with keyshelf.open(cluster, prefix=prefix, history=100) as kv:
            backend = kv._backend
            assert backend.changes_enabled()
            writer.namespace("t1").set("k", 1)  # t1 existed: marked on by enabling
            kv.namespace("t2").mset({"a": 1, "b": 2})  # a new namespace: marked at once
            kv.namespace("t2").delete("a")
            kv.namespace("t4").set("c", 1)  # and the next one too
            assert [c.key for c in backend.changes("t4", 0, 100, 0)] == ["c"]
            assert [(c.revision, c.type, c.key) for c in backend.changes("t1", 0, 100, 0)] == [
                (1, "set", "k")
            ]
            assert [(c.revision, c.type, c.key) for c in backend.changes("t2", 0, 100, 0)] == [
                (1, "set", "a"),
                (1, "set", "b"),
                (2, "delete", "a"),
            ]
            assert backend.revision(0, ns="t1") == 1 and backend.revision(0, ns="t2") == 2
            # A process that saw the feed off looks again within a second.
            time.sleep(1.1)
            writer.namespace("t3").set("x", 1)
            assert [c.key for c in backend.changes("t3", 0, 100, 0)] == ["x"]
            raw = _raw(cluster)
            try:
                slots = {raw.keyslot(f"{prefix}:{{t2}}{suffix}") for suffix in ("#feed", "#log")}
                assert slots == {raw.keyslot(f"{prefix}:{{t2}}:a")}
            finally:
                raw.close()
