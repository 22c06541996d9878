"""The Twitch sentiment data of Kobs 2023, Ch. 15, read from ``data_root`` at the ``paper`` profile.

Neither the crowd-labelled messages nor the crawl can be downloaded here, so the ``paper`` profile expects
them under ``<data_root>/twitch/``:

* ``labelled.csv``: the evaluation set, UTF-8 CSV with a header and the columns ``message`` and ``label``
  (``negative``, ``neutral`` or ``positive``); the thesis' set has 1,922 rows (Sec. 3.7.2);
* ``messages.txt``: the unlabelled crawl, one message per line, UTF-8 (the thesis used 3,069,046,977);
  only the first ``limit`` lines are read;
* ``emote_survey.csv`` (optional): the full emote survey, columns ``emote``, ``negative``, ``neutral``,
  ``positive`` and optionally ``unknown`` (vote counts). Without it the emote lexicon is the 11 rows of
  Table 15.1.

Each loader raises :class:`~domainknowledge.data.bundled.DataNotFoundError` naming the missing file and the
layout above.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np

from domainknowledge.data.bundled import DataNotFoundError, data_root_folder

__all__ = ["LABEL_NAMES", "load_emote_survey", "load_labelled_messages", "load_unlabelled_messages", "twitch_folder"]

LABEL_NAMES = ("negative", "neutral", "positive")
_LAYOUT = ("<data_root>/twitch/ with labelled.csv (columns message,label), messages.txt (one message per "
           "line) and optionally emote_survey.csv (columns emote,negative,neutral,positive[,unknown])")


def twitch_folder(data_root) -> Path:
    """``<data_root>/twitch``, or a :class:`DataNotFoundError` that says what to put where."""
    return data_root_folder(data_root, "twitch", "the Twitch data", _LAYOUT)


def _require(path: Path) -> Path:
    if not path.is_file():
        raise DataNotFoundError(f"{path} is missing; expected {_LAYOUT}")
    return path


def _read_rows(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = set(required) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path} lacks the columns {sorted(missing)}; its header is {reader.fieldnames}")
        return list(reader)


def load_labelled_messages(data_root) -> tuple[list[str], np.ndarray]:
    """The crowd-labelled evaluation messages and their labels ``(N,)`` int64 (0 negative, 1 neutral,
    2 positive)."""
    path = _require(twitch_folder(data_root) / "labelled.csv")
    rows = _read_rows(path, ("message", "label"))
    texts, labels = [], []
    for number, row in enumerate(rows, start=2):
        label = row["label"].strip().lower()
        if label not in LABEL_NAMES:
            raise ValueError(f"{path} line {number}: label {row['label']!r} is not one of {LABEL_NAMES}")
        texts.append(row["message"])
        labels.append(LABEL_NAMES.index(label))
    if not texts:
        raise ValueError(f"{path} holds no messages")
    return texts, np.asarray(labels, dtype=np.int64)


def load_unlabelled_messages(data_root, limit: int | None = None) -> list[str]:
    """The first ``limit`` non-empty lines of ``messages.txt`` (all of them when ``limit`` is None)."""
    path = _require(twitch_folder(data_root) / "messages.txt")
    with open(path, encoding="utf-8") as handle:
        lines = (line.rstrip("\n") for line in handle)
        messages = list(itertools.islice((line for line in lines if line.strip()), limit))
    if not messages:
        raise ValueError(f"{path} holds no messages")
    return messages


def load_emote_survey(data_root) -> dict[str, tuple[int, ...]] | None:
    """The full emote survey as ``{emote: (negative, neutral, positive[, unknown])}``, or None without
    ``emote_survey.csv`` (the chapter then uses Table 15.1's rows)."""
    path = twitch_folder(data_root) / "emote_survey.csv"
    if not path.is_file():
        return None
    rows = _read_rows(path, ("emote", "negative", "neutral", "positive"))
    columns = ("negative", "neutral", "positive") + (("unknown",) if rows and "unknown" in rows[0] else ())
    return {row["emote"].strip(): tuple(int(row[column]) for column in columns) for row in rows}
