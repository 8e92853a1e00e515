"""JSON of any depth, without recursion: the codec's slow path.

:mod:`keyshelf.codec` encodes and decodes values up to ``FAST_DEPTH`` levels
with one orjson call and a recursive walk; beyond that depth (orjson stops at
254 levels when writing and 1024 when reading, Python's stack not much
later) it comes here. Each function does with an explicit stack what the
fast path does recursively, and produces or accepts exactly the same bytes:

* :func:`dump_deep` writes the extended-JSON text of a value (orjson's
  compact form), refusing a container that contains itself.
* :func:`parse_deep` is a JSON tokenizer and parser of any depth.
* :func:`from_ext_deep` rebuilds a value from a parsed extended-JSON tree,
  children before their parents.

The extended-JSON format itself (which types, which ``$`` objects) is the
codec's; this module reuses its helpers, and the codec imports this module
only when a value is that deep.
"""

from __future__ import annotations

import re
from typing import Any

from .codec import (
    _EXT_CONTAINER_TAGS,
    _REFUSED,
    _corrupt,
    _CycleError,
    _dumps,
    _from_ext_object,
    _loads,
    _plain_keys,
    _set_order,
    _to_ext,
)

__all__ = ["dump_deep", "from_ext_deep", "parse_deep"]


class _Lit(bytes):
    """A literal chunk of JSON text on the emitter's work stack."""


_COMMA = _Lit(b",")
_CLOSE_LIST = _Lit(b"]")
_CLOSE_OBJECT = _Lit(b"}")
_CLOSE_EXT = _Lit(b"]}")
_OPEN_PAIR = _Lit(b"[")


class _Leave:
    """On the emitter's work stack: the container ``ident`` is fully written."""

    __slots__ = ("ident",)

    def __init__(self, ident: int) -> None:
        self.ident = ident


def _push_items(todo: list[Any], items: list[Any], close: _Lit) -> None:
    """Schedule ``items`` comma-separated, then ``close`` (the stack is LIFO)."""
    todo.append(close)
    for i in range(len(items) - 1, -1, -1):
        todo.append(items[i])
        if i:
            todo.append(_COMMA)


def dump_deep(root: Any) -> tuple[bool, bytes]:
    """Extended-JSON text of ``root`` without recursion: (used extensions, text).

    Produces exactly the bytes the fast path would (orjson's compact form).
    """
    out: list[bytes] = []
    uses_ext = False
    todo: list[Any] = [root]
    # Containers being written (by id): meeting one again inside itself is a
    # cycle, which would otherwise be written forever.
    open_ids: set[int] = set()
    while todo:
        x = todo.pop()
        t = type(x)
        if t is _Lit:
            out.append(x)
            continue
        if t is _Leave:
            open_ids.discard(x.ident)
            continue
        if t is list or t is dict or t is tuple or t is set or t is frozenset:
            if id(x) in open_ids:
                raise _CycleError(f"{_REFUSED}: a {t.__name__} that contains itself")
            open_ids.add(id(x))
            todo.append(_Leave(id(x)))
        if t is list:
            out.append(b"[")
            _push_items(todo, x, _CLOSE_LIST)
        elif t is dict:
            if _plain_keys(x):
                out.append(b"{")
                todo.append(_CLOSE_OBJECT)
                for n, (k, v) in enumerate(reversed(x.items())):
                    todo.append(v)
                    todo.append(_Lit(_dumps(k) + b":"))
                    if n < len(x) - 1:
                        todo.append(_COMMA)
            else:
                uses_ext = True
                out.append(b'{"$map":[')
                todo.append(_CLOSE_EXT)
                for n, (k, v) in enumerate(reversed(x.items())):
                    todo.extend((_CLOSE_LIST, v, _COMMA, k, _OPEN_PAIR))
                    if n < len(x) - 1:
                        todo.append(_COMMA)
        elif t is tuple or t is set or t is frozenset:
            uses_ext = True
            name = "tuple" if t is tuple else "set" if t is set else "frozenset"
            out.append(b'{"$' + name.encode() + b'":[')
            _push_items(todo, list(x) if t is tuple else _set_order(x), _CLOSE_EXT)
        else:
            ext = _to_ext(x, 0)  # a scalar: never deep
            uses_ext = uses_ext or type(ext) is dict
            out.append(_dumps(ext))
    return uses_ext, b"".join(out)


_TOKEN = re.compile(
    r"""[ \t\n\r]*(?:
        ([\[\]{},:])                                      # 1 punctuation
      | ("(?:[^"\\\x00-\x1f]|\\.)*")                      # 2 string
      | (-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)  # 3 number
      | (true|false|null)                                 # 4 literal
    )""",
    re.VERBOSE | re.DOTALL,
)
_LITERALS = {"true": True, "false": False, "null": None}
_NO_KEY = object()


