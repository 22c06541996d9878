"""The Semantic Scholar venue subsets of Kobs 2023, Ch. 8 (Sec. 3.6.2), extracted at the ``paper`` profile
from the Semantic Scholar Open Research Corpus in its published layout.

**Expected files.** The corpus release of 2019-01-31 (the thesis' release, Sec. 3.6.2, footnote 12), as
the public bucket ``ai2-s2-research-public/open-corpus/`` ships it, under ``<data_root>``::

    corpus-2019-01-31/
        manifest.txt           optional: the shard names, one a line (checked when present)
        s2-corpus-00.gz        gzipped JSON lines, one paper record a line
        s2-corpus-01.gz
        ...                    (every ``s2-corpus-*.gz`` in the folder is read, in name order)

Each record is a JSON object with (among others) ``id``, ``title``, ``paperAbstract``, ``entities`` (a list
of key phrases), ``venue``, ``journalName``, ``year``, ``sources`` (e.g. ``["Medline"]`` or ``["DBLP"]``),
``authors``, ``inCitations``, ``outCitations``, ``doi`` and ``pmid``. Later releases add ``fieldsOfStudy``;
it is not needed and ignored.

**The thesis' extraction** (Sec. 3.6.2), what :func:`load_venue_subset` does:

* Fields: title = ``title``, abstract = ``paperAbstract``, keywords = ``entities``, venue = ``venue``, or
  ``journalName`` where ``venue`` is empty. Only papers with all four ("no input information is missing").
* **AI**: papers of the AI venues of Kersting et al., matched by hand to Semantic Scholar's venue strings
  (77 venues in the thesis), plus a class ``non-AI`` of 20,000 papers from other venues. The thesis does not
  publish its matching; :data:`AI_VENUES` is our reconstruction (one class per venue, each with the venue
  strings Semantic Scholar uses for it), so the number of classes can differ from 78. The ``non-AI``
  papers are a seeded uniform sample (reservoir sampling over the stream) of the complete papers of every
  other venue that are not from Medline.
* **Medicine**: papers whose ``sources`` contain ``Medline``, of the 78 venues with the most such complete
  papers (a first pass over the shards counts them).

Everything is streamed: the shards are read line by line, twice for medicine (count, then collect), and
only the chosen papers' raw strings are kept; tokenisation happens later, lazily
(:class:`~domainknowledge.chapters.venue_attribution.TokenizedTexts`).
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from domainknowledge.data.bundled import DataNotFoundError, data_root_folder

__all__ = ["AI_VENUES", "FOLDER", "MANIFEST", "MEDICINE_VENUES", "NON_AI", "NON_AI_PAPERS", "SHARD_PATTERN",
           "SUBSETS", "iter_records", "load_venue_subset", "paper_fields", "shard_paths"]

FOLDER = "corpus-2019-01-31"
MANIFEST = "manifest.txt"
SHARD_PATTERN = "s2-corpus-*.gz"
SUBSETS = ("ai", "medicine")
NON_AI = "non-AI"
NON_AI_PAPERS = 20_000          # Sec. 3.6.2
MEDICINE_VENUES = 78            # Sec. 3.6.2: the 78 largest Medline venues
MEDLINE = "Medline"
_LAYOUT = (f"<data_root>/{FOLDER}/{SHARD_PATTERN} (gzipped JSON lines with title, paperAbstract, entities, venue, "
           "journalName, sources), the Semantic Scholar Open Research Corpus release 2019-01-31, e.g. "
           "`aws s3 cp --recursive s3://ai2-s2-research-public/open-corpus/2019-01-31/ <data_root>/corpus-2019-01-31/`")

#: The AI venues (class name -> the venue strings Semantic Scholar writes for it), our reconstruction of the
#: thesis' manual matching of Kersting et al.'s list (Sec. 3.6.2; the thesis names NAACL, EMNLP, INTERSPEECH,
#: CVPR, ECCV, ICCV, ICML, AAAI, RSS, ECML and CoRL). Matching is case-insensitive on the whole string.
AI_VENUES: dict[str, tuple[str, ...]] = {
    "AAAI": ("AAAI",), "IJCAI": ("IJCAI",), "ECAI": ("ECAI",), "NeurIPS": ("NIPS", "NeurIPS"),
    "ICML": ("ICML",), "ICLR": ("ICLR",), "COLT": ("COLT",), "UAI": ("UAI",), "AISTATS": ("AISTATS",),
    "ECML": ("ECML/PKDD", "ECML", "ECML PKDD"), "JMLR": ("Journal of Machine Learning Research", "JMLR"),
    "Machine Learning": ("Machine Learning",), "ALT": ("ALT",), "ACML": ("ACML",),
    "CVPR": ("CVPR", "2016 IEEE Conference on Computer Vision and Pattern Recognition (CVPR)"),
    "ICCV": ("ICCV", "2017 IEEE International Conference on Computer Vision (ICCV)"), "ECCV": ("ECCV",),
    "BMVC": ("BMVC",), "WACV": ("WACV",), "ACCV": ("ACCV",),
    "TPAMI": ("IEEE Transactions on Pattern Analysis and Machine Intelligence", "TPAMI"),
    "IJCV": ("International Journal of Computer Vision", "IJCV"),
    "ACL": ("ACL",), "EMNLP": ("EMNLP",), "NAACL": ("NAACL", "HLT-NAACL", "NAACL-HLT"), "EACL": ("EACL",),
    "COLING": ("COLING",), "CoNLL": ("CoNLL",), "LREC": ("LREC",), "TACL": ("TACL",),
    "Computational Linguistics": ("Computational Linguistics",),
    "INTERSPEECH": ("INTERSPEECH",), "ICASSP": ("ICASSP",),
    "ICRA": ("ICRA", "2017 IEEE International Conference on Robotics and Automation (ICRA)"),
    "IROS": ("IROS", "2017 IEEE/RSJ International Conference on Intelligent Robots and Systems (IROS)"),
    "RSS": ("Robotics: Science and Systems",), "CoRL": ("CoRL",),
    "IJRR": ("I. J. Robotics Res.", "The International Journal of Robotics Research"),
    "KR": ("KR",), "ICAPS": ("ICAPS",), "JAIR": ("J. Artif. Intell. Res.", "Journal of Artificial Intelligence Research"),
    "Artificial Intelligence": ("Artif. Intell.", "Artificial Intelligence"), "CP": ("CP",), "SAT": ("SAT",),
    "AAMAS": ("AAMAS",), "EC": ("EC",), "KDD": ("KDD",), "ICDM": ("ICDM",), "SDM": ("SDM",), "WSDM": ("WSDM",),
    "CIKM": ("CIKM",), "SIGIR": ("SIGIR",), "WWW": ("WWW",), "RecSys": ("RecSys",), "ECIR": ("ECIR",),
    "PAKDD": ("PAKDD",), "ILP": ("ILP",), "GECCO": ("GECCO",), "IEEE TNNLS": ("IEEE Transactions on Neural Networks and Learning Systems",),
    "Neural Computation": ("Neural Computation",), "Neural Networks": ("Neural Networks",),
    "Neurocomputing": ("Neurocomputing",), "Pattern Recognition": ("Pattern Recognition",),
    "IEEE TKDE": ("IEEE Transactions on Knowledge and Data Engineering",),
    "DMKD": ("Data Mining and Knowledge Discovery",), "ICMR": ("ICMR",), "ACM Multimedia": ("ACM Multimedia",),
    "HRI": ("HRI",), "ISWC": ("ISWC", "International Semantic Web Conference"), "ESWC": ("ESWC",),
    "ICLP": ("ICLP",), "CADE": ("CADE",), "IJAR": ("Int. J. Approx. Reasoning",), "ECIR-IR": ("Inf. Retr.",),
}


def _ai_lookup() -> dict[str, str]:
    return {alias.casefold(): name for name, aliases in AI_VENUES.items() for alias in aliases}


def shard_paths(data_root) -> list[Path]:
    """The corpus shards under ``<data_root>/corpus-2019-01-31`` in name order; with a ``manifest.txt``, every
    shard it lists must be there. Raises :class:`DataNotFoundError` naming what is missing and the layout."""
    folder = data_root_folder(data_root, FOLDER, "the Semantic Scholar Open Research Corpus", _LAYOUT)
    manifest = folder / MANIFEST
    if manifest.is_file():
        listed = [Path(line.strip()).name for line in manifest.read_text().splitlines()
                  if line.strip() and Path(line.strip()).name.startswith("s2-corpus-")]
        missing = [name for name in listed if not (folder / name).is_file()]
        if missing:
            raise DataNotFoundError(f"{folder} lacks {len(missing)} shard(s) its {MANIFEST} lists "
                                    f"({', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}); expected {_LAYOUT}")
    shards = sorted(folder.glob(SHARD_PATTERN))
    if not shards:
        raise DataNotFoundError(f"{folder} holds no {SHARD_PATTERN} shard; expected {_LAYOUT}")
    return shards


def iter_records(shards) -> Iterator[dict]:
    """Every record of the gzipped JSON-lines ``shards``, one dict at a time (streamed; nothing kept)."""
    for shard in shards:
        with gzip.open(shard, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{shard} line {number} is not a JSON object ({error.msg}); the corpus "
                                     "shards hold one paper record per line") from None
                if not isinstance(record, dict):
                    raise ValueError(f"{shard} line {number} is a JSON {type(record).__name__}, not a paper record")
                yield record


def paper_fields(record: dict) -> tuple[str, str, list[str], str] | None:
    """``(title, abstract, keywords, venue)`` of a record, or None when one is missing (Sec. 3.6.2: only
    papers where no input information is missing). Keywords are ``entities``; the venue is ``venue``, else
    ``journalName``."""
    title, abstract, keywords = record.get("title"), record.get("paperAbstract"), record.get("entities")
    venue = record.get("venue") or record.get("journalName")
    if not (isinstance(title, str) and title.strip() and isinstance(abstract, str) and abstract.strip()
            and isinstance(keywords, list) and any(isinstance(k, str) and k.strip() for k in keywords)
            and isinstance(venue, str) and venue.strip()):
        return None
    return title, abstract, [k for k in keywords if isinstance(k, str) and k.strip()], venue.strip()


def _is_medline(record: dict) -> bool:
    sources = record.get("sources") or ()
    return MEDLINE in sources if isinstance(sources, list) else False


def load_venue_subset(data_root, subset: str, limit: int | None = None, *, seed: int = 0,
                      non_ai_papers: int = NON_AI_PAPERS, medicine_venues: int = MEDICINE_VENUES) -> dict:
    """The papers of ``subset`` (``ai`` or ``medicine``) extracted from the corpus shards as Sec. 3.6.2 says
    (module docstring): a dict with ``titles`` and ``abstracts`` (N strings), ``keywords`` (N lists of
    strings), ``venues`` ``(N,)`` int64 indices into ``venue_names`` (sorted class names). ``limit`` keeps
    the first ``limit`` chosen papers of the stream (all when None); the ``non-AI`` sample is drawn with
    ``seed``."""
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be positive or None, got {limit}")
    shards = shard_paths(data_root)
    titles, abstracts, keywords, venues = [], [], [], []

    def keep(fields, venue):
        titles.append(fields[0])
        abstracts.append(fields[1])
        keywords.append(fields[2])
        venues.append(venue)

    if subset == "ai":
        lookup, rng, reservoir, seen = _ai_lookup(), np.random.default_rng(seed), [], 0
        for record in iter_records(shards):
            fields = paper_fields(record)
            if fields is None:
                continue
            name = lookup.get(fields[3].casefold())
            if name is not None:
                if limit is None or len(titles) < limit:
                    keep(fields, name)
            elif not _is_medline(record):                       # reservoir sample of the other venues
                seen += 1
                if len(reservoir) < non_ai_papers:
                    reservoir.append(fields)
                else:
                    slot = int(rng.integers(seen))
                    if slot < non_ai_papers:
                        reservoir[slot] = fields
        for fields in reservoir:
            keep(fields, NON_AI)
    else:
        counts = Counter(fields[3] for record in iter_records(shards) if _is_medline(record)
                         for fields in [paper_fields(record)] if fields is not None)
        chosen = {venue for venue, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:medicine_venues]}
        for record in iter_records(shards):
            if limit is not None and len(titles) >= limit:
                break
            fields = paper_fields(record) if _is_medline(record) else None
            if fields is not None and fields[3] in chosen:
                keep(fields, fields[3])
    if len(set(venues)) < 2:
        raise ValueError(f"the corpus under {shards[0].parent} gives {len(set(venues))} venue(s) for {subset!r}; "
                         "a recommender needs at least two (are these the right shards?)")
    names = tuple(sorted(set(venues)))
    index = {name: i for i, name in enumerate(names)}
    return {"titles": titles, "abstracts": abstracts, "keywords": keywords,
            "venues": np.asarray([index[v] for v in venues], dtype=np.int64), "venue_names": names}
