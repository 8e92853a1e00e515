"""The S3 backend's layout, object bodies and the two obstore clients (sync, async).

Shared by :mod:`._s3_async` and its generated twin :mod:`._s3_sync`; both call
the same methods, on :class:`AsyncS3IO` or :class:`S3IO`, so the backend logic
is written once.

Object names (``<root>`` is the URL's prefix, if any, followed by ``/``)::

    <root>d/<ns>/<key>             one record per key (the body holds everything)
    <root>x/<ns>/<key> 0<ms>-<nonce>   expiry marker: "this key may expire at <ms>"
    <root>x/<ns>/<key> 00-<batch>      intent of a batch in flight (always due)
    <root>b/<batch>                commit object of a batch: COMMITTED or ABORTED

``<ns>`` and ``<key>`` are escaped with :func:`escape`: a space becomes
`` 1``, ``.`` becomes ``.0`` and ``/`` becomes ``.1``; every other character
is kept. The escape contains no ``/``, so a namespace ends at the first
``/`` (namespace ``a:b`` with key ``c`` and namespace ``a`` with key ``b:c``
are different objects), no path segment is ever empty, ``.`` or ``..``, and
it preserves both code-point order and prefixes: S3 lists names in UTF-8
byte order, which is code-point order, so a listing of ``d/<ns>/`` comes back
in key order and a key prefix is a name prefix. The marker separator `` 0``
sorts below every escaped character, so markers list in key order too, and a
listing can walk the markers alongside the records.

A record body is ``KS1`` + a JSON header line + the user metadata + the
payload (raw bytes for ``bytes``, UTF-8 text otherwise). A zero-byte object is
a *tombstone*: a deleted key (S3 cannot delete conditionally through the
client, so a delete is a conditional write of an empty body). While a
multi-key batch is in flight, a key's object is a *pending* body
(:func:`wrap`): ``KSP`` + a JSON header line + the new body + the prior one,
decided by the batch's commit object.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import orjson

from ..errors import BackendError, BackendUnavailableError, SerializationError
from ..records import Record

try:
    import obstore
    from obstore import exceptions as obstore_errors
except ImportError as exc:  # the registry turns this into the install hint
    raise ImportError(
        "The s3:// backend needs an optional dependency (obstore): pip install 'keyshelf[s3]'",
        name="obstore",
    ) from exc

#: S3 refuses object names longer than this many UTF-8 bytes.
MAX_NAME_BYTES = 1024
#: Objects per LIST request (the S3 maximum).
PAGE = 1000
MAGIC = b"KS1\n"
#: Between a marker's escaped key and its nonce; below every escaped character.
MARKER_SEPARATOR = " 0"
#: Requests one async batch operation keeps in flight.
CONCURRENCY = 16
T = TypeVar("T")
U = TypeVar("U")


def escape(text: str) -> str:
    """Order- and prefix-preserving escape without ``/`` (see the module docstring)."""
    return text.replace(" ", " 1").replace(".", ".0").replace("/", ".1")


def unescape(text: str) -> str:
    """Inverse of :func:`escape`."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == ".":
            out.append("." if text[i + 1 : i + 2] == "0" else "/")
            i += 2
        elif char == " ":
            out.append(" ")
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


#: Characters that never occur in a name: keys and namespaces refuse them
#: (control characters, surrogates, line and paragraph separators).
_NEVER = frozenset({"Cc", "Cs", "Zl", "Zp"})


def start_after(prefix: str) -> str | None:
    """A ``StartAfter`` name for listing the names that start with ``prefix``.

    S3 lists names strictly after ``StartAfter``. The result is
    ``prefix[:-1] + p + U+10FFFF * 4`` with ``p`` the largest character below
    the last one of ``prefix`` that a name can hold (or ``prefix[:-1]`` when
    there is none): below every name starting with ``prefix``, and above
    every smaller name except those continuing with four U+10FFFF, which a
    listing skips (see :func:`in_range`). It never holds a ``/``, which would
    start a path segment.
    """
    if not prefix:
        return None
    below = ord(prefix[-1]) - 1
    while below >= 0x20 and (below == 0x2F or unicodedata.category(chr(below)) in _NEVER):
        below -= 1
    if below < 0x20:
        return prefix[:-1].rstrip("/") or None
    return prefix[:-1] + chr(below) + "\U0010ffff" * 4


