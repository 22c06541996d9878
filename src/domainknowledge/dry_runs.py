"""Paper dry runs of the chapters on published-layout fixtures, and how their peak memory grows with the data.

A *paper dry run* (``dk-book run --profile paper --dry-run``) executes a chapter's paper code path, its
architectures and readers, on the tiny copies of :mod:`domainknowledge.fixtures` with the loop counts of
:data:`~domainknowledge.experiment.DRY_RUN_CAPS`. It proves that the code runs; it also measures whether the
code streams its data. A chapter that keeps every decoded image (or an N x N matrix) in memory grows with the
data set; one that streams does not. :func:`memory_slope` runs the same chapter on fixtures written at two
scales and divides the growth of the kernel's peak resident memory by the number of images added:

.. math:: s = \\frac{\\mathrm{peak}_2 - \\mathrm{peak}_1}{n_2 - n_1} \\quad [\\mathrm{MiB\\ per\\ image}].

The bound :data:`MEMORY_BOUND_MIB_PER_IMAGE` is one decoded 224 x 224 RGB image in ``uint8`` (0.14 MiB):
a chapter within it keeps less than one decoded image per image of its data sets, so at the thesis' scale
its memory is set by its batches and models, not by the data set. ``dk-book memory`` measures the chapters
of :data:`HEAVY_CHAPTERS` and writes ``book/paper-memory.json``, which the status page shows.

Three things keep the slope honest: every image counts, also the rows of image arrays (:func:`count_images`);
both fixtures hold more than one training batch (:data:`CHAPTER_MEMORY_SCALES`), else the growing batch is
measured; and the allocator returns freed blocks (:data:`MEASUREMENT_ENVIRONMENT`), else memory already freed
counts in the peak.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["CHAPTER_MEMORY_SCALES", "HEAVY_CHAPTERS", "MEASUREMENT_ENVIRONMENT", "MEMORY_BOUND_MIB_PER_IMAGE",
           "MEMORY_FILE", "MEMORY_SCALES", "MemorySlope", "count_images", "dry_run_chapter", "measure_memory_slopes",
           "memory_scales", "memory_slope", "read_memory_slopes"]

#: One decoded 224 x 224 x 3 uint8 image, in MiB: the most a streaming chapter may add per image of data.
MEMORY_BOUND_MIB_PER_IMAGE = 224 * 224 * 3 / 2**20
#: Chapters whose paper data sets are large enough for memory to matter -> the fixtures their data come from
#: (every data set the chapter reads: a new root holds only these; image files and the rows of image arrays
#: are counted, :func:`count_images`). SimLoss reads UTKFace and AFAD-Full (165,000 faces) and CIFAR-100, map
#: LUR the LAEI grid's tiles (read from their files a batch at a time), multi-label neighbours streams iMet
#: (130,000 images) through CLIP. Chapters that should join: ``clip_aesthetics`` (AVA), ``indirect`` (Cars196,
#: CUB-200, DeepFashion, movie posters), ``dml_attribution`` (Cars196, CUB-200, SOP), ``multitask_aesthetics``
#: (Pexels, AVA, TID2013) and ``bgaugment``; their scale-4 dry runs cost 1-3 CPU minutes each.
HEAVY_CHAPTERS: dict[str, tuple[str, ...]] = {"simloss": ("utkface", "afad", "cifar100", "word2vec_googlenews"),
                                              "map_lur": ("laei2013",),
                                              "multilabel_neighbours": ("imet",)}
#: The two fixture scales whose dry runs are compared (scale 1 is the test suite's own dry run; at 4 the
#: growth of a chapter that keeps its images, 300 iMet images x 0.14 MiB, stands well above run-to-run noise).
MEMORY_SCALES = (1, 4)
#: Chapters measured at other scales. A training batch holds min(training images, batch size) images, so
#: while a fixture is smaller than one batch, the activations of a batch grow with the fixture and the slope
#: measures the batch, not the data set: MapLUR's batch of 400 tiles at 224 px holds about 14 MiB per tile
#: on a CPU (7.4 MiB per tile measured between 44 and 164 tiles). Its fixtures are measured where both hold
#: more than one batch of training tiles: about 40 tiles per scale, of which a third test, 10 % of the rest
#: validate and tiles overlapping another split's are dropped, so scale 22 has 423 training tiles (884 in
#: all) and 44 has 784 (1,764). At 18 and 36 (364 and 653 training tiles) the smaller batch was 36 tiles short
#: and the slope 0.76 MiB per tile, the missing batch rows. SimLoss' batches (1,024) also exceed its scale-1
#: fixture; there the slope over-states the growth (a filling batch counts) and is within the bound anyway,
#: so the cheap scales stay.
CHAPTER_MEMORY_SCALES: dict[str, tuple[int, int]] = {"map_lur": (22, 44)}
#: The allocator setting of every measured run. glibc caches freed blocks in its heap and raises its mmap
#: threshold up to 32 MiB after large frees, so a process' peak resident memory counts memory that was
#: already freed, by an amount that depends on the history of allocations (more batches, more cached
#: memory): multi-label neighbours' peak grew 0.50 MiB per image between 100 and 400 iMet images with the
#: default allocator and 0.007 with this one (CLIP's activations, freed after each batch, stayed cached).
#: With a fixed threshold of 64 KiB every larger block is mapped on allocation and returned on free, so the
#: peak counts live memory. It costs page faults (a slower run), so it is set for measured runs only.
MEASUREMENT_ENVIRONMENT = {"MALLOC_MMAP_THRESHOLD_": "65536"}
#: Where ``dk-book memory`` keeps its measurements (relative to the book root), for the status page.
MEMORY_FILE = Path("book") / "paper-memory.json"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class MemorySlope:
    """Peak memory of one chapter's paper dry run at two fixture scales."""

    chapter: str
    scales: tuple[int, int]
    images: tuple[int, int]
    peak_mib: tuple[float, float]
    slope_mib_per_image: float
    bound_mib_per_image: float

    @property
    def within_bound(self) -> bool:
        return self.slope_mib_per_image <= self.bound_mib_per_image


