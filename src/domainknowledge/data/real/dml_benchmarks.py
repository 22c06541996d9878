"""The metric-learning benchmarks of Kobs 2023, Ch. 7, 9 and 11 (Musgrave et al.'s data sets), read from
``data_root`` in the layouts their archives unpack to.

* **Cars196** (Krause et al. 2013, https://ai.stanford.edu/~jkrause/cars/car_dataset.html):
  ``<data_root>/cars196/car_ims/000001.jpg ...`` (``car_ims.tgz``) and ``<data_root>/cars196/cars_annos.mat``,
  whose ``annotations`` struct array holds per image ``relative_im_path`` (``car_ims/000001.jpg``),
  ``bbox_x1``, ``bbox_y1``, ``bbox_x2``, ``bbox_y2``, ``class`` (1..196) and ``test``, and whose
  ``class_names`` cell array names the classes. Metric learning splits by class: 1-98 train, 99-196 test.
* **CUB-200-2011** (Wah et al. 2011, https://www.vision.caltech.edu/datasets/cub_200_2011/):
  ``<data_root>/CUB_200_2011/`` with ``images/<nnn.Class_Name>/<file>.jpg``, ``images.txt``
  (``image_id relative_path``), ``image_class_labels.txt`` (``image_id class_id``), ``train_test_split.txt``
  (``image_id is_training``) and ``classes.txt`` (``class_id nnn.Class_Name``). Metric learning splits by
  class: 1-100 train, 101-200 test (the classification split of ``train_test_split.txt`` is not used).
* **Stanford Online Products** (Song et al. 2016, https://cvgl.stanford.edu/projects/lifted_struct/):
  ``<data_root>/Stanford_Online_Products/`` with ``Ebay_train.txt`` and ``Ebay_test.txt`` (a header line
  ``image_id class_id super_class_id path``, then one image per line) and the images under
  ``<category>_final/`` as those files name them; the split is the files' (11,318 training products,
  11,316 test products).

:func:`find_dml_benchmark` returns a split's image paths and labels (``0 .. C-1`` within the split, classes
in the data set's id order); :func:`load_dml_benchmark` decodes them (centre-cropped squares,
:func:`read_square_image`), and :func:`benchmark_image_files` decodes them lazily, a batch at a time, so that
a paper run never holds a whole data set in memory. A missing file raises :class:`DataNotFoundError` naming the
file and where the data set comes from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from domainknowledge.data.bundled import DataNotFoundError
from domainknowledge.data.real.image_files import ImageFiles, square_crop

__all__ = ["DML_BENCHMARKS", "Benchmark", "BenchmarkSplit", "benchmark_class_names", "benchmark_image_files", "class_image_files",
           "find_dml_benchmark", "image_files", "load_dml_benchmark", "natural_key", "read_square_image"]


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: its ``title``, the ``folder`` under the data root its archive unpacks to, where it comes
    from (``source``), the files the reader needs (``required``, relative to the folder) and the last class id
    of the training half (``train_classes``; ``None``: the split is given by the files)."""

    title: str
    folder: str
    source: str
    required: tuple[str, ...]
    train_classes: int | None


CARS196 = Benchmark("Cars196", "cars196", "https://ai.stanford.edu/~jkrause/cars/car_dataset.html (car_ims.tgz and "
                    "cars_annos.mat)", ("cars_annos.mat", "car_ims"), 98)
CUB200 = Benchmark("CUB-200-2011", "CUB_200_2011", "https://www.vision.caltech.edu/datasets/cub_200_2011/ "
                   "(CUB_200_2011.tgz)", ("images.txt", "image_class_labels.txt", "train_test_split.txt",
                                          "classes.txt", "images"), 100)
SOP = Benchmark("Stanford Online Products", "Stanford_Online_Products",
                "https://cvgl.stanford.edu/projects/lifted_struct/ (Stanford_Online_Products.zip)",
                ("Ebay_train.txt", "Ebay_test.txt"), None)
