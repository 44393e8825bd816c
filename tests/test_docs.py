"""Every Python block in `docs/*.md` runs, one file's blocks in order in one namespace, in a temporary folder.

A block preceded by the line `<!-- not run: REASON -->` (a GPU, the Hub) is compiled, not run.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"(<!-- not run: [^>]+ -->\n)?```python\n(.*?)```", re.DOTALL)
PAGES = sorted(path for path in DOCS.glob("*.md") if "```python" in path.read_text())


def test_the_docs_have_python_blocks_to_run():
    assert PAGES, "no docs page with a Python block: the test below would check nothing"


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_docs_code_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    blocks = BLOCK.findall(page.read_text())
    assert blocks
    for index, (skip, code) in enumerate(blocks):
        compiled = compile(code, f"{page.name}, block {index + 1}", "exec")
        if not skip:
            exec(compiled, namespace)  # noqa: S102 (the documentation's own examples)
