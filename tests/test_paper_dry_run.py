"""Every chapter's ``paper`` code path, executed on tiny copies of its data sets in their published layouts.

``dk-book run --profile paper --dry-run --data-root <fixtures>`` runs the paper configuration (architectures,
sizes, readers) with its loop counts capped (:data:`domainknowledge.experiment.DRY_RUN_CAPS`) on the fixtures
of :mod:`domainknowledge.fixtures`, with weights from the weight fixtures and the network off. A chapter whose
paper path does not run yet is listed in :data:`PAPER_PATH_FAILURES` with the issue that fixes it; the
expected failure is strict, so the list must shrink as paths are fixed.
"""

from __future__ import annotations

import pytest

from domainknowledge import book
from domainknowledge.book import Project
from domainknowledge.dry_runs import HEAVY_CHAPTERS, dry_run_chapter, memory_slope
from domainknowledge.fixtures import dry_run_environment
from tests.conftest import REPO, copy_book_frame

pytestmark = pytest.mark.slow

#: chapter name -> why its paper path does not run on the fixtures yet, and the issue that fixes it.
PAPER_PATH_FAILURES: dict[str, str] = {}
#: chapter name -> why its paper dry run is not executed on a CPU-only CI machine, and the issue that fixes it.
#: These run end to end (their readers, metrics and streaming are tested on their own) but take minutes on a CPU.
PAPER_PATH_TOO_SLOW_ON_CPU: dict[str, str] = {
    name: "issue 18: its paper dry run passes but takes about 6 CPU minutes (42 models, and the lower-block maps "
          "of five shortcut settings at 224 px); it needs a cap on the settings or losses that keeps both families"
    for name in ("bgaugment",)
}

CHAPTERS = [chapter.name for chapter in book.discover_chapters(Project(REPO, REPO))]


@pytest.fixture(scope="module")
def paper_project(tmp_path_factory):
    return Project(REPO, copy_book_frame(tmp_path_factory.mktemp("paper-book")))


@pytest.fixture(scope="module")
def dry_run_results(request, paper_project, published_data):
    """The selected chapters' paper dry runs, two at a time through the local executor (CI has 2 cores)."""
    selected = {item.callspec.params["name"] for item in request.session.items
                if item.originalname == "test_paper_path_runs_on_published_layouts"} - set(PAPER_PATH_TOO_SLOW_ON_CPU)
    chapters = [c for c in book.discover_chapters(paper_project) if c.name in selected]
    parameters = book.chapter_parameters("paper", 0, "cpu", str(published_data), dry_run=True)
    with pytest.MonkeyPatch.context() as patch:
        for variable, value in dry_run_environment(published_data).items():
            patch.setenv(variable, value)
        results = book.run_chapters(paper_project, chapters, parameters,
                                    executor="local", jobs=2, write_pages=False, log=lambda *a, **k: None)
    return {result.chapter.name: result for result in results}


def _expected(name: str):
    if name in PAPER_PATH_TOO_SLOW_ON_CPU:
        return pytest.param(name, marks=pytest.mark.skip(reason=PAPER_PATH_TOO_SLOW_ON_CPU[name]))
    if name in PAPER_PATH_FAILURES:
        return pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=PAPER_PATH_FAILURES[name]))
    return name


@pytest.mark.parametrize("name", [_expected(name) for name in CHAPTERS])
def test_paper_path_runs_on_published_layouts(name, paper_project, dry_run_results):
    result = dry_run_results[name]
    assert result.status == "ok", f"{name}: {result.error} (log: {paper_project.book_root / book.JOBS_DIR})"
    [chapter] = book.select_chapters(book.discover_chapters(paper_project), [name])
    summary = book.read_record(chapter.executed_path(paper_project))["summary"]
    assert summary["run"]["dry_run"] is True and summary["run"]["profile"] == "paper"
    assert summary["claims"] or summary["checks"], f"{name} recorded nothing"


@pytest.mark.parametrize("name", sorted(HEAVY_CHAPTERS))
def test_paper_memory_does_not_grow_with_the_data(name, paper_project, published_data, dry_run_results, tmp_path):
    """Peak memory of the dry run at two fixture scales grows by less than one decoded image per image: the
    scale-1 run is the one above; one more run on the chapter's fixtures at scale 4."""
    from domainknowledge.fixtures import CACHE_FOLDER

    if dry_run_results.get(name) is None or dry_run_results[name].status != "ok":
        pytest.skip(f"{name}'s dry run did not run or failed (its own test says why)")
    [chapter] = book.select_chapters(book.discover_chapters(paper_project), [name])
    first_peak = book.read_record(chapter.executed_path(paper_project))["summary"]["run"]["peak_memory_mib"]

    def peak_at(root):
        if root == published_data:
            return first_peak
        return dry_run_chapter(paper_project, chapter, root)["summary"]["run"]["peak_memory_mib"]

    slope = memory_slope(name, HEAVY_CHAPTERS[name], peak_at, tmp_path, (1, 4), written={1: published_data},
                         shared_cache=published_data / CACHE_FOLDER)
    assert slope.within_bound, (f"{name}: peak memory grew {slope.slope_mib_per_image:.3f} MiB per image "
                                f"({slope.images} images, {slope.peak_mib} MiB); bound {slope.bound_mib_per_image:.3f}")
