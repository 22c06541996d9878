"""Profiles, seeding, devices, and the recorder of results and claims.

Every chapter starts a :class:`Run` right after its parameters cell::

    run = dk.experiment.start("simloss", profile=profile, seed=seed, device=device, data_root=data_root)
    config = dk.experiment.select(CONFIGS, run.profile)
    ...
    run.claim("simloss-identity", statement="S = I gives cross-entropy", source="Eq. 14.2",
              thesis_value="exactly equal", measured=f"max |diff| = {gap:.1e}", holds=gap < 1e-6)
    run.finish()

``finish`` shows the claims as a table on the page and attaches them, with the run's provenance, to that
output's metadata under the key ``"domainknowledge"``. The pipeline (:mod:`domainknowledge.book`) reads
them back from the executed notebook, so an executed ``.ipynb`` describes itself.
"""

from __future__ import annotations

import dataclasses
import html
import os
import platform
import random
import resource
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

METADATA_KEY = "domainknowledge"
VERDICTS = ("holds", "does-not-hold", "not-run")
T = TypeVar("T")


@dataclass(frozen=True)
class Profile:
    """A scale at which every chapter runs through the same code path."""

    name: str
    where: str
    data: str
    budget: str
    allow_download: bool


PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", "tests and CI", "tiny slices of the same sources",
                     "under 60 s per chapter on 2 CPU cores", allow_download=False),
    "cpu": Profile("cpu", "the default book build", "bundled real data and seeded synthetic stand-ins",
                   "under 6 min per chapter on 2 CPU cores", allow_download=False),
    "paper": Profile("paper", "a GPU machine with the real data sets and weights", "the thesis' data sets",
                     "as in the thesis", allow_download=True),
}


def check_profile(profile: str) -> Profile:
    """Return the :class:`Profile` named ``profile``, or raise a ``ValueError`` that lists the valid names."""
    try:
        return PROFILES[profile]
    except KeyError:
        raise ValueError(
            f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)} "
            "(e.g. `dk-book run --profile cpu`)") from None


def select(configs: Mapping[str, T], profile: str) -> T:
    """Pick the configuration of ``profile`` from a mapping ``{profile name: config}``."""
    check_profile(profile)
    if profile not in configs:
        raise ValueError(f"no configuration for profile {profile!r}; this chapter defines {sorted(configs)}")
    return configs[profile]


def _config_rows(config: Any, prefix: str = "") -> dict[str, str]:
    """Every field of a (possibly nested) dataclass config as text; nested dataclasses become
    ``outer.inner`` rows and tuples of more than six values are shortened to their ends and length."""
    rows = {}
    for item in dataclasses.fields(config):
        value, name = getattr(config, item.name), f"{prefix}{item.name}"
        if dataclasses.is_dataclass(value):
            rows.update(_config_rows(value, f"{name}."))
        elif isinstance(value, tuple) and len(value) > 6:
            rows[name] = f"{value[0]}, {value[1]}, ..., {value[-1]} ({len(value)} values)"
        else:
            rows[name] = str(value)
    return rows


def describe_profiles(configs: Mapping[str, Any]):
    """A ``pandas.DataFrame`` of every field (rows) of each profile's dataclass config (columns), so that a
    chapter shows what each scale changes."""
    import pandas as pd

    table = pd.DataFrame({name: _config_rows(config) for name, config in configs.items()})
    table.index.name = "field"
    return table


