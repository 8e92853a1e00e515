"""``Entry``: a key with its value, user metadata and system metadata."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .codec import (
    TAG_BYTES,
    TAG_PICKLE,
    TAG_STR,
    Codec,
    checksum,
    payload_size,
)
from .expiry import to_datetime
from .records import Record

_CONTENT_TYPES = {
    TAG_STR: "text/plain; charset=utf-8",
    TAG_BYTES: "application/octet-stream",
    TAG_PICKLE: "application/x-python-pickle",
}


@dataclass(frozen=True, slots=True)
class Entry:
    """A snapshot of one live key (``get_entry``).

    ``version`` is 1 on creation and grows by 1 on every write to the value or
    the user metadata; ``expire``/``persist`` change only ``expires_at``.
    ``created_at`` survives overwrites of a live key and resets when the key is
    created again after deletion or expiry. Datetimes are aware, in UTC.
    ``content_type`` is the ``content_type`` of the user metadata when it is a
    string, else derived from the value's type (JSON for everything that is
    not ``str`` or ``bytes``).
    """

    key: str
    value: Any
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    version: int
    size: int
    checksum: str
    content_type: str
    expires_at: datetime | None

    @classmethod
    def from_record(cls, key: str, record: Record, codec: Codec) -> Entry:
        metadata = codec.decode_metadata(record.meta)
        content_type = metadata.get("content_type")
        if not isinstance(content_type, str):
            content_type = _CONTENT_TYPES.get(record.tag, "application/json")
        created = to_datetime(record.created_at)
        updated = to_datetime(record.updated_at)
        assert created is not None and updated is not None
        return cls(
            key=key,
            value=codec.decode(record.tag, record.payload),
            metadata=metadata,
            created_at=created,
            updated_at=updated,
            version=record.version,
            size=payload_size(record.tag, record.payload),
            checksum=checksum(record.tag, record.payload),
            content_type=content_type,
            expires_at=to_datetime(record.expires_at),
        )
