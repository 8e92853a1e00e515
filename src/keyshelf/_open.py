"""``open()`` and ``open_async()``: URL + options -> a store bound to a namespace."""

from __future__ import annotations

import os
from pathlib import PurePath
from typing import Any
from urllib.parse import SplitResult, parse_qsl, quote, urlsplit

from ._core import DEFAULT_MAX_VALUE_SIZE
from ._show import show
from ._store_async import AsyncStore
from ._store_sync import Store
from .backends.cache import cache_options
from .backends.cache import wrap as wrap_cache
from .codec import Codec, get_codec
from .errors import InvalidURLError
from .expiry import Clock, system_clock
from .keys import DEFAULT_NAMESPACE
from .options import MAX_SECONDS, as_bool, as_number, as_str
from .registry import factory_for

DEFAULT_URL = "sqlite:///keyshelf.db"

# Options the store itself consumes; everything else goes to the backend.
_STORE_OPTIONS = {
    "namespace",
    "separator",
    "codec",
    "clock",
    "max_value_size",
    "auto_cleanup",
    "cleanup_interval",
    "cache",
    "cache_ttl",
    "cache_size",
}


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
        # A bare path is an SQLite file (docs/semantics.md): the same as
        # sqlite:///<path>, quoted so that no character of it is special.
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


def _options(
    url: str | os.PathLike[str] | None, options: dict[str, Any], asynchronous: bool
) -> tuple[Any, dict[str, Any]]:
    parts, query = _split(url)
    merged = {**query, **options}
    store: dict[str, Any] = {}
    cache = cache_options(merged)
    store["namespace"] = merged.pop("namespace", DEFAULT_NAMESPACE)
    separator = merged.pop("separator", None)
    store["separator"] = None if separator in (None, "") else as_str("separator", separator)
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
    entries and ``cache_ttl`` seconds of staleness), plus the backend's own.
    An unusable URL or option raises InvalidURLError now.
    """
    backend, store = _options(url, options, asynchronous=False)
    try:
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
    return AsyncStore(backend, **store)
