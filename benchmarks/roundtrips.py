"""A loopback TCP proxy that counts round trips to a server (Redis, PostgreSQL).

Used by ``bench_transactions`` (round trips per commit, reported by ``make
bench``) and by ``tests/backends/test_native_commit.py`` (which asserts them).
A round trip is counted when the server starts answering after the client
has sent something, per connection: requests sent together (a pipeline, one
script) and answered together count once, whatever the timing.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit


class RoundTrips:
    """A loopback TCP proxy to ``upstream`` that counts round trips per connection.

    A round trip is counted when the server starts answering after the
    client has sent something: requests sent together (a pipeline, one
    script) and answered together are one.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.count = 0
        self._guard = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

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
            state = {"last": "server"}
            for source, target, up in ((client, server, True), (server, client, False)):
                thread = threading.Thread(
                    target=self._pump, args=(source, target, up, state), daemon=True
                )
                self._threads.append(thread)
                thread.start()

    def _pump(
        self, source: socket.socket, target: socket.socket, up: bool, state: dict[str, str]
    ) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                with self._guard:
                    if not up and state["last"] == "client":
                        self.count += 1
                    state["last"] = "client" if up else "server"
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


@contextlib.contextmanager
def counting(url: str) -> Iterator[tuple[RoundTrips, str]]:
    """A counting proxy in front of the server of ``url``; yields it and the URL through it."""
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port
    if host is None or port is None:
        raise ValueError(f"{url!r} names no host and port")
    proxy = RoundTrips((host, port))
    try:
        netloc = parts.netloc.replace(f"{host}:{port}", f"127.0.0.1:{proxy.port}")
        yield proxy, parts._replace(netloc=netloc).geturl()
    finally:
        proxy.close()
