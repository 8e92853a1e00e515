"""The docs stand on their own: every link stays inside the repository and resolves.

A reader of README.md or docs/*.md, or a new contributor with only a clone,
must be able to follow every reference. So no page may link to a path
outside the repository or mention the working files the project was once
specified from (``../shared``, ``SPEC.md``, documents cited by number such as
"seed 001" or "spec section 5"); the contract is docs/semantics.md. Every
relative link must name an existing file, and an ``#anchor`` into a Markdown
page must name one of its headings. The docstrings and comments of the
package, the benchmarks and the tools cite no numbered documents either.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("**/*.md")])

# Inline links and images, [text](target "title"), and reference definitions.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+[\"'(][^)]*)?\)")
REFERENCE_LINK = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)", re.DOTALL)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")

# References a reader of the repository cannot follow.
FORBIDDEN = [
    (re.compile(r"\.\./shared"), "../shared"),
    (re.compile(r"SPEC\.md", re.IGNORECASE), "SPEC.md"),
    (re.compile(r"\bseeds?\s*#?0\d\d\b", re.IGNORECASE), "a document cited by number (seed 00x)"),
    (re.compile(r"\bseeds?\s+\d\b", re.IGNORECASE), "a document cited by number (seed N)"),
    (re.compile(r"\bspec(?:ification)?\s+(?:section|§)\s*\d", re.IGNORECASE), "spec section N"),
    (re.compile(r"\bspec\s*§", re.IGNORECASE), "spec §"),
]


def page_id(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def prose(text: str) -> str:
    """The text with fenced code blocks and code spans blanked out (links there are code)."""
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    return CODE_SPAN.sub(lambda m: " " * len(m.group(0)), text)


def links(page: Path) -> list[str]:
    text = prose(page.read_text(encoding="utf-8"))
    return [m.group(1) for m in INLINE_LINK.finditer(text)] + [
        m.group(1) for m in REFERENCE_LINK.finditer(text)
    ]


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lowercase, punctuation dropped, spaces to '-'."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link keeps its text
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    found: set[str] = set()
    seen: dict[str, int] = {}
    for match in re.finditer(r"^ {0,3}#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.MULTILINE):
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def test_there_are_pages_and_links() -> None:
    assert ROOT / "docs" / "semantics.md" in PAGES
    assert sum(len(links(page)) for page in PAGES) > 20


def test_the_readme_links_the_contract() -> None:
    assert "docs/semantics.md" in links(ROOT / "README.md")


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_no_reference_outside_the_repository(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        for pattern, what in FORBIDDEN:
            if pattern.search(line):
                problems.append(f"{page_id(page)}:{number}: mentions {what}: {line.strip()}")
    assert not problems, "\n".join(problems)


def test_the_code_cites_no_numbered_documents() -> None:
    # Docstrings and comments of the package, the benchmarks and the tools are
    # read by contributors with only a clone, too.
    sources = [
        path
        for folder in ("src", "benchmarks", "tools")
        for path in sorted((ROOT / folder).glob("**/*.py"))
    ]
    assert sources
    problems = []
    for path in sources:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for pattern, what in FORBIDDEN:
                if pattern.search(line):
                    problems.append(f"{page_id(path)}:{number}: mentions {what}: {line.strip()}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_link_resolves_inside_the_repository(page: Path) -> None:
    problems = []
    for target in links(page):
        where = f"{page_id(page)}: link {target!r}"
        if target.startswith(("http://", "https://", "mailto:")):
            continue  # a web page, not a path
        if SCHEME.match(target) or target.startswith(("/", "~", "\\")):
            problems.append(f"{where} is a path outside the repository")
            continue
        path_part, _, anchor = target.partition("#")
        path = (page.parent / unquote(path_part)).resolve() if path_part else page
        if not path.is_relative_to(ROOT):
            problems.append(f"{where} leaves the repository")
        elif not path.exists():
            problems.append(f"{where} names a missing file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            problems.append(f"{where}: no heading #{anchor} in {page_id(path)}")
    assert not problems, "\n".join(problems)


def test_the_checks_catch_what_they_should(tmp_path: Path) -> None:
    # The link extractor and the rules themselves, on a made-up page.
    page = tmp_path / "page.md"
    page.write_text(
        "See [a](../../outside.md), [b](/etc/passwd), [c](file:///x.md),\n"
        "[d](semantics.md#keys-and-namespaces) and `[not a link](x.md)`.\n"
        "```python\nkv[key](y.md)\n```\n[e]: other.md\n"
    )
    assert links(page) == [
        "../../outside.md",
        "/etc/passwd",
        "file:///x.md",
        "semantics.md#keys-and-namespaces",
        "other.md",
    ]
    bad = ["as in seed 001", "Seeds 001 and 004", "spec section 5", "spec §1.5", "../shared/x"]
    for line in bad:
        assert any(pattern.search(line) for pattern, _ in FORBIDDEN), line
    for line in ["dataknobs-kv's migrate_store", "hash seeds", "semantics.md#expiry"]:
        assert not any(pattern.search(line) for pattern, _ in FORBIDDEN), line
    assert slug("One clock: the server's") == "one-clock-the-servers"
    assert slug("`keyshelf get`") == "keyshelf-get"
    assert slug("The export format (version 1)") == "the-export-format-version-1"
