"""The example of docs/changes.md runs and prints what the page says it prints."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

PAGE = Path(__file__).parents[1] / "docs" / "changes.md"


def test_the_changes_page_example_prints_what_it_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KEYSHELF_URL", raising=False)
    text = PAGE.read_text()
    code = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)[0]
    shown = re.findall(r"prints\n\n```\n(.*?)```", text, flags=re.DOTALL)[0]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "docs/changes.md example", "exec"), {})
    assert out.getvalue() == shown
