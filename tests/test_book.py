"""The pipeline: discovery, the content-hash cache, failures, interrupted writes, generated pages, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from domainknowledge import book
from domainknowledge.book import PipelineError, Project

SMOKE = book.chapter_parameters("smoke", 0, "cpu", None)


def chapter(project: Project, name: str) -> book.Chapter:
    return book.select_chapters(book.discover_chapters(project), [name])[0]


def test_discovery_names_chapters_by_topic_and_rejects_unknown_names(fixture_project):
    chapters = book.discover_chapters(fixture_project)
    assert [c.name for c in chapters] == ["passing", "failing"]
    assert chapters[0].docname == "book/chapters/fixture_part/01_passing"
    with pytest.raises(PipelineError, match="unknown chapter.*passing, failing"):
        book.select_chapters(chapters, ["nope"])


def test_unknown_profile_is_a_clear_error():
    with pytest.raises(PipelineError, match="unknown profile 'gpu'.*smoke, cpu, paper"):
        book.chapter_parameters("gpu", 0, "cpu", None)


def test_cache_hit_then_miss_after_a_source_or_parameter_change(fixture_project):
    passing = chapter(fixture_project, "passing")
    first = book.execute_chapter(fixture_project, passing, SMOKE)
    assert first.status == "ok"
    target = passing.executed_path(fixture_project)
    written = target.stat().st_mtime_ns

    assert target.with_suffix(".py").read_text() == passing.source.read_text()  # offered as a download
    again = book.execute_chapter(fixture_project, passing, SMOKE)
    assert again.status == "cached"
    assert target.stat().st_mtime_ns == written

    reseeded = book.execute_chapter(fixture_project, passing, {**SMOKE, "seed": 1})
    assert reseeded.status == "ok"
    assert book.read_record(target)["parameters"]["seed"] == 1

    passing.source.write_text(passing.source.read_text() + "\n# an edit\n")
    edited = book.execute_chapter(fixture_project, passing, {**SMOKE, "seed": 1})
    assert edited.status == "ok"


def test_key_covers_the_library_tree_and_the_pins(fixture_project, tmp_path):
    library = tmp_path / "library"
    library.mkdir()
    (library / "module.py").write_text("x = 1\n")
    project = Project(fixture_project.root, fixture_project.book_root, src_dir=library)
    passing = chapter(project, "passing")
    key = book.cache_key(project, passing, SMOKE)
    (library / "module.py").write_text("x = 2\n")
    assert book.cache_key(project, passing, SMOKE) != key
    key = book.cache_key(project, passing, SMOKE)
    (project.root / "requirements.txt").write_text("torch==0.0.1\n")
    assert book.cache_key(project, passing, SMOKE) != key
    (library / "__pycache__").mkdir()
    (library / "__pycache__" / "module.cpython-311.pyc").write_bytes(b"\0")
    assert book.library_hash(library) == book.library_hash(library)


def test_cli_runs_every_chapter_reports_the_failure_and_writes_the_pages(fixture_project):
    completed = subprocess.run([sys.executable, "-m", "domainknowledge.book", "run", "--profile", "smoke",
                                "--device", "cpu"], cwd=fixture_project.root, capture_output=True, text=True)
    assert completed.returncode == 1
    assert "passing: ok" in completed.stdout
    assert "failing: FAILED" in completed.stdout and "fails on purpose" in completed.stdout
    assert "1 chapter(s) failed: failing" in completed.stderr

    failed = chapter(fixture_project, "failing").executed_path(fixture_project)
    notebook = nbformat.read(failed, as_version=4)
    assert "dk-failure" in notebook.cells[0].metadata["tags"]
    assert "failed" in notebook.cells[0].source and "fails on purpose" in notebook.cells[0].source
    assert book.read_record(failed)["status"] == "failed"

    status = (fixture_project.book_root / "book" / "status.md").read_text()
    assert "dk-badge dk-failed'>failed<" in status and "dk-badge dk-ok'>ok<" in status and "smoke" in status
    assert (fixture_project.book_root / "book" / "generated" / "wall-times.svg").read_text().startswith("<?xml")
    report = (fixture_project.book_root / "book" / "reproduction.md").read_text()
    assert "**2 thesis claims**: 1 hold, 1 do not hold, 0 not run. **Checks**: 1 of 1 pass." in report
    assert "The last execution is <span class='dk-badge dk-failed'>failed</span>" in report
    assert "dk-badge dk-cause'>genuine</span> the computed answer is 42" in report
    assert (fixture_project.book_root / "book" / "generated" / "claims-by-chapter.svg").is_file()
    # chapters appear in book order under their titles, each linked to its page
    passing_title, failing_title = (chapter(fixture_project, n).title for n in ("passing", "failing"))
    assert passing_title != "passing"
    first, second = (report.index(f"## {{doc}}`{title} <") for title in (passing_title, failing_title))
    assert first < second
    assert not any(ord(ch) > 0x2400 for ch in report + status), "emoji glyphs render as blank boxes"

    claims = subprocess.run([sys.executable, "-m", "domainknowledge.book", "claims"], cwd=fixture_project.root,
                            capture_output=True, text=True, check=True)
    records = [json.loads(line) for line in claims.stdout.splitlines()]
    assert {r["id"]: r["verdict"] for r in records} == {"answer": "holds", "not-43": "does-not-hold"}
    assert all(set(r) == {"chapter", "id", "statement", "source", "thesis_value", "measured", "profile",
                          "verdict", "cause", "diagnosis", "note"} for r in records)
    assert {r["profile"] for r in records} == {"smoke"}
    assert {r["id"]: r["cause"] for r in records} == {"answer": "", "not-43": "genuine"}
    checks = subprocess.run([sys.executable, "-m", "domainknowledge.book", "checks"], cwd=fixture_project.root,
                            capture_output=True, text=True, check=True)
    [check] = [json.loads(line) for line in checks.stdout.splitlines()]
    assert (check["id"], check["kind"], check["passed"]) == ("multiplication", "known-answer", True)


def test_chapters_follow_the_book_order_of_the_toc(fixture_project):
    toc = fixture_project.book_root / "_toc.yml"
    toc.write_text(toc.read_text().replace("01_passing", "PLACEHOLDER").replace("02_failing", "01_passing")
                   .replace("PLACEHOLDER", "02_failing"))
    assert [c.name for c in book.discover_chapters(fixture_project)] == ["failing", "passing"]


def test_the_appendix_runs_first_so_that_it_pays_for_the_shared_encoders_once():
    chapters = [book.Chapter(name=name, part=part, source=Path(f"notebooks/{part}/01_{name}.py"))
                for name, part in (("a", "loss_function"), ("encoders", "appendix"), ("b", "weak_labels"))]
    assert [c.name for c in book.appendix_first(chapters)] == ["encoders", "a", "b"]


def test_a_failed_chapter_is_executed_again(fixture_project):
    failing = chapter(fixture_project, "failing")
    assert book.execute_chapter(fixture_project, failing, SMOKE).status == "failed"
    assert book.execute_chapter(fixture_project, failing, SMOKE).status == "failed"  # not "cached"


def test_a_run_killed_half_way_leaves_no_valid_entry(fixture_project, tmp_path):
    passing = chapter(fixture_project, "passing")
    marker = tmp_path / "kernel-is-sleeping"
    env = {**os.environ, "DK_FIXTURE_SLEEP": "120", "DK_FIXTURE_MARKER": str(marker)}
    process = subprocess.Popen([sys.executable, "-m", "domainknowledge.book", "run", "--profile", "smoke",
                                "--chapter", "passing"], cwd=fixture_project.root, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert marker.exists(), "the fixture chapter never reached its sleep"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    target = passing.executed_path(fixture_project)
    assert book.read_record(target) is None
    assert book.execute_chapter(fixture_project, passing, SMOKE).status == "ok"


def test_atomic_write_leaves_the_old_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "page.ipynb"
    target.write_text("old")

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(book.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        book.atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["page.ipynb"]


def test_a_corrupt_entry_is_not_valid(tmp_path):
    broken = tmp_path / "chapter.ipynb"
    broken.write_text('{"cells": [')
    assert book.read_record(broken) is None


def test_build_refuses_missing_and_stale_chapters(fixture_project):
    with pytest.raises(PipelineError, match="passing: not executed"):
        book.build_book(fixture_project)
    passing = chapter(fixture_project, "passing")
    book.execute_chapter(fixture_project, passing, SMOKE)
    passing.source.write_text(passing.source.read_text() + "\n# changed after the run\n")
    with pytest.raises(PipelineError, match="passing: stale"):
        book.build_book(fixture_project)


def test_missing_kernel_is_a_clear_error(fixture_project):
    with pytest.raises(PipelineError, match="kernel 'no-such-kernel' is not registered.*make setup"):
        book.run_chapters(fixture_project, book.discover_chapters(fixture_project), SMOKE,
                          kernel_name="no-such-kernel")


def test_a_page_shows_only_the_parameters_it_was_executed_with():
    defaults = nbformat.v4.new_code_cell('profile = "cpu"', metadata={"tags": ["parameters"]})
    injected = nbformat.v4.new_code_cell('profile = "smoke"', metadata={"tags": ["injected-parameters"]})
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T"), defaults, injected])
    book.show_executed_parameters(notebook, "01_topic")
    assert "remove-cell" in notebook.cells[1].metadata["tags"]
    assert "executed with" in notebook.cells[2].source and notebook.cells[3] is injected
    assert "<01_topic.ipynb>" in notebook.cells[2].source and "<01_topic.py>" in notebook.cells[2].source
    assert "remove-cell" not in injected.metadata["tags"]


def test_mathjax_is_shipped_from_the_pinned_package(tmp_path):
    target = book.ship_mathjax(tmp_path)
    assert (target / "tex-mml-chtml.js").stat().st_size > 100_000
    assert (target / "output" / "chtml" / "fonts" / "woff-v2").is_dir()
    assert book.ship_mathjax(tmp_path) == target  # current: not copied again


def _entries(project):
    return {c.name: (book.read_record(c.executed_path(project)) or {}).get("cache_key")
            for c in book.discover_chapters(project)}


def test_local_and_submitit_executors_write_the_entries_a_sequential_run_writes(fixture_project):
    passing = chapter(fixture_project, "passing")
    sequential = book.run_chapters(fixture_project, [passing], SMOKE)
    assert [r.status for r in sequential] == ["ok"]
    expected = _entries(fixture_project)

    parallel = book.run_chapters(fixture_project, book.discover_chapters(fixture_project), SMOKE,
                                 executor="local", jobs=2, force=True, log=lambda *a, **k: None)
    assert {r.chapter.name: r.status for r in parallel} == {"passing": "ok", "failing": "failed"}
    assert _entries(fixture_project)["passing"] == expected["passing"]
    assert (fixture_project.book_root / book.JOBS_DIR / "logs" / "failing.log").read_text()

    cached = book.run_chapters(fixture_project, [passing], SMOKE, executor="local", jobs=2)
    assert [r.status for r in cached] == ["cached"]

    submitted = book.run_chapters(fixture_project, [passing], SMOKE, executor="slurm", cluster="local", force=True,
                                  resources={"hours": 0.1, "gpus": 0, "cpus": 1, "mem_gb": 1},
                                  log=lambda *a, **k: None)
    assert [r.status for r in submitted] == ["ok"]
    assert _entries(fixture_project)["passing"] == expected["passing"]


def test_executor_errors_are_clear(fixture_project):
    from domainknowledge import executors

    with pytest.raises(PipelineError, match="unknown executor 'mpi'.*sequential, local, slurm"):
        book.run_chapters(fixture_project, [], SMOKE, executor="mpi")
    with pytest.raises(executors.ExecutorError, match="--jobs must be at least 1"):
        executors.run_local([executors.Job("x", argv=["true"])], parallel=0, cwd=fixture_project.root,
                            log_dir=fixture_project.root / "logs")
    assert executors.resources_for("bgaugment", hours=2, partition=None) == executors.Resources(hours=2)
    assert executors.resources_for("unknown-chapter").gpus == 1


def test_local_processes_share_the_cpu_cores_instead_of_oversubscribing_them(tmp_path, monkeypatch):
    from domainknowledge import executors

    assert executors.thread_environment(2, cores=2)["OMP_NUM_THREADS"] == "1"
    assert executors.thread_environment(3, cores=16)["MKL_NUM_THREADS"] == "5"
    assert executors.thread_environment(4, cores=2)["OPENBLAS_NUM_THREADS"] == "1"
    monkeypatch.setattr(executors, "visible_gpus", lambda: [])
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "7")           # what the user set wins
    probe = [sys.executable, "-c", "import os; print(os.environ['OMP_NUM_THREADS'], os.environ['MKL_NUM_THREADS'])"]
    codes = executors.run_local([executors.Job("a", argv=probe), executors.Job("b", argv=probe)], parallel=2,
                                cwd=tmp_path, log_dir=tmp_path / "logs", log=lambda *a, **k: None)
    assert codes == {"a": 0, "b": 0}
    expected = str(max(1, (os.cpu_count() or 1) // 2))
    assert (tmp_path / "logs" / "a.log").read_text().split() == [expected, "7"]


def test_memory_slope_is_growth_per_image_and_the_status_page_shows_it(tmp_path, monkeypatch):
    """The slope arithmetic on a fake fixture of 3 images per scale step and a fake peak of 0.5 MiB per image."""
    import dataclasses
    import json

    from domainknowledge import dry_runs, fixtures

    def write_pngs(target, scale, rng):
        for index in range(3 * scale):
            (target / f"{index}.png").write_bytes(b"")

    fixtures._discover()
    monkeypatch.setitem(fixtures.FIXTURES, "fake-images", fixtures.Fixture("fake-images", "fake", "nowhere", write_pngs))
    slope = dry_runs.memory_slope("fake", ["fake-images"], lambda root: 100 + 0.5 * len(list((root / "fake").iterdir())),
                                  tmp_path / "work", scales=(1, 3))
    assert slope.images == (3, 9) and slope.peak_mib == (101.5, 104.5)
    assert slope.slope_mib_per_image == pytest.approx(0.5) and not slope.within_bound
    (tmp_path / "book").mkdir()
    (tmp_path / dry_runs.MEMORY_FILE).write_text(json.dumps([dataclasses.asdict(slope)]))
    page = book.status_page([], tmp_path)
    assert "Memory of the paper code paths" in page and "| fake | 3 / 9 |" in page and "over" in page


def test_memory_counts_the_images_of_array_files_and_measures_where_a_batch_is_full(tmp_path):
    """CIFAR-100's pickled rows are images as much as files are (SimLoss decodes both), and a chapter whose
    batch outgrows the suite's fixtures is measured at its own scales, under the allocator setting."""
    from domainknowledge import dry_runs
    from domainknowledge.fixtures import write_fixtures

    root = write_fixtures(tmp_path, ["cifar100", "utkface"], scale=1)
    files = sum(1 for path in (root / "UTKFace").iterdir() if path.suffix == ".jpg")
    assert dry_runs.count_images(root, ["cifar100"]) == 400 and files > 0
    assert dry_runs.count_images(root, ["cifar100", "utkface"]) == 400 + files
    assert dry_runs.memory_scales("simloss") == dry_runs.MEMORY_SCALES
    assert dry_runs.memory_scales("map_lur")[0] > dry_runs.MEMORY_SCALES[1]
    assert dry_runs.MEASUREMENT_ENVIRONMENT["MALLOC_MMAP_THRESHOLD_"].isdigit()
