"""Typed reading of open() options, which may arrive as URL query strings.

Every converter names the option in its error, so a bad URL is refused at
open time with a message that says what to fix.
"""

from __future__ import annotations

import math
import os
from typing import Any

from ._show import show
from .errors import InvalidURLError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def as_bool(name: str, value: Any) -> bool:
    """A bool option: a bool, or one of 1/0, true/false, yes/no, on/off."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise InvalidURLError(f"Option {name} must be true or false, got {show(value)}")


# The longest duration an option may ask for (about 31 years): beyond what
# threads, sockets and timers accept (they raise OverflowError), and never useful.
MAX_SECONDS = 1e9


def as_number(
    name: str,
    value: Any,
    *,
    integer: bool = False,
    minimum: float = 0,
    maximum: float | None = None,
) -> Any:
    """A finite number option above ``minimum`` (0) and at most ``maximum`` (if given)."""
    try:
        if isinstance(value, bool):
            raise ValueError
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        kind = "an integer" if integer else "a number"
        raise InvalidURLError(f"Option {name} must be {kind}, got {show(value)}") from None
    except OverflowError:  # float() of an int beyond the float range
        raise InvalidURLError(f"Option {name} is too large, got {show(value)}") from None
    if not (integer or math.isfinite(number)) or number <= minimum:
        raise InvalidURLError(f"Option {name} must be greater than {minimum:g}, got {show(value)}")
    if maximum is not None and number > maximum:
        raise InvalidURLError(f"Option {name} must be at most {maximum:g}, got {show(value)}")
    return number


def as_str(name: str, value: Any) -> str:
    """A non-empty string option."""
    if not isinstance(value, str) or not value:
        raise InvalidURLError(f"Option {name} must be a non-empty string, got {show(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidURLError(f"Option {name} holds a lone surrogate: {show(value)}") from None
    return value


def as_path(what: str, path: str) -> str:
    """A file path the OS can take: no NUL byte, and encodable as a file name."""
    if "\0" in path:
        raise InvalidURLError(f"{what} {show(path)} contains a NUL byte")
    try:
        os.fsencode(path)
    except UnicodeError:
        raise InvalidURLError(f"{what} {show(path)} cannot be encoded as a file name") from None
    return path


def refuse_unknown(scheme: str, options: dict[str, Any]) -> None:
    """Raise for options no one consumed."""
    if options:
        names = ", ".join(sorted(options))
        raise InvalidURLError(f"Unknown option(s) for {scheme}:// stores: {names}")