def memory_scales(chapter_name: str) -> tuple[int, int]:
    """The fixture scales at which ``chapter_name``'s memory is compared (:data:`CHAPTER_MEMORY_SCALES`, else
    :data:`MEMORY_SCALES`)."""
    return CHAPTER_MEMORY_SCALES.get(chapter_name, MEMORY_SCALES)


def _array_images(path: Path) -> int:
    """Images stored as rows of an array file: a CIFAR python pickle (``b"data"`` rows) or an MNIST idx file of
    three or more dimensions (``*-idx3-ubyte[.gz]``); 0 for any other file."""
    import gzip
    import pickle

    if "idx3" in path.name or "idx4" in path.name:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as stream:
            return int.from_bytes(stream.read(8)[4:8], "big")
    if path.suffix == "" and path.is_file():
        try:
            with open(path, "rb") as stream:
                payload = pickle.load(stream, encoding="bytes")
        except Exception:      # not a pickle: not an image array
            return 0
        return len(payload[b"data"]) if isinstance(payload, dict) and b"data" in payload else 0
    return 0


def count_images(root: Path, fixtures: Iterable[str]) -> int:
    """Images under the ``fixtures``' folders: image files, and the rows of image arrays (CIFAR pickles, MNIST
    idx files), which a chapter decodes as much as files (SimLoss reads CIFAR-100 beside its face files)."""
    from domainknowledge.fixtures import FIXTURES, _discover

    _discover()
    return sum(1 if path.suffix.lower() in IMAGE_SUFFIXES else _array_images(path)
               for name in fixtures for path in (Path(root) / FIXTURES[name].folder).rglob("*") if path.is_file())


def dry_run_chapter(project, chapter, data_root: Path, *, device: str = "cpu", measured: bool = False) -> dict:
    """Execute ``chapter`` at ``paper`` as a dry run on the fixtures under ``data_root``; returns its record
    (raises with the chapter's error if it failed). ``measured``: with :data:`MEASUREMENT_ENVIRONMENT`."""
    from domainknowledge import book
    from domainknowledge.fixtures import dry_run_environment

    parameters = book.chapter_parameters("paper", 0, device, str(data_root), dry_run=True)
    environment = {**dry_run_environment(data_root), **(MEASUREMENT_ENVIRONMENT if measured else {})}
    saved = {k: os.environ.get(k) for k in environment}
    os.environ.update(environment)
    try:
        # through a fresh ``dk-book`` process: Linux counts the RSS of the process that forks the kernel into the
        # kernel's peak (``ru_maxrss`` survives fork and exec), and this one may hold torch and the weights
        [result] = book.run_chapters(project, [chapter], parameters, force=True, executor="local", jobs=1,
                                     write_pages=False, log=lambda *a, **k: None)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    if result.status != "ok":
        raise RuntimeError(f"the paper dry run of {chapter.name} failed: {result.error}")
    return book.read_record(chapter.executed_path(project))


