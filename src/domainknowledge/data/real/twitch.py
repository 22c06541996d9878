"""The Twitch sentiment data of Kobs 2023, Ch. 15, read in the form the authors published it.

The thesis' labelled evaluation comments and its three lexica are published with the code of Kobs et al.
(2020), "Emote-Controlled", in the repository https://github.com/konstantinkobs/emote-controlled; the
unlabelled comments of April to June 2018 are downloads linked from that repository's README. The ``paper``
profile expects a checkout of the repository as ``<data_root>/twitch/``, with the unlabelled months unpacked
into ``unlabeled/`` beside it (none of it is committed to this project)::

    <data_root>/twitch/
        data/labeled_dataset.csv       the evaluation set: header sentiment,date,channel,game,user,mod,
                                       subscriber,message; sentiment -1 (negative), 0 (neutral), 1 (positive)
        lexica/emote_distribution.tsv  word<TAB>positive<TAB>neutral<TAB>negative (class shares; the columns
        lexica/emoji_distribution.tsv  are found by name, vader_distribution.tsv orders them
        lexica/vader_distribution.tsv  positive, negative, neutral)
        lexica/emote_average.tsv       word<TAB>sentiment (a score in [-1, 1]; the published
        lexica/emoji_average.tsv       vader_average.tsv separates its header by spaces)
        lexica/vader_average.tsv
        unlabeled/*.csv                the unlabelled months: no header, date,channel,game,user,mod,
                                       subscriber,message (the README's "Unlabeled dataset" downloads)

Duplicate words are resolved as the authors' classifiers do: a distribution lexicon keeps a word's last row
(``pandas.drop_duplicates(keep="last")``), an average lexicon its first. The emote lexicon is the thesis'
whole survey of the top-100 emotes (Table 15.1 prints 11 of its rows); its words are kept verbatim by the
tokenizer, the others are looked up as the tokenizer writes them.

Each loader raises :class:`~domainknowledge.data.bundled.DataNotFoundError` naming the missing file, the
layout above and where the file comes from; a malformed file raises ``ValueError`` naming the file and line.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from domainknowledge.data.bundled import DataNotFoundError, data_root_folder
from domainknowledge.principles import weak_labels

__all__ = ["LABELLED_COLUMNS", "LABELLED_CSV", "LEXICA_FOLDER", "LEXICON_NAMES", "REPOSITORY", "SENTIMENT_CLASSES",
           "UNLABELLED_COLUMNS", "UNLABELLED_FOLDER", "iter_unlabelled_messages", "lexicon_paths",
           "load_labelled_messages", "load_lexica", "load_unlabelled_messages", "twitch_folder"]

REPOSITORY = "https://github.com/konstantinkobs/emote-controlled"
FOLDER = "twitch"
LABELLED_CSV = "data/labeled_dataset.csv"
LABELLED_COLUMNS = ("sentiment", "date", "channel", "game", "user", "mod", "subscriber", "message")
LEXICA_FOLDER = "lexica"
LEXICON_NAMES = weak_labels.PRECEDENCE            # ("emote", "emoji", "vader"), the published file prefixes
UNLABELLED_FOLDER = "unlabeled"
UNLABELLED_COLUMNS = ("date", "channel", "game", "user", "mod", "subscriber", "message")
#: The published ``sentiment`` value of each class index (0 negative, 1 neutral, 2 positive).
SENTIMENT_CLASSES = {"-1": weak_labels.NEGATIVE, "0": weak_labels.NEUTRAL, "1": weak_labels.POSITIVE}

_LAYOUT = (f"<data_root>/{FOLDER}/ as a checkout of {REPOSITORY} ({LABELLED_CSV}, "
           f"{LEXICA_FOLDER}/<emote|emoji|vader>_<distribution|average>.tsv) with the unlabelled months of its "
           f"README's download links unpacked into {UNLABELLED_FOLDER}/*.csv")


def twitch_folder(data_root) -> Path:
    """``<data_root>/twitch``, or a :class:`DataNotFoundError` that says what to put where."""
    return data_root_folder(data_root, FOLDER, "the Twitch data of Kobs et al. (2020)", _LAYOUT)


def _require(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataNotFoundError(f"{path} is missing: {what}; expected {_LAYOUT}")
    return path


def load_labelled_messages(data_root) -> tuple[list[str], np.ndarray]:
    """The crowd-labelled evaluation comments of ``data/labeled_dataset.csv`` and their classes ``(N,)``
    int64 (0 negative, 1 neutral, 2 positive, from the published sentiment -1 / 0 / 1)."""
    path = _require(twitch_folder(data_root) / LABELLED_CSV,
                    f"the labelled evaluation comments, published in {REPOSITORY} as {LABELLED_CSV}")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"sentiment", "message"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path} lacks the columns {sorted(missing)} of the published header "
                             f"{','.join(LABELLED_COLUMNS)}; its header is {reader.fieldnames}")
        texts, labels = [], []
        for number, row in enumerate(reader, start=2):
            value = (row["sentiment"] or "").strip()
            if value not in SENTIMENT_CLASSES:
                raise ValueError(f"{path} line {number}: sentiment {row['sentiment']!r} is not one of -1, 0, 1")
            texts.append(row["message"] or "")
            labels.append(SENTIMENT_CLASSES[value])
    if not texts:
        raise ValueError(f"{path} holds no comments")
    return texts, np.asarray(labels, dtype=np.int64)


def lexicon_paths(data_root, name: str) -> tuple[Path, Path]:
    """The published ``(distribution, average)`` TSV files of the lexicon ``name`` (emote, emoji or vader)."""
    if name not in LEXICON_NAMES:
        raise ValueError(f"lexicon name must be one of {LEXICON_NAMES}, got {name!r}")
    folder = twitch_folder(data_root) / LEXICA_FOLDER
    return folder / f"{name}_distribution.tsv", folder / f"{name}_average.tsv"


def _tsv_rows(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a published lexicon TSV as ``{column: text}``; the header may be separated by tabs or
    spaces (vader_average.tsv), the rows by tabs (a word may contain spaces)."""
    with open(path, encoding="utf-8", newline="") as handle:
        header = handle.readline().rstrip("\r\n")
        names = header.split("\t") if "\t" in header else header.split()
        missing = set(columns) - set(names)
        if missing:
            raise ValueError(f"{path} lacks the columns {sorted(missing)}; its header is {names}")
        for number, line in enumerate(handle, start=2):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) != len(names):
                raise ValueError(f"{path} line {number} has {len(fields)} tab-separated fields, expected "
                                 f"{len(names)} ({', '.join(names)}): {line!r}")
            yield number, dict(zip(names, fields))


