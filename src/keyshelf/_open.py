"""``open()`` and ``open_async()``: URL + options -> a store bound to a namespace."""

from __future__ import annotations

import os
import re
from pathlib import PurePath
from typing import Any
from urllib.parse import SplitResult, parse_qsl, quote, urlsplit

from ._core import DEFAULT_MAX_VALUE_SIZE
from ._show import show
from ._store_async import AsyncStore
from ._store_sync import Store
from .backends._bounds import refuse_limits
from .backends.cache import cache_options
from .backends.cache import wrap as wrap_cache
from .changes import parse_history
from .codec import Codec, get_codec
from .errors import InvalidKeyError, InvalidURLError
from .expiry import Clock, system_clock
from .keys import DEFAULT_NAMESPACE, check_namespace
from .options import MAX_SECONDS, as_bool, as_number, as_str
from .registry import factory_for, schemes

DEFAULT_URL = "sqlite:///keyshelf.db"


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# "scheme:rest" at the start of a string without "//": the shape of a URL
# whose slashes were forgotten. One-letter schemes are left out, so a Windows
# drive letter ("C:/data/app.db") is never taken for one.
_SCHEME_PREFIX = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]+):(.*)", re.DOTALL)

# What each built-in scheme looks like, for the hint after a bare scheme name.
_EXAMPLES = {
    "sqlite": "sqlite:///keyshelf.db",
    "memory": "memory://",
    "file": "file://./store.json",
    "redis": "redis://localhost:6379/0",
    "rediss": "rediss://localhost:6379/0",
    "unix": "unix:///run/redis.sock",
    "postgresql": "postgresql://localhost/DBNAME",
    "postgres": "postgres://localhost/DBNAME",
}


_JSON_SUFFIXES = (".json", ".json.gz")


def _file_url(path: str) -> str:
    """The file:// URL of a path: absolute ``file:///abs``, relative ``file://./rel``."""
    quoted = quote(path)
    if path.startswith("/"):
        return "file://" + quoted
    return "file://./" + quoted.removeprefix("./")


def _suggestion(scheme: str, rest: str) -> str:
    """The URL someone most likely meant by ``scheme:rest`` (no "//")."""
    if scheme == "file":
        return _file_url(rest) if rest else _EXAMPLES["file"]
    if not rest:
        return _EXAMPLES.get(scheme, f"{scheme}://...")
    if scheme == "sqlite":
        # sqlite:app.db -> sqlite:///app.db; sqlite:/abs.db -> sqlite:////abs.db
        return f"sqlite:///{rest}"
    if scheme == "unix":
        # The socket's path is the URL's path: unix:///run/redis.sock.
        return "unix://" + (rest if rest.startswith("/") else "/" + rest)
    return f"{scheme}://{rest.lstrip('/')}"


def _as_sqlite_file(text: str) -> str:
    """How to name an SQLite file called ``text`` without tripping the checks below."""
    if text.lower().endswith(_JSON_SUFFIXES):
        return "sqlite:///" + quote(text)
    return text if text.startswith("/") else "./" + text


