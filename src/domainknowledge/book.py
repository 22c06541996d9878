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
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from domainknowledge.experiment import METADATA_KEY, PROFILES, git_revision

KERNEL_NAME = "domainknowledge"
CHAPTER_GLOB = "*/[0-9][0-9]_*.py"
CACHE_FORMAT = 1  # bump to invalidate every cached chapter when the record's layout changes
PROFILE_BUDGET_SECONDS = {"smoke": 60, "cpu": 360, "paper": None}
PACKAGE_DIR = Path(__file__).resolve().parent


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


@dataclass
class ChapterResult:
    """What one ``run`` did to one chapter; ``status`` is ``ok``, ``cached`` or ``failed``."""

    chapter: Chapter
    status: str
    seconds: float
    error: str = ""


# --------------------------------------------------------------------------------------------- chapters
def discover_chapters(project: Project) -> list[Chapter]:
    """All chapters under ``notebooks/``, in part and number order."""
    chapters = []
    for source in sorted((project.root / "notebooks").glob(CHAPTER_GLOB)):
        name = source.stem.split("_", 1)[1]
        chapters.append(Chapter(name=name, part=source.parent.name, source=source))
    names = [c.name for c in chapters]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise PipelineError(f"two chapters share the name(s) {duplicates}; chapter topics must be unique")
    return chapters


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
def chapter_parameters(profile: str, seed: int, device: str, data_root: str | None) -> dict:
    """The papermill parameters every chapter takes (its ``parameters`` cell)."""
    if profile not in PROFILES:
        raise PipelineError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    return {"profile": profile, "seed": seed, "device": device,
            "data_root": str(Path(data_root).expanduser().resolve()) if data_root else None}


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
    if status == "failed":
        executed.cells.insert(0, _failure_cell(parameters["profile"], revision, error))
    executed.metadata[METADATA_KEY] = {
        "cache_key": key, "chapter": chapter.name, "status": status, "error": error,
        "parameters": parameters, "wall_seconds": round(seconds, 1), "git_revision": revision,
        "executed_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "summary": summary,
    }
    atomic_write_text(target, nbformat.writes(executed))
    return ChapterResult(chapter, status, seconds, error)


def run_chapters(project: Project, chapters: list[Chapter], parameters: dict, *, force: bool = False,
                 kernel_name: str = KERNEL_NAME, log=print) -> list[ChapterResult]:
    """Execute ``chapters`` one after another; a failure is reported and the others still run."""
    _check_kernel(kernel_name)
    results = []
    for index, chapter in enumerate(chapters, 1):
        log(f"[{index}/{len(chapters)}] {chapter.name} ({parameters['profile']}, device {parameters['device']}) ...",
            flush=True)
        result = execute_chapter(project, chapter, parameters, force=force, kernel_name=kernel_name)
        detail = {"ok": f"ok in {result.seconds:.1f} s", "cached": "cached (unchanged since its last run)",
                  "failed": f"FAILED after {result.seconds:.1f} s: {result.error}"}[result.status]
        log(f"[{index}/{len(chapters)}] {chapter.name}: {detail}", flush=True)
        results.append(result)
    write_generated_pages(project)
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


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def status_page(states: list[ChapterState]) -> str:
    """Markdown of the status page: one row per chapter, from the executed notebooks' records."""
    rows = []
    for state in states:
        record = state.record or {}
        run = (record.get("summary") or {}).get("run", {})
        profile = record.get("parameters", {}).get("profile", "–")
        budget = PROFILE_BUDGET_SECONDS.get(profile)
        wall = record.get("wall_seconds")
        over = " (over budget)" if budget and wall and wall > budget else ""
        status = {"ok": "✅ ok", "failed": "❌ failed", "stale": "⚠️ stale",
                  "not executed": "– not executed"}[state.status]
        rows.append("| " + " | ".join(_cell(v) for v in [
            f"{{doc}}`{state.chapter.name} <{'/' + state.chapter.docname}>`" if state.record else state.chapter.name,
            profile, run.get("device_name", "–"), f"{wall:.0f} s{over}" if wall is not None else "–",
            f"{run['peak_memory_mib']:.0f} MiB" if "peak_memory_mib" in run else "–", status,
            f"`{record.get('git_revision', '–')}`", f"`{record.get('cache_key', '–')[:12]}`"]) + " |")
    versions = next((((s.record or {}).get("summary") or {}).get("run", {}).get("versions")
                     for s in states if ((s.record or {}).get("summary") or {}).get("run")), None)
    environment = ("\n## Environment\n\nPackage versions in the kernel that executed the chapters: "
                   + ", ".join(f"{name} {version}" for name, version in versions.items()) + ".\n"
                   if versions else "")
    budgets = ", ".join(f"`{p}` {b} s" for p, b in PROFILE_BUDGET_SECONDS.items() if b)
    failures = [s for s in states if s.status == "failed"]
    failure_notes = "".join(f"\n- **{s.chapter.name}**: `{_cell(s.record['error'])}`" for s in failures)
    return (
        "(status)=\n# Build status\n\n"
        "This page is generated by `dk-book` from the records that papermill's executions left in each "
        "chapter's notebook. A chapter is re-executed only when its content key changes: the hash of its "
        "source, its parameters, the library's source tree and the pinned requirements.\n\n"
        f"Per-chapter budgets: {budgets} on 2 CPU cores; peak memory is the kernel's peak resident set.\n\n"
        "| chapter | profile | device | wall time | peak memory | status | revision | cache key |\n"
        "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
        + (f"\n## Failures\n{failure_notes}\n" if failures else "") + environment
    )


