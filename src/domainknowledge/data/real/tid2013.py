"""TID2013 (Ponomarenko et al. 2015), the image-quality test set of Kobs 2023, Table 16.3, read from ``data_root``.

Published layout (the ``tid2013`` archive unpacked into ``<data_root>/TID2013/``):

* ``mos_with_names.txt``: 3,000 lines ``<MOS> <file name>`` (MOS 0..9, e.g. ``5.51429 i01_01_1.bmp``);
* ``distorted_images/i<ref>_<distortion>_<level>.bmp``: 25 reference images x 24 distortions x 5 levels,
  512 x 384 BMP files (some copies spell a few names in upper case; names are matched without case);
* ``reference_images/I<ref>.BMP``: the 25 undistorted references (not read here).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from domainknowledge.data.bundled import DataNotFoundError

__all__ = ["TID2013_DISTORTED", "TID2013_FOLDER", "TID2013_LAYOUT", "TID2013_REFERENCES", "TID2013_SOURCE",
           "TID2013_TABLE", "read_tid2013"]

TID2013_FOLDER = "TID2013"
TID2013_TABLE = "mos_with_names.txt"
TID2013_DISTORTED = "distorted_images"
TID2013_REFERENCES = "reference_images"
TID2013_SOURCE = "https://www.ponomarenko.info/tid2013.htm (tid2013.rar)"
TID2013_LAYOUT = (f"DATA_ROOT/{TID2013_FOLDER}/{TID2013_TABLE} (lines 'MOS file name') and "
                  f"DATA_ROOT/{TID2013_FOLDER}/{TID2013_DISTORTED}/i01_01_1.bmp ...")


def read_tid2013(data_root) -> tuple[list[Path], np.ndarray]:
    """The distorted images' paths and their MOS ``(N,)`` float64, in the order of ``mos_with_names.txt``; a
    missing table or listed image is an error naming the file and the data set's source."""
    if data_root is None:
        raise DataNotFoundError(f"TID2013 needs a data_root (run with --data-root DIR); expected {TID2013_LAYOUT}")
    folder = Path(data_root).expanduser() / TID2013_FOLDER
    table, distorted = folder / TID2013_TABLE, folder / TID2013_DISTORTED
    for path in (table, distorted):
        if not path.exists():
            raise DataNotFoundError(f"TID2013: {path} is missing; expected {TID2013_LAYOUT}; get it from "
                                    f"{TID2013_SOURCE}")
    by_name = {path.name.lower(): path for path in distorted.iterdir()}
    paths, scores = [], []
    for number, line in enumerate(table.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2:
            raise ValueError(f"{table}:{number}: expected '<MOS> <file name>', got {line!r}")
        score, name = fields
        if name.lower() not in by_name:
            raise DataNotFoundError(f"TID2013: {distorted / name} is listed in {table} but missing; get the "
                                    f"archive from {TID2013_SOURCE}")
        paths.append(by_name[name.lower()])
        scores.append(float(score))
    if not paths:
        raise DataNotFoundError(f"{table} lists no images; expected {TID2013_LAYOUT}")
    return paths, np.asarray(scores, dtype=np.float64)