def parse_deep(data: Any) -> Any:
    """Parse JSON of any depth without recursion (orjson stops at 1024)."""
    text: str = data if type(data) is str else bytes(data).decode("utf-8")
    stack: list[tuple[Any, Any]] = []  # (container, pending key)
    pos, end = 0, len(text.rstrip(" \t\n\r"))
    result: Any = _NO_KEY
    expect_value = True  # False: expecting "," or a closing bracket
    while pos < end:
        m = _TOKEN.match(text, pos)
        if m is None:
            raise _corrupt(f"invalid JSON at offset {pos}")
        pos = m.end()
        punct, string, number, literal = m.groups()
        top = stack[-1][0] if stack else None
        if expect_value:
            if punct in ("[", "{"):
                stack.append(([] if punct == "[" else {}, _NO_KEY))
                if punct == "{":
                    key, pos = _parse_key(text, pos, allow_close=True)
                    if key is _NO_KEY:  # "{}"
                        value: Any = stack.pop()[0]
                    else:
                        stack[-1] = (stack[-1][0], key)
                        continue
                else:
                    m2 = _TOKEN.match(text, pos)
                    if m2 is not None and m2.group(1) == "]":
                        pos = m2.end()
                        value = stack.pop()[0]
                    else:
                        continue
            elif string is not None or number is not None:
                value = _loads(string if string is not None else number)
            elif literal is not None:
                value = _LITERALS[literal]
            else:
                raise _corrupt(f"unexpected {punct!r} at offset {pos}")
        elif punct == "," and type(top) is list:
            expect_value = True
            continue
        elif punct == "," and type(top) is dict:
            key, pos = _parse_key(text, pos, allow_close=False)
            stack[-1] = (top, key)
            expect_value = True
            continue
        elif (punct == "]" and type(top) is list) or (punct == "}" and type(top) is dict):
            value = stack.pop()[0]
        else:
            raise _corrupt(f"unexpected token at offset {m.start()}")
        # a complete value: attach it to its parent
        expect_value = False
        if not stack:
            if result is not _NO_KEY:
                raise _corrupt("trailing data after JSON value")
            result = value
        elif type(stack[-1][0]) is list:
            stack[-1][0].append(value)
        else:
            container, key = stack[-1]
            container[key] = value
    if stack or result is _NO_KEY:
        raise _corrupt("truncated JSON")
    return result


def _parse_key(text: str, pos: int, *, allow_close: bool) -> tuple[Any, int]:
    """Read ``"key":`` (or ``}`` if allowed); returns (key or _NO_KEY, new pos)."""
    m = _TOKEN.match(text, pos)
    if m is not None and allow_close and m.group(1) == "}":
        return _NO_KEY, m.end()
    if m is None or m.group(2) is None:
        raise _corrupt(f"expected an object key at offset {pos}")
    colon = _TOKEN.match(text, m.end())
    if colon is None or colon.group(1) != ":":
        raise _corrupt(f"expected ':' at offset {m.end()}")
    return _loads(m.group(2)), colon.end()


class _Frame:
    """A container being rebuilt by from_ext_deep."""

    __slots__ = ("children", "finish", "keys", "results")

    def __init__(self, finish: Any, children: list[Any], keys: list[Any] | None = None) -> None:
        self.finish = finish
        self.children = children
        self.keys = keys
        self.results: list[Any] = []


def _pairs_to_dict(flat: list[Any]) -> dict[Any, Any]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _open_node(node: Any) -> Any:
    """A leaf value, or a _Frame for a container whose children come next."""
    t = type(node)
    if t is list:
        return _Frame(None, node)
    if t is not dict:
        return node
    if len(node) == 1:
        ((key, value),) = node.items()
        if key[:1] == "$":
            kind = _EXT_CONTAINER_TAGS.get(key)
            if key == "$map":
                if type(value) is not list or any(
                    type(p) is not list or len(p) != 2 for p in value
                ):
                    raise _corrupt("$map entries must be [key, value] arrays")
                return _Frame(_pairs_to_dict, [item for pair in value for item in pair])
            if kind is None:
                return _from_ext_object(key, value, 0)  # a scalar
            if type(value) is not list:
                raise _corrupt(f"{key} must hold an array")
            return _Frame(kind, value)
    return _Frame(dict, list(node.values()), list(node))


def from_ext_deep(root: Any) -> Any:
    """_from_ext without recursion: rebuilds children before their parents."""
    opened = _open_node(root)
    if type(opened) is not _Frame:
        return opened
    stack = [opened]
    while True:
        frame = stack[-1]
        if len(frame.results) < len(frame.children):
            child = _open_node(frame.children[len(frame.results)])
            if type(child) is _Frame:
                stack.append(child)
            else:
                frame.results.append(child)
            continue
        stack.pop()
        value: Any
        if frame.keys is not None:
            value = dict(zip(frame.keys, frame.results, strict=True))
        elif frame.finish is None:
            value = frame.results
        else:
            value = frame.finish(frame.results)
        if not stack:
            return value
        stack[-1].results.append(value)