DML_BENCHMARKS: dict[str, Benchmark] = {"cars196": CARS196, "cub200": CUB200, "sop": SOP}
SOP_HEADER = ("image_id", "class_id", "super_class_id", "path")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class BenchmarkSplit:
    """One split of a benchmark: image ``paths`` (``N``), ``labels`` ``int64 (N,)`` numbered ``0 .. C-1`` in
    the data set's class-id order, the data set's own ``class_ids`` ``(C,)`` and the ``root`` folder the
    paths live in (a path relative to it names the image in the data set)."""

    paths: list[Path]
    labels: np.ndarray
    class_ids: np.ndarray
    root: Path

    def relative_paths(self) -> list[Path]:
        return [path.relative_to(self.root) for path in self.paths]


def natural_key(name: str) -> tuple:
    """Sort key that orders digit runs by value: ``2.Bird`` before ``10.Bird``."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name))


def read_square_image(path: Path, size: int, mode: str = "RGB", *, full_size: tuple[int, int] | None = None) -> np.ndarray:
    """One image file, converted to the PIL ``mode`` ("RGB" or "L" for a mask), centre-cropped to a square and
    resized to ``size`` (bilinear): ``uint8 (S, S, 3)`` or ``(S, S)``. ``full_size`` ``(width, height)``: first
    resize the file to that size (a mask stored at another resolution than its image, e.g. a salient-object
    detector's 320 x 320 output, then gets the image's crop)."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert(mode)
        if full_size is not None and image.size != tuple(full_size):
            image = image.resize(tuple(full_size), Image.BILINEAR)
        return square_crop(size)(np.asarray(image))


def benchmark_image_files(paths, size: int):
    """The images of ``paths`` read on demand as ``uint8 (B, 3, S, S)`` tensors, centre-cropped squares resized
    to ``size`` (:class:`~domainknowledge.data.real.image_files.ImageFiles` with
    :func:`~domainknowledge.data.real.image_files.square_crop`): training and evaluation stream a data set batch
    by batch instead of decoding all of it."""
    return ImageFiles(paths, square_crop(size), size, channels_first=True)


def image_files(folder: Path) -> list[Path]:
    """The image files (.jpg, .jpeg, .png, any case) of ``folder``, in natural order of their names."""
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES), key=lambda p: natural_key(p.name))


def class_image_files(folder: Path, layout: str) -> tuple[list[Path], np.ndarray, list[str]]:
    """The images of ``folder/<class>/`` over all class folders in natural order (``2`` before ``10``):
    ``(paths, int64 labels (N,), class names)``. Raises :class:`DataNotFoundError` naming ``layout`` if the
    folder or its images are missing."""
    if not folder.is_dir():
        raise DataNotFoundError(f"the folder {folder} was not found; expected {layout}")
    classes = sorted((p.name for p in folder.iterdir() if p.is_dir()), key=natural_key)
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = image_files(folder / name)
        paths += files
        labels += [label] * len(files)
    if not paths:
        raise DataNotFoundError(f"{folder} holds no class folders with images; expected {layout}")
    return paths, np.asarray(labels, dtype=np.int64), classes


# --- the three readers ------------------------------------------------------------------------------------


def _missing(benchmark: Benchmark, path: Path, why: str = "is missing") -> DataNotFoundError:
    return DataNotFoundError(f"{benchmark.title}: {path} {why}; get the data set from {benchmark.source} and unpack "
                             f"it as <data_root>/{benchmark.folder}/ (which must hold "
                             f"{', '.join(benchmark.required)})")


def _benchmark_folder(data_root, benchmark: Benchmark) -> Path:
    if data_root is None:
        raise DataNotFoundError(f"{benchmark.title} needs a data_root (run with --data-root DIR) holding "
                                f"{benchmark.folder}/ from {benchmark.source}")
    folder = Path(data_root).expanduser() / benchmark.folder
    for name in benchmark.required:
        if not (folder / name).exists():
            raise _missing(benchmark, folder / name)
    return folder


def _read_table(path: Path, columns: int, benchmark: Benchmark, header: tuple[str, ...] | None = None) -> list[list[str]]:
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if header is not None:
        if not lines or tuple(lines[0]) != header:
            raise _missing(benchmark, path, f"does not start with the header line {' '.join(header)!r}")
        lines = lines[1:]
    bad = next((k for k, row in enumerate(lines) if len(row) != columns), None)
    if bad is not None:
        raise _missing(benchmark, path, f"has a line with {len(lines[bad])} fields where {columns} were expected "
                                        f"({' '.join(lines[bad])!r})")
    return lines


