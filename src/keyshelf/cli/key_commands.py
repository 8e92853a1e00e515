"""Commands on single keys and batches: get, set, delete, exists, ttl, expire,
persist, incr, decr, mget, mset, info.

Every argument (keys, TTL, value, amount) is checked before the store is
opened, so bad input is refused with the library's own message and never
creates a store. Commands that cannot add a key open with ``create=False``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import click

from keyshelf.expiry import ttl_seconds
from keyshelf.keys import check_key, check_keys

from .context import Invocation, common_options, current
from .exit_codes import NOT_FOUND, OK, CommandUsageError
from .help import examples
from .output import json_text, stdin_is_terminal
from .values import (
    decode_value,
    parse_delta,
    parse_json_value,
    parse_ttl,
    spaced_json,
    value_json,
)

__all__ = ["COMMANDS"]

F = TypeVar("F", bound=Callable[..., Any])

_MISSING = object()


class NumbersCommand(click.Command):
    """A command whose arguments may be negative numbers (``set n -3``).

    Click reads "-3" as an unknown short option. These commands let unknown
    options through as arguments (``ignore_unknown_options``), and refuse
    unknown long options (``--tll``) themselves, before parsing, so a typo is
    still reported as one. After ``--`` everything is an argument.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("context_settings", {})["ignore_unknown_options"] = True
        super().__init__(*args, **kwargs)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Refuse unknown ``--options``, then parse as usual."""
        known = {name for param in self.get_params(ctx) for name in param.opts}
        known.update(name for param in self.get_params(ctx) for name in param.secondary_opts)
        for token in args:
            if token == "--":
                break
            name = token.split("=", 1)[0]
            if token.startswith("--") and name not in known:
                raise click.NoSuchOption(name, ctx=ctx)
        return super().parse_args(ctx, args)


def _value_format_options(f: F) -> F:
    """``--str``, ``--bytes-hex`` and ``--bytes-b64``: how VALUE is read."""
    f = click.option(
        "--bytes-b64",
        "fmt",
        flag_value="bytes-b64",
        help="VALUE is bytes in standard base64.",
    )(f)
    f = click.option(
        "--bytes-hex",
        "fmt",
        flag_value="bytes-hex",
        help="VALUE is bytes in hexadecimal (e.g. 00ff10).",
    )(f)
    f = click.option(
        "--str",
        "fmt",
        flag_value="str",
        help="VALUE is stored as a string, exactly as given.",
    )(f)
    return f


def _key_text(key: str) -> str:
    return repr(key)


def _read_stdin(inv: Invocation, what: str) -> str:
    if inv.shell is not None:
        raise CommandUsageError(f"Missing argument '{what}' (the shell cannot read it from stdin)")
    if stdin_is_terminal():
        raise CommandUsageError(f"Missing argument '{what}' (give it, or pipe it on stdin)")
    return sys.stdin.read()


def _ttl_option(help_text: str) -> Callable[[F], F]:
    return click.option("--ttl", metavar="TTL", help=help_text)


def _checked_ttl(text: str) -> int | float:
    # Checked with the store's own rule before the store is opened, so a bad
    # TTL is refused with the store's message and never creates a store.
    seconds = parse_ttl(text)
    ttl_seconds(seconds)
    return seconds


def _parse_optional_ttl(text: str | None) -> int | float | None:
    return None if text is None else _checked_ttl(text)


# --------------------------------------------------------------------------
# get / set / delete / exists
# --------------------------------------------------------------------------


@click.command(epilog=examples("keyshelf get user:1", "keyshelf get --raw greeting > greeting.txt"))
@click.argument("key")
@click.option("--raw", is_flag=True, help="Print a string as plain text and bytes as raw bytes.")
@common_options()
def get(key: str, raw: bool) -> int:
    """Print the value of KEY (exit 1 if missing).

    The value is shown in keyshelf's extended JSON, so its type is visible:
    "42" is a string, 42 an int, 42.0 a float, {"$bytes": "..."} bytes.
    """
    inv = current()
    check_key(key)
    with inv.store(create=False) as store:
        value = store.get(key, _MISSING)
    if value is _MISSING:
        inv.out.note(f"key {_key_text(key)} not found")
        return NOT_FOUND
    if raw and not inv.as_json and isinstance(value, str):
        click.echo(value)
    elif raw and not inv.as_json and isinstance(value, bytes):
        sys.stdout.flush()
        sys.stdout.buffer.write(value)
        sys.stdout.buffer.flush()
    else:
        inv.out.value(value)
    return OK


@click.command(
    "set",
    cls=NumbersCommand,
    epilog=examples(
        "keyshelf set n 42                      # an int",
        "keyshelf set name '\"Alice\"'            # a string (JSON)",
        "keyshelf set name --str Alice          # the same string",
        'keyshelf set user:1 \'{"name": "Alice"}\' --ttl 1h',
        "keyshelf set blob --bytes-hex 00ff10",
        "keyshelf set lock '\"me\"' --nx --ttl 30s",
        "echo '[1, 2]' | keyshelf set list",
    ),
)
@click.argument("key")
@click.argument("value", required=False)
@_ttl_option("Expire after TTL: seconds (30, 1.5) or 500ms, 30s, 5m, 2h, 1d.")
@click.option("--nx", is_flag=True, help="Only set if KEY does not exist (else exit 1).")
@click.option("--xx", is_flag=True, help="Only set if KEY exists (else exit 1).")
@click.option("--keep-ttl", is_flag=True, help="Keep the key's current expiry.")
@_value_format_options
@common_options()
def set_(
    key: str,
    value: str | None,
    ttl: str | None,
    nx: bool,
    xx: bool,
    keep_ttl: bool,
    fmt: str | None,
) -> int:
    """Set KEY to a typed VALUE (JSON by default).

    VALUE is read from stdin when omitted. 42 is an int, 3.0 a float, true
    a bool, null None, "text" a string, {"a": 1} a dict; extension objects
    such as {"$bytes": "YWI="} or {"$tuple": [1, 2]} give the other types.
    A bare word such as hello is refused: quote it ('"hello"') or pass --str.
    """
    inv = current()
    check_key(key)
    fmt = fmt or "json"
    text = value if value is not None else _read_stdin(inv, "VALUE")
    parsed = decode_value(text, fmt)
    seconds = _parse_optional_ttl(ttl)
    with inv.store() as store:
        done = store.set(key, parsed, seconds, nx=nx, xx=xx, keep_ttl=keep_ttl)
    if done:
        inv.out.result(True, "OK")
        return OK
    reason = "already exists" if nx else "does not exist"
    inv.out.result(False, f"not set: key {_key_text(key)} {reason}")
    return NOT_FOUND


@click.command(epilog=examples("keyshelf delete user:1 user:2"))
@click.argument("keys", nargs=-1, required=True)
@common_options()
def delete(keys: tuple[str, ...]) -> int:
    """Delete keys; print how many existed.

    Missing keys are not an error: the count says how many were there.
    """
    inv = current()
    check_keys(keys)
    with inv.store(create=False) as store:
        removed = store.delete(*keys)
    inv.out.result(removed, str(removed))
    return OK


@click.command(epilog=examples("keyshelf exists user:1 && echo present"))
@click.argument("key")
@common_options()
def exists(key: str) -> int:
    """Tell whether KEY exists (exit 1 if not).

    Prints true or false; a key holding null exists.
    """
    inv = current()
    check_key(key)
    with inv.store(create=False) as store:
        found = store.exists(key)
    inv.out.result(found, "true" if found else "false")
    return OK if found else NOT_FOUND


# --------------------------------------------------------------------------
# expiry
# --------------------------------------------------------------------------


def _seconds_text(seconds: float) -> str:
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


@click.command(epilog=examples("keyshelf ttl session:abc"))
@click.argument("key")
@common_options()
def ttl(key: str) -> int:
    """Print the seconds KEY has left.

    Prints "no expiry" (JSON: null) for a key without a TTL; exits 1 with a
    message for a missing key.
    """
    inv = current()
    check_key(key)
    with inv.store(create=False) as store:
        left = store.ttl(key)
    if left == -1:
        inv.out.note(f"key {_key_text(key)} not found")
        return NOT_FOUND
    if left is None:
        inv.out.result(None, "no expiry")
    else:
        inv.out.result(round(left, 3), _seconds_text(left))
    return OK


@click.command(
    cls=NumbersCommand,
    epilog=examples("keyshelf expire session:abc 30m", "keyshelf expire cache:x 1.5"),
)
@click.argument("key")
@click.argument("ttl")
@common_options()
def expire(key: str, ttl: str) -> int:
    """Set the time to live of KEY (exit 1 if missing).

    TTL is seconds (30, 1.5) or a number with a unit: 500ms, 30s, 5m, 2h, 1d.
    """
    inv = current()
    check_key(key)
    seconds = _checked_ttl(ttl)
    with inv.store(create=False) as store:
        done = store.expire(key, seconds)
    inv.out.result(done, "OK" if done else f"key {_key_text(key)} not found")
    return OK if done else NOT_FOUND


@click.command(epilog=examples("keyshelf persist session:abc"))
@click.argument("key")
@common_options()
def persist(key: str) -> int:
    """Remove the expiry of KEY (exit 1 if none).

    Exits 1 when KEY had no expiry or does not exist.
    """
    inv = current()
    check_key(key)
    with inv.store(create=False) as store:
        done = store.persist(key)
    inv.out.result(done, "OK" if done else f"key {_key_text(key)} has no expiry or is missing")
    return OK if done else NOT_FOUND


# --------------------------------------------------------------------------
# counters
# --------------------------------------------------------------------------


def _counter(direction: int) -> click.Command:
    name = "incr" if direction > 0 else "decr"
    verb = "Increment" if direction > 0 else "Decrement"

    @click.command(
        name,
        cls=NumbersCommand,
        epilog=examples(
            f"keyshelf {name} page:views",
            f"keyshelf {name} page:views 5",
            f"keyshelf {name} price --by 0.5",
        ),
        help=(
            f"{verb} a number; print the result.\n\n"
            f"{verb}s the number at KEY by AMOUNT (default 1), atomically. "
            "A missing key starts at 0; an existing TTL is kept. AMOUNT is an "
            "int or a float (int + float gives a float)."
        ),
    )
    @click.argument("key")
    @click.argument("amount", required=False)
    @click.option("--by", "by", metavar="AMOUNT", help="The amount, as an option.")
    @common_options()
    def command(key: str, amount: str | None, by: str | None) -> int:
        inv = current()
        check_key(key)
        if amount is not None and by is not None:
            raise CommandUsageError("give AMOUNT or --by, not both")
        text = amount if amount is not None else by
        delta = 1 if text is None else parse_delta(text)
        with inv.store() as store:
            change = store.increment if direction > 0 else store.decrement
            result = change(key, delta)
        inv.out.value(result)
        return OK

    return command


incr = _counter(+1)
decr = _counter(-1)


# --------------------------------------------------------------------------
# batches
# --------------------------------------------------------------------------


@click.command(epilog=examples("keyshelf mget config:debug config:timeout"))
@click.argument("keys", nargs=-1, required=True)
@common_options()
def mget(keys: tuple[str, ...]) -> int:
    """Print several values (exit 1 if any is missing).

    All or nothing: if any key is missing, nothing is printed and the
    error names the missing keys.
    """
    inv = current()
    check_keys(keys)
    with inv.store(create=False) as store:
        found = store.mget(list(keys))
    items = [(key, value_json(value)) for key, value in found.items()]
    if inv.as_json:
        inv.out.json("{" + ",".join(f"{json_text(k)}:{v}" for k, v in items) + "}")
    else:
        inv.out.table(["key", "value"], [(key, spaced_json(text)) for key, text in items])
    return OK


@click.command(
    cls=NumbersCommand,
    epilog=examples(
        "keyshelf mset config:debug true config:timeout 30",
        'keyshelf mset \'{"a": 1, "b": [1, 2]}\' --ttl 10m',
        "keyshelf mset --str first Alice last Smith",
    ),
)
@click.argument("args", nargs=-1, required=True, metavar="KEY VALUE [KEY VALUE]... | OBJECT")
@_ttl_option("Expire every key after TTL (see 'keyshelf set --help').")
@_value_format_options
@common_options()
def mset(args: tuple[str, ...], ttl: str | None, fmt: str | None) -> int:
    """Set several keys at once, all or nothing.

    Give KEY VALUE pairs (values read as in 'keyshelf set'), or one JSON
    object whose members are the keys ("-" reads it from stdin).
    """
    inv = current()
    fmt = fmt or "json"
    mapping: dict[Any, Any]
    if len(args) == 1:
        if fmt != "json":
            raise CommandUsageError(
                "a JSON object of keys cannot be combined with --str or --bytes-*"
            )
        text = args[0] if args[0] != "-" else _read_stdin(inv, "OBJECT")
        parsed = parse_json_value(text)
        if type(parsed) is not dict:
            raise CommandUsageError("a single argument must be a JSON object of keys and values")
        mapping = parsed
    else:
        if len(args) % 2:
            raise CommandUsageError(f"expected KEY VALUE pairs, got {len(args)} arguments")
        mapping = {}
        for key, text in zip(args[::2], args[1::2], strict=True):
            if key in mapping:
                raise CommandUsageError(f"key {_key_text(key)} is given twice")
            mapping[key] = decode_value(text, fmt)
    check_keys(mapping)
    seconds = _parse_optional_ttl(ttl)
    with inv.store() as store:
        store.mset(mapping, seconds)
    inv.out.result(True, "OK")
    return OK


# --------------------------------------------------------------------------
# info
# --------------------------------------------------------------------------


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


@click.command(epilog=examples("keyshelf info user:1"))
@click.argument("key")
@common_options()
def info(key: str) -> int:
    """Show a key's value, type, TTL and metadata.

    Also the system metadata: created and updated times, version, size,
    checksum and content type. Exits 1 if KEY is missing.
    """
    inv = current()
    check_key(key)
    with inv.store(create=False) as store:
        entry = store.get_entry(key)
        left = store.ttl(key) if entry is not None else None
    if entry is None:
        inv.out.note(f"key {_key_text(key)} not found")
        return NOT_FOUND
    seconds = None if left is None or left == -1 else round(left, 3)
    # (name, JSON text, human text) for each field, in display order.
    fields: list[tuple[str, str, str]] = [
        ("key", json_text(entry.key), entry.key),
        ("type", json_text(type(entry.value).__name__), type(entry.value).__name__),
        ("value", value_json(entry.value), spaced_json(value_json(entry.value))),
        (
            "ttl",
            json_text(seconds),
            "no expiry" if seconds is None else _seconds_text(seconds),
        ),
        ("expires_at", json_text(_when(entry.expires_at)), _when(entry.expires_at) or "-"),
        ("created_at", json_text(_when(entry.created_at)), _when(entry.created_at) or "-"),
        ("updated_at", json_text(_when(entry.updated_at)), _when(entry.updated_at) or "-"),
        ("version", json_text(entry.version), str(entry.version)),
        ("size", json_text(entry.size), f"{entry.size} bytes"),
        ("checksum", json_text(entry.checksum), entry.checksum),
        ("content_type", json_text(entry.content_type), entry.content_type),
        ("metadata", value_json(entry.metadata), spaced_json(value_json(entry.metadata))),
    ]
    if inv.as_json:
        inv.out.json("{" + ",".join(f"{json_text(name)}:{text}" for name, text, _ in fields) + "}")
    else:
        inv.out.table(["field", "value"], [(name, human) for name, _, human in fields])
    return OK


COMMANDS: list[click.Command] = [
    get,
    set_,
    delete,
    exists,
    ttl,
    expire,
    persist,
    incr,
    decr,
    mget,
    mset,
    info,
]
