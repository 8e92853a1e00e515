"""The file backend's change feed: the change log as a member of the JSON document.

A store whose feed is on carries a ``"changes"`` member beside its
namespaces, and ``format_version`` :data:`FEED_FORMAT_VERSION` (3), so a
keyshelf that does not know the feed refuses the file instead of writing it
without recording changes::

    "changes": {
        "history_count": 10000, "history_ms": null,
        "revision": 42, "pruned": 0,
        "log": [
            {"rev": 41, "type": "set", "ns": "default", "key": "a", "at": 1733...,
             "value": {"tag": "i", "value": 1, "version": 3, ...},
             "prev": {"tag": "i", "value": 0}},
            {"rev": 42, "type": "delete", "ns": "default", "key": "b", "at": 1733...,
             "value": null, "prev": {"tag": "s", "value": "x"}}
        ]
    }

Values use the record fields of docs/file.md (``tag`` and the payload
member; ``expires_at`` in the value after the change). The log is the
in-process :class:`~._changelog.ChangeLog` of the memory backend, loaded with
the document and written with it: a change is committed exactly when the
write that made it is (one rename of the whole file).
"""

from __future__ import annotations

import threading
from typing import Any

from .._file_format import FormatError, write_fields, write_from
from ..changes import TYPES, Change
from ._changelog import ChangeLog

#: The format version of a document with a "changes" member.
FEED_FORMAT_VERSION = 3


def _value_json(value: Any, version: int | None, expires_at: int | None) -> Any:
    if value is None:
        return None
    fields = write_fields(value[0], value[1], expires_at, None)
    if version is not None:
        fields["version"] = version
    return fields


def log_json(log: ChangeLog) -> dict[str, Any]:
    """The ``"changes"`` member of an enabled log."""
    entries = [
        {
            "rev": change.revision,
            "type": change.type,
            "ns": change.ns,
            "key": change.key,
            "at": at,
            "value": _value_json(change.value, change.version, change.expires_at),
            "prev": _value_json(change.prev, None, None),
        }
        for change, at in zip(log._changes, log._times, strict=True)
    ]
    return {
        "history_count": log.history_count,
        "history_ms": log.history_ms,
        "revision": log.revision,
        "pruned": log.pruned_through,
        "log": entries,
    }


def _int(obj: dict[str, Any], name: str, *, optional: bool = False) -> Any:
    value = obj.get(name)
    if value is None and optional:
        return None
    if type(value) is not int or value < 0:
        raise FormatError(f'"changes": "{name}" must be a non-negative integer')
    return value


def log_from(obj: Any, condition: threading.Condition) -> ChangeLog:
    """The log of a ``"changes"`` member (raises FormatError if it is not one)."""
    if type(obj) is not dict or type(obj.get("log")) is not list:
        raise FormatError('"changes" must be an object with a "log" list')
    log = ChangeLog(condition)
    count = _int(obj, "history_count", optional=True)
    ms = _int(obj, "history_ms", optional=True)
    if count is None and ms is None:
        raise FormatError('"changes" needs "history_count" or "history_ms"')
    log.enable(count, ms)
    log.revision = _int(obj, "revision")
    log.pruned_through = _int(obj, "pruned")
    last = log.pruned_through
    for entry in obj["log"]:
        if type(entry) is not dict or entry.get("type") not in TYPES:
            raise FormatError('"changes": every entry needs a "type" of set, delete or expire')
        revision, at = _int(entry, "rev"), _int(entry, "at")
        if not last <= revision <= log.revision:
            raise FormatError('"changes": revisions must grow up to "revision"')
        ns, key = entry.get("ns"), entry.get("key")
        if type(ns) is not str or type(key) is not str:
            raise FormatError('"changes": "ns" and "key" must be strings')
        value = entry.get("value")
        new = None if value is None else write_from(value)
        prev = None if entry.get("prev") is None else write_from(entry["prev"])
        version = None if value is None else _int(value, "version")
        log._changes.append(
            Change(
                revision,
                entry["type"],
                ns,
                key,
                None if new is None else (new.tag, new.payload),
                version,
                None if new is None else new.expires_at,
                None if prev is None else (prev.tag, prev.payload),
            )
        )
        log._revisions.append(revision)
        log._times.append(at)
        log._last_time = max(log._last_time, at)
        last = revision
    return log