def _refuse_lookalike(text: str) -> None:
    """Refuse a bare path that is almost certainly a mistyped URL.

    A bare path is an SQLite file, so without this check ``"sqlite:app.db"``,
    ``"memory"`` or ``"cfg.json"`` would silently create an SQLite database
    with that literal name. Refused, with the URL most likely meant:

    * a registered scheme followed by ``:`` but no ``//`` (``sqlite:app.db``,
      ``redis:localhost``, ``memory:``), and a registered scheme name alone
      (``memory``, ``redis``);
    * a path ending in ``.json`` or ``.json.gz`` (the file backend's formats).

    Every other path is a file name: ``data/app.db``, ``./x:y.db``,
    ``C:/data/app.db``. A file whose name really has one of these shapes is
    reachable as ``./memory`` or ``sqlite:///cfg.json``.
    """
    known = set(schemes())
    if text.lower() in known:
        scheme = text.lower()
        raise InvalidURLError(
            f"Store URL {text!r} is a scheme without '://': did you mean "
            f"{_suggestion(scheme, '')!r}? (for an SQLite file of that name write "
            f"{_as_sqlite_file(text)!r})"
        )
    match = _SCHEME_PREFIX.fullmatch(text)
    if match is not None and match[1].lower() in known:
        scheme = match[1].lower()
        raise InvalidURLError(
            f"Store URL {text!r} lacks '//' after '{match[1]}:': did you mean "
            f"{_suggestion(scheme, match[2])!r}? (for an SQLite file of that name "
            f"write {_as_sqlite_file(text)!r})"
        )
    if text.lower().endswith(_JSON_SUFFIXES):
        raise InvalidURLError(
            f"{text!r} names a JSON file, but a bare path opens an SQLite database: "
            f"did you mean {_file_url(text)!r} (the JSON file backend)? For an SQLite "
            f"file of that name write {_as_sqlite_file(text)!r}"
        )


def _split(url: str | os.PathLike[str] | None) -> tuple[SplitResult, dict[str, Any]]:
    if url is None:
        url = os.environ.get("KEYSHELF_URL") or DEFAULT_URL
    if isinstance(url, PurePath | os.PathLike):
        url = os.fspath(url)
    if not isinstance(url, str) or not url:
        raise InvalidURLError(f"A store URL must be a non-empty string, got {show(url)}")
    if not _encodable(url):
        raise InvalidURLError(f"Store URL {show(url)} holds a lone surrogate: no server takes it")
    if "://" not in url:
        # A bare path is an SQLite file: the same as sqlite:///<path>, quoted
        # so that no character of it is special. Mistyped URLs are refused
        # first, before anything can create a file.
        _refuse_lookalike(url)
        try:
            path = quote(url)
        except UnicodeEncodeError:  # a lone surrogate: no file can have this name
            raise InvalidURLError(f"Cannot use {show(url)} as an SQLite file name") from None
        return SplitResult("sqlite", "", "/" + path, "", ""), {}
    try:
        parts = urlsplit(url)
        query = dict(
            parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
        )
    except ValueError as exc:
        raise InvalidURLError(f"Cannot parse store URL {url!r}: {exc}") from exc
    if not parts.scheme:
        raise InvalidURLError(f"Store URL {url!r} has no scheme")
    return parts, query


def _backend_flags(options: dict[str, Any], auto_cleanup: bool) -> None:
    """Check ``create`` and ``readonly``; leave them for the factory only when set.

    They reach the backend factory, under exactly these names, only when they
    differ from the default (``create=False``, ``readonly=True``): a factory
    that does not know them (a third-party scheme) then refuses them by name
    instead of quietly creating or writing, and the usual call passes nothing.
    """
    create = as_bool("create", options.pop("create", True))
    readonly = as_bool("readonly", options.pop("readonly", False))
    if readonly and auto_cleanup:
        raise InvalidURLError(
            "Option auto_cleanup cannot work with readonly=True: the sweep deletes expired keys"
        )
    if not create:
        options["create"] = False
    if readonly:
        options["readonly"] = True


