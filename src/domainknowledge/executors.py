"""Where chapters execute: one after another, several at once on this machine, or as cluster jobs.

:mod:`domainknowledge.book` decides *what* runs (the chapters whose cache key changed) and owns the cache;
this module only decides *where*. Every executor ends in the same place: ``book.execute_chapter`` writing
the executed notebook under a temporary name and renaming it, so a parallel or cluster run leaves exactly
the cache entries a sequential run would, and a killed job leaves none that looks valid.

- ``local``: up to ``jobs`` chapters at once, each in its own ``dk-book`` process; when GPUs are visible,
  each process gets one of them alone through ``CUDA_VISIBLE_DEVICES``.
- ``slurm``: one job per chapter through submitit, with the chapter's resources from
  :data:`PAPER_RESOURCES` (overridable). Tests use submitit's local executor, which runs the same jobs as
  local processes.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

EXECUTORS = ("sequential", "local", "slurm")


class ExecutorError(RuntimeError):
    """A set-up problem of an executor (a bad ``--jobs``, submitit missing)."""


@dataclass(frozen=True)
class Resources:
    """What one chapter's job asks a cluster for at the ``paper`` profile."""

    hours: float = 24.0
    gpus: int = 1
    cpus: int = 8
    mem_gb: int = 64
    partition: str | None = None


#: Per-chapter requests at ``paper`` (the thesis' scale); chapters not listed get ``Resources()``. The
#: estimates follow each chapter's paper configuration: data set sizes, epochs and the number of runs.
PAPER_RESOURCES: dict[str, Resources] = {
    "map_lur": Resources(hours=12, mem_gb=32),
    "cars_attention": Resources(hours=48),
    "venue_recommender": Resources(hours=24, cpus=16, mem_gb=96),
    "dml_attribution": Resources(hours=48),
    "bgaugment": Resources(hours=72),
    "latent_adversarial_debiasing": Resources(hours=24, mem_gb=32),
    "twitch_sentiment": Resources(hours=6, gpus=0, mem_gb=16),
    "simloss": Resources(hours=48, mem_gb=32),
    "multitask_aesthetics": Resources(hours=72, mem_gb=96),
    "decision_tree_hashing": Resources(hours=48, mem_gb=32),
    "hierarchical_grouping": Resources(hours=72, mem_gb=32),
    "clip_aesthetics": Resources(hours=24, mem_gb=96),
    "indirect": Resources(hours=24),
    "human_similarity": Resources(hours=24),
    "multilabel_neighbours": Resources(hours=12),
    "encoders": Resources(hours=6),
}


def resources_for(chapter: str, **overrides) -> Resources:
    """The chapter's :class:`Resources` with every override that is not ``None`` applied."""
    return replace(PAPER_RESOURCES.get(chapter, Resources()),
                   **{key: value for key, value in overrides.items() if value is not None})


def visible_gpus() -> list[str]:
    """The GPUs a child process may be pinned to: ``CUDA_VISIBLE_DEVICES`` when set, else torch's count."""
    declared = os.environ.get("CUDA_VISIBLE_DEVICES")
    if declared is not None:
        return [gpu for gpu in declared.split(",") if gpu.strip() and gpu.strip() != "-1"]
    import torch

    return [str(index) for index in range(torch.cuda.device_count())]