def _number(path: Path, number: int, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{path} line {number}: {text!r} is not a number") from None


def _read_lexicon(data_root, name: str) -> weak_labels.Lexicon:
    distribution_path, average_path = lexicon_paths(data_root, name)
    source = f"the {name} lexicon, published in {REPOSITORY} as {LEXICA_FOLDER}/{{path.name}}"
    distributions = {}
    for number, row in _tsv_rows(_require(distribution_path, source.format(path=distribution_path)),
                                 ("word", "negative", "neutral", "positive")):
        distributions[row["word"]] = tuple(_number(distribution_path, number, row[c])
                                           for c in ("negative", "neutral", "positive"))   # the last row wins
    scores = {}
    for number, row in _tsv_rows(_require(average_path, source.format(path=average_path)), ("word", "sentiment")):
        scores.setdefault(row["word"], _number(average_path, number, row["sentiment"]))      # the first row wins
    if not distributions:
        raise ValueError(f"{distribution_path} holds no words")
    return weak_labels.lexicon_from_tables(name, distributions, scores,
                                           emotes=distributions if name == "emote" else ())


def load_lexica(data_root) -> dict[str, weak_labels.Lexicon]:
    """The three published lexica, ``{"emote": ..., "emoji": ..., "vader": ...}``, each a
    :class:`~domainknowledge.principles.weak_labels.Lexicon` built by
    :func:`~domainknowledge.principles.weak_labels.lexicon_from_tables`; combine them with
    :func:`~domainknowledge.principles.weak_labels.combine_lexica` in the thesis' precedence."""
    return {name: _read_lexicon(data_root, name) for name in LEXICON_NAMES}


def _unlabelled_files(data_root) -> list[Path]:
    folder = twitch_folder(data_root) / UNLABELLED_FOLDER
    files = sorted(folder.rglob("*.csv")) if folder.is_dir() else []
    if not files:
        raise DataNotFoundError(f"no {folder}/*.csv: the unlabelled comments (April to June 2018) are the "
                                f"'Unlabeled dataset' downloads of {REPOSITORY}'s README, unpacked there; "
                                f"expected {_LAYOUT}")
    return files


def iter_unlabelled_messages(data_root) -> Iterator[str]:
    """The non-empty messages of ``unlabeled/*.csv`` (files in sorted order), streamed one at a time."""
    for path in _unlabelled_files(data_root):
        with open(path, newline="", encoding="utf-8") as handle:
            for number, row in enumerate(csv.reader(handle), start=1):
                if not row:
                    continue
                if len(row) < len(UNLABELLED_COLUMNS):
                    raise ValueError(f"{path} line {number} has {len(row)} fields, expected "
                                     f"{len(UNLABELLED_COLUMNS)} ({','.join(UNLABELLED_COLUMNS)}, no header)")
                message = ",".join(row[len(UNLABELLED_COLUMNS) - 1:])
                if message.strip():
                    yield message


def load_unlabelled_messages(data_root, limit: int | None = None) -> list[str]:
    """The first ``limit`` unlabelled messages (all of them when ``limit`` is None)."""
    messages = list(itertools.islice(iter_unlabelled_messages(data_root), limit))
    if not messages:
        raise ValueError(f"{twitch_folder(data_root) / UNLABELLED_FOLDER} holds no messages")
    return messages
