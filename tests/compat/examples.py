"""The ```python blocks of the package documents, named by their headings (no tests here).

The documents keyshelf follows are copied into ``tests/compat/seeds/``, so the
tests need nothing outside the repository; a document is named by the number
its file starts with: ``001`` dataknobs-kv's README, ``003`` kv-store-adapter's
README, ``004`` dataknobs-kv's design plan. Where the project's original copies
sit beside the checkout (``SHARED``), ``test_seed_copies`` checks that these
copies still match them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SEEDS = Path(__file__).parent / "seeds"
SHARED = Path(__file__).parents[3] / "shared" / "seeds"


@dataclass(frozen=True)
class Block:
    """One ```python block: the seed, its heading (``#n`` if several), its code."""

    seed: str
    name: str
    code: str


def seed_path(seed: str) -> Path:
    (path,) = SEEDS.glob(f"{seed}_*.txt")
    return path


def blocks(seed: str) -> dict[str, Block]:
    """Every ```python block of seed ``seed`` ("001" ...), by heading."""
    found: dict[str, Block] = {}
    heading = ""
    fence: list[str] | None = None
    language = ""
    for line in seed_path(seed).read_text().splitlines():
        if fence is not None:
            if line.startswith("```"):
                if language == "python":
                    name, n = heading, 2
                    while name in found:
                        name, n = f"{heading} #{n}", n + 1
                    found[name] = Block(seed, name, "\n".join(fence) + "\n")
                fence = None
            else:
                fence.append(line)
        elif line.startswith("```"):
            fence, language = [], line[3:].strip()
        elif re.match(r"#+ ", line):
            heading = line.lstrip("#").strip()
    return found
