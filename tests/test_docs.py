"""The Python code of docs/tutorial.md and of the README's "Using simcomp from Python" runs.

Each page's ```python blocks run in order, in one namespace (as in a notebook),
in a scratch directory; a block that raises fails the test, and the blocks
carry their own asserts on what the text claims.
"""

import os
import re
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(text: str) -> list[str]:
    return BLOCK.findall(text)


def readme_python_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Using simcomp from Python")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else None]


def run_blocks(blocks: list[str], where: Path) -> dict:
    namespace: dict = {"__name__": "__docs__"}
    old = Path.cwd()
    os.chdir(where)
    try:
        for number, block in enumerate(blocks, 1):
            try:
                exec(compile(block, f"<block {number}>", "exec"), namespace)
            except Exception as exc:  # name the block that failed
                raise AssertionError(f"code block {number} failed: {exc!r}\n{block}") from exc
    finally:
        os.chdir(old)
    return namespace


def test_block_extraction():
    text = "a\n```python\nx = 1\n```\n```bash\nls\n```\n```python\ny = 2\n```\n"
    assert python_blocks(text) == ["x = 1\n", "y = 2\n"]


@pytest.mark.parametrize("page", [
    pytest.param("docs/tutorial.md", marks=pytest.mark.slow),  # about 15 s: the whole tutorial
    "README.md"])
def test_the_python_blocks_of_the_docs_run(page, tmp_path):
    text = (ROOT / page).read_text(encoding="utf-8")
    if page == "README.md":
        text = readme_python_section()
    blocks = python_blocks(text)
    assert len(blocks) >= 1
    run_blocks(blocks, tmp_path)


def test_citation_cites_simcomp_and_the_paper():
    import simcomp

    text = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    assert text.startswith("cff-version: 1.2.0")
    assert f'version: "{simcomp.__version__}"' in text
    assert "Modality Competition" in text and "2203.12221" in text and "year: 2022" in text
