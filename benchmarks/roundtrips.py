"""Loopback TCP proxies in front of a server (Redis, PostgreSQL).

:class:`LoopbackProxy` relays bytes both ways and lets a subclass see every
chunk before it is forwarded. :class:`RoundTrips` counts round trips; it is
used by ``bench_transactions`` (round trips per commit, reported by ``make
bench``) and by ``tests/backends/test_native_commit.py`` (which asserts them).
``tests/backends/test_async_open.py`` delays the server's replies with one.
A round trip is counted when the server starts answering after the client
has sent something, per connection: requests sent together (a pipeline, one
script) and answered together count once, whatever the timing.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar
from urllib.parse import urlsplit


class LoopbackProxy:
    """A loopback TCP proxy to ``upstream``, running in threads of its own.

    Every chunk read from either side is passed to :meth:`relay` (``up`` is
    true for bytes from the client) before it is forwarded; the base class
    forwards it unchanged at once. ``port`` is the loopback port to connect to.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def relay(self, data: bytes, up: bool, connection: dict[str, str]) -> None:
        """See one chunk before it is forwarded; ``connection`` is per-connection state."""

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self._sockets += [client, server]
            connection: dict[str, str] = {}
            for source, target, up in ((client, server, True), (server, client, False)):
                thread = threading.Thread(
                    target=self._pump, args=(source, target, up, connection), daemon=True
                )
                self._threads.append(thread)
                thread.start()

    def _pump(
        self, source: socket.socket, target: socket.socket, up: bool, connection: dict[str, str]
    ) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                self.relay(data, up, connection)
                target.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                target.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(timeout=10)


class RoundTrips(LoopbackProxy):
    """A loopback proxy that counts round trips, over every connection, in ``count``.

    A round trip is counted when the server starts answering after the
    client has sent something: requests sent together (a pipeline, one
    script) and answered together are one.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.count = 0
        self._guard = threading.Lock()
        super().__init__(upstream)

    def relay(self, data: bytes, up: bool, connection: dict[str, str]) -> None:
        with self._guard:
            if not up and connection.get("last", "server") == "client":
                self.count += 1
            connection["last"] = "client" if up else "server"


P = TypeVar("P", bound=LoopbackProxy)


@contextlib.contextmanager
def proxied(url: str, make: Callable[[tuple[str, int]], P]) -> Iterator[tuple[P, str]]:
    """``make((host, port))`` in front of the server of ``url``; yields it and the URL to use."""
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port
    if host is None or port is None:
        raise ValueError(f"{url!r} names no host and port")
    proxy = make((host, port))
    try:
        netloc = parts.netloc.replace(f"{host}:{port}", f"127.0.0.1:{proxy.port}")
        yield proxy, parts._replace(netloc=netloc).geturl()
    finally:
        proxy.close()


def counting(url: str) -> contextlib.AbstractContextManager[tuple[RoundTrips, str]]:
    """A counting proxy in front of the server of ``url``; yields it and the URL through it."""
    return proxied(url, RoundTrips)