def _cars196(folder: Path) -> tuple[list[Path], np.ndarray]:
    from scipy.io import loadmat

    annotations_file = folder / "cars_annos.mat"
    content = loadmat(annotations_file, squeeze_me=True, struct_as_record=False)
    if "annotations" not in content:
        raise _missing(CARS196, annotations_file, "holds no 'annotations' struct array")
    records = np.atleast_1d(content["annotations"])
    paths = [folder / str(record.relative_im_path) for record in records]
    classes = np.asarray([int(record.__dict__["class"]) for record in records], dtype=np.int64)
    return paths, classes


def _cub200(folder: Path) -> tuple[list[Path], np.ndarray]:
    images = dict(_read_table(folder / "images.txt", 2, CUB200))
    labels = dict(_read_table(folder / "image_class_labels.txt", 2, CUB200))
    missing = sorted(set(images) - set(labels), key=int)
    if missing:
        raise _missing(CUB200, folder / "image_class_labels.txt", f"has no class for image ids {missing[:5]}")
    ids = sorted(images, key=int)
    return [folder / "images" / images[i] for i in ids], np.asarray([int(labels[i]) for i in ids], dtype=np.int64)


def _sop(folder: Path, split: str) -> tuple[list[Path], np.ndarray]:
    rows = _read_table(folder / f"Ebay_{split}.txt", 4, SOP, header=SOP_HEADER)
    return [folder / row[3] for row in rows], np.asarray([int(row[1]) for row in rows], dtype=np.int64)


def find_dml_benchmark(data_root, name: str, split: str) -> BenchmarkSplit:
    """The ``split`` (``train`` or ``test``) of benchmark ``name`` (``cars196``, ``cub200`` or ``sop``) under
    ``data_root``: its image paths and labels, with the standard metric-learning class split. Every listed
    image must exist (a missing one raises, naming it)."""
    if name not in DML_BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; choose one of {sorted(DML_BENCHMARKS)}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    benchmark = DML_BENCHMARKS[name]
    folder = _benchmark_folder(data_root, benchmark)
    if name == "sop":
        paths, classes = _sop(folder, split)
    else:
        paths, classes = _cars196(folder) if name == "cars196" else _cub200(folder)
        keep = classes <= benchmark.train_classes if split == "train" else classes > benchmark.train_classes
        paths, classes = [p for p, kept in zip(paths, keep) if kept], classes[keep]
    if not paths:
        raise _missing(benchmark, folder, f"lists no images of the {split} split")
    absent = next((p for p in paths if not p.is_file()), None)
    if absent is not None:
        raise _missing(benchmark, absent, "is listed in the annotations but missing")
    class_ids, labels = np.unique(classes, return_inverse=True)
    return BenchmarkSplit(paths, labels.astype(np.int64), class_ids, folder)


def benchmark_class_names(data_root, name: str) -> dict[int, str]:
    """The class names of benchmark ``name`` by the data set's own class id: Cars196's ``class_names`` cell
    array of ``cars_annos.mat`` (``{1: "AM General Hummer SUV 2000", ...}``) or CUB-200-2011's ``classes.txt``
    (``{1: "001.Black_footed_Albatross", ...}``)."""
    if name not in ("cars196", "cub200"):
        raise ValueError(f"class names are read for cars196 and cub200, not {name!r}")
    benchmark = DML_BENCHMARKS[name]
    folder = _benchmark_folder(data_root, benchmark)
    if name == "cub200":
        return {int(i): label for i, label in _read_table(folder / "classes.txt", 2, CUB200)}
    from scipy.io import loadmat

    annotations_file = folder / "cars_annos.mat"
    content = loadmat(annotations_file, squeeze_me=True, struct_as_record=False)
    if "class_names" not in content:
        raise _missing(CARS196, annotations_file, "holds no 'class_names' cell array")
    return {k: str(label).strip() for k, label in enumerate(np.atleast_1d(content["class_names"]), start=1)}


def load_dml_benchmark(data_root, name: str, *, split: str, image_size: int = 224) -> tuple[np.ndarray, np.ndarray]:
    """Images ``uint8 (N, S, S, 3)`` and labels ``int64 (N,)`` of one split, decoded at once (small sets;
    a paper run streams through :func:`benchmark_image_files` instead)."""
    found = find_dml_benchmark(data_root, name, split)
    return ImageFiles(found.paths, square_crop(image_size), image_size)[:], found.labels