def in_range(rest: str, code: str) -> bool | None:
    """True if a listed name part starts with ``code``; None if it sorts before (skip it)."""
    if rest.startswith(code):
        return True
    return None if rest < code else False


@dataclass(frozen=True)
class Layout:
    """Object names of one store (bucket + prefix)."""

    root: str  # "" or "some/prefix/"

    def data_dir(self, ns: str) -> str:
        return f"{self.root}d/{escape(ns)}"

    def data(self, ns: str, key: str) -> str:
        return f"{self.root}d/{escape(ns)}/{escape(key)}"

    def marker_dir(self, ns: str) -> str:
        return f"{self.root}x/{escape(ns)}"

    def marker(self, ns: str, key: str, nonce: str) -> str:
        return f"{self.root}x/{escape(ns)}/{escape(key)}{MARKER_SEPARATOR}{nonce}"

    def batch(self, batch: str) -> str:
        """The commit object of a batch: absent while undecided, then COMMITTED or ABORTED."""
        return f"{self.root}b/{batch}"


def marker_expiry(marker: str) -> int:
    """The expiry instant (ms) a marker id ``<expires_at>-<nonce>`` names (0 if none)."""
    head = marker.partition("-")[0]
    return int(head) if head.isdigit() else 0


def new_nonce() -> str:
    """A unique id for one write attempt (64 random bits)."""
    return os.urandom(8).hex()


# -- record bodies ------------------------------------------------------------

_KIND = {type(None): "n", int: "i", float: "f", str: "s", bytes: "y", bool: "b"}


#: Nonces of the latest writes kept in each record (see :attr:`Stored.writes`).
WRITES_KEPT = 8


def pack(record: Record, writes: Sequence[str], marker: str | None) -> bytes:
    """The object body of ``record`` with ``marker``; ``writes[0]`` is this write's nonce."""
    tag, payload = record.tag, record.payload
    kind = _KIND.get(type(payload))
    if kind is None:
        if isinstance(payload, bytearray | memoryview):
            kind, payload = "y", bytes(payload)
        else:
            raise SerializationError(
                f"Value is not JSON serializable: codec payload of type "
                f"{type(payload).__name__} for tag {tag!r} cannot be stored"
            )
    if kind == "y":
        data: bytes = payload  # type: ignore[assignment]
    elif kind == "n":
        data = b""
    elif kind == "f":
        data = repr(payload).encode()
    elif kind == "b":
        data = b"1" if payload else b"0"
    else:
        data = str(payload).encode("utf-8")
    meta = record.meta
    header = {
        "t": tag,
        "k": kind,
        "e": record.expires_at,
        "c": record.created_at,
        "u": record.updated_at,
        "v": record.version,
        "m": -1 if meta is None else len(meta),
        "w": list(writes[:WRITES_KEPT]),
        "x": marker,
    }
    return b"".join((MAGIC, orjson.dumps(header), b"\n", meta or b"", data))


@dataclass(frozen=True)
class Stored:
    """A record as read from its object, with the write that made it."""

    record: Record
    writes: list[str]  # nonces of the latest writes, newest first
    marker: str | None


