"""Help-text helpers shared by the command modules."""

from __future__ import annotations

__all__ = ["examples"]


def examples(*lines: str) -> str:
    """An ``Examples:`` epilog that click prints as written (no re-wrapping)."""
    body = "\n".join(f"  {line}" for line in lines)
    # "\b" on its own line tells click not to re-wrap the paragraph after it.
    return f"\b\nExamples:\n{body}"
