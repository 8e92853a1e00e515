"""Help-text helpers shared by the command modules."""

from __future__ import annotations

__all__ = ["examples", "keys_text"]


def keys_text(count: int, adjective: str = "") -> str:
    """``"1 key"``, ``"2 keys"``, ``"0 expired keys"``: a count of keys in a sentence."""
    noun = "key" if count == 1 else "keys"
    return f"{count} {adjective} {noun}" if adjective else f"{count} {noun}"


def examples(*lines: str) -> str:
    """An ``Examples:`` epilog that click prints as written (no re-wrapping)."""
    body = "\n".join(f"  {line}" for line in lines)
    # "\b" on its own line tells click not to re-wrap the paragraph after it.
    return f"\b\nExamples:\n{body}"