def unpack(body: bytes, name: str) -> Stored:
    """Parse an object body written by :func:`pack`."""
    try:
        if not body.startswith(MAGIC):
            raise ValueError("not a keyshelf record")
        end = body.index(b"\n", len(MAGIC))
        header = orjson.loads(body[len(MAGIC) : end])
        rest = body[end + 1 :]
        size = header["m"]
        meta = None if size < 0 else rest[:size]
        data = rest[max(size, 0) :]
        kind = header["k"]
        payload: Any
        if kind == "y":
            payload = bytes(data)
        elif kind == "n":
            payload = None
        elif kind == "i":
            payload = int(data)
        elif kind == "f":
            payload = float(data)
        elif kind == "b":
            payload = data == b"1"
        elif kind == "s":
            payload = data.decode("utf-8")
        else:
            raise ValueError(f"unknown payload kind {kind!r}")
        record = Record(
            header["t"], payload, header["e"], meta, header["c"], header["u"], header["v"]
        )
        writes = header["w"]
        return Stored(record, writes if isinstance(writes, list) else [writes], header["x"])
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise BackendError(f"Corrupt S3 object {name!r}: {exc}") from exc


# -- batches --------------------------------------------------------------------

#: Start of an object written by a batch that may not be decided yet.
PENDING_MAGIC = b"KSP\n"
#: Bodies of a batch's commit object, which decides it once and for all.
COMMITTED = b"C"
ABORTED = b"A"


@dataclass(frozen=True)
class Pending:
    """An object written by a multi-key batch: both its new and its prior body.

    ``new`` holds once the commit object ``b/<batch>`` says COMMITTED,
    ``prior`` while it is absent or says ABORTED. An empty body is a
    tombstone (or no object). ``started`` is the batch's start (ms, the
    writer's store clock): a batch undecided for long is presumed dead.
    """

    batch: str
    started: int
    new: bytes
    prior: bytes


def wrap(pending: Pending) -> bytes:
    """The object body of a pending batch write."""
    header = orjson.dumps({"b": pending.batch, "s": pending.started, "n": len(pending.new)})
    return b"".join((PENDING_MAGIC, header, b"\n", pending.new, pending.prior))


def unwrap(body: bytes, name: str) -> Pending | None:
    """The pending batch write in ``body``, or None for a plain record or tombstone."""
    if not body.startswith(PENDING_MAGIC):
        return None
    try:
        end = body.index(b"\n", len(PENDING_MAGIC))
        header = orjson.loads(body[len(PENDING_MAGIC) : end])
        size = int(header["n"])
        rest = body[end + 1 :]
        return Pending(str(header["b"]), int(header["s"]), rest[:size], rest[size:])
    except (ValueError, KeyError, TypeError) as exc:
        raise BackendError(f"Corrupt S3 object {name!r}: {exc}") from exc


# -- the clients ----------------------------------------------------------------


@dataclass
class S3Settings:
    """Everything the backend needs, validated by :func:`keyshelf.backends.s3.parse`."""

    bucket: str
    root: str
    location: str
    config: dict[str, Any] = field(default_factory=dict)
    client_options: dict[str, Any] = field(default_factory=dict)
    retry_config: dict[str, Any] = field(default_factory=dict)
    credential_provider: Any = None
    conflict_retries: int = 64
    create: bool = True
    readonly: bool = False

    def store(self) -> Any:
        """A new obstore S3Store (it holds the connection pool)."""
        from obstore.store import S3Store

        return S3Store(
            self.bucket,
            config=self.config,  # type: ignore[arg-type]
            client_options=self.client_options,  # type: ignore[arg-type]
            retry_config=self.retry_config,  # type: ignore[arg-type]
            credential_provider=self.credential_provider,
        )


class ConflictError(Exception):
    """A conditional write found the object changed (HTTP 412/409, or 404 on If-Match)."""


def _fail(exc: BaseException, where: str, action: str, name: str) -> BackendError:
    if isinstance(exc, obstore_errors.PermissionDeniedError | obstore_errors.UnauthenticatedError):
        return BackendError(f"S3 {where} refused access ({action} {name!r}): {exc}")
    if "status: 4" in str(exc):  # the service answered: a refusal, not an outage
        return BackendError(f"S3 {where} refused the request ({action} {name!r}): {exc}")
    if isinstance(exc, obstore_errors.GenericError | TimeoutError | OSError):
        return BackendUnavailableError(f"S3 {where} is unavailable ({action} {name!r}): {exc}")
    return BackendError(f"S3 error on {where} ({action} {name!r}): {exc}")