def profile_table(configs: Mapping[str, Any], active: str):
    """:func:`describe_profiles` with the ``active`` profile's column highlighted (a pandas ``Styler``)."""
    check_profile(active)
    return describe_profiles(configs).style.set_properties(
        subset=[active], **{"background-color": "#e8f1fa", "font-weight": "bold"})


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch; make torch's CPU kernels deterministic.

    Returns a NumPy generator seeded with ``seed`` for code that prefers an explicit generator. On CPU two
    runs with the same seed give identical numbers; on a GPU, some kernels (atomics in scatter and
    convolution backward) stay non-deterministic, so numbers agree only to a tolerance.
    """
    import torch

    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return np.random.default_rng(seed)


def resolve_device(device: str = "auto"):
    """Turn ``"auto" | "cpu" | "cuda" | "cuda:N"`` into a ``torch.device``.

    ``auto`` picks CUDA when a GPU is visible. Asking for CUDA where there is none is an error, not a
    silent fall-back, so a number never claims a device it did not run on.
    """
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} was asked for, but torch sees no CUDA GPU here; "
                               "use --device cpu (or auto)")
        return torch.device(device)
    raise ValueError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")


def device_name(device) -> str:
    """A human-readable name of a ``torch.device``: the GPU model, or the CPU's architecture and core count."""
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def git_revision(path: Path | None = None) -> str:
    """The git revision of the project (``DK_GIT_REVISION`` when the pipeline set it), ``+dirty`` if changed."""
    if os.environ.get("DK_GIT_REVISION"):
        return os.environ["DK_GIT_REVISION"]
    cwd = path or Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def package_versions(names=("torch", "torchvision", "numpy", "scikit-learn", "open-clip-torch", "captum")) -> dict:
    """Installed versions of the packages whose numbers a result depends on."""
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def peak_memory_mib() -> float:
    """Peak resident memory of this process in MiB (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


@dataclass
class Claim:
    """One thesis claim, tested by a chapter.

    ``thesis_value`` and ``measured`` are short strings as they should read in the report (numbers with
    their units). ``verdict`` is one of ``holds``, ``does-not-hold`` or ``not-run``.
    """

    chapter: str
    id: str
    statement: str
    source: str
    thesis_value: str
    measured: str
    profile: str
    device: str
    verdict: str
    note: str = ""


@dataclass
class Run:
    """The record of one execution of one chapter: provenance, metrics and claims."""

    chapter: str
    profile: str
    seed: int
    device: Any
    data_root: Path | None
    started: float = field(default_factory=time.time)
    metrics: dict[str, Any] = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)

    @property
    def device_name(self) -> str:
        return device_name(self.device)

    def provenance(self) -> dict[str, Any]:
        import torch

        info = {
            "chapter": self.chapter,
            "profile": self.profile,
            "seed": self.seed,
            "device": str(self.device),
            "device_name": self.device_name,
            "git_revision": git_revision(),
            "versions": package_versions(),
            "wall_seconds": round(time.time() - self.started, 2),
            "peak_memory_mib": round(peak_memory_mib(), 1),
        }
        if self.device.type == "cuda":
            info["peak_gpu_memory_mib"] = round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
        return info

    def record(self, name: str, value: Any) -> Any:
        """Keep a named result (a number, or a small JSON-able table) for the status page; returns ``value``."""
        self.metrics[name] = value
        return value

    def glue(self, name: str, value: Any, display: bool = False) -> Any:
        """Glue ``value`` under ``name`` for ``{glue:text}`` in the prose, and record it; returns ``value``."""
        from myst_nb import glue

        glue(name, value, display=display)
        return self.record(name, value)

    def claim(self, claim_id: str, *, statement: str, source: str, thesis_value: str, measured: str,
              holds: bool | None, note: str = "") -> Claim:
        """Record one thesis claim; ``holds=None`` means the chapter could not test it at this profile."""
        if any(c.id == claim_id for c in self.claims):
            raise ValueError(f"claim {claim_id!r} was recorded twice in chapter {self.chapter!r}")
        verdict = "not-run" if holds is None else ("holds" if holds else "does-not-hold")
        claim = Claim(self.chapter, claim_id, statement, source, thesis_value, measured, self.profile,
                      str(self.device), verdict, note)
        self.claims.append(claim)
        return claim

    def summary(self) -> dict[str, Any]:
        """Everything the pipeline reads back: provenance, metrics and claims, JSON-able."""
        return {"run": self.provenance(), "metrics": _jsonable(self.metrics),
                "claims": [dataclasses.asdict(c) for c in self.claims]}

    def banner(self):
        """A note for the top of the page: which profile, device, seed and revision produced the numbers."""
        from IPython.display import Markdown

        return Markdown(
            f":::{{note}}\nThe numbers on this page were produced at the **{self.profile}** profile on "
            f"**{self.device_name}** (`{self.device}`), seed {self.seed}, revision `{git_revision()}`.\n:::")

    def finish(self):
        """Show the claims table and attach the run's summary to it for the pipeline; call once, last."""
        from IPython.display import HTML, display

        summary = self.summary()
        display(HTML(claims_table_html(self.claims)), metadata={METADATA_KEY: summary})
        return summary


def start(chapter: str, *, profile: str, seed: int, device: str = "auto", data_root: str | None = None) -> Run:
    """Validate a chapter's parameters, seed everything and start its :class:`Run`."""
    check_profile(profile)
    seed_everything(seed)
    root = Path(data_root).expanduser().resolve() if data_root else None
    if root is not None and not root.is_dir():
        raise FileNotFoundError(f"data_root {str(root)!r} is not a directory; pass --data-root DIR with the "
                                "real data sets (see the book's 'Data and weights' page)")
    return Run(chapter=chapter, profile=profile, seed=seed, device=resolve_device(device), data_root=root)


_VERDICT_MARK = {"holds": "✅ holds", "does-not-hold": "❌ does not hold", "not-run": "⏸ not run"}


def claims_table_html(claims: list[Claim]) -> str:
    """An HTML table of claims, for the chapter page."""
    header = "<tr><th>claim</th><th>source</th><th>thesis</th><th>reproduced</th><th>verdict</th></tr>"
    rows = "".join(
        f"<tr><td>{html.escape(c.statement)}</td><td>{html.escape(c.source)}</td>"
        f"<td>{html.escape(c.thesis_value)}</td><td>{html.escape(c.measured)}</td>"
        f"<td>{_VERDICT_MARK[c.verdict]}</td></tr>" for c in claims)
    return f"<table class='dk-claims'>{header}{rows}</table>"


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON types; NaN and infinities become ``None`` (JSON has no such numbers, and a
    notebook's message with one makes Jupyter warn on the page and store a non-standard file)."""
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if hasattr(value, "to_dict"):  # pandas objects
        return _jsonable(value.to_dict())
    return value
