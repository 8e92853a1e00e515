"""Running a seed example: the only changes are the substitutions each test names."""

from __future__ import annotations

import ast
import inspect
from typing import Any

from .examples import Block, blocks

Substitutions = list[tuple[str, str]]


def substitute(block: Block, substitutions: Substitutions) -> str:
    """The block's code with each ``(old, new)`` replaced; every ``old`` must occur,
    so a change in a copied document cannot silently turn a substitution off."""
    code = block.code
    for old, new in substitutions:
        assert old in code, f"{block.seed} {block.name!r}: {old!r} not in the example"
        code = code.replace(old, new)
    return code


def example(seed: str, name: str) -> Block:
    return blocks(seed)[name]


async def run_async(block: Block, namespace: dict[str, Any], substitutions: Substitutions) -> None:
    """Run an async example as written: top-level ``await`` is allowed, as in the document."""
    code = compile(
        substitute(block, substitutions),
        f"seed {block.seed} example {block.name!r}",
        "exec",
        flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
    )
    result = eval(code, namespace)
    if inspect.iscoroutine(result):
        await result


def run_sync(block: Block, namespace: dict[str, Any], substitutions: Substitutions) -> None:
    code = compile(substitute(block, substitutions), f"seed {block.seed} {block.name!r}", "exec")
    exec(code, namespace)
