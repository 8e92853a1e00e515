"""The export format: line-oriented JSON that keeps types, TTLs and metadata.

``docs/transfer.md`` specifies it. One JSON object per line, UTF-8::

    {"format":"keyshelf.export","format_version":1,"all_namespaces":false,"namespace":"default",...}
    {"ns":"default","key":"user:1","tag":"j","value":{"name":"Alice"},"metadata":{"owner":"ops"}}
    {"ns":"default","key":"session","tag":"s","value":"abc","expires_at":1767225600000}
    {"end":true,"records":2}

Records carry the codec's tag and payload (the same JSON form as the file
backend, :mod:`keyshelf._file_format`), so every type survives
byte for byte and no value is decoded on the way. The last line counts the
records, so a file cut at a line boundary is detected as truncated.

This module does no store I/O: it writes and reads lines, and opens paths and
streams. The store-facing loops live in ``_transfer_async.py`` (and its
generated sync twin).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import tempfile
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, NamedTuple

import orjson

from . import _inuse
from ._file_format import FormatError, write_fields, write_from
from .codec import TAG_PICKLE, Codec, PickleCodec, payload_size
from .errors import (
    BackendError,
    ExportFormatError,
    InvalidArgumentError,
    InvalidKeyError,
    SerializationError,
)
from .keys import check_key, check_namespace
from .records import Record, Write

#: The ``format`` member of an export's first line.
FORMAT = "keyshelf.export"
#: The version this keyshelf writes and the newest it reads.
FORMAT_VERSION = 1

Progress = Callable[[int, int | None], object]
Destination = str | os.PathLike[str] | IO[bytes] | IO[str]
Source = str | os.PathLike[str] | IO[bytes] | IO[str]

_GZIP_MAGIC = b"\x1f\x8b"
# keyshelf's own tags: their payloads are checked by decoding them on import,
# always. Pickles are never decoded (that would run code).
_TYPED_TAGS = frozenset("nbiIfFsyjx")

# Lines are read this much at a time, so that a line too long to be a record
# is refused after reading at most max_line_size() of it, never all of it.
_CHUNK = 1 << 16
# Room on a record line for everything but the value and the metadata: the
# key and the namespace (255 characters each, at most 12 bytes per character
# as a JSON surrogate-pair escape), the field names, the tag and the expiry.
_LINE_OVERHEAD = 64 * 1024


def max_line_size(max_value_size: int) -> int:
    """The longest line (in bytes, newline included) a record may take.

    A value's payload is at most ``max_value_size`` bytes, and JSON needs at
    most 6 bytes for each of them (a control character is written
    ``\\u0000``; base64 needs 4 per 3). The user metadata gets the same
    allowance; the rest of the record fits in 64 KiB. So a longer line cannot
    be a record this store accepts, and import refuses it before it is all
    read; export refuses to write one (only metadata larger than
    ``max_value_size`` could make it).
    """
    return 12 * max_value_size + _LINE_OVERHEAD


class _LineTooLongError(Exception):
    """A line reached the limit before its end."""


class _NotAnObjectError(Exception):
    """A line starts with something other than whitespace and ``{``."""


def _bounded_lines(readline: Callable[[int], Any], limit: int) -> Iterator[bytearray]:
    """The lines ``readline(size)`` returns, each at most ``limit`` bytes.

    Reads ``_CHUNK`` at a time, so memory stays within ``limit`` plus one
    chunk whatever the source holds. A line whose first non-blank byte is not
    ``{`` cannot be a JSON object: it is refused at its first chunk (so
    ``/dev/zero`` fails at once) instead of being read up to the limit.
    Blank lines come back empty, without being kept.
    """
    while True:
        line = bytearray()
        started = False
        eof = True
        while True:
            piece = readline(_CHUNK)
            if isinstance(piece, str):
                piece = piece.encode("utf-8")
            if not piece:
                break
            eof = False
            if not started:
                head = piece.lstrip()
                if not head:  # blank so far: nothing to keep
                    if piece.endswith(b"\n"):
                        break
                    continue
                if head[:1] != b"{":
                    raise _NotAnObjectError
                started = True
            line += piece
            if len(line) > limit:
                raise _LineTooLongError
            if piece.endswith(b"\n"):
                break
        if eof:
            return
        yield line


# -- lines --------------------------------------------------------------------


def header_line(namespace: str, all_namespaces: bool) -> bytes:
    """The first line of an export."""
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "all_namespaces": all_namespaces,
        "namespace": namespace,
        "exported_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
    return orjson.dumps(header) + b"\n"


def record_line(ns: str, key: str, record: Record) -> bytes:
    """One record: namespace, key, tag, payload, expiry and user metadata."""
    fields = {"ns": ns, "key": key}
    fields.update(write_fields(record.tag, record.payload, record.expires_at, record.meta))
    return orjson.dumps(fields) + b"\n"


def end_line(records: int) -> bytes:
    """The last line: marks a complete export and counts its records."""
    return orjson.dumps({"end": True, "records": records}) + b"\n"


# -- writing ------------------------------------------------------------------


@contextlib.contextmanager
def open_destination(destination: Destination) -> Iterator[Callable[[bytes], object]]:
    """Yield a function writing bytes to ``destination``.

    A path is written to a temporary file beside it and renamed into place
    only when the export completes, so a failed export never leaves a partial
    file or replaces an existing one; ``.gz`` paths are gzip-compressed. A
    binary stream receives the bytes, a text stream the decoded text; streams
    are left open.
    """
    if isinstance(destination, str | os.PathLike):
        path = Path(destination)
        if not path.parent.is_dir():
            raise InvalidArgumentError(
                f"Cannot export to {path}: directory {path.parent} does not exist"
            )
        _refuse_held_database("export to", path)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        except OSError as exc:
            raise BackendError(f"Cannot export to {path}: {exc.strerror}") from exc
        try:
            with open(fd, "wb") as raw:
                if path.name.endswith(".gz"):
                    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as packed:
                        yield packed.write
                else:
                    yield raw.write
                raw.flush()
                os.fsync(raw.fileno())
            # mkstemp creates 0600 files; an export gets the usual mode.
            umask = _umask()
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, path)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                raise BackendError(f"Cannot export to {path}: {exc.strerror}") from exc
            raise
    elif isinstance(destination, io.TextIOBase):
        text = destination
        yield lambda data: text.write(data.decode("utf-8"))
    elif callable(getattr(destination, "write", None)):
        yield destination.write  # type: ignore[misc]
    else:
        raise InvalidArgumentError(
            f"Export destination must be a path or a writable stream, "
            f"not {type(destination).__name__}"
        )


def _refuse_held_database(action: str, path: str | os.PathLike[str]) -> None:
    """Refuse the database file (or -wal/-shm/-journal) of an SQLite store this process holds.

    Opening and closing it would drop that store's locks, and another process
    could then delete its WAL with every write in it; replacing it would
    destroy the store. Only stat() is used to tell.
    """
    if _inuse.in_use(path):
        raise InvalidArgumentError(
            f"Cannot {action} {os.fspath(path)}: it is the database file of an open store "
            f"(or one of its -wal, -shm or -journal files)"
        )


def _umask() -> int:
    # The process umask cannot be read without setting it; /proc has it.
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


# -- reading ------------------------------------------------------------------


class Line(NamedTuple):
    """One record of an export, validated."""

    number: int
    ns: str
    key: str
    write: Write


class ExportReader:
    """Reads an export twice: once to validate everything, once to apply it.

    :meth:`validate` checks every line (JSON, header, keys, namespaces, tags,
    payloads, sizes, the end line) before anything is written, so a corrupt
    or truncated export is refused as a whole. A path is read twice; a stream
    is copied to a temporary spool (in memory up to 16 MiB, then on disk) on
    the first pass, so it need not be seekable and nothing has to fit in
    memory.
    """

    def __init__(self, source: Source) -> None:
        self._source = source
        self._spool: IO[bytes] | None = None
        if isinstance(source, str | os.PathLike):
            self.name = os.fspath(source)
        elif callable(getattr(source, "read", None)) or hasattr(source, "__iter__"):
            self.name = str(getattr(source, "name", "<stream>"))
        else:
            raise InvalidArgumentError(
                f"Import source must be a path or a readable stream, not {type(source).__name__}"
            )
        self.all_namespaces = False
        self.records = 0
        self.line_limit = max_line_size(64 << 20)

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def __enter__(self) -> ExportReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _error(self, line: int, why: str) -> ExportFormatError:
        return ExportFormatError(f"{self.name}: line {line}: {why}", line)

    @contextlib.contextmanager
    def _raw_lines(self, first: bool) -> Iterator[Iterator[bytes | bytearray]]:
        """The source's lines as bytes (decompressed, spooled as needed)."""
        source = self._source
        if isinstance(source, str | os.PathLike):
            _refuse_held_database("import from", source)
            try:
                handle: IO[bytes] = open(source, "rb")  # noqa: SIM115 - closed below
            except OSError as exc:
                raise InvalidArgumentError(f"Cannot read {self.name}: {exc.strerror}") from exc
            with handle:
                if handle.read(2) == _GZIP_MAGIC:
                    handle.seek(0)
                    with gzip.GzipFile(fileobj=handle, mode="rb") as unpacked:
                        yield _bounded_lines(unpacked.readline, self.line_limit)
                else:
                    handle.seek(0)
                    yield _bounded_lines(handle.readline, self.line_limit)
        elif not first:
            assert self._spool is not None
            self._spool.seek(0)
            yield _bounded_lines(self._spool.readline, self.line_limit)
        else:
            # Closed by close(): it serves the second pass.
            spool = self._spool = tempfile.SpooledTemporaryFile(max_size=16 << 20)  # noqa: SIM115
            yield _spooled(source, spool, self.line_limit)

    def _lines(self, first: bool) -> Iterator[tuple[int, bytes | bytearray]]:
        number = 0
        with self._raw_lines(first) as lines:
            try:
                for raw in lines:
                    number += 1
                    yield number, raw
            except _LineTooLongError:
                raise self._error(
                    number + 1,
                    f"longer than {self.line_limit} bytes, more than any record can take "
                    f"(12 x max_value_size + 64 KiB): not a keyshelf export, or a value "
                    f"above max_value_size",
                ) from None
            except _NotAnObjectError:
                raise self._error(
                    number + 1, "not valid JSON: a line of an export is one JSON object"
                ) from None
            except EOFError as exc:
                raise self._error(number + 1, f"truncated compressed data ({exc})") from None
            except (gzip.BadGzipFile, zlib.error) as exc:
                raise self._error(number + 1, f"corrupt compressed data ({exc})") from None
            except (UnicodeDecodeError, UnicodeEncodeError) as exc:
                raise self._error(number + 1, f"not UTF-8 text ({exc.reason})") from None

    def _objects(self, first: bool) -> Iterator[tuple[int, dict[str, Any]]]:
        for number, raw in self._lines(first):
            if not raw.strip():
                continue
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                ending = "" if raw.endswith(b"\n") else " (the line is cut short: truncated?)"
                raise self._error(number, f"not valid JSON: {exc}{ending}") from None
            if type(obj) is not dict:
                raise self._error(number, "expected a JSON object")
            yield number, obj

    def _header(self, number: int, obj: dict[str, Any]) -> None:
        if number != 1 or obj.get("format") != FORMAT:
            raise self._error(number, f'not a keyshelf export: expected a "{FORMAT}" header')
        version = obj.get("format_version")
        if type(version) is not int or version < 1:
            raise self._error(number, f"invalid format_version {version!r}")
        if version > FORMAT_VERSION:
            raise self._error(
                number,
                f"export format version {version} is newer than this keyshelf reads "
                f"({FORMAT_VERSION}): upgrade keyshelf",
            )
        all_namespaces = obj.get("all_namespaces", False)
        if type(all_namespaces) is not bool:
            raise self._error(number, '"all_namespaces" must be true or false')
        self.all_namespaces = all_namespaces

    def _record(
        self,
        number: int,
        obj: dict[str, Any],
        default_ns: str,
        codec: Codec | None,
        limit: int,
        opaque: bool = False,
    ) -> Line:
        key = obj.get("key")
        ns = obj.get("ns", default_ns)
        try:
            check_key(key)
            check_namespace(ns)
            write = write_from(obj, iso=True)
        except (FormatError, InvalidKeyError) as exc:
            raise self._error(number, str(exc)) from None
        size = payload_size(write.tag, write.payload)
        if size > limit:
            raise self._error(
                number, f"value of key {key!r} is {size} bytes, above max_value_size {limit}"
            )
        if codec is not None:
            try:
                if write.tag in _TYPED_TAGS:
                    codec.decode(write.tag, write.payload)
                if write.meta is not None:
                    codec.decode_metadata(write.meta)
            except SerializationError as exc:
                raise self._error(number, f"corrupt value of key {key!r}: {exc}") from None
            if write.tag not in _TYPED_TAGS and not opaque:
                self._check_decodable(number, key, write, codec)  # type: ignore[arg-type]
        target = ns if self.all_namespaces else default_ns
        return Line(number, target, key, write)  # type: ignore[arg-type]

    def _check_decodable(self, number: int, key: str, write: Write, codec: Codec) -> None:
        """Refuse a record whose tag ``codec`` cannot read (a pickle, or a custom tag).

        Once stored, such a value could never be read back by this store.
        A pickle is accepted, undecoded, only by a store with the pickle
        codec; a custom tag only if ``codec`` decodes it (its own code, the
        one every ``get`` would run).
        """
        hint = "; import with opaque=True to copy such records undecoded"
        if write.tag == TAG_PICKLE:
            if isinstance(codec, PickleCodec):
                return
            raise self._error(
                number,
                f"the value of key {key!r} is a pickle (tag 'p'), which this store's codec "
                f"never reads; open the store with codec='pickle' if you trust the data{hint}",
            )
        try:
            codec.decode(write.tag, write.payload)
        except Exception as exc:  # a custom codec may raise anything
            raise self._error(
                number,
                f"the value of key {key!r} has tag {write.tag!r}, which this store's codec "
                f"cannot decode ({exc}){hint}",
            ) from None

    def validate(
        self, default_ns: str, codec: Codec, max_value_size: int, *, opaque: bool = False
    ) -> int:
        """Check the whole export; return its number of records.

        Raises :class:`ExportFormatError` naming the first bad line: a line
        longer than :func:`max_line_size` allows (refused before it is all
        read), or a record whose tag ``codec`` cannot decode, unless
        ``opaque``.
        """
        self.line_limit = max_line_size(max_value_size)
        count = 0
        last = 0
        ended = False
        for number, obj in self._objects(first=True):
            if ended:
                raise self._error(number, "content after the end line")
            if last == 0:
                self._header(number, obj)
            elif "end" in obj:
                if obj.get("end") is not True or obj.get("records") != count:
                    raise self._error(
                        number,
                        f"the end line counts {obj.get('records')!r} records, "
                        f"but the export holds {count}",
                    )
                ended = True
            else:
                self._record(number, obj, default_ns, codec, max_value_size, opaque)
                count += 1
            last = number
        if last == 0:
            raise self._error(1, f'empty: expected a "{FORMAT}" header')
        if not ended:
            raise self._error(
                last + 1, f"truncated: the export ends after line {last} without its end line"
            )
        self.records = count
        return count

    def records_in(self, default_ns: str, max_value_size: int) -> Iterator[Line]:
        """The records, read again after :meth:`validate` (checked again on the way)."""
        header = True
        for number, obj in self._objects(first=False):
            if header or "end" in obj:
                header = False
                continue
            yield self._record(number, obj, default_ns, None, max_value_size)


def _spooled(source: Any, spool: IO[bytes], limit: int) -> Iterator[bytes | bytearray]:
    """Lines of a binary or text stream as UTF-8 bytes, copied to ``spool``.

    A stream with ``readline`` is read in bounded chunks; the items of a
    plain iterable are lines already in memory, checked against ``limit``.
    """
    readline = getattr(source, "readline", None)
    lines: Iterator[bytes | bytearray]
    lines = _bounded_lines(readline, limit) if callable(readline) else _whole_lines(source, limit)
    for raw in lines:
        spool.write(raw)
        yield raw


def _whole_lines(source: Any, limit: int) -> Iterator[bytes]:
    for line in source:
        raw = line.encode("utf-8") if isinstance(line, str) else bytes(line)
        if len(raw) > limit:
            raise _LineTooLongError
        yield raw