def _options(
    url: str | os.PathLike[str] | None, options: dict[str, Any], asynchronous: bool
) -> tuple[Any, dict[str, Any]]:
    parts, query = _split(url)
    merged = {**query, **options}
    store: dict[str, Any] = {}
    cache = cache_options(merged)
    namespace = merged.pop("namespace", DEFAULT_NAMESPACE)
    # Checked before the factory runs, so a bad namespace creates no file. A
    # namespace the URL names is part of the URL: a bad one is a bad URL; a
    # keyword namespace keeps the key rules' InvalidKeyError, as
    # Store.namespace() does.
    try:
        check_namespace(namespace)
    except InvalidKeyError as exc:
        if "namespace" in query and "namespace" not in options:
            raise InvalidURLError(f"Store URL option namespace: {exc}") from None
        raise
    store["namespace"] = namespace
    separator = merged.pop("separator", None)
    # An empty separator cannot split anything: refused, not read as None.
    store["separator"] = None if separator is None else as_str("separator", separator)
    codec: str | Codec | None = merged.pop("codec", None)
    store["codec"] = get_codec(codec)
    clock: Clock = merged.pop("clock", system_clock)
    if not callable(clock):
        raise InvalidURLError("Option clock must be a callable returning epoch seconds")
    store["clock"] = clock
    store["max_value_size"] = as_number(
        "max_value_size", merged.pop("max_value_size", DEFAULT_MAX_VALUE_SIZE), integer=True
    )
    auto_cleanup = as_bool("auto_cleanup", merged.pop("auto_cleanup", False))
    interval = as_number(
        "cleanup_interval", merged.pop("cleanup_interval", 60.0), maximum=MAX_SECONDS
    )
    store["cleanup_interval"] = interval if auto_cleanup else None
    history = merged.pop("history", None)
    # history= switches the change feed on (docs/changes.md); checked before
    # anything is created.
    store["history"] = None if history is None else parse_history(history)
    _backend_flags(merged, auto_cleanup)
    # Before the factory: Redis, PostgreSQL and S3 cannot bound a store, and
    # the refusal says what to use instead (a bare "unknown option" would not).
    refuse_limits(parts.scheme, merged)
    factory = factory_for(parts.scheme)
    backend = factory(parts, merged, asynchronous)
    if cache is not None:
        backend = wrap_cache(backend, cache, asynchronous)
    return backend, store


def open(url: str | os.PathLike[str] | None = None, **options: Any) -> Store:
    """Open a store (sync API).

    ``url`` picks the backend: ``None`` means ``$KEYSHELF_URL``, else the
    SQLite file ``./keyshelf.db``; a bare path is an SQLite file;
    ``memory://``, ``sqlite:///rel.db``, ``redis://...``,
    ``postgresql://...`` name the others. Options (also as URL query
    parameters): ``namespace``, ``separator``, ``codec``, ``clock``,
    ``max_value_size``, ``auto_cleanup``, ``cleanup_interval``, ``cache``
    (``"memory"``: a read-through cache tier, bounded by ``cache_size``
    entries and ``cache_ttl`` seconds of staleness), ``create`` (default
    true; ``False`` refuses to create a store that does not exist yet:
    :class:`~keyshelf.errors.StoreNotFoundError`, nothing created),
    ``readonly`` (SQLite: every write raises
    :class:`~keyshelf.errors.ReadOnlyStoreError`), ``history`` (switches the
    store's change feed on, for every writer, keeping that many changes or
    changes of that age: ``history=10000``, ``history="1d"``; see
    docs/changes.md), plus the backend's own.

    An unusable URL or option raises InvalidURLError now, before anything is
    created. That includes a bare path that is almost certainly a mistyped
    URL: a registered scheme followed by ``:`` without ``//``
    (``"sqlite:app.db"``, ``"redis:localhost"``), a scheme name alone
    (``"memory"``), and a path ending in ``.json`` or ``.json.gz``; the error
    names the URL most likely meant.
    """
    backend, store = _options(url, options, asynchronous=False)
    history = store.pop("history")
    try:
        if history is not None:
            backend.enable_changes(*history)
        return Store(backend, **store)
    except BaseException:
        backend.close()
        raise


def open_async(url: str | os.PathLike[str] | None = None, **options: Any) -> AsyncStore:
    """Open a store for the async API; same URL and options as :func:`open`.

    Use it as ``async with keyshelf.open_async(url) as kv:``, or call
    ``await kv.aclose()`` when done.
    """
    backend, store = _options(url, options, asynchronous=True)
    history = store.pop("history")
    kv = AsyncStore(backend, **store)
    kv._history = history  # applied by ``async with`` or the first feed call
    return kv
