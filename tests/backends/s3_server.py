"""A real S3-compatible HTTP server for the tests: moto's server mode on loopback.

The server is ``$KEYSHELF_TEST_S3_URL`` if set (any S3-compatible endpoint
with a bucket named by ``$KEYSHELF_TEST_S3_BUCKET``, default
``keyshelf-test``, and credentials in the usual AWS environment variables),
else a throwaway ``moto`` server started once per test session on a free
port, in its own process. With ``CI=true`` a server that cannot start fails
the run instead of skipping. Every store gets its own prefix, removed
afterwards.

Run as a script (``python s3_server.py PORT``) it serves moto's S3 on
127.0.0.1:PORT. moto checks ``If-Match``/``If-None-Match`` and then stores
the object without a lock, so two concurrent conditional writes could both
pass; a real S3 service decides them atomically. The script therefore
serves one request at a time (a lock around moto's WSGI application), which
makes its conditional writes atomic like the real service's.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

ON_CI = os.environ.get("CI") == "true"
BUCKET = os.environ.get("KEYSHELF_TEST_S3_BUCKET", "keyshelf-test")
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class S3Server:
    """A throwaway moto S3 server process on one port: start, stop, start again."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.process.returncode}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                create_bucket(self.url, BUCKET)
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


def create_bucket(endpoint: str, bucket: str) -> None:
    """Create ``bucket`` (a plain signed-less PUT is enough for moto)."""
    import http.client

    host = endpoint.removeprefix("http://")
    connection = http.client.HTTPConnection(host, timeout=10)
    try:
        connection.request("PUT", f"/{bucket}")
        connection.getresponse().read()
    finally:
        connection.close()


# The session's endpoint, once known.
_session: dict[str, str] = {}


def endpoint() -> str:
    """The test endpoint URL: started on first use; skip (fail on CI) if impossible."""
    if "url" in _session:
        return _session["url"]
    external = os.environ.get("KEYSHELF_TEST_S3_URL")
    if external:
        _session["url"] = external.rstrip("/")
        return _session["url"]
    try:
        import moto.server  # noqa: F401
        import obstore  # noqa: F401
    except ImportError as exc:
        message = f"S3 tests need moto[server] and obstore: {exc}"
        if ON_CI:
            pytest.fail(message)
        pytest.skip(message)
    server = S3Server()
    try:
        server.start()
    except RuntimeError as exc:
        if ON_CI:
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    atexit.register(server.stop)
    _session["url"] = server.url
    return server.url


def options(url: str | None = None) -> dict[str, Any]:
    """Store options for the test endpoint (credentials only for our own moto)."""
    found: dict[str, Any] = {"endpoint_url": url or endpoint(), "region": "us-east-1"}
    if not os.environ.get("KEYSHELF_TEST_S3_URL"):
        found.update(CREDENTIALS)
    return found


def remove_prefix(url: str, prefix: str) -> None:
    """Delete every object under ``prefix/`` (cleanup after a test)."""
    import obstore
    from obstore.store import S3Store

    config: dict[str, Any] = {"endpoint": url, "region": "us-east-1"}
    config["virtual_hosted_style_request"] = False
    if not os.environ.get("KEYSHELF_TEST_S3_URL"):
        config.update(access_key_id="testing", secret_access_key="testing")
    store = S3Store(BUCKET, config=config, client_options={"allow_http": True})  # type: ignore[arg-type]
    with contextlib.suppress(Exception):
        for page in obstore.list(store, prefix, chunk_size=1000):
            obstore.delete(store, [str(meta["path"]) for meta in page])


@contextlib.contextmanager
def s3_store() -> Iterator[tuple[str, dict[str, Any]]]:
    """(url, options) of a fresh, empty store under its own prefix."""
    url = endpoint()
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    try:
        yield f"s3://{BUCKET}/{prefix}", options(url)
    finally:
        remove_prefix(url, prefix)


def _serve(port: int) -> None:
    from moto.server import create_backend_app
    from werkzeug.serving import WSGIRequestHandler, run_simple

    # moto's S3 application itself, not its dispatcher (which stats every moto
    # module's directory on each request to pick the service: 3x the time).
    app = create_backend_app("s3")
    lock = threading.Lock()

    def serialized(environ: Any, start_response: Any) -> Any:
        with lock:
            return list(app(environ, start_response))

    class Quiet(WSGIRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    run_simple(
        "127.0.0.1", port, serialized, threaded=True, use_reloader=False, request_handler=Quiet
    )


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