_CONFLICTS = (
    obstore_errors.PreconditionError,
    obstore_errors.AlreadyExistsError,
    obstore_errors.NotFoundError,  # If-Match on an object deleted meanwhile
    FileNotFoundError,  # what obstore raises for a 404
)
_NOT_FOUND = (obstore_errors.NotFoundError, FileNotFoundError)
_ERRORS = (obstore_errors.BaseError, OSError, TimeoutError)


def _mode(create: bool, etag: str | None) -> Any:
    if create:
        return "create"
    if etag is not None:
        return {"e_tag": etag}
    return "overwrite"


#: Seconds an async store yields at close() for obstore's runtime to settle (see
#: :meth:`AsyncS3IO.release`).
_SETTLE = 0.02


class S3IO:
    """Blocking calls to one bucket (obstore's native sync API, no thread per call)."""

    def __init__(self, settings: S3Settings) -> None:
        self.location = settings.location
        self.store = settings.store()

    def release(self) -> None:
        """Drop the client (and its connection pool) now, and let obstore's runtime settle.

        The runtime closes the pool's sockets on its own threads: waiting as the
        async close does means a closed store holds no descriptor any more.
        """
        self.store = None
        time.sleep(_SETTLE)

    def get(self, name: str) -> tuple[bytes, str] | None:
        """(body, etag) of an object, or None if there is none."""
        try:
            result = obstore.get(self.store, name)
            body = result.bytes().to_bytes()
        except _NOT_FOUND:
            return None
        except ValueError:  # a name no object can have (a pattern with control characters)
            return None
        except _ERRORS as exc:
            raise _fail(exc, self.location, "get", name) from exc
        return body, str(result.meta["e_tag"])

    def put(self, name: str, body: bytes, *, create: bool = False, etag: str | None = None) -> str:
        """Write an object; with ``create`` only if absent, with ``etag`` only if unchanged.

        Returns the new ETag; raises :class:`ConflictError` when the condition
        does not hold.
        """
        try:
            done = obstore.put(
                self.store, name, body, mode=_mode(create, etag), use_multipart=False
            )
        except _CONFLICTS as exc:
            raise ConflictError(name) from exc
        except _ERRORS as exc:
            raise _fail(exc, self.location, "put", name) from exc
        return str(done["e_tag"])

    def delete(self, name: str) -> None:
        """Remove an object unconditionally (used for expiry markers only)."""
        try:
            obstore.delete(self.store, name)
        except _NOT_FOUND:
            pass
        except _ERRORS as exc:
            raise _fail(exc, self.location, "delete", name) from exc

    def pages(self, directory: str, after: str | None) -> Iterator[Sequence[Any]]:
        """The objects under ``directory/`` named after ``after``, a LIST page at a time."""
        try:
            stream = obstore.list(self.store, directory, offset=after, chunk_size=PAGE)
            yield from stream
        except ValueError:  # a prefix no object name can have: nothing is there
            return
        except _ERRORS as exc:
            raise _fail(exc, self.location, "list", directory) from exc

    def folders(self, directory: str) -> list[str]:
        """The names of the folders directly under ``directory/``."""
        try:
            found = obstore.list_with_delimiter(self.store, directory)
        except _ERRORS as exc:
            raise _fail(exc, self.location, "list", directory) from exc
        return [str(p) for p in found["common_prefixes"]]

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def next(self, iterator: Iterator[T]) -> T | None:
        """The next item, or None at the end."""
        return next(iterator, None)

    def lock(self) -> threading.Lock:
        return threading.Lock()

    def each(self, fn: Callable[[T], U], items: Sequence[T]) -> list[U]:
        """``fn`` of every item, in order (the sync API has no concurrency)."""
        return [fn(item) for item in items]


