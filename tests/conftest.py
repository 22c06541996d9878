"""Shared fixtures: the repository, a copy of the book's frame, a fixture project of tiny chapters.

Network: pytest-socket (configured in pyproject.toml) lets the test process connect to loopback only; the
environment below also tells the Hugging Face libraries behind the MiniLM encoder never to try the hub.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def copy_book_frame(destination: Path, toc: str | None = None) -> Path:
    """Copy ``_config.yml``, ``_toc.yml`` (or write ``toc``) and the hand-written pages of ``book/``."""
    destination.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "_config.yml", destination / "_config.yml")
    if toc is None:
        shutil.copy(REPO / "_toc.yml", destination / "_toc.yml")
    else:
        (destination / "_toc.yml").write_text(toc)
    (destination / "book").mkdir(exist_ok=True)
    shutil.copytree(REPO / "book" / "_static", destination / "book" / "_static", dirs_exist_ok=True)
    for page in [*(REPO / "book").glob("*.md"), REPO / "book" / "references.bib"]:
        if page.name not in ("status.md", "reproduction.md"):
            shutil.copy(page, destination / "book" / page.name)
    if not (destination / "src").exists():  # the chapters show library code with literalinclude /src/...
        (destination / "src").symlink_to(REPO / "src", target_is_directory=True)
    return destination


FIXTURE_TOC = """\
format: jb-book
root: book/intro
parts:
  - caption: Front matter
    chapters:
      - file: book/reproducing
      - file: book/notation
      - file: book/status
      - file: book/reproduction
  - caption: Fixtures
    chapters:
      - file: book/chapters/fixture_part/01_passing
      - file: book/chapters/fixture_part/02_failing
  - caption: Back matter
    chapters:
      - file: book/bibliography
"""


@pytest.fixture
def fixture_project(tmp_path):
    """A project of two tiny chapters (one passes with two claims, one fails), assembled in ``tmp_path``."""
    from domainknowledge.book import Project

    shutil.copytree(FIXTURES / "notebooks", tmp_path / "notebooks")
    shutil.copy(REPO / "requirements.txt", tmp_path / "requirements.txt")
    copy_book_frame(tmp_path, toc=FIXTURE_TOC)
    return Project(root=tmp_path, book_root=tmp_path)


@pytest.fixture(scope="session")
def published_data(tmp_path_factory):
    """Every data set of the paper profiles, tiny, in its published layout (written once per test session)."""
    from domainknowledge.fixtures import write_fixtures

    return write_fixtures(tmp_path_factory.mktemp("published-data"))
