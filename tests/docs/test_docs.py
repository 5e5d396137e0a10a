"""The documentation builds without warnings and its runnable code blocks run.

A fenced ``python`` block right after an ``<!-- runnable -->`` comment is runnable; the
runnable blocks of one page run in order, in one fresh interpreter, in a scratch
directory (so a page can build on its earlier blocks).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
RUNNABLE = re.compile(r"<!-- runnable -->\s*\n```python\n(.*?)\n```", re.S)


def runnable_pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if RUNNABLE.search(p.read_text()))


def test_some_pages_have_runnable_blocks() -> None:
    assert DOCS / "getting-started.md" in runnable_pages()


@pytest.mark.parametrize("page", runnable_pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_runnable_blocks_run(page: Path, tmp_path: Path) -> None:
    script = "\n\n".join(RUNNABLE.findall(page.read_text()))
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr


def test_the_site_builds_without_warnings(tmp_path: Path) -> None:
    # As `make docs` does: the config beside (not inside) the docs directory.
    build = tmp_path / "build"
    build.mkdir()
    (build / "mkdocs.yml").write_text((DOCS / "mkdocs.yml").read_text()
                                      .replace("docs_dir: ../docs", f"docs_dir: {DOCS}")
                                      .replace("paths: [..]", f"paths: [{DOCS.parent}]"))
    mkdocs = Path(sys.executable).parent / "mkdocs"
    out = subprocess.run(
        [str(mkdocs), "build", "--strict", "-f", str(build / "mkdocs.yml"), "-d",
         str(tmp_path / "site")],
        capture_output=True, text=True, timeout=300, check=False, cwd=DOCS.parent,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "site" / "api" / "index.html").exists()
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert "execute_next" in api and "AppendConflict" in api
