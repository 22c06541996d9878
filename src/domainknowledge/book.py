"""The book's pipeline: execute chapters with papermill, cache them by content, write the generated pages.

``dk-book run`` converts each chapter's jupytext source (``notebooks/<part>/<nn>_<topic>.py``) to a notebook
and executes it with papermill into ``book/chapters/<part>/<nn>_<topic>.ipynb``, where ``_toc.yml`` expects
it. The executed notebook carries its own record in ``metadata["domainknowledge"]``: the cache key, the
parameters, the status (``ok`` or ``failed``), the wall time and, from the chapter's :class:`Run`, its
provenance and claims. That record is the cache: a chapter re-executes only when its key changes, and the
key hashes the chapter's source, its parameters, the library's source tree and the pinned requirements.
Every write goes to a temporary name first and is then renamed, so a run killed half-way leaves the old
entry or none, never a half-written one.

``dk-book build`` regenerates the status page and the reproduction report from those records and runs
``jupyter-book build`` with execution off and warnings as errors. It refuses to build over a chapter that
was never executed or whose record no longer matches the sources, so no stale page is shown as current.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from domainknowledge import executors
from domainknowledge.experiment import CAUSES, METADATA_KEY, PROFILES, VERDICT_LABELS, badge, git_revision

KERNEL_NAME = "domainknowledge"
CHAPTER_GLOB = "*/[0-9][0-9]_*.py"
CACHE_FORMAT = 1  # bump to invalidate every cached chapter when the record's layout changes
PROFILE_BUDGET_SECONDS = {"smoke": 60, "cpu": 360, "paper": None}
PACKAGE_DIR = Path(__file__).resolve().parent
JOBS_DIR = ".dk-jobs"  # per-chapter logs of the local executor and submitit's job folders (git-ignored)


class PipelineError(RuntimeError):
    """A problem with the book's set-up (unknown chapter, missing kernel, stale or missing page)."""


@dataclass(frozen=True)
class Project:
    """Where the chapters come from and where the book is assembled.

    ``root`` holds ``notebooks/`` and ``requirements.txt``; ``book_root`` holds ``_config.yml``, ``_toc.yml``
    and ``book/`` (the repository root, or a copy of the frame elsewhere, as the tests do).
    """

    root: Path
    book_root: Path
    src_dir: Path = PACKAGE_DIR

    @classmethod
    def find(cls, start: Path | None = None, book_root: Path | None = None) -> Project:
        """The project whose root holds ``_toc.yml`` and ``notebooks/``, searching up from ``start``."""
        here = (start or Path.cwd()).resolve()
        for candidate in (here, *here.parents):
            if (candidate / "notebooks").is_dir() and (candidate / "_toc.yml").is_file():
                return cls(candidate, (book_root or candidate).resolve())
        raise PipelineError(f"no book project (a folder with _toc.yml and notebooks/) at or above {here}; "
                            "run dk-book from the repository")

    @property
    def chapters_dir(self) -> Path:
        return self.book_root / "book" / "chapters"


@dataclass(frozen=True)
class Chapter:
    """One chapter: ``notebooks/loss_function/01_simloss.py`` is chapter ``simloss`` of part ``loss_function``."""

    name: str
    part: str
    source: Path

    @property
    def docname(self) -> str:
        return f"book/chapters/{self.part}/{self.source.stem}"

    def executed_path(self, project: Project) -> Path:
        return project.chapters_dir / self.part / f"{self.source.stem}.ipynb"

    @property
    def title(self) -> str:
        """The chapter's title: the first level-1 heading of its source (``# # Title``), else its name."""
        for line in self.source.read_text(encoding="utf-8").splitlines():
            if line.startswith("# # "):
                return line[4:].strip()
        return self.name


@dataclass
class ChapterResult:
    """What one ``run`` did to one chapter; ``status`` is ``ok``, ``cached`` or ``failed``."""

    chapter: Chapter
    status: str
    seconds: float
    error: str = ""


# --------------------------------------------------------------------------------------------- chapters
def discover_chapters(project: Project) -> list[Chapter]:
    """All chapters under ``notebooks/``, in book order: as ``_toc.yml`` lists them, then any it does not
    list, in part and number order."""
    chapters = []
    for source in sorted((project.root / "notebooks").glob(CHAPTER_GLOB)):
        name = source.stem.split("_", 1)[1]
        chapters.append(Chapter(name=name, part=source.parent.name, source=source))
    names = [c.name for c in chapters]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise PipelineError(f"two chapters share the name(s) {duplicates}; chapter topics must be unique")
    order = {docname: index for index, docname in enumerate(toc_files(project.book_root / "_toc.yml"))}
    return sorted(chapters, key=lambda c: order.get(c.docname, len(order)))