class AsyncS3IO:
    """The same calls for asyncio (obstore's native async API, no thread per call)."""

    def __init__(self, settings: S3Settings) -> None:
        self.location = settings.location
        self.store = settings.store()

    async def release(self) -> None:
        """Drop the client (and its connection pool) now, and let obstore's runtime settle.

        obstore 0.12 runs its async calls on a Tokio runtime that is never
        shut down: when a client is dropped while the interpreter finalizes,
        a runtime thread tearing down its connections can abort the process
        (SIGABRT after all work succeeded; 10 of 30 runs of four processes
        each doing 120 async requests, against 0 of 20 with this release).
        Dropping the client at close() and yielding 20 ms lets the runtime
        finish that teardown while the interpreter is intact.
        """
        self.store = None
        await asyncio.sleep(_SETTLE)

    async def get(self, name: str) -> tuple[bytes, str] | None:
        """(body, etag) of an object, or None if there is none."""
        try:
            result = await obstore.get_async(self.store, name)
            body = (await result.bytes_async()).to_bytes()
        except _NOT_FOUND:
            return None
        except ValueError:  # a name no object can have (a pattern with control characters)
            return None
        except _ERRORS as exc:
            raise _fail(exc, self.location, "get", name) from exc
        return body, str(result.meta["e_tag"])

    async def put(
        self, name: str, body: bytes, *, create: bool = False, etag: str | None = None
    ) -> str:
        """Write an object conditionally; see :meth:`S3IO.put`."""
        try:
            done = await obstore.put_async(
                self.store, name, body, mode=_mode(create, etag), use_multipart=False
            )
        except _CONFLICTS as exc:
            raise ConflictError(name) from exc
        except _ERRORS as exc:
            raise _fail(exc, self.location, "put", name) from exc
        return str(done["e_tag"])

    async def delete(self, name: str) -> None:
        """Remove an object unconditionally (used for expiry markers only)."""
        try:
            await obstore.delete_async(self.store, name)
        except _NOT_FOUND:
            pass
        except _ERRORS as exc:
            raise _fail(exc, self.location, "delete", name) from exc

    async def pages(self, directory: str, after: str | None) -> AsyncIterator[Sequence[Any]]:
        """The objects under ``directory/`` named after ``after``, a LIST page at a time."""
        try:
            stream = obstore.list(self.store, directory, offset=after, chunk_size=PAGE)
            async for page in stream:
                yield page
        except ValueError:  # a prefix no object name can have: nothing is there
            return
        except _ERRORS as exc:
            raise _fail(exc, self.location, "list", directory) from exc

    async def folders(self, directory: str) -> list[str]:
        """The names of the folders directly under ``directory/``."""
        try:
            found = await obstore.list_with_delimiter_async(self.store, directory)
        except _ERRORS as exc:
            raise _fail(exc, self.location, "list", directory) from exc
        return [str(p) for p in found["common_prefixes"]]

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def next(self, iterator: AsyncIterator[T]) -> T | None:
        """The next item, or None at the end."""
        try:
            return await anext(iterator)
        except StopAsyncIteration:
            return None

    def lock(self) -> asyncio.Lock:
        return asyncio.Lock()

    async def each(self, fn: Callable[[T], Awaitable[U]], items: Sequence[T]) -> list[U]:
        """``fn`` of every item, up to CONCURRENCY requests at a time, in order.

        Every call runs to its end even if one fails; then the first failure
        is raised (so no request is left running behind the caller's back).
        """
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(item: T) -> U:
            async with gate:
                return await fn(item)

        results = await asyncio.gather(*(one(item) for item in items), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results  # type: ignore[return-value]


def age_ms(meta: dict[str, Any], now: int) -> int:
    """Milliseconds since an object was last written (server time vs the store's clock)."""
    modified = meta.get("last_modified")
    if not isinstance(modified, datetime):
        return 0
    return now - int(modified.timestamp() * 1000)


#: Unreferenced expiry markers younger than this are left alone by the sweep:
#: a writer puts its marker just before its record, and may be between the two.
MARKER_GRACE = timedelta(hours=1)
