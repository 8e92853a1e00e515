"""The PostgreSQL server the tests run against, and throwaway clusters.

The server comes from ``$KEYSHELF_TEST_POSTGRES_URL``, else the local service
(``postgresql://postgres@127.0.0.1:5432/test``, trust auth), else a
throwaway cluster started with the installed ``initdb``/``pg_ctl`` in a
temporary directory on a free port (stopped and deleted at exit). Without
any, PostgreSQL tests are skipped, except with ``CI=true``, where they fail.

Every conformance test gets a schema of its own (``keyshelf_test_<hex>``),
dropped afterwards with ``DROP SCHEMA ... CASCADE``. The machine's own
PostgreSQL service is only ever connected to, never stopped or reconfigured.

The tests in this file check these helpers themselves.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ENV = "KEYSHELF_TEST_POSTGRES_URL"
LOCAL = "postgresql://postgres@127.0.0.1:5432/test"
ON_CI = os.environ.get("CI") == "true"


def connect(url: str, timeout: int = 3) -> Any:
    """A raw autocommit psycopg connection (for setting up and inspecting)."""
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=timeout)


def reachable(url: str) -> str | None:
    """None if ``url`` accepts connections, else why not."""
    try:
        import psycopg
    except ImportError as exc:
        return f"psycopg is not installed ({exc})"
    try:
        connect(url).close()
    except psycopg.Error as exc:
        return " ".join(str(exc).split())
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_binaries() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres, if installed."""
    candidates = [Path("/usr/local/bin")]
    candidates += sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    found = shutil.which("pg_ctl")
    if found:
        candidates.append(Path(found).resolve().parent)
    for directory in candidates:
        if all((directory / name).exists() for name in ("initdb", "pg_ctl", "postgres")):
            return directory
    return None


class Cluster:
    """A throwaway PostgreSQL cluster: its own data directory, port and socket.

    PostgreSQL refuses to run as root, so under root the cluster runs as the
    ``postgres`` system user. ``stop()``/``start()`` simulate an outage.
    """

    def __init__(self) -> None:
        binaries = server_binaries()
        if binaries is None:
            raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl) installed")
        self.bin = binaries
        self.user: str | None = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError(
                    "running as root and no 'postgres' user to run a cluster"
                ) from None
            self.user = "postgres"
        self.dir = Path(tempfile.mkdtemp(prefix="keyshelf-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.port = free_port()
        if self.user is not None:
            record = pwd.getpwnam(self.user)
            os.chown(self.dir, record.pw_uid, record.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        self.running = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str, timeout: float = 120) -> None:
        result = subprocess.run(
            [str(self.bin / program), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            user=self.user,
            cwd=self.dir,
            check=False,
        )
        if result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{program} failed: {result.stdout}{result.stderr}{log}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -h 127.0.0.1 -F -c max_connections=200"
        self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log),
                  "-o", options)  # fmt: skip
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "stop", "-w", "-t", "60", "-m", mode, "-D", str(self.data))
        self.running = False

    def destroy(self) -> None:
        if self.running:
            with contextlib.suppress(Exception):
                self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


_server: dict[str, Any] = {}


def server_url() -> str:
    """The URL of the test server; skips (or on CI fails) the test if there is none."""
    if "url" in _server:
        return str(_server["url"])
    if "error" in _server:
        if _server.get("fatal"):
            pytest.fail(str(_server["error"]))
        _unavailable(str(_server["error"]))
    explicit = os.environ.get(ENV)
    if explicit:
        problem = reachable(explicit)
        if problem is not None:
            # A server asked for by name must be there: fail, never skip.
            _server["error"] = f"${ENV} server unreachable: {problem}"
            _server["fatal"] = True
            pytest.fail(str(_server["error"]))
        _server["url"] = explicit
        return explicit
    problem = reachable(LOCAL)
    if problem is None:
        _server["url"] = LOCAL
        return LOCAL
    try:
        cluster = Cluster()
        atexit.register(cluster.destroy)
        cluster.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        _server["error"] = (
            f"no PostgreSQL server: set ${ENV}, run one on 127.0.0.1:5432 with database "
            f"'test', or install initdb/pg_ctl (local: {problem}; throwaway: {exc})"
        )
        _unavailable(str(_server["error"]))
    _server["cluster"] = cluster
    _server["url"] = cluster.url
    return cluster.url


def _unavailable(reason: str) -> None:
    if ON_CI:
        pytest.fail(reason)
    pytest.skip(reason)


def admin() -> Any:
    """A shared raw connection to the test server, for creating and dropping schemas."""
    conn = _server.get("admin")
    if conn is None or conn.closed:
        conn = connect(server_url())
        _server["admin"] = conn
        # Closed at exit: left to the garbage collector it warned (ResourceWarning)
        # at the end of every run.
        atexit.register(conn.close)
    return conn


def drop_schema(name: str) -> None:
    import psycopg
    from psycopg import sql

    try:
        admin().execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
    except psycopg.OperationalError:  # the admin connection died: once more, afresh
        dead = _server.pop("admin", None)
        if dead is not None:
            dead.close()
        admin().execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def fresh_schema() -> str:
    return f"keyshelf_test_{uuid.uuid4().hex}"


@contextlib.contextmanager
def postgres_backend(tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """BACKENDS entry: the test server with a schema of the test's own, dropped after."""
    url = server_url()
    schema = fresh_schema()
    try:
        yield url, {"schema": schema, "connect_timeout": 5}
    finally:
        drop_schema(schema)


# -- the helpers' own tests ---------------------------------------------------------


def schema_exists(name: str) -> bool:
    query = "SELECT count(*) FROM pg_namespace WHERE nspname = %s"
    return bool(admin().execute(query, (name,)).fetchone()[0])


def test_each_store_gets_its_own_schema_and_it_is_dropped(tmp_path: Path) -> None:
    import keyshelf

    with postgres_backend(tmp_path) as (url, options):
        with keyshelf.open(url, **options) as kv:
            kv.set("k", 1)
        assert schema_exists(options["schema"])
    assert not schema_exists(options["schema"])