def memory_slope(chapter_name: str, fixtures: Iterable[str], peak_at: Callable[[Path], float], workdir: Path,
                 scales: tuple[int, int] = MEMORY_SCALES, *, written: dict[int, Path] | None = None,
                 shared_cache: Path | None = None) -> MemorySlope:
    """Write ``fixtures`` at both ``scales`` under ``workdir``, call ``peak_at(root)`` (the chapter's peak
    memory in MiB on that root) for each, and return the growth per image added.

    ``written`` maps a scale to a root where the fixtures already are (not written again); ``shared_cache``
    is a weight-fixture cache that every new root links to instead of writing the weights again."""
    from domainknowledge.fixtures import CACHE_FOLDER, write_fixtures

    fixtures = tuple(fixtures)
    images, peaks = [], []
    for scale in scales:
        root = (written or {}).get(scale)
        if root is None:
            root = write_fixtures(Path(workdir) / f"scale-{scale}", fixtures, scale=scale)
            if shared_cache is not None and not (root / CACHE_FOLDER).exists():
                (root / CACHE_FOLDER).symlink_to(Path(shared_cache).resolve(), target_is_directory=True)
        images.append(count_images(root, fixtures))
        peaks.append(float(peak_at(root)))
    if images[1] <= images[0]:
        raise ValueError(f"the fixtures {fixtures} hold no more images at scale {scales[1]} than at {scales[0]}")
    slope = (peaks[1] - peaks[0]) / (images[1] - images[0])
    return MemorySlope(chapter_name, tuple(scales), tuple(images), tuple(round(p, 1) for p in peaks),
                       round(slope, 4), round(MEMORY_BOUND_MIB_PER_IMAGE, 4))


def measure_memory_slopes(project, names: Iterable[str] | None = None, *, scales=None, device: str = "cpu",
                          log=print) -> list[MemorySlope]:
    """Measure :func:`memory_slope` for the heavy chapters (or ``names``) at ``scales`` (default: each
    chapter's :func:`memory_scales`), with :data:`MEASUREMENT_ENVIRONMENT`, and write :data:`MEMORY_FILE`."""
    from domainknowledge import book
    from domainknowledge.book import atomic_write_text

    chosen = list(HEAVY_CHAPTERS) if names is None else list(names)
    unknown = sorted(set(chosen) - set(HEAVY_CHAPTERS))
    if unknown:
        raise ValueError(f"{unknown} are not heavy chapters; HEAVY_CHAPTERS lists {sorted(HEAVY_CHAPTERS)}")
    from domainknowledge.fixtures import CACHE_FOLDER, write_fixtures

    chapters = {c.name: c for c in book.discover_chapters(project)}
    slopes = []
    with tempfile.TemporaryDirectory(prefix="dk-memory-") as workdir:
        weights = write_fixtures(Path(workdir) / "weights", ["weights"]) / CACHE_FOLDER
        for name in chosen:
            def peak_at(root, chapter=chapters[name]):
                record = dry_run_chapter(project, chapter, root, device=device, measured=True)
                return record["summary"]["run"]["peak_memory_mib"]
            slope = memory_slope(name, HEAVY_CHAPTERS[name], peak_at, Path(workdir) / name,
                                 scales or memory_scales(name), shared_cache=weights)
            log(f"{name}: {slope.slope_mib_per_image:.3f} MiB per image (bound {slope.bound_mib_per_image:.3f})")
            slopes.append(slope)
    known = {s["chapter"]: s for s in read_memory_slopes(project.book_root)}
    known.update({s.chapter: asdict(s) for s in slopes})
    atomic_write_text(project.book_root / MEMORY_FILE, json.dumps(list(known.values()), indent=1) + "\n")
    return slopes


def read_memory_slopes(book_root: Path) -> list[dict]:
    """The measurements in :data:`MEMORY_FILE` (none if it was never written)."""
    path = Path(book_root) / MEMORY_FILE
    return json.loads(path.read_text()) if path.is_file() else []