_VERDICTS = {"holds": "✅ holds", "does-not-hold": "❌ does not hold", "not-run": "⏸ not run"}


def collect_claims(states: list[ChapterState]) -> list[dict]:
    """All claims recorded by the chapters' last executions."""
    claims = []
    for state in states:
        summary = (state.record or {}).get("summary") or {}
        claims.extend(summary.get("claims", []))
    return claims


def report_page(states: list[ChapterState]) -> str:
    """Markdown of the reproduction report: every claim of every chapter with thesis and measured value."""
    claims = collect_claims(states)
    counts = {v: sum(c["verdict"] == v for c in claims) for v in _VERDICTS}
    lines = ["(reproduction-report)=", "# Reproduction report", "",
             "Every thesis claim that a chapter tests, as its last execution recorded it (generated by "
             "`dk-book`; `dk-book claims` prints the same records as JSON lines). A claim that did not "
             "reproduce is listed as not holding: that is a result too.", "",
             f"**{len(claims)} claims**: {counts['holds']} hold, {counts['does-not-hold']} do not hold, "
             f"{counts['not-run']} not run.", ""]
    for state in states:
        if state.record is None:
            lines += [f"## {state.chapter.name}", "", "Not executed yet.", ""]
            continue
        lines += [f"## {{doc}}`{state.chapter.name} <{'/' + state.chapter.docname}>`", ""]
        if state.status != "ok":
            lines += [f"The last execution is **{state.status}**; its claims are not current.", ""]
        chapter_claims = ((state.record.get("summary") or {}).get("claims")) or []
        if not chapter_claims:
            lines += ["No claims recorded.", ""]
            continue
        lines += ["| claim | source | thesis | reproduced | profile | verdict |", "|---|---|---|---|---|---|"]
        lines += ["| " + " | ".join(_cell(v) for v in [c["statement"], c["source"], c["thesis_value"],
                                                         c["measured"], c["profile"], _VERDICTS[c["verdict"]]])
                  + " |" for c in chapter_claims]
        lines.append("")
    return "\n".join(lines)


def write_generated_pages(project: Project) -> list[ChapterState]:
    """(Re)write ``book/status.md`` and ``book/reproduction.md`` from the executed chapters."""
    states = chapter_states(project)
    atomic_write_text(project.book_root / "book" / "status.md", status_page(states))
    atomic_write_text(project.book_root / "book" / "reproduction.md", report_page(states))
    return states


# ------------------------------------------------------------------------------------------------ build
def build_book(project: Project, *, extra_args: tuple[str, ...] = (), log=print) -> int:
    """Write the generated pages, check every chapter is current, then run ``jupyter-book build``."""
    states = write_generated_pages(project)
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
    run.add_argument("--force", action="store_true", help="execute even when the cache is current")
    run.add_argument("--kernel", default=KERNEL_NAME, help="Jupyter kernel that executes the chapters")

    commands.add_parser("build", help="jupyter-book build with execution off and warnings as errors")
    commands.add_parser("claims", help="print every recorded claim as a JSON line")
    commands.add_parser("status", help="print each chapter's status")
    commands.add_parser("list", help="list the chapters")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        project = Project.find(book_root=args.book_root)
        if args.command == "run":
            parameters = chapter_parameters(args.profile, args.seed, args.device, args.data_root)
            chapters = select_chapters(discover_chapters(project), args.chapters)
            results = run_chapters(project, chapters, parameters, force=args.force, kernel_name=args.kernel)
            failed = [r.chapter.name for r in results if r.status == "failed"]
            if failed:
                print(f"dk-book: {len(failed)} chapter(s) failed: {', '.join(failed)}", file=sys.stderr)
                return 1
            return 0
        if args.command == "build":
            return build_book(project)
        states = chapter_states(project)
        if args.command == "claims":
            for claim in collect_claims(states):
                keys = ("chapter", "id", "statement", "source", "thesis_value", "measured", "profile", "verdict")
                print(json.dumps({k: claim.get(k) for k in keys}, ensure_ascii=False))
        elif args.command == "status":
            for state in states:
                print(f"{state.chapter.name:24s} {state.status}")
        elif args.command == "list":
            for chapter in discover_chapters(project):
                print(f"{chapter.name:24s} {chapter.source.relative_to(project.root)}")
        return 0
    except PipelineError as exc:
        print(f"dk-book: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["Chapter", "ChapterResult", "PipelineError", "Project", "build_book", "cache_key", "chapter_states",
           "discover_chapters", "execute_chapter", "main", "read_record", "run_chapters", "select_chapters",
           "write_generated_pages"]
