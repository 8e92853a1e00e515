"""The compatibility facades use only keyshelf's public API.

They stand for what an application ported from dataknobs-kv or
kv-store-adapter could write itself, so they must not reach into keyshelf's
private modules (``keyshelf._open``, ``keyshelf._store_async`` ...): a facade
that needs something private shows a gap in the public API.
"""

from __future__ import annotations

import ast
from pathlib import Path

import keyshelf.compat

COMPAT = Path(keyshelf.compat.__file__).parent


def _imported_modules(path: Path) -> list[str]:
    """Every module ``path`` imports, as an absolute dotted name."""
    package = ".".join(("keyshelf", "compat", *path.relative_to(COMPAT).parent.parts))
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - (node.level - 1)])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.append(module)
            # ``from keyshelf import _open`` names a private module too.
            found.extend(f"{module}.{alias.name}" for alias in node.names)
    return found


def _private_outside_compat(module: str) -> bool:
    if not module.startswith("keyshelf.") or module.startswith("keyshelf.compat"):
        return False
    return any(part.startswith("_") for part in module.split(".")[1:])


def test_compat_imports_no_private_keyshelf_module() -> None:
    sources = sorted(COMPAT.rglob("*.py"))
    assert len(sources) >= 8  # the facades are where this test looks for them
    offending = {
        f"{path.relative_to(COMPAT)}: {module}"
        for path in sources
        for module in _imported_modules(path)
        if _private_outside_compat(module)
    }
    assert not offending, sorted(offending)
