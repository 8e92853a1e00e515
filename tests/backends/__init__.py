"""Helpers for backend tests: a real Redis server, found or started.

The server is ``$KEYSHELF_TEST_REDIS_URL`` if set, else the local service on
127.0.0.1:6379, else a throwaway ``redis-server`` (no persistence) started on
a free port for this test session. With ``CI=true`` an unreachable server
fails the run instead of skipping. Every store gets its own key prefix and
its keys are deleted afterwards; the shared server is never flushed.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

LOCAL_URL = "redis://127.0.0.1:6379/0"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
ON_CI = os.environ.get("CI") == "true"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def is_cluster(url: str) -> bool:
    """A test URL may name a Redis Cluster node with ``?cluster=true``."""
    return "cluster=true" in url.partition("?")[2].lower()


def client_for(url: str, **options: Any) -> Any:
    """A redis-py client for ``url``: a RedisCluster for a cluster URL."""
    import redis

    if is_cluster(url):
        return redis.RedisCluster.from_url(url.partition("?")[0], **options)
    return redis.Redis.from_url(url, **options)


def reachable(url: str) -> bool:
    try:
        import redis
    except ImportError:
        return False
    try:
        client = client_for(url, socket_connect_timeout=1, socket_timeout=2)
    except (redis.RedisError, redis.exceptions.RedisClusterException, OSError):
        return False
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


class RedisServer:
    """A throwaway ``redis-server`` on one port: start, stop, start again."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.extra_args: list[str] = []
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        if not os.path.exists(REDIS_SERVER):
            raise RuntimeError(f"{REDIS_SERVER} is not installed")
        options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), *options, *self.extra_args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not reachable(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.kill()
        process.wait(10)


_session: dict[str, str] = {}


def redis_url() -> str:
    """The server for this test session (see the module docstring)."""
    if "url" not in _session:
        _session["url"] = _find_server()
    return _session["url"]


def _find_server() -> str:
    wanted = os.environ.get("KEYSHELF_TEST_REDIS_URL")
    if wanted:
        if not reachable(wanted):
            _unavailable(f"KEYSHELF_TEST_REDIS_URL={wanted} is not reachable")
        return wanted
    if reachable(LOCAL_URL):
        return LOCAL_URL
    server = RedisServer()
    try:
        server.start()
    except RuntimeError as exc:
        _unavailable(f"no Redis server: {LOCAL_URL} is unreachable and {exc}")
    atexit.register(server.stop)
    return server.url


def _unavailable(reason: str) -> None:
    if ON_CI:
        pytest.fail(f"Redis tests cannot run on CI: {reason}", pytrace=False)
    pytest.skip(reason)


def delete_prefix(url: str, prefix: str) -> None:
    """Delete every key under ``prefix`` (SCAN + UNLINK, never FLUSH)."""
    client = client_for(url)
    try:
        pattern = "".join("\\" + c if c in "\\*?[]" else c for c in prefix) + ":*"
        batch: list[bytes] = []
        for name in client.scan_iter(match=pattern, count=1000):
            batch.append(name)
            if len(batch) >= 500:
                client.unlink(*batch)
                batch = []
        if batch:
            client.unlink(*batch)
    finally:
        client.close()


@contextlib.contextmanager
def redis_store(url: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(url, {"prefix": unique})`` for a fresh, empty store; deletes its keys after."""
    url = url or redis_url()
    prefix = f"keyshelf-test-{uuid.uuid4().hex}"
    try:
        yield url, {"prefix": prefix}
    finally:
        delete_prefix(url, prefix)
