"""The Semantic Scholar venue subsets of Kobs 2023, Ch. 8 (Sec. 3.6.2), read from ``data_root`` at the
``paper`` profile.

The thesis extracts, from the Semantic Scholar dump of 2019-01-31, the papers of 77 AI venues plus 20,000
"non-AI" papers (245,573 in all) and the papers of the 78 largest Medline venues (2,924,609), keeping only
papers with a title, an abstract and keywords. The dump cannot be downloaded here; the ``paper`` profile
expects one JSON-lines file per subset under ``<data_root>/semantic_scholar_venues/``:

* ``ai.jsonl`` and ``medicine.jsonl``: one paper per line, a JSON object with the keys ``title``
  (string), ``abstract`` (string), ``keywords`` (list of strings) and ``venue`` (string; ``non-AI`` for
  the AI subset's extra class).

A paper with an empty title, abstract or keyword list is skipped, as in the thesis. The loaders raise
:class:`~domainknowledge.data.bundled.DataNotFoundError` naming the missing file and this layout.
"""

from __future__ import annotations

import json
import numpy as np

from domainknowledge.data.bundled import DataNotFoundError, data_root_folder

__all__ = ["FOLDER", "SUBSETS", "load_venue_subset"]

FOLDER = "semantic_scholar_venues"
SUBSETS = ("ai", "medicine")
_LAYOUT = (f"<data_root>/{FOLDER}/ai.jsonl and medicine.jsonl, one JSON object per line with the keys title, "
           "abstract, keywords (a list of strings) and venue, extracted from the Semantic Scholar dump "
           "(Kobs 2023, Sec. 3.6.2)")


def load_venue_subset(data_root, subset: str, limit: int | None = None) -> dict:
    """The papers of ``subset`` (``ai`` or ``medicine``): a dict with ``titles`` and ``abstracts`` (N
    strings), ``keywords`` (N lists), ``venues`` ``(N,)`` int64 indices into ``venue_names`` (sorted
    names). At most ``limit`` complete papers are read (all when None)."""
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
    path = data_root_folder(data_root, FOLDER, "the Semantic Scholar venue subsets", _LAYOUT) / f"{subset}.jsonl"
    if not path.is_file():
        raise DataNotFoundError(f"{path} is missing; expected {_LAYOUT}")
    titles, abstracts, keywords, venues = [], [], [], []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                paper = json.loads(line)
                title, abstract, words, venue = (paper["title"], paper["abstract"], paper["keywords"], paper["venue"])
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                raise ValueError(f"{path} line {number}: not a JSON object with title, abstract, keywords and "
                                 f"venue ({error})") from None
            if not (isinstance(title, str) and title.strip() and isinstance(abstract, str) and abstract.strip()
                    and isinstance(words, list) and words and isinstance(venue, str) and venue.strip()):
                continue
            titles.append(title)
            abstracts.append(abstract)
            keywords.append([str(w) for w in words])
            venues.append(venue.strip())
            if limit is not None and len(titles) >= limit:
                break
    if not titles:
        raise ValueError(f"{path} holds no complete paper (title, abstract, keywords and venue)")
    names = tuple(sorted(set(venues)))
    index = {name: i for i, name in enumerate(names)}
    return {"titles": titles, "abstracts": abstracts, "keywords": keywords,
            "venues": np.asarray([index[v] for v in venues], dtype=np.int64), "venue_names": names}

