"""Profiles, seeding, devices, and the recorder of results and claims.

Every chapter starts a :class:`Run` right after its parameters cell::

    run = dk.experiment.start("simloss", profile=profile, seed=seed, device=device, data_root=data_root)
    config = dk.experiment.select(CONFIGS, run.profile, dry_run=run.dry_run)
    ...
    run.check("simloss-identity", kind="known-answer", statement="S = I gives cross-entropy",
              expected="equal to float64 precision", measured=f"max |diff| = {gap:.1e}", passes=gap < 1e-10)
    run.claim("moderate-r-lowers-mae", statement="r > 0 chosen on validation lowers the test MAE",
              source="Table 14.1", thesis_value="7.39 vs 7.01", measured=f"{a:.2f} vs {b:.2f}, p = {p:.2g}",
              holds=p < 0.05 and b < a, cause="budget",
              diagnosis=f"the validation MAE still fell by {slope:.2f} per epoch when the runs stopped")
    run.finish()

Two kinds of record, kept apart on the page and in the report:

- a **check** (:meth:`Run.check`) is something the thesis never claimed but a reader needs to trust the page: a
  known answer or an axiom of the method, a sanity check, or a *positive control* showing that a stand-in
  carries the ingredient the thesis' mechanism needs and that a model can use it. Checks are never counted
  in the claim tally.
- a **claim** (:meth:`Run.claim`) is one statement of the thesis, with the thesis' value from its table. A
  claim that does not hold, or is not run, must say why: a ``cause`` from :data:`CAUSES` and a one-sentence
  ``diagnosis`` that points to a measurement on the page. A claim may name the checks it ``requires``; when
  one of them failed, the claim is not judged (``not-run``, cause ``control-failed``).

``finish`` shows both as tables on the page and attaches them, with the run's provenance, to that output's
metadata under the key ``"domainknowledge"``. The pipeline (:mod:`domainknowledge.book`) reads them back
from the executed notebook, so an executed ``.ipynb`` describes itself.
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
#: Why a claim does not hold or is not run. Every miss names one, with a diagnosis pointing to a measurement.
CAUSES: dict[str, str] = {
    "stand-in": "the stand-in data lack (or only weakly carry) an ingredient the thesis' mechanism needs",
    "budget": "the models are trained, sampled or repeated too little at this profile to show the effect",
    "deviation": "a disclosed deviation from the thesis' method or setting changes the outcome",
    "genuine": "run as the thesis describes, the effect is not there: a real non-reproduction",
    "not-at-this-profile": "the claim needs data, weights or a scale that this profile does not have",
    "control-failed": "a positive control this claim depends on failed, so the claim is not judged",
}
#: What a check is: a known answer, an axiom of the method, a sanity check, or a positive control.
CHECK_KINDS: dict[str, str] = {
    "known-answer": "the code reproduces a value known in closed form",
    "axiom": "a property the method guarantees by construction (e.g. completeness of Integrated Gradients)",
    "sanity": "the experiment behaves as any working set-up must (e.g. a trained model beats chance)",
    "positive-control": "the stand-in carries the ingredient the thesis' mechanism needs, and a model can use it",
}
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


#: The dry-run knob (``dk-book run --dry-run``): the configuration's loop counts are capped to these values
#: (a field of this name anywhere in a nested dataclass config; tuples of seeds are cut to their first
#: values), so that a ``paper`` run executes the paper code path, architectures and readers on tiny
#: published-layout fixtures in seconds. Sizes of networks and images are never capped. A chapter whose loop
#: count has another name adds it here, in the one place the caps are written and shown. Generated stand-ins
#: and benchmarks may cap how many items they draw (never the size of one item).
DRY_RUN_CAPS: dict[str, int] = {
    # optimisation lengths
    "epochs": 1, "max_epochs": 1, "pretrain_epochs": 1, "control_epochs": 1, "strong_epochs": 1, "weak_epochs": 1,
    "word2vec_epochs": 1, "head_patience": 1, "patience": 1, "stop_patience": 1, "lr_patience": 1,
    "max_iterations": 2, "oracle_iterations": 2, "one_pixel_iterations": 2, "randomization_iterations": 2,
    # searches, samples and repeats
    "trials": 2, "fine_tune_trials": 2, "smoothgrad_samples": 2, "attribution_samples": 2, "ig_steps": 4,
    "attribution_steps": 4, "corruption_repeats": 2, "runs": 1, "sweep_runs": 1, "seeds": 1,
    # pretext batches of Ch. 16: distortions drawn per base image and levels per sign (a base image and its
    # variants; the thesis' 181 variants of 8 photos at 224 px would need tens of GB on a CPU)
    "distortions_per_group": 1, "levels_per_sign": 1,
    # and Table 16.4's levels per sign (each level of each of the 21 distortions a pass of the test images)
    "analysis_levels": 1,
    # encoders compared in Ch. 12 and hashing methods trained in Darlow Ch. 3 (a dry run keeps the first of each
    # list; every ResNet-34 encodes the CIFAR-100 transfer set, about 25 CPU s each even on the fixtures)
    "multimodal": 1, "content": 1, "methods": 2,
    # CIFAR-100 classes of Darlow Ch. 3's transfer set (each transfer image through every trained ResNet-34;
    # 20 of the fixture's 100 classes are 80 images instead of 400)
    "transfer_classes": 20,
    # ImageNet class names per adjective in Ch. 12's context prompts (1,000 x 39 prompts through a CLIP text
    # tower take hours on a CPU)
    "content_classes": 2,
    # a throughput benchmark's queries and its replicated (synthetic) references (Bynke's search at scale)
    "scale_queries": 8, "scale_references": 20_000,
    # optimisation steps of a model trained here (the stand-in CLIP), and the examples of a pre-training pass
    # drawn from a generator (human similarity's small CNNs)
    "steps": 1, "pretrain_images": 256,
    # human similarity's evaluation triplets per set and fine-tuning triplets (and pretext images) per source:
    # only the images those trials use are read, and every one goes through a ResNet-50, an RN50 CLIP and an
    # EfficientNet at 224 px, each pretext image eight times (four rotations, jigsaw tiles, views); 2 (the
    # least the benchmark accepts) read 81 of the fixtures' 120 images and 6 of their 18 singletons
    "triplets": 2, "finetune": 2,
    # models evaluated in turn (human similarity: the first of its list cover every loading path), fine-tuned
    # and mapped; pretext samples per image
    "extractors": 8, "finetune_backbones": 1, "map_extractors": 2, "jigsaw_per_image": 2, "views": 2,
    # generated stand-ins: how many items the generator draws, the loop over the generator (the generated
    # items keep the paper's image size; a real data set's dry-run size is its fixture's)
    "training_renders": 64, "analysis_renders": 64, "train_products": 8, "test_products": 8, "product_classes": 8,
    # the appendix's held-out and retrieval sets (each image through the real CLIP ViT-B/32 at 224 px as well)
    "heldout_images": 48, "retrieval_images": 32, "fitness_images": 24,
    # test images explained per model (Ch. 11's foreground scores and Ch. 9's control maps: a full network pass
    # per SmoothGrad sample at 224 px), and the real data sets Ch. 11 loops over after its stand-in settings (a
    # dry run keeps the first; the other readers run in Ch. 9's dry run)
    "attribution_images": 4, "real_datasets": 1,
    # test papers per venue whose Integrated Gradients attributions the venue recommender's word checks read
    "attributed_papers": 2,
    # metric-learning losses trained in turn (Ch. 7, 9, 11: the paper configs order them so that the first five
    # hold two of each family and None, see metric_learning.FAMILY_BALANCED_ORDER)
    "losses": 5,
    # settings looped over (a tuple keeps its first values); Ch. 11's Table 11.1 losses, ordered so that the
    # first two are one of each family (its paper run: 3 stand-in settings and a real one, two methods, 42 models
    # took about 6 CPU minutes on the fixtures)
    "sweep_rates": 2, "table_rates": 2, "table_losses": 2,
    # InDiReCT (Kobs Ch. 13): image-text encoders compared (the first, CLIP ViT-B/32, is the paper's; the
    # aligned model runs at smoke and cpu), its generated evaluation sets (rendered cars, captioned world; at paper
    # 10,000 renders took 300 s to draw), images attributed per map, and aspects per notion put into prompts
    # (each prompt one pass through CLIP's text tower: Table 13.1's 667 prompts took 130 s on the CPU); its
    # evaluated pairs keep the first six, CLIP on every data set (the aligned model's pairs follow them)
    "encoders": 1, "rendered_cars": 24, "world_images": 24, "attributed_images": 1, "aspects_per_notion": 4,
    "pairs": 6,
}


def dry_run_config(config: T, caps: Mapping[str, int] | None = None) -> T:
    """``config`` with every loop count named in ``caps`` (default :data:`DRY_RUN_CAPS`) capped, in nested
    dataclasses too; an ``int`` becomes ``min(value, cap)``, a tuple keeps its first ``cap`` values."""
    caps = DRY_RUN_CAPS if caps is None else caps
    changes = {}
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            changes[item.name] = dry_run_config(value, caps)
        elif item.name in caps and isinstance(value, bool):
            continue
        elif item.name in caps and isinstance(value, int):
            changes[item.name] = min(value, caps[item.name])
        elif item.name in caps and isinstance(value, tuple):
            changes[item.name] = value[:caps[item.name]]
    return dataclasses.replace(config, **changes)


def select(configs: Mapping[str, T], profile: str, *, dry_run: bool = False) -> T:
    """Pick the configuration of ``profile`` from a mapping ``{profile name: config}``; with ``dry_run``
    (a paper dry run, see :data:`DRY_RUN_CAPS`) its loop counts are capped."""
    check_profile(profile)
    if profile not in configs:
        raise ValueError(f"no configuration for profile {profile!r}; this chapter defines {sorted(configs)}")
    return dry_run_config(configs[profile]) if dry_run else configs[profile]


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
    their units). ``verdict`` is one of ``holds``, ``does-not-hold`` or ``not-run``; for the last two,
    ``cause`` is a key of :data:`CAUSES` and ``diagnosis`` one sentence naming the measurement that explains
    the miss (both empty when the claim holds).
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
    cause: str = ""
    diagnosis: str = ""


@dataclass
class Check:
    """A check the page needs but the thesis never claimed: ``kind`` is a key of :data:`CHECK_KINDS`."""

    chapter: str
    id: str
    kind: str
    statement: str
    expected: str
    measured: str
    profile: str
    passed: bool
    note: str = ""


@dataclass
class Run:
    """The record of one execution of one chapter: provenance, metrics and claims."""

    chapter: str
    profile: str
    seed: int
    device: Any
    data_root: Path | None
    dry_run: bool = False
    started: float = field(default_factory=time.time)
    metrics: dict[str, Any] = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

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
            "dry_run": self.dry_run,
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

    def check(self, check_id: str, *, kind: str, statement: str, expected: str, measured: str,
              passes: bool, note: str = "") -> Check:
        """Record one check (a known answer, an axiom, a sanity check or a positive control; see
        :data:`CHECK_KINDS`). Checks are shown in their own table and never counted as thesis claims."""
        if kind not in CHECK_KINDS:
            raise ValueError(f"check {check_id!r}: unknown kind {kind!r}; use one of {', '.join(CHECK_KINDS)}")
        if any(c.id == check_id for c in self.checks):
            raise ValueError(f"check {check_id!r} was recorded twice in chapter {self.chapter!r}")
        check = Check(self.chapter, check_id, kind, statement, expected, measured, self.profile,
                      bool(passes), note)
        self.checks.append(check)
        return check

    def passed(self, check_id: str) -> bool:
        """Whether the recorded check ``check_id`` passed (an error if no such check was recorded)."""
        for check in self.checks:
            if check.id == check_id:
                return check.passed
        raise KeyError(f"no check {check_id!r} recorded in chapter {self.chapter!r}; record it before the "
                       "claims that require it")

    def claim(self, claim_id: str, *, statement: str, source: str, thesis_value: str, measured: str,
              holds: bool | None, cause: str | None = None, diagnosis: str | None = None,
              requires: tuple[str, ...] | list[str] = (), note: str = "") -> Claim:
        """Record one thesis claim; ``holds=None`` means the chapter could not test it at this profile.

        A claim that does not hold or is not run needs a ``cause`` (a key of :data:`CAUSES`) and a one-sentence
        ``diagnosis`` pointing to the measurement that explains it; both are dropped when the claim holds, so
        a chapter may pass them unconditionally. ``requires`` names checks (recorded earlier) that must have
        passed for the claim to be judged; if one failed, the verdict is ``not-run`` with cause
        ``control-failed`` and the failed check as the diagnosis.
        """
        if any(c.id == claim_id for c in self.claims):
            raise ValueError(f"claim {claim_id!r} was recorded twice in chapter {self.chapter!r}")
        failed = [check for check in self.checks if check.id in requires and not check.passed]
        missing = set(requires) - {check.id for check in self.checks}
        if missing:
            raise ValueError(f"claim {claim_id!r} requires check(s) {sorted(missing)} that were not recorded "
                             "before it")
        if failed:
            holds, cause = None, "control-failed"
            diagnosis = "; ".join(f"the check '{c.statement}' failed ({c.measured}; expected {c.expected})"
                                  for c in failed)
        verdict = "not-run" if holds is None else ("holds" if holds else "does-not-hold")
        if verdict == "holds":
            cause, diagnosis = "", ""
        elif cause not in CAUSES or not diagnosis:
            raise ValueError(
                f"claim {claim_id!r} {verdict.replace('-', ' ')} but gives "
                + (f"an unknown cause {cause!r}" if cause and cause not in CAUSES else
                   "no cause" if not cause else "no diagnosis")
                + f": pass cause= one of {', '.join(CAUSES)} and diagnosis= one sentence naming the measurement "
                  "on the page that explains the miss")
        claim = Claim(self.chapter, claim_id, statement, source, thesis_value, measured, self.profile,
                      str(self.device), verdict, note, cause, diagnosis)
        self.claims.append(claim)
        return claim

    def summary(self) -> dict[str, Any]:
        """Everything the pipeline reads back: provenance, metrics and claims, JSON-able."""
        return {"run": self.provenance(), "metrics": _jsonable(self.metrics),
                "claims": [dataclasses.asdict(c) for c in self.claims],
                "checks": [dataclasses.asdict(c) for c in self.checks]}

    def banner(self):
        """A note for the top of the page: which profile, device, seed and revision produced the numbers."""
        from IPython.display import Markdown

        dry = ("\n\nThis was a **dry run**: the paper code path on tiny fixtures with its loop counts capped ("
               + ", ".join(f"`{name}` <= {cap}" for name, cap in DRY_RUN_CAPS.items())
               + "), to prove that the code runs; none of its numbers is a result." if self.dry_run else "")
        return Markdown(
            f":::{{note}}\nThe numbers on this page were produced at the **{self.profile}** profile on "
            f"**{self.device_name}** (`{self.device}`), seed {self.seed}, revision `{git_revision()}`.{dry}\n:::")

    def finish(self):
        """Show the checks and the claims as tables and attach the run's summary for the pipeline; call once,
        last."""
        from IPython.display import HTML, display

        summary = self.summary()
        tables = (checks_table_html(self.checks) if self.checks else "") + claims_table_html(self.claims)
        display(HTML(tables), metadata={METADATA_KEY: summary})
        return summary


def start(chapter: str, *, profile: str, seed: int, device: str = "auto", data_root: str | None = None,
          dry_run: bool = False) -> Run:
    """Validate a chapter's parameters, seed everything and start its :class:`Run`; ``dry_run`` marks a paper
    dry run (:data:`DRY_RUN_CAPS`), which the page and the status page then say."""
    check_profile(profile)
    seed_everything(seed)
    root = Path(data_root).expanduser().resolve() if data_root else None
    if root is not None and not root.is_dir():
        raise FileNotFoundError(f"data_root {str(root)!r} is not a directory; pass --data-root DIR with the "
                                "real data sets (see the book's 'Data and weights' page)")
    return Run(chapter=chapter, profile=profile, seed=seed, device=resolve_device(device), data_root=root,
               dry_run=bool(dry_run))


VERDICT_LABELS = {"holds": "holds", "does-not-hold": "does not hold", "not-run": "not run"}


def badge(text: str, css_class: str) -> str:
    """A verdict or status as styled text (``book/_static/domainknowledge.css``), never an emoji glyph."""
    return f"<span class='dk-badge dk-{css_class}'>{html.escape(text)}</span>"


def verdict_badge(verdict: str) -> str:
    return badge(VERDICT_LABELS[verdict], verdict)


def claims_table_html(claims: list[Claim]) -> str:
    """An HTML table of the thesis' claims, for the chapter page; a miss shows its cause and diagnosis."""
    header = ("<tr><th>thesis claim</th><th>source</th><th>thesis</th><th>reproduced</th><th>verdict</th>"
              "<th>why not</th></tr>")
    rows = "".join(
        f"<tr><td>{html.escape(c.statement)}</td><td>{html.escape(c.source)}</td>"
        f"<td>{html.escape(c.thesis_value)}</td><td>{html.escape(c.measured)}</td>"
        f"<td>{verdict_badge(c.verdict)}</td>"
        f"<td>{badge(c.cause, 'cause') + ' ' + html.escape(c.diagnosis) if c.cause else ''}</td></tr>"
        for c in claims)
    return f"<p class='dk-table-title'>Thesis claims</p><table class='dk-claims'>{header}{rows}</table>"


def checks_table_html(checks: list[Check]) -> str:
    """An HTML table of the checks (known answers, axioms, sanity checks, positive controls): not claims."""
    header = "<tr><th>check</th><th>kind</th><th>expected</th><th>measured</th><th>result</th></tr>"
    rows = "".join(
        f"<tr><td>{html.escape(c.statement)}</td><td>{html.escape(c.kind)}</td>"
        f"<td>{html.escape(c.expected)}</td><td>{html.escape(c.measured)}</td>"
        f"<td>{badge('passes', 'holds') if c.passed else badge('fails', 'does-not-hold')}</td></tr>"
        for c in checks)
    return (f"<p class='dk-table-title'>Checks (not thesis claims)</p>"
            f"<table class='dk-claims dk-checks'>{header}{rows}</table>")


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