def thread_environment(parallel: int, cores: int | None = None) -> dict[str, str]:
    """Thread counts for one of ``parallel`` CPU-bound processes sharing ``cores`` (default: this machine's):
    ``cores // parallel``, at least 1, for OpenMP, MKL and OpenBLAS (variables already set take precedence)."""
    share = str(max(1, (cores or os.cpu_count() or 1) // parallel))
    return {name: share for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


@dataclass(frozen=True)
class Job:
    """One chapter's execution as a command line (local executor) or a picklable call (slurm)."""

    name: str
    argv: Sequence[str] = ()
    call: Callable[[], object] | None = None


def run_local(jobs: list[Job], *, parallel: int, cwd: Path, log_dir: Path, log=print) -> dict[str, int]:
    """Run each job's ``argv`` as a process, at most ``parallel`` at once; returns each job's exit code.

    Each process writes its output to ``log_dir/<name>.log``. When GPUs are visible, a process holds one
    GPU alone (``CUDA_VISIBLE_DEVICES``) and ``parallel`` is capped at the number of GPUs. Without GPUs the
    CPU cores are shared out (:func:`thread_environment`), so that ``parallel`` processes do not each start
    a thread per core: oversubscribed OpenMP threads spin against each other and run many times slower.
    """
    if parallel < 1:
        raise ExecutorError(f"--jobs must be at least 1, got {parallel}")
    gpus = visible_gpus()
    if gpus:
        parallel = min(parallel, len(gpus))
    log_dir.mkdir(parents=True, exist_ok=True)
    waiting, running, codes = list(jobs), {}, {}
    free_gpus = list(gpus)
    while waiting or running:
        while waiting and len(running) < parallel:
            job = waiting.pop(0)
            env = dict(os.environ) if gpus else {**thread_environment(parallel), **os.environ}
            gpu = free_gpus.pop(0) if gpus else None
            if gpu is not None:
                env["CUDA_VISIBLE_DEVICES"] = gpu
            stream = open(log_dir / f"{job.name}.log", "w", encoding="utf-8")  # noqa: SIM115 (closed below)
            process = subprocess.Popen(list(job.argv), cwd=cwd, env=env, stdout=stream, stderr=subprocess.STDOUT)
            running[job.name] = (process, stream, gpu, time.time())
            log(f"started {job.name}" + (f" on GPU {gpu}" if gpu is not None else "")
                + f" (log: {log_dir / f'{job.name}.log'})", flush=True)
        time.sleep(0.2)
        for name, (process, stream, gpu, started) in list(running.items()):
            if process.poll() is None:
                continue
            stream.close()
            codes[name] = process.returncode
            if gpu is not None:
                free_gpus.append(gpu)
            del running[name]
            log(f"finished {name} after {time.time() - started:.0f} s (exit code {process.returncode})", flush=True)
    return codes


def slurm_executor(folder: Path, resources: Resources, *, cluster: str = "slurm"):
    """A submitit executor for one chapter's job; ``cluster="local"`` runs it as a local process (tests)."""
    try:
        import submitit
    except ImportError:
        raise ExecutorError("the slurm executor needs submitit: run `make setup` (it is pinned in "
                           "requirements.txt) or `pip install submitit==1.5.4`") from None
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    executor.update_parameters(timeout_min=int(resources.hours * 60), cpus_per_task=resources.cpus,
                               mem_gb=resources.mem_gb, gpus_per_node=resources.gpus, nodes=1, tasks_per_node=1)
    if cluster == "slurm" and resources.partition:
        executor.update_parameters(slurm_partition=resources.partition)
    return executor


def run_submitit(jobs: list[tuple[Job, Resources]], *, folder: Path, cluster: str = "slurm",
                 log=print) -> dict[str, object]:
    """Submit each job's ``call`` as its own job and wait for all; returns each result or the exception."""
    submitted = []
    for job, resources in jobs:
        executor = slurm_executor(folder, resources, cluster=cluster)
        executor.update_parameters(name=f"dk-{job.name}")
        handle = executor.submit(job.call)
        log(f"submitted {job.name} as job {handle.job_id} ({resources.hours:g} h, {resources.gpus} GPU, "
            f"{resources.mem_gb} GB)", flush=True)
        submitted.append((job.name, handle))
    results = {}
    for name, handle in submitted:
        try:
            results[name] = handle.result()
        except Exception as exc:  # a failed or killed job: reported, the others still count
            results[name] = exc
        log(f"job of {name} ended", flush=True)
    return results
