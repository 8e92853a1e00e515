"""``show()``: the repr of a caller's argument inside an error message.

Arguments that reach error messages may be hostile: an int with more digits
than Python will print (``repr`` raises ``ValueError``), an object whose
``__repr__`` raises, or a huge string. ``show`` never raises and bounds the
text, so building the message for a rejected argument cannot itself fail
with something other than the keyshelf error being raised.
"""

from __future__ import annotations

LIMIT = 300


def show(value: object, limit: int = LIMIT) -> str:
    """``repr(value)``, cut to ``limit`` characters; a placeholder if repr fails."""
    try:
        text = repr(value)
    except Exception:  # e.g. an int beyond sys.get_int_max_str_digits()
        return f"<{type(value).__name__} that cannot be printed>"
    if len(text) > limit:
        return text[: limit - 3] + "..."
    return text
