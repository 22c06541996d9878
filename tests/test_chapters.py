"""Every chapter executed at the smoke profile, then the whole book built from them (slow: minutes)."""

from __future__ import annotations

import re

import pytest

from domainknowledge import book
from domainknowledge.book import Project
from domainknowledge.experiment import CAUSES
from tests.conftest import REPO, copy_book_frame

pytestmark = pytest.mark.slow


#: The slowest chapters at ``smoke`` (wall seconds, 2 at a time on 2 cores, measured on 7 Dec 2026: multitask 34,
#: DML attribution 30, the next 14-22, the others 8-14; the encoders appendix trains the smoke aligned model
#: on a fresh cache, and InDiReCT's batched fits took it from 54 to 25 s alone), started first so that the two
#: workers finish together (longest processing time first).
SLOWEST_FIRST = ("encoders", "multitask_aesthetics", "dml_attribution", "indirect", "cars_attention",
                 "clip_aesthetics", "bgaugment", "latent_adversarial_debiasing", "simloss", "decision_tree_hashing",
                 "venue_recommender", "human_similarity")


@pytest.fixture(scope="module")
def smoke_book(tmp_path_factory):
    """The real chapters executed at ``smoke`` into a copy of the book's frame, two at a time through the local
    executor (CI has 2 cores; each process gets one), slowest first."""
    project = Project(REPO, copy_book_frame(tmp_path_factory.mktemp("smoke-book")))
    parameters = book.chapter_parameters("smoke", 0, "cpu", None)
    rank = {name: index for index, name in enumerate(SLOWEST_FIRST)}
    chapters = sorted(book.discover_chapters(project), key=lambda chapter: rank.get(chapter.name, len(rank)))
    results = book.run_chapters(project, chapters, parameters, executor="local", jobs=2, log=lambda *a, **k: None)
    return project, results


def test_every_chapter_runs_at_smoke_and_records_claims(smoke_book):
    project, results = smoke_book
    assert results, "no chapters found"
    failures = {r.chapter.name: r.error for r in results if r.status != "ok"}
    assert not failures, failures
    for state in book.chapter_states(project):
        claims, checks = state.record["summary"]["claims"], state.record["summary"].get("checks", [])
        thesis_chapter = state.chapter.part != "appendix"  # the appendix measures encoders: checks only
        assert claims or not thesis_chapter, f"{state.chapter.name} recorded no thesis claims"
        assert claims or checks, f"{state.chapter.name} recorded nothing"
        assert {c["verdict"] for c in claims} <= {"holds", "does-not-hold", "not-run"}
        assert all(c["cause"] in CAUSES and c["diagnosis"] for c in claims if c["verdict"] != "holds")
        assert {c["profile"] for c in claims + checks} == {"smoke"}
        assert state.record["summary"]["run"]["device"] == "cpu"


def test_the_book_builds_without_warnings(smoke_book):
    project, _ = smoke_book
    assert book.build_book(project) == 0
    html = project.book_root / "_build" / "html"
    assert (html / "index.html").is_file()
    for chapter in book.discover_chapters(project):
        page = html / f"{chapter.docname}.html"
        assert page.is_file(), f"{page} was not built"
        assert "smoke" in page.read_text()
    status = (html / "book" / "status.html").read_text()
    assert "smoke" in status and "failed" not in status.split("<table")[1].split("</table>")[0]


def test_the_built_book_loads_nothing_from_another_host(smoke_book):
    project, _ = smoke_book
    html = project.book_root / "_build" / "html"
    assert (html / "_static" / "mathjax" / "tex-mml-chtml.js").is_file()
    pages = sorted(html.rglob("*.html"))
    assert pages
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert not external_resources(text), (page, external_resources(text))
    for chapter in book.discover_chapters(project):
        text = (html / f"{chapter.docname}.html").read_text(encoding="utf-8")
        assert text.count("The parameters this page was executed with") == 1, chapter.name
        code = re.sub(r"<[^>]+>", "", text)
        assert len(re.findall(r"^\s*profile\s*=", code, re.M)) == 1, f"{chapter.name}: two parameters cells shown"


def test_every_chapter_page_teaches(smoke_book):
    """The method's code from the library, exercises with folded solutions, numbered figures, text badges."""
    project, _ = smoke_book
    html = project.book_root / "_build" / "html"
    for chapter in book.discover_chapters(project):
        text = (html / f"{chapter.docname}.html").read_text(encoding="utf-8")
        source = chapter.source.read_text(encoding="utf-8")
        assert "{literalinclude} /src/domainknowledge/" in source and "literal-block-wrapper" in text, chapter.name
        assert 'id="exercises"' in text and len(re.findall(r'class="exercise admonition', text)) >= 3, chapter.name
        assert "dropdown" in text.split('id="exercises"')[1], f"{chapter.name}: solutions are not folded"
        assert "_downloads/" in text and f"{chapter.source.stem}.py" in text, chapter.name
        verdicts = re.findall(r"<table class=.dk-claims.*?</table>", text, re.S)
        assert verdicts and not any(ord(ch) > 0x2400 for table in verdicts for ch in table), chapter.name


RESOURCE = re.compile(r"<(?:script|link|img|iframe|source)\b[^>]*?\b(?:src|href)=[\"']([^\"']+)[\"']", re.I)
STYLE_URL = re.compile(r"url\(\s*[\"']?(https?:)?//", re.I)


def external_resources(page: str) -> list[str]:
    """What a page would fetch from another host: scripts, style sheets, images, frames, CSS url()s."""
    loaded = [url for url in RESOURCE.findall(page) if re.match(r"(https?:)?//", url)]
    anchors = set(re.findall(r"<a\b[^>]*href=[\"']([^\"']+)", page))  # links a reader may follow are fine
    return [url for url in loaded if url not in anchors] + STYLE_URL.findall(page)
