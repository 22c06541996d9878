"""The Movie Posters set of Chu and Guo (2017), read in its published layout.

The authors publish two archives (https://www.cs.ccu.edu.tw/~wtchu/projects/MoviePoster/index.html), unpacked
under ``<data_root>/MoviePosters/``:

* ``Movie_Poster_Dataset.zip`` -> ``Movie_Poster_Dataset/<year>/<imdbID>.jpg``, one folder per release year
  1980-2015;
* ``Movie_Poster_Metadata.zip`` -> ``groundtruth/<year>.txt`` (kept as ``Movie_Poster_Metadata/groundtruth/``
  or as ``groundtruth/``): per year, the OMDb records of its movies as a MongoDB export, one JSON object after
  the other, each with an ``"_id" : ObjectId("...")`` entry and the OMDb fields (``"Title"``, ``"Genre"``,
  ``"Country"``, ``"imdbID"``, ...; several genres or countries are comma-separated). Most files are UTF-16
  (with a byte-order mark), a few UTF-8: the "non-standard encoding" that let Kobs (2023, Sec. 2.5.1) read
  8,052 of the posters.

:func:`read_movie_posters` reads every record it can decode (a record that is not valid JSON after the
``ObjectId(...)`` wrapper is removed is skipped and counted), keeps those whose poster file exists (the first
record of a duplicated ``imdbID``), and labels each poster with its first listed genre and first listed
country (``""`` where the field is missing or ``N/A``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from domainknowledge.data.bundled import DataNotFoundError

__all__ = ["METADATA_FOLDERS", "MOVIE_POSTERS_FOLDER", "MOVIE_POSTERS_SOURCE", "MoviePosters", "POSTER_FOLDER",
           "decode_metadata", "parse_metadata_records", "read_movie_posters"]

MOVIE_POSTERS_FOLDER = "MoviePosters"
MOVIE_POSTERS_SOURCE = ("https://www.cs.ccu.edu.tw/~wtchu/projects/MoviePoster/index.html (Movie_Poster_Dataset.zip "
                        "and Movie_Poster_Metadata.zip)")
POSTER_FOLDER = "Movie_Poster_Dataset"
#: where the metadata archive's ``groundtruth/`` folder is looked for, in this order
METADATA_FOLDERS = ("Movie_Poster_Metadata/groundtruth", "groundtruth")
_OBJECT_ID = re.compile(r'ObjectId\(\s*("[^"]*")\s*\)')


@dataclass(frozen=True)
class MoviePosters:
    """The readable posters: ``paths`` ``(N,)``, ``genres`` and ``countries`` ``(N,)`` str (the first listed,
    ``""`` where unknown), ``imdb_ids`` ``(N,)``, and how many records were ``skipped`` (undecodable) and
    how many had ``no_poster`` file."""

    paths: list[Path]
    genres: np.ndarray
    countries: np.ndarray
    imdb_ids: np.ndarray
    skipped: int
    no_poster: int


def _missing(path: Path, why: str = "is missing") -> DataNotFoundError:
    return DataNotFoundError(f"Movie Posters: {path} {why}; get the data set from {MOVIE_POSTERS_SOURCE} and unpack "
                             f"both archives into <data_root>/{MOVIE_POSTERS_FOLDER}/ (which must hold "
                             f"{POSTER_FOLDER}/<year>/<imdbID>.jpg and {METADATA_FOLDERS[0]}/<year>.txt)")


def decode_metadata(raw: bytes) -> str:
    """A metadata file's text: UTF-16 where it has a byte-order mark or NUL bytes, else UTF-8 (undecodable
    bytes replaced)."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16", errors="replace")
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8", errors="replace")
    if b"\x00" in raw[:200]:
        return raw.decode("utf-16-le", errors="replace")
    return raw.decode("utf-8", errors="replace")


def parse_metadata_records(text: str) -> tuple[list[dict], int]:
    """The JSON objects of a MongoDB export (``ObjectId("x")`` read as ``"x"``), and how many objects could
    not be parsed (each skipped up to the next line that opens an object)."""
    text = _OBJECT_ID.sub(r"\1", text)
    decoder, records, skipped, position = json.JSONDecoder(), [], 0, 0
    while True:
        start = text.find("{", position)
        if start < 0:
            return records, skipped
        try:
            record, position = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            skipped += 1
            following = text.find("\n{", start + 1)
            if following < 0:
                return records, skipped
            position = following + 1
            continue
        if isinstance(record, dict):
            records.append(record)


def _first(value) -> str:
    first = str(value or "").split(",")[0].strip()
    return "" if first in ("N/A", "null", "None") else first


def read_movie_posters(data_root) -> MoviePosters:
    """Every readable poster under ``data_root`` (module docstring) with its genre and country."""
    if data_root is None:
        raise DataNotFoundError(f"Movie Posters need a data_root (run with --data-root DIR) holding "
                                f"{MOVIE_POSTERS_FOLDER}/ from {MOVIE_POSTERS_SOURCE}")
    folder = Path(data_root).expanduser() / MOVIE_POSTERS_FOLDER
    posters = folder / POSTER_FOLDER
    if not posters.is_dir():
        raise _missing(posters)
    metadata = next((folder / name for name in METADATA_FOLDERS if (folder / name).is_dir()), None)
    if metadata is None:
        raise _missing(folder / METADATA_FOLDERS[0])
    files = sorted(metadata.glob("*.txt"))
    if not files:
        raise _missing(metadata / "<year>.txt", "(one metadata file per year) is missing")
    paths, genres, countries, ids, seen, skipped, no_poster = [], [], [], [], set(), 0, 0
    for file in files:
        records, bad = parse_metadata_records(decode_metadata(file.read_bytes()))
        skipped += bad
        for record in records:
            imdb_id = str(record.get("imdbID", "")).strip()
            if not imdb_id or imdb_id in seen:
                continue
            poster = posters / file.stem / f"{imdb_id}.jpg"
            if not poster.is_file():
                no_poster += 1
                continue
            seen.add(imdb_id)
            paths.append(poster)
            genres.append(_first(record.get("Genre")))
            countries.append(_first(record.get("Country")))
            ids.append(imdb_id)
    if not paths:
        raise _missing(posters / "<year>/<imdbID>.jpg", f"exists for none of the records in {metadata}")
    return MoviePosters(paths, np.asarray(genres, dtype=str), np.asarray(countries, dtype=str),
                        np.asarray(ids, dtype=str), skipped, no_poster)
