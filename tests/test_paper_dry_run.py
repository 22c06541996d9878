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
from domainknowledge.dry_runs import HEAVY_CHAPTERS, MEASUREMENT_ENVIRONMENT, MEMORY_SCALES, memory_scales, memory_slope
from domainknowledge.fixtures import CACHE_FOLDER, dry_run_environment, write_fixtures
from tests.conftest import MEMORY_NOT_ASSERTED_ON_CPU, REPO, copy_book_frame

pytestmark = pytest.mark.slow

#: chapter name -> why its paper path does not run on the fixtures yet, and the issue that fixes it.
PAPER_PATH_FAILURES: dict[str, str] = {}
CHAPTERS = [chapter.name for chapter in book.discover_chapters(Project(REPO, REPO))]
#: The slowest paper dry runs on the fixtures (wall seconds two at a time in the test suite on 7 Dec 2026:
#: 85-115 each, the next 40-60, the others 15-36; bgaugment 120 s alone), started first so that the two workers
#: finish together (longest processing time first; :class:`tests.conftest.PaperDryRuns` takes them in this order).
SLOWEST_FIRST = ("bgaugment", "human_similarity", "multitask_aesthetics", "dml_attribution", "decision_tree_hashing",
                 "clip_aesthetics", "indirect", "venue_recommender", "cars_attention", "encoders",
                 "multilabel_neighbours", "twitch_sentiment", "hierarchical_grouping")


def slowest_first(chapters: list) -> list:
    """``chapters`` with those of :data:`SLOWEST_FIRST` at the front, in that order; the rest in book order."""
    rank = {name: index for index, name in enumerate(SLOWEST_FIRST)}
    return sorted(chapters, key=lambda chapter: rank.get(chapter.name, len(rank)))


def run_dry(project: Project, chapters: list, data_root) -> dict:
    """Paper dry runs of ``chapters`` on the fixtures under ``data_root``, two at a time through the local
    executor (CI has 2 cores), slowest first: ``{chapter name: ChapterResult}``."""
    parameters = book.chapter_parameters("paper", 0, "cpu", str(data_root), dry_run=True)
    with pytest.MonkeyPatch.context() as patch:
        # the allocator setting of measured runs (dry_runs.MEASUREMENT_ENVIRONMENT) for all: the larger heavy runs
        # are compared with the session's (tests/conftest.py gives the heavy chapters whose slope the suite asserts
        # the same setting)
        for variable, value in {**dry_run_environment(data_root), **MEASUREMENT_ENVIRONMENT}.items():
            patch.setenv(variable, value)
        results = book.run_chapters(project, slowest_first(chapters), parameters,
                                    executor="local", jobs=2, write_pages=False, log=lambda *a, **k: None)
    return {result.chapter.name: result for result in results}


@pytest.fixture(scope="module")
def paper_project(tmp_path_factory, paper_dry_runs):
    if paper_dry_runs is not None:
        return paper_dry_runs.project
    return Project(REPO, copy_book_frame(tmp_path_factory.mktemp("paper-book")))


@pytest.fixture(scope="module")
def dry_run_results(paper_dry_runs, published_data):
    """The selected chapters' paper dry runs (``{name: result}`` with ``status`` and ``error``): started with
    the session on the core that the unit tests leave idle, two at a time from here on
    (:class:`tests.conftest.PaperDryRuns`)."""
    return {} if paper_dry_runs is None else paper_dry_runs.results()


@pytest.fixture(scope="module")
def larger_dry_runs(request, tmp_path_factory, published_data, dry_run_results):
    """The selected heavy chapters' paper dry runs again, on their fixtures written at the larger of
    :data:`~domainknowledge.dry_runs.MEMORY_SCALES` (weights linked from the session's fixtures), two at a time:
    ``(project, data root, {chapter name: ChapterResult})``."""
    selected = {item.callspec.params["name"] for item in request.session.items
                if item.originalname == "test_paper_memory_does_not_grow_with_the_data"} - set(MEMORY_NOT_ASSERTED_ON_CPU)
    selected = {name for name in selected if getattr(dry_run_results.get(name), "status", None) == "ok"}
    root = tmp_path_factory.mktemp("published-data-larger")
    project = Project(REPO, copy_book_frame(tmp_path_factory.mktemp("paper-book-larger")))
    if not selected:
        return project, root, {}
    write_fixtures(root, sorted({f for name in selected for f in HEAVY_CHAPTERS[name]}), scale=MEMORY_SCALES[1])
    (root / CACHE_FOLDER).symlink_to((published_data / CACHE_FOLDER).resolve(), target_is_directory=True)
    chapters = [c for c in book.discover_chapters(project) if c.name in selected]
    return project, root, run_dry(project, chapters, root)


def _expected(name: str):
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


def _measured(name: str):
    if name in MEMORY_NOT_ASSERTED_ON_CPU:
        return pytest.param(name, marks=pytest.mark.skip(reason=MEMORY_NOT_ASSERTED_ON_CPU[name]))
    return name


@pytest.mark.parametrize("name", [_measured(name) for name in sorted(HEAVY_CHAPTERS)])
def test_paper_memory_does_not_grow_with_the_data(name, paper_project, published_data, dry_run_results,
                                                  larger_dry_runs, tmp_path):
    """Peak memory of the dry run at two fixture scales grows by less than one decoded image per image: the
    smaller run is the one above; the larger is the chapter's fixtures at ``MEMORY_SCALES[1]``, run beside the
    other heavy chapters' in :func:`larger_dry_runs`."""
    assert memory_scales(name) == MEMORY_SCALES, (f"{name} is measured at scales {memory_scales(name)}, not at the "
                                                  f"suite's {MEMORY_SCALES}: list it in MEMORY_NOT_ASSERTED_ON_CPU")
    if dry_run_results.get(name) is None or dry_run_results[name].status != "ok":
        pytest.skip(f"{name}'s dry run did not run or failed (its own test says why)")
    larger_project, larger_root, larger = larger_dry_runs
    assert larger[name].status == "ok", f"{name} at scale {MEMORY_SCALES[1]}: {larger[name].error}"
    runs = {published_data: paper_project, larger_root: larger_project}

    def peak_at(root):
        [chapter] = book.select_chapters(book.discover_chapters(runs[root]), [name])
        return book.read_record(chapter.executed_path(runs[root]))["summary"]["run"]["peak_memory_mib"]

    slope = memory_slope(name, HEAVY_CHAPTERS[name], peak_at, tmp_path, MEMORY_SCALES,
                         written={MEMORY_SCALES[0]: published_data, MEMORY_SCALES[1]: larger_root})
    assert slope.within_bound, (f"{name}: peak memory grew {slope.slope_mib_per_image:.3f} MiB per image "
                                f"({slope.images} images, {slope.peak_mib} MiB); bound {slope.bound_mib_per_image:.3f}")
