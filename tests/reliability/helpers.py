"""Shared pieces of the reliability suite (tests/reliability).

Backends come from the conformance table (``tests/conftest.py``: each entry
yields ``(url, options)`` for a fresh store and cleans up after itself); the
Redis and PostgreSQL servers come from the backend tests' helpers, which find
the local service or start a throwaway one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..conftest import BACKENDS

#: Backends that keep data beyond one process (crash, contention, pickle tests).
PERSISTENT = ("sqlite", "file", "redis", "postgres")
#: Backends that are a local file.
LOCAL_FILES = ("sqlite", "file")
#: Every backend of the conformance table, cache tiers included.
EVERY = tuple(BACKENDS)


@contextlib.contextmanager
def location(name: str, tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(url, options)`` of a fresh store on backend ``name``; cleaned up after."""
    factory = BACKENDS[name][0]
    with factory(tmp_path) as found:
        yield found


def native_clock(name: str) -> bool:
    """True for backends whose server decides expiry (a fake clock cannot move it)."""
    return BACKENDS[name][1]


def same(a: Any, b: Any) -> bool:
    """Equal with the same types all the way down (nan equals nan, -0.0 keeps its sign)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, Decimal):
        return (a.is_nan() and b.is_nan()) or str(a) == str(b)
    if isinstance(a, list | tuple):
        if len(a) != len(b):
            return False
        # Iterative, so that deeply nested values compare without recursion.
        stack = list(zip(a, b, strict=True))
        while stack:
            x, y = stack.pop()
            if type(x) is not type(y):
                return False
            if isinstance(x, list | tuple):
                if len(x) != len(y):
                    return False
                stack.extend(zip(x, y, strict=True))
            elif isinstance(x, dict):
                if list(x) != list(y) or not all(same(k1, k2) for k1, k2 in zip(x, y, strict=True)):
                    return False
                stack.extend(zip(x.values(), y.values(), strict=True))
            elif not same(x, y):
                return False
        return True
    if isinstance(a, dict):
        return (
            list(a) == list(b)
            and all(same(k1, k2) for k1, k2 in zip(a, b, strict=True))
            and same(list(a.values()), list(b.values()))
        )
    if isinstance(a, set | frozenset):
        return a == b and all(any(same(x, y) for y in b) for x in a)
    if isinstance(a, dt.datetime | dt.time):
        return bool(a == b) and a.tzinfo == b.tzinfo and a.fold == b.fold
    return bool(a == b)


def snapshot(kv: Any) -> Any:
    """Everything observable about a namespace: values, stats, entries with metadata."""
    entries = []
    for key in kv.keys():
        entry = kv.get_entry(key)
        entries.append(
            None
            if entry is None
            else (
                entry.key,
                entry.metadata,
                entry.version,
                entry.created_at,
                entry.updated_at,
                entry.expires_at,
                entry.checksum,
            )
        )
    return kv.dump(), kv.stats(), entries


def open_fds() -> set[str]:
    """Targets of this process's open file descriptors (Linux /proc)."""
    found = set()
    base = Path(f"/proc/{os.getpid()}/fd")
    for fd in base.iterdir():
        with contextlib.suppress(OSError):
            found.add(f"{fd.name}:{os.readlink(fd)}")
    return found


def fd_count() -> int:
    return len(list(Path(f"/proc/{os.getpid()}/fd").iterdir()))


def keyshelf_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("keyshelf")]


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with (size, mtime_ns), for before/after comparisons."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            with contextlib.suppress(OSError):
                info = path.lstat()
                out[str(path.relative_to(root))] = (info.st_size, info.st_mtime_ns)
    return out


# -- running as an unprivileged user ---------------------------------------------------

# Everything the snippets need is imported before dropping privileges: the
# interpreter's own files may not be readable by the unprivileged user.
_PRELUDE = """
import asyncio, fcntl, gzip, json, os, pwd, sqlite3, stat, sys, tempfile
import keyshelf, keyshelf.backends.sqlite, keyshelf.backends.file, keyshelf.registry
# Everything imported lazily is imported now, as root: the interpreter lives
# under /root, which the unprivileged user cannot read.
keyshelf.registry.schemes()
if os.geteuid() == 0:
    user = pwd.getpwnam(sys.argv[1])
    os.setgroups([])
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)
assert os.geteuid() != 0
"""

UNPRIVILEGED_USER = "nobody"


def unprivileged_reason() -> str | None:
    """Why permission tests cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        return f"running as root and there is no '{UNPRIVILEGED_USER}' user to drop to"
    return None


def shared_directory(owner_is_unprivileged: bool) -> Path:
    """A fresh directory the unprivileged user can reach (tmp_path is root-only)."""
    import pwd
    import tempfile

    directory = Path(tempfile.mkdtemp(prefix="keyshelf-perm-"))
    directory.chmod(0o755)
    if owner_is_unprivileged and os.geteuid() == 0:
        user = pwd.getpwnam(UNPRIVILEGED_USER)
        os.chown(directory, user.pw_uid, user.pw_gid)
    return directory


def run_unprivileged(code: str, *args: str) -> Any:
    """Run ``code`` as a non-root user (``nobody`` when we are root); it prints JSON."""
    import json
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", _PRELUDE + code, UNPRIVILEGED_USER, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])