def toc_files(toc: Path) -> list[str]:
    """Every ``file:`` entry of a jupyter-book ``_toc.yml``, in reading order (none if there is no toc)."""
    import yaml

    if not toc.is_file():
        return []
    files: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    files.append(node[key].removesuffix(".md").removesuffix(".ipynb"))
            for value in node.values():
                if isinstance(value, (list, dict)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(yaml.safe_load(toc.read_text(encoding="utf-8")))
    return files


def select_chapters(chapters: list[Chapter], names: list[str] | None) -> list[Chapter]:
    """The chapters named in ``names`` (all when ``names`` is empty), or an error listing the valid names."""
    if not names:
        return chapters
    by_name = {c.name: c for c in chapters}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise PipelineError(f"unknown chapter(s) {unknown}; the chapters are: {', '.join(by_name)}")
    return [by_name[n] for n in names]


# ------------------------------------------------------------------------------------------------ cache
def _sha256_files(paths: list[Path], relative_to: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path.relative_to(relative_to)).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def library_hash(src_dir: Path) -> str:
    """Hash of every source and data file of the library (compiled caches excluded)."""
    files = sorted(p for p in src_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                   and p.suffix not in {".pyc", ".pyo"})
    return _sha256_files(files, src_dir)


def cache_key(project: Project, chapter: Chapter, parameters: dict) -> str:
    """The content key of one execution: source, parameters, library tree and pinned requirements."""
    requirements = project.root / "requirements.txt"
    parts = {
        "format": CACHE_FORMAT,
        "source": hashlib.sha256(chapter.source.read_bytes()).hexdigest(),
        "parameters": parameters,
        "library": library_hash(project.src_dir),
        "requirements": hashlib.sha256(requirements.read_bytes()).hexdigest() if requirements.is_file() else "",
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def read_record(path: Path) -> dict | None:
    """The pipeline's record of an executed notebook, or ``None`` if there is no valid one."""
    import nbformat

    if not path.is_file():
        return None
    try:
        notebook = nbformat.read(path, as_version=4)
    except Exception:  # a corrupt file is no valid entry; it is re-executed and replaced
        return None
    record = notebook.metadata.get(METADATA_KEY)
    return dict(record) if isinstance(record, dict) and "cache_key" in record else None


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# ---------------------------------------------------------------------------------------------- execute
def chapter_parameters(profile: str, seed: int, device: str, data_root: str | None, dry_run: bool = False) -> dict:
    """The papermill parameters every chapter takes (its ``parameters`` cell). ``dry_run`` runs the paper code
    path with the loop counts of :data:`domainknowledge.experiment.DRY_RUN_CAPS` (only at ``paper``)."""
    if profile not in PROFILES:
        raise PipelineError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if dry_run and profile != "paper":
        raise PipelineError("--dry-run runs the paper code path on small data; use it with --profile paper "
                            "(the smoke profile is the small run of the other profiles)")
    return {"profile": profile, "seed": seed, "device": device,
            "data_root": str(Path(data_root).expanduser().resolve()) if data_root else None, "dry_run": dry_run}


def _check_kernel(kernel_name: str) -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(kernel_name)
    except NoSuchKernel:
        raise PipelineError(
            f"the Jupyter kernel {kernel_name!r} is not registered; run `make setup` (or "
            f"`python -m ipykernel install --sys-prefix --name {kernel_name}` in the project's .venv)") from None


def _run_summary(notebook) -> dict | None:
    """The summary that the chapter's ``run.finish()`` attached to its output, if it got that far."""
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            summary = output.get("metadata", {}).get(METADATA_KEY)
            if summary:
                return summary
    return None


def _failure_cell(profile: str, revision: str, error: str):
    import nbformat

    return nbformat.v4.new_markdown_cell(
        f":::{{danger}}\nThis chapter **failed** when it was executed at the `{profile}` profile (revision "
        f"`{revision}`): `{error}`.\nThe outputs below stop where the error occurred; no number on this "
        "page is a current result. See the [status page](../../status.md).\n:::",
        metadata={"tags": ["dk-failure"]})


def show_executed_parameters(notebook, stem: str) -> None:
    """Show one parameters cell on the page: papermill's injected cell (the values this page was executed
    with), under a line that says so and offers the chapter's downloads (``<stem>.ipynb``, ``<stem>.py``
    beside the page); the source's cell of defaults is tagged ``remove-cell``."""
    import nbformat

    for index, cell in enumerate(notebook.cells):
        tags = cell.metadata.setdefault("tags", [])
        if "parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
        if "injected-parameters" in tags:
            notebook.cells.insert(index, nbformat.v4.new_markdown_cell(
                f"Download this chapter: {{download}}`the executed notebook <{stem}.ipynb>`, "
                f"{{download}}`its jupytext source <{stem}.py>`.\n\n"
                "**The parameters this page was executed with** (injected by `dk-book run`; "
                "{ref}`reproducing` shows how to run the chapter with others):",
                metadata={"tags": ["dk-parameters-note"]}))
            return


def execute_chapter(project: Project, chapter: Chapter, parameters: dict, *, force: bool = False,
                    kernel_name: str = KERNEL_NAME) -> ChapterResult:
    """Execute one chapter unless its cached notebook has the same key; write the result atomically."""
    import jupytext
    import nbformat
    import papermill

    key = cache_key(project, chapter, parameters)
    target = chapter.executed_path(project)
    existing = read_record(target)
    if not force and existing and existing["cache_key"] == key and existing["status"] == "ok":
        return ChapterResult(chapter, "cached", 0.0)

    revision = git_revision(project.root)
    notebook = jupytext.read(chapter.source)
    started = time.time()
    error = ""
    with tempfile.TemporaryDirectory(prefix=f"dk-{chapter.name}-") as scratch:
        source_ipynb = Path(scratch) / f"{chapter.source.stem}.ipynb"
        executed_ipynb = Path(scratch) / f"{chapter.source.stem}.executed.ipynb"
        nbformat.write(notebook, source_ipynb)
        env_before = os.environ.get("DK_GIT_REVISION")
        os.environ["DK_GIT_REVISION"] = revision
        try:
            papermill.execute_notebook(str(source_ipynb), str(executed_ipynb), parameters=parameters,
                                       kernel_name=kernel_name, cwd=scratch, progress_bar=False)
        except papermill.PapermillExecutionError as exc:
            error = f"{exc.ename}: {exc.evalue}"
        finally:
            if env_before is None:
                os.environ.pop("DK_GIT_REVISION", None)
            else:
                os.environ["DK_GIT_REVISION"] = env_before
        if not executed_ipynb.is_file():
            raise PipelineError(f"papermill wrote no output for {chapter.name}")
        executed = nbformat.read(executed_ipynb, as_version=4)
    seconds = time.time() - started
    status = "failed" if error else "ok"
    summary = _run_summary(executed)
    if status == "ok" and summary is None:
        status, error = "failed", "the chapter ended without calling run.finish(), so it recorded no results"
    show_executed_parameters(executed, chapter.source.stem)
    if status == "failed":
        executed.cells.insert(0, _failure_cell(parameters["profile"], revision, error))
    executed.metadata[METADATA_KEY] = {
        "cache_key": key, "chapter": chapter.name, "status": status, "error": error,
        "parameters": parameters, "wall_seconds": round(seconds, 1), "git_revision": revision,
        "executed_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "summary": summary,
    }
    atomic_write_text(target.with_suffix(".py"), chapter.source.read_text(encoding="utf-8"))  # the download
    atomic_write_text(target, nbformat.writes(executed))
    return ChapterResult(chapter, status, seconds, error)


def appendix_first(chapters: list[Chapter]) -> list[Chapter]:
    """``chapters`` with the appendix chapters first, otherwise in their order: the encoder appendix trains the
    encoders other chapters load from the cache (the aligned model's heads), so on a cold cache it pays that
    time once, in its own budget, instead of the first chapter that needs them."""
    return sorted(chapters, key=lambda chapter: chapter.part != "appendix")


def run_chapters(project: Project, chapters: list[Chapter], parameters: dict, *, force: bool = False,
                 kernel_name: str = KERNEL_NAME, log=print, executor: str = "sequential", jobs: int = 1,
                 resources: dict | None = None, cluster: str = "slurm",
                 write_pages: bool = True) -> list[ChapterResult]:
    """Execute ``chapters``; a failure is reported and the others still run.

    ``executor`` is ``sequential`` (here, one after another), ``local`` (up to ``jobs`` ``dk-book``
    processes at once, one GPU each when there are GPUs) or ``slurm`` (one submitit job per chapter, with
    :data:`executors.PAPER_RESOURCES` and the overrides in ``resources``; ``cluster="local"`` runs the jobs
    through submitit's local executor). All of them write the same cache entries.
    """
    _check_kernel(kernel_name)
    if executor not in executors.EXECUTORS:
        raise PipelineError(f"unknown executor {executor!r}; choose one of {', '.join(executors.EXECUTORS)}")
    chapters = appendix_first(chapters)
    if executor == "sequential":
        results = []
        for index, chapter in enumerate(chapters, 1):
            log(f"[{index}/{len(chapters)}] {chapter.name} ({parameters['profile']}, device "
                f"{parameters['device']}) ...", flush=True)
            result = execute_chapter(project, chapter, parameters, force=force, kernel_name=kernel_name)
            detail = {"ok": f"ok in {result.seconds:.1f} s", "cached": "cached (unchanged since its last run)",
                      "failed": f"FAILED after {result.seconds:.1f} s: {result.error}"}[result.status]
            log(f"[{index}/{len(chapters)}] {chapter.name}: {detail}", flush=True)
            results.append(result)
    else:
        results = _run_elsewhere(project, chapters, parameters, force=force, kernel_name=kernel_name, log=log,
                                 executor=executor, jobs=jobs, resources=resources or {}, cluster=cluster)
    if write_pages:
        write_generated_pages(project)
    return results


def _is_current(project: Project, chapter: Chapter, parameters: dict) -> bool:
    record = read_record(chapter.executed_path(project))
    return bool(record) and record["cache_key"] == cache_key(project, chapter, parameters) and record["status"] == "ok"


def _mtime(path: Path) -> int | None:
    return path.stat().st_mtime_ns if path.exists() else None


def _run_elsewhere(project: Project, chapters: list[Chapter], parameters: dict, *, force: bool, kernel_name: str,
                   log, executor: str, jobs: int, resources: dict, cluster: str) -> list[ChapterResult]:
    """The local and slurm executors: hand every chapter whose entry is not current to processes or jobs,
    then read back what each left in the cache (a job that wrote nothing valid counts as failed)."""
    todo = [c for c in chapters if force or not _is_current(project, c, parameters)]
    for chapter in chapters:
        if chapter not in todo:
            log(f"{chapter.name}: cached (unchanged since its last run)", flush=True)
    folder = project.book_root / JOBS_DIR
    before = {c.name: _mtime(c.executed_path(project)) for c in todo}
    started = time.time()
    outcome: dict[str, object] = {}
    if todo and executor == "local":
        def argv(chapter: Chapter) -> list[str]:
            command = [sys.executable, "-m", "domainknowledge.book", "--book-root", str(project.book_root), "run",
                       "--chapter", chapter.name, "--profile", parameters["profile"], "--seed",
                       str(parameters["seed"]), "--device", parameters["device"], "--kernel", kernel_name,
                       "--no-pages"]
            return command + (["--data-root", parameters["data_root"]] if parameters["data_root"] else []) + (
                ["--force"] if force else []) + (["--dry-run"] if parameters.get("dry_run") else [])

        outcome = executors.run_local([executors.Job(c.name, argv=argv(c)) for c in todo], parallel=jobs,
                                      cwd=project.root, log_dir=folder / "logs", log=log)
    elif todo:
        calls = [(executors.Job(c.name, call=functools.partial(execute_chapter, project, c, parameters, force=force,
                                                                kernel_name=kernel_name)),
                  executors.resources_for(c.name, **resources)) for c in todo]
        outcome = executors.run_submitit(calls, folder=folder / "submitit", cluster=cluster, log=log)
    results = []
    for chapter in chapters:
        if chapter not in todo:
            results.append(ChapterResult(chapter, "cached", 0.0))
            continue
        record = read_record(chapter.executed_path(project))
        if (record and record["cache_key"] == cache_key(project, chapter, parameters)
                and _mtime(chapter.executed_path(project)) != before[chapter.name]):
            status, error = record["status"], record.get("error", "")
            seconds = record.get("wall_seconds", time.time() - started)
        else:
            status, seconds = "failed", time.time() - started
            error = f"the {executor} job wrote no current result ({outcome.get(chapter.name)!r}); see {folder}"
        log(f"{chapter.name}: {'ok' if status == 'ok' else 'FAILED: ' + error}", flush=True)
        results.append(ChapterResult(chapter, status, seconds, error))
    return results


# -------------------------------------------------------------------------------------- generated pages
@dataclass
class ChapterState:
    """A chapter as the generated pages see it: its record (or none) and whether it is current."""

    chapter: Chapter
    record: dict | None
    current: bool

    @property
    def status(self) -> str:
        if self.record is None:
            return "not executed"
        if not self.current:
            return "stale"
        return self.record["status"]


def chapter_states(project: Project) -> list[ChapterState]:
    """Every chapter with its executed record and whether that record matches today's sources."""
    states = []
    for chapter in discover_chapters(project):
        record = read_record(chapter.executed_path(project))
        current = bool(record) and record["cache_key"] == cache_key(project, chapter, record["parameters"])
        states.append(ChapterState(chapter, record, current))
    return states


GENERATED_DIR = "generated"  # book/generated/: the figures of the generated pages (git-ignored)
STATUS_STYLES = {"ok": "ok", "failed": "failed", "stale": "stale", "not executed": "not-executed"}
CAUSE_COLOURS = {"stand-in": "#e0883b", "budget": "#d8b13a", "deviation": "#9b6cc3", "genuine": "#c0392b",
                 "not-at-this-profile": "#8ea3b0", "control-failed": "#5d6d7e"}


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _link(state: ChapterState) -> str:
    """The chapter's title, linked to its page when it has one."""
    title = state.chapter.title
    return f"{{doc}}`{title} <{'/' + state.chapter.docname}>`" if state.record else title


def _summary(state: ChapterState) -> dict:
    return ((state.record or {}).get("summary") or {})


def _save_figure(figure, path: Path) -> None:
    """Save a matplotlib figure as SVG without a timestamp, atomically."""
    import io

    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    atomic_write_text(path, buffer.getvalue())


def wall_time_figure(states: list[ChapterState], path: Path) -> None:
    """One horizontal bar per executed chapter: its wall time against its profile's budget (a line)."""
    from matplotlib.figure import Figure

    rows = [(s.chapter.title, s.record.get("wall_seconds") or 0.0,
             PROFILE_BUDGET_SECONDS.get(s.record.get("parameters", {}).get("profile")))
            for s in states if s.record]
    figure = Figure(figsize=(7.5, 0.32 * max(len(rows), 1) + 1.0))
    axes = figure.add_subplot()
    for index, (_, seconds, budget) in enumerate(rows):
        over = budget is not None and seconds > budget
        axes.barh(index, seconds, color="#c0392b" if over else "#4f86c6")
        if budget is not None:
            axes.plot([budget, budget], [index - 0.45, index + 0.45], color="black", linewidth=1.5)
    axes.set_yticks(range(len(rows)), [_short(title) for title, _, _ in rows], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("wall time of the last execution (s); black tick: the profile's budget")
    axes.grid(axis="x", alpha=0.3)
    _save_figure(figure, path)


def claims_figure(states: list[ChapterState], path: Path) -> None:
    """One stacked bar per chapter: thesis claims that hold, do not hold (coloured by cause), are not run."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    segments = [("holds", "", {"color": "#2e8b57"}, "holds")]
    segments += [("does-not-hold", cause, {"color": colour}, f"does not hold: {cause}")
                 for cause, colour in CAUSE_COLOURS.items()]
    segments.append(("not-run", "", {"facecolor": "white", "edgecolor": "#8ea3b0", "hatch": "///"}, "not run"))
    figure = Figure(figsize=(7.5, 0.32 * max(len(states), 1) + 1.6), layout="constrained")
    axes = figure.add_subplot()
    used = set()
    for index, state in enumerate(states):
        claims, left = _summary(state).get("claims", []), 0
        for verdict, cause, style, label in segments:
            count = sum(c["verdict"] == verdict and (not cause or c.get("cause") == cause) for c in claims)
            if count:
                axes.barh(index, count, left=left, **{"edgecolor": "white", **style})
                left, used = left + count, used | {label}
    axes.set_yticks(range(len(states)), [_short(s.chapter.title) for s in states], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("thesis claims")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(axis="x", alpha=0.3)
    handles = [Patch(label=label, **style) for _, _, style, label in segments if label in used]
    if handles:
        figure.legend(handles=handles, fontsize=7, loc="outside lower center", ncol=3, frameon=False)
    _save_figure(figure, path)


def _short(title: str, width: int = 48) -> str:
    return title if len(title) <= width else title[:width - 1].rstrip() + "…"


def status_page(states: list[ChapterState], book_root: Path | None = None) -> str:
    """Markdown of the status page: a wall-time figure and one row per chapter, from the executed records."""
    rows = []
    for state in states:
        record = state.record or {}
        run = _summary(state).get("run", {})
        profile = record.get("parameters", {}).get("profile", "–")
        budget = PROFILE_BUDGET_SECONDS.get(profile)
        profile += " (dry run)" if record.get("parameters", {}).get("dry_run") else ""
        wall = record.get("wall_seconds")
        over = " " + badge("over budget", "over-budget") if budget and wall and wall > budget else ""
        rows.append("| " + " | ".join(_cell(v) for v in [
            _link(state), profile, run.get("device_name", "–"),
            f"{wall:.0f} s{over}" if wall is not None else "–", f"{budget} s" if budget else "–",
            f"{run['peak_memory_mib']:.0f} MiB" if "peak_memory_mib" in run else "–",
            badge(state.status, STATUS_STYLES[state.status]),
            f"`{record.get('git_revision', '–')}`", f"`{record.get('cache_key', '–')[:12]}`"]) + " |")
    versions = next((_summary(s).get("run", {}).get("versions") for s in states if _summary(s).get("run")), None)
    environment = ("\n## Environment\n\nPackage versions in the kernel that executed the chapters: "
                   + ", ".join(f"{name} {version}" for name, version in versions.items()) + ".\n"
                   if versions else "")
    budgets = ", ".join(f"`{p}` {b} s" for p, b in PROFILE_BUDGET_SECONDS.items() if b)
    failures = [s for s in states if s.status == "failed"]
    failure_notes = "".join(f"\n- **{s.chapter.title}**: `{_cell(s.record['error'])}`" for s in failures)
    figure = (f"```{{figure}} {GENERATED_DIR}/wall-times.svg\n:name: fig-status-wall-times\n:width: 100%\n\n"
              "Wall time of each chapter's last execution against its profile's budget (black tick); red bars "
              "ran over budget.\n```\n\n" if any(s.record for s in states) else "")
    return (
        "(status)=\n# Build status\n\n"
        "This page is generated by `dk-book` from the records that papermill's executions left in each "
        "chapter's notebook. A chapter is re-executed only when its content key changes: the hash of its "
        "source, its parameters, the library's source tree and the pinned requirements.\n\n"
        f"Per-chapter budgets: {budgets} on 2 CPU cores, measured with the chapter running alone; peak "
        "memory is the kernel's peak resident set.\n\n" + figure +
        "| chapter | profile | device | wall time | budget | peak memory | status | revision | cache key |\n"
        "|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
        + (f"\n## Failures\n{failure_notes}\n" if failures else "") + environment + memory_section(book_root)
    )


def memory_section(book_root: Path | None) -> str:
    """The status page's table of peak-memory growth in paper dry runs (``dk-book memory``), if measured."""
    from domainknowledge.dry_runs import read_memory_slopes

    slopes = read_memory_slopes(book_root) if book_root is not None else []
    if not slopes:
        return ""
    rows = "\n".join(
        f"| {s['chapter']} | {s['images'][0]} / {s['images'][1]} | {s['peak_mib'][0]:.0f} / {s['peak_mib'][1]:.0f} MiB "
        f"| {s['slope_mib_per_image']:.3f} | {s['bound_mib_per_image']:.3f} | "
        f"{badge('within', 'ok') if s['slope_mib_per_image'] <= s['bound_mib_per_image'] else badge('over', 'over-budget')} |"
        for s in slopes)
    return ("\n## Memory of the paper code paths\n\n"
            "Each heavy chapter's paper dry run (`dk-book run --profile paper --dry-run`) on published-layout "
            "fixtures at two scales: the kernel's peak memory grows by the slope per image added. The bound is "
            "one decoded 224 x 224 RGB image (uint8): below it, a chapter keeps less than one decoded image per "
            "image of its data, so at the thesis' scale its memory is set by batches and models. Measured with "
            "`dk-book memory`.\n\n"
            "| chapter | images | peak memory | MiB per image | bound | |\n|---|---|---|---|---|---|\n" + rows + "\n")


def collect_claims(states: list[ChapterState]) -> list[dict]:
    """All thesis claims recorded by the chapters' last executions, in book order."""
    return [claim for state in states for claim in _summary(state).get("claims", [])]


def collect_checks(states: list[ChapterState]) -> list[dict]:
    """All checks (known answers, axioms, sanity checks, positive controls) of the last executions."""
    return [check for state in states for check in _summary(state).get("checks", [])]


def _why(claim: dict) -> str:
    cause = claim.get("cause") or ""
    return f"{badge(cause, 'cause')} {claim.get('diagnosis', '')}" if cause else ""


def report_page(states: list[ChapterState]) -> str:
    """Markdown of the reproduction report: a figure of verdicts per chapter, the misses counted by cause,
    then per chapter (in book order, under its title) its thesis claims and, apart, its checks."""
    claims, checks = collect_claims(states), collect_checks(states)
    counts = {v: sum(c["verdict"] == v for c in claims) for v in VERDICT_LABELS}
    lines = ["(reproduction-report)=", "# Reproduction report", "",
             "Every thesis claim that a chapter tests, as its last execution recorded it (generated by "
             "`dk-book`; `dk-book claims` and `dk-book checks` print the same records as JSON lines). A claim "
             "is one statement of a thesis with the thesis' own value; a claim that did not reproduce is "
             "listed as not holding, with its cause and the measurement that diagnoses it. Checks (known "
             "answers, axioms, sanity checks and positive controls that show a stand-in carries what the "
             "thesis' mechanism needs) are listed apart and never counted as claims.", "",
             f"**{len(claims)} thesis claims**: {counts['holds']} hold, {counts['does-not-hold']} do not hold, "
             f"{counts['not-run']} not run. **Checks**: {sum(bool(c['passed']) for c in checks)} of "
             f"{len(checks)} pass.", ""]
    if any(s.record for s in states):
        lines += [f"```{{figure}} {GENERATED_DIR}/claims-by-chapter.svg", ":name: fig-report-claims", ":width: 100%",
                  "", "Thesis claims per chapter: holding (green), not holding coloured by cause, not run "
                  "(hatched).", "```", ""]
    misses = [c for c in claims if c["verdict"] != "holds"]
    if misses:
        lines += ["| cause | does not hold | not run | meaning |", "|---|---|---|---|"]
        for cause, meaning in CAUSES.items():
            failing = sum(c["verdict"] == "does-not-hold" and c.get("cause") == cause for c in misses)
            unrun = sum(c["verdict"] == "not-run" and c.get("cause") == cause for c in misses)
            if failing or unrun:
                lines.append(f"| {badge(cause, 'cause')} | {failing} | {unrun} | {_cell(meaning)} |")
        lines.append("")
    lines += ["| chapter | claims | hold | do not hold | not run | checks passing |", "|---|---|---|---|---|---|"]
    for state in states:
        chapter_claims, chapter_checks = _summary(state).get("claims", []), _summary(state).get("checks", [])
        lines.append("| " + " | ".join(_cell(v) for v in [
            _link(state), len(chapter_claims), *(sum(c["verdict"] == v for c in chapter_claims) for v in VERDICT_LABELS),
            f"{sum(bool(c['passed']) for c in chapter_checks)} of {len(chapter_checks)}"]) + " |")
    lines.append("")
    for state in states:
        lines += [f"## {_link(state)}", ""]
        if state.record is None:
            lines += ["Not executed yet.", ""]
            continue
        run = _summary(state).get("run", {})
        lines += [f"Executed at the `{state.record['parameters']['profile']}` profile on "
                  f"{run.get('device_name', 'an unknown device')}.", ""]
        if state.status != "ok":
            lines += [f"The last execution is {badge(state.status, STATUS_STYLES[state.status])}; its claims "
                      "are not current.", ""]
        chapter_claims = _summary(state).get("claims", [])
        if chapter_claims:
            lines += ["| thesis claim | source | thesis | reproduced | verdict | why not |", "|---|---|---|---|---|---|"]
            lines += ["| " + " | ".join(_cell(v) for v in [
                c["statement"], c["source"], c["thesis_value"], c["measured"],
                badge(VERDICT_LABELS[c["verdict"]], c["verdict"]), _why(c)]) + " |" for c in chapter_claims]
            lines.append("")
        else:
            lines += ["No thesis claims recorded.", ""]
        chapter_checks = _summary(state).get("checks", [])
        if chapter_checks:
            lines += ["Checks (not counted as claims):", "",
                      "| check | kind | expected | measured | result |", "|---|---|---|---|---|"]
            lines += ["| " + " | ".join(_cell(v) for v in [
                c["statement"], c["kind"], c["expected"], c["measured"],
                badge("passes", "holds") if c["passed"] else badge("fails", "does-not-hold")]) + " |"
                for c in chapter_checks]
            lines.append("")
    return "\n".join(lines)


def write_generated_pages(project: Project) -> list[ChapterState]:
    """(Re)write ``book/status.md``, ``book/reproduction.md`` and their figures from the executed chapters."""
    states = chapter_states(project)
    generated = project.book_root / "book" / GENERATED_DIR
    if any(s.record for s in states):
        claims_figure(states, generated / "claims-by-chapter.svg")
        wall_time_figure(states, generated / "wall-times.svg")
    atomic_write_text(project.book_root / "book" / "status.md", status_page(states, project.book_root))
    atomic_write_text(project.book_root / "book" / "reproduction.md", report_page(states))
    return states


# ------------------------------------------------------------------------------------------------ build
def ship_mathjax(book_root: Path) -> Path:
    """Copy MathJax's files (the pinned ``django-static-mathjax`` package) to ``book/generated/static/mathjax``,
    which ``_config.yml`` serves as ``_static/mathjax``, so that equations render without a network."""
    import shutil
    from importlib import metadata, resources

    source = resources.files("mathjax") / "static" / "mathjax" / "es5"
    target = book_root / "book" / GENERATED_DIR / "static" / "mathjax"
    version = metadata.version("django-static-mathjax")
    stamp = target / ".version"
    if stamp.is_file() and stamp.read_text() == version:
        return target
    staging = target.with_name(".mathjax.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(Path(str(source)), staging)
    (staging / ".version").write_text(version)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return target


def build_book(project: Project, *, extra_args: tuple[str, ...] = (), log=print) -> int:
    """Write the generated pages, check every chapter is current, then run ``jupyter-book build``."""
    states = write_generated_pages(project)
    ship_mathjax(project.book_root)
    problems = [f"{s.chapter.name}: {s.status}" for s in states if s.status in ("not executed", "stale")]
    if problems:
        raise PipelineError("cannot build over chapters without a current execution ("
                            + "; ".join(problems) + "); run `dk-book run` first")
    command = ["jupyter-book", "build", str(project.book_root), "--warningiserror", "--keep-going",
               *extra_args]
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    if jupyter_book.is_file():
        command[0] = str(jupyter_book)
    log("$ " + " ".join(command), flush=True)
    return subprocess.run(command, check=False).returncode


# -------------------------------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dk-book", description=__doc__.split("\n\n")[0])
    parser.add_argument("--book-root", type=Path, default=None,
                        help="assemble the book here instead of the repository root")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="execute chapters with papermill (cached by content)")
    run.add_argument("--profile", default="cpu", choices=list(PROFILES))
    run.add_argument("--chapter", action="append", dest="chapters", metavar="NAME",
                     help="a chapter to run (repeatable); default: all")
    run.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    run.add_argument("--data-root", default=None, help="folder with the real data sets (paper profile)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--dry-run", action="store_true",
                     help="paper profile only: the paper code path with its loop counts capped (DRY_RUN_CAPS), "
                          "for tiny data such as the published-layout fixtures")
    run.add_argument("--force", action="store_true", help="execute even when the cache is current")
    run.add_argument("--kernel", default=KERNEL_NAME, help="Jupyter kernel that executes the chapters")
    run.add_argument("--executor", default="sequential", choices=list(executors.EXECUTORS),
                     help="sequential (default), local (--jobs processes, one GPU each) or slurm (submitit)")
    run.add_argument("--jobs", type=int, default=1, help="chapters at once with --executor local")
    cluster = run.add_argument_group("slurm resources (override the chapter's paper estimates)")
    cluster.add_argument("--partition", default=None)
    cluster.add_argument("--time-hours", type=float, default=None, dest="hours")
    cluster.add_argument("--gpus", type=int, default=None)
    cluster.add_argument("--cpus", type=int, default=None)
    cluster.add_argument("--mem-gb", type=int, default=None)
    run.add_argument("--no-pages", action="store_true", help=argparse.SUPPRESS)  # the local executor's children

    memory = commands.add_parser("memory", help="peak-memory growth of the heavy chapters' paper dry runs on "
                                 "fixtures at two scales; writes book/paper-memory.json for the status page")
    memory.add_argument("--chapter", action="append", dest="chapters", metavar="NAME")
    memory.add_argument("--device", default="cpu")
    commands.add_parser("build", help="jupyter-book build with execution off and warnings as errors")
    commands.add_parser("claims", help="print every recorded thesis claim as a JSON line")
    commands.add_parser("checks", help="print every recorded check (not a thesis claim) as a JSON line")
    commands.add_parser("status", help="print each chapter's status")
    commands.add_parser("list", help="list the chapters")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        project = Project.find(book_root=args.book_root)
        if args.command == "run":
            parameters = chapter_parameters(args.profile, args.seed, args.device, args.data_root, args.dry_run)
            chapters = select_chapters(discover_chapters(project), args.chapters)
            resources = {"partition": args.partition, "hours": args.hours, "gpus": args.gpus, "cpus": args.cpus,
                         "mem_gb": args.mem_gb}
            results = run_chapters(project, chapters, parameters, force=args.force, kernel_name=args.kernel,
                                   executor=args.executor, jobs=args.jobs, resources=resources,
                                   write_pages=not args.no_pages)
            failed = [r.chapter.name for r in results if r.status == "failed"]
            if failed:
                print(f"dk-book: {len(failed)} chapter(s) failed: {', '.join(failed)}", file=sys.stderr)
                return 1
            return 0
        if args.command == "build":
            return build_book(project)
        if args.command == "memory":
            from domainknowledge.dry_runs import measure_memory_slopes

            slopes = measure_memory_slopes(project, args.chapters, device=args.device)
            return 0 if all(s.within_bound for s in slopes) else 1
        states = chapter_states(project)
        if args.command == "claims":
            keys = ("chapter", "id", "statement", "source", "thesis_value", "measured", "profile", "verdict",
                    "cause", "diagnosis", "note")
            for claim in collect_claims(states):
                print(json.dumps({k: claim.get(k, "") for k in keys}, ensure_ascii=False))
        elif args.command == "checks":
            keys = ("chapter", "id", "kind", "statement", "expected", "measured", "profile", "passed", "note")
            for check in collect_checks(states):
                print(json.dumps({k: check.get(k, "") for k in keys}, ensure_ascii=False))
        elif args.command == "status":
            for state in states:
                print(f"{state.chapter.name:24s} {state.status}")
        elif args.command == "list":
            for chapter in discover_chapters(project):
                print(f"{chapter.name:24s} {chapter.source.relative_to(project.root)}")
        return 0
    except (PipelineError, executors.ExecutorError) as exc:
        print(f"dk-book: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["Chapter", "ChapterResult", "PipelineError", "Project", "build_book", "cache_key", "chapter_states",
           "discover_chapters", "execute_chapter", "main", "read_record", "run_chapters", "select_chapters",
           "write_generated_pages"]
