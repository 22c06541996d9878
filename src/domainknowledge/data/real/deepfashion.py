"""DeepFashion's Category and Attribute Prediction Benchmark (Liu et al. 2016), read in its published layout.

The benchmark's download (http://mmlab.ie.cuhk.edu.hk/projects/DeepFashion/AttributePrediction.html) unpacks
to ``<data_root>/DeepFashion/`` holding

* ``Anno/list_category_cloth.txt``: the number of categories, a header line, then ``<category name> <category
  type>`` (50 categories; type 1 upper-body, 2 lower-body, 3 full-body clothes);
* ``Anno/list_category_img.txt``: the number of images, a header, then ``<image name> <category label>``
  (1-based index into the category list);
* ``Anno/list_attr_cloth.txt``: the number of attributes, a header, then ``<attribute name> <attribute type>``
  (the name may contain spaces; type 1 texture, 2 fabric, 3 shape, 4 part, 5 style);
* ``Anno/list_attr_img.txt``: the number of images, a header, then ``<image name> <label per attribute>``
  (``1`` positive, ``-1`` negative, ``0`` unknown), one column per attribute in list order;
* ``Eval/list_eval_partition.txt``: the number of images, a header, then ``<image name> train|val|test``;
* the images, named as the lists name them (``img/<item folder>/img_00000001.jpg``), under the benchmark
  folder or under ``Img/`` (where ``Img/img.zip`` unpacks in place).

The fine-grained re-annotation the benchmark's site also distributes (``Anno_fine/``, 26 attributes: 7
textures, 6 fabrics, 3 shapes ``tight``/``loose``/``conventional``, ...) uses the same files and formats;
:func:`read_deepfashion` reads it in preference to ``Anno/`` where it is present, with its own
``list_eval_partition.txt`` if it has one. :data:`ANNOTATION_FOLDERS` gives the order.

:func:`read_deepfashion` streams ``list_attr_img.txt`` (289,222 rows of 1,000 columns in ``Anno/``) line by
line and keeps, per image of the chosen split, its category and, per attribute type, the one attribute of
that type marked positive (``""`` where none or several are).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from domainknowledge.data.bundled import DataNotFoundError

__all__ = ["ANNOTATION_FOLDERS", "ATTRIBUTE_TYPES", "DEEPFASHION_FOLDER", "DEEPFASHION_SOURCE", "DeepFashionSplit",
           "NO_SINGLE_ATTRIBUTE", "read_deepfashion"]

DEEPFASHION_FOLDER = "DeepFashion"
DEEPFASHION_SOURCE = ("http://mmlab.ie.cuhk.edu.hk/projects/DeepFashion/AttributePrediction.html (the Category and "
                      "Attribute Prediction Benchmark: Anno/, Eval/ and Img/img.zip)")
#: annotation folders in the order they are looked for (the fine-grained attributes first)
ANNOTATION_FOLDERS = ("Anno_fine", "Anno")
CATEGORY_LIST, CATEGORY_IMAGES = "list_category_cloth.txt", "list_category_img.txt"
ATTRIBUTE_LIST, ATTRIBUTE_IMAGES = "list_attr_cloth.txt", "list_attr_img.txt"
PARTITION = "list_eval_partition.txt"
#: the attribute types of ``list_attr_cloth.txt``
ATTRIBUTE_TYPES = {1: "texture", 2: "fabric", 3: "shape", 4: "part", 5: "style"}
#: the label of an image with no, or more than one, positive attribute of a type
NO_SINGLE_ATTRIBUTE = ""


@dataclass(frozen=True)
class DeepFashionSplit:
    """One split of the benchmark: image ``paths`` ``(N,)``, ``categories`` ``(N,)`` str (category names),
    ``attributes`` ``{type: (N,) str}`` (the single positive attribute of that type, or
    :data:`NO_SINGLE_ATTRIBUTE`), the published vocabularies ``category_names`` and ``attribute_names``
    ``{type: names}`` (in list order), and the ``annotations`` folder they were read from."""

    paths: list[Path]
    categories: np.ndarray
    attributes: dict[int, np.ndarray]
    category_names: tuple[str, ...]
    attribute_names: dict[int, tuple[str, ...]]
    annotations: Path


def _missing(path: Path, why: str = "is missing") -> DataNotFoundError:
    return DataNotFoundError(f"DeepFashion: {path} {why}; get the data set from {DEEPFASHION_SOURCE} and unpack it "
                             f"as <data_root>/{DEEPFASHION_FOLDER}/ (which must hold Anno/{CATEGORY_LIST}, "
                             f"Anno/{CATEGORY_IMAGES}, Anno/{ATTRIBUTE_LIST}, Anno/{ATTRIBUTE_IMAGES}, "
                             f"Eval/{PARTITION} and the images img/...)")


def _rows(path: Path):
    """The data rows of a DeepFashion list file (after the count line and the header line), each split on
    whitespace; checks that the count matches."""
    if not path.is_file():
        raise _missing(path)
    with open(path, encoding="utf-8") as handle:
        first = handle.readline().strip()
        if not first.isdigit():
            raise _missing(path, f"does not start with the number of rows (found {first[:40]!r})")
        handle.readline()
        count = 0
        for line in handle:
            if line.strip():
                count += 1
                yield line.split()
    if count != int(first):
        raise _missing(path, f"announces {first} rows but holds {count}")


def _named_list(path: Path) -> list[tuple[str, int]]:
    """``<name with spaces> <integer type>`` rows."""
    rows = []
    for fields in _rows(path):
        if len(fields) < 2 or not fields[-1].lstrip("-").isdigit():
            raise _missing(path, f"has a row {' '.join(fields)!r} that is not '<name> <type>'")
        rows.append((" ".join(fields[:-1]), int(fields[-1])))
    return rows


def _annotation_folder(folder: Path) -> Path:
    for name in ANNOTATION_FOLDERS:
        if (folder / name / ATTRIBUTE_IMAGES).is_file():
            return folder / name
    raise _missing(folder / "Anno" / ATTRIBUTE_IMAGES)


def _image_root(folder: Path, first_image: str) -> Path:
    for root in (folder, folder / "Img"):
        if (root / first_image).is_file():
            return root
    raise _missing(folder / first_image, "(or under Img/) is listed but missing")


def read_deepfashion(data_root, split: str = "test") -> DeepFashionSplit:
    """The ``split`` (``train``, ``val`` or ``test``) of the benchmark under ``data_root`` (module docstring)."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    if data_root is None:
        raise DataNotFoundError(f"DeepFashion needs a data_root (run with --data-root DIR) holding "
                                f"{DEEPFASHION_FOLDER}/ from {DEEPFASHION_SOURCE}")
    folder = Path(data_root).expanduser() / DEEPFASHION_FOLDER
    if not folder.is_dir():
        raise _missing(folder)
    annotations = _annotation_folder(folder)
    partition_file = annotations / PARTITION if (annotations / PARTITION).is_file() else folder / "Eval" / PARTITION
    chosen = [fields[0] for fields in _rows(partition_file) if fields[-1] == split]
    if not chosen:
        raise _missing(partition_file, f"lists no {split} images")
    wanted = set(chosen)

    category_names = [name for name, _ in _named_list(annotations / CATEGORY_LIST)]
    category_of = {}
    for fields in _rows(annotations / CATEGORY_IMAGES):
        if fields[0] in wanted:
            index = int(fields[1])
            if not 1 <= index <= len(category_names):
                raise _missing(annotations / CATEGORY_IMAGES, f"gives {fields[0]} the category {index} of "
                                                              f"{len(category_names)}")
            category_of[fields[0]] = category_names[index - 1]

    attribute_list = _named_list(annotations / ATTRIBUTE_LIST)
    types = np.asarray([kind for _, kind in attribute_list])
    names = np.asarray([name for name, _ in attribute_list], dtype=object)
    single_of: dict[str, dict[int, str]] = {}
    for fields in _rows(annotations / ATTRIBUTE_IMAGES):           # streamed: the coarse file has 289k x 1000
        if fields[0] not in wanted:
            continue
        if len(fields) != len(attribute_list) + 1:
            raise _missing(annotations / ATTRIBUTE_IMAGES, f"has {len(fields) - 1} labels for {fields[0]} where "
                                                           f"{len(attribute_list)} attributes are listed")
        positive = np.asarray(fields[1:]) == "1"
        single_of[fields[0]] = {kind: (str(names[positive & (types == kind)][0])
                                       if (positive & (types == kind)).sum() == 1 else NO_SINGLE_ATTRIBUTE)
                                for kind in ATTRIBUTE_TYPES}
    unlabelled = [name for name in chosen if name not in category_of or name not in single_of]
    if unlabelled:
        raise _missing(annotations, f"has no category or attribute row for {len(unlabelled)} {split} images "
                                    f"(e.g. {unlabelled[0]})")
    root = _image_root(folder, chosen[0])
    paths = [root / name for name in chosen]
    return DeepFashionSplit(
        paths, np.asarray([category_of[n] for n in chosen], dtype=str),
        {kind: np.asarray([single_of[n][kind] for n in chosen], dtype=str) for kind in ATTRIBUTE_TYPES},
        tuple(category_names),
        {kind: tuple(str(n) for n in names[types == kind]) for kind in ATTRIBUTE_TYPES}, annotations)
