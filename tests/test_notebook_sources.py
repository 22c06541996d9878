"""Static checks of the chapters' jupytext sources (fast: nothing is executed)."""

from __future__ import annotations

import re

import jupytext
import pytest

from tests.conftest import REPO

SOURCES = sorted((REPO / "notebooks").glob("*/*.py"))


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_no_heading_is_hidden_in_a_code_cell(source):
    """A ``# ## Heading`` line inside a code cell is a comment, so the section never renders."""
    notebook = jupytext.read(source)
    hidden = [line for cell in notebook.cells if cell.cell_type == "code"
              for line in cell.source.splitlines() if re.match(r"^# #+ ", line)]
    assert not hidden, f"{source.name}: headings inside code cells: {hidden}"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_no_control_character_in_a_source(source):
    """A control character (e.g. BEL from an unescaped ``\\a`` in ``\\approx``) corrupts the page."""
    text = source.read_text(encoding="utf-8")
    bad = sorted({f"U+{ord(c):04X}" for c in text if ord(c) < 32 and c not in "\n\t"})
    assert not bad, f"{source.name} contains control characters {bad}"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_every_chapter_takes_the_dry_run_parameter(source):
    """``dk-book run --dry-run`` injects ``dry_run``; the chapter passes it to its run and its config."""
    text = source.read_text(encoding="utf-8")
    assert re.search(r"^dry_run = False$", text, re.M), f"{source.name}: no dry_run in its parameters cell"
    assert "dry_run=dry_run)" in text and "dry_run=run.dry_run)" in text, source.name


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_no_bell_escape_in_a_code_string(source):
    """``"\\approx"`` in a non-raw string is BEL followed by ``pprox``: write ``r"\\approx"`` or ``"\\\\approx"``."""
    import io
    import tokenize

    notebook = jupytext.read(source)
    found = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        try:
            tokens = list(tokenize.generate_tokens(io.StringIO(cell.source).readline))
        except (tokenize.TokenError, SyntaxError):
            continue
        for token in tokens:
            if token.type == tokenize.STRING:
                prefix = re.match(r"^[A-Za-z]*", token.string).group(0).lower()
                if "r" not in prefix and re.search(r"(?<!\\)(\\\\)*\\a", token.string):
                    found.append(token.string[:60])
    assert not found, f"{source.name}: {found}"
