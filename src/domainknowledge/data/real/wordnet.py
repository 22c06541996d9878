"""WordNet's noun hierarchy read from its published database files, and the Wu-Palmer similarity of two nouns.

WordNet 3.0 (Miller 1995) is distributed in the "WNDB" layout: one folder with ``index.noun`` (a lemma, its
counts, then the byte offsets of its synsets, most frequent sense first) and ``data.noun`` (one synset per
line, at that byte offset: its words, then pointers such as ``@`` hypernym and ``@i`` instance hypernym).
Debian's package ``wordnet-base`` installs that folder as ``/usr/share/wordnet`` (``tools/setup`` installs it
where it can); ``DK_WORDNET_DIR`` or the ``folder`` argument points elsewhere.

Only what a class-similarity matrix needs is read: the hypernym graph of the nouns. The Wu-Palmer similarity
(Wu and Palmer 1994), as NLTK computes it, is

    wup(s1, s2) = 2 depth(lcs) / (len(s1, lcs) + len(s2, lcs) + 2 depth(lcs)),

where ``lcs`` is the deepest common hypernym, ``depth`` counts the synsets on the longest path from the root
(``entity``) to a synset, the root included, and ``len`` is the shortest number of hypernym links.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

__all__ = ["DEFAULT_WORDNET_DIR", "HYPERNYM_POINTERS", "NounHierarchy", "WordNetNotFoundError", "load_noun_hierarchy",
           "wordnet_dir"]

DEFAULT_WORDNET_DIR = Path("/usr/share/wordnet")
HYPERNYM_POINTERS = ("@", "@i")
REQUIRED_FILES = ("index.noun", "data.noun")


class WordNetNotFoundError(FileNotFoundError):
    """WordNet's database files are not where they were looked for."""


def wordnet_dir(folder: str | os.PathLike | None = None) -> Path:
    """The WNDB folder: ``folder``, else ``$DK_WORDNET_DIR``, else :data:`DEFAULT_WORDNET_DIR`; checked to hold
    ``index.noun`` and ``data.noun``."""
    chosen = Path(folder or os.environ.get("DK_WORDNET_DIR") or DEFAULT_WORDNET_DIR)
    missing = [name for name in REQUIRED_FILES if not (chosen / name).is_file()]
    if missing:
        raise WordNetNotFoundError(
            f"WordNet's noun database is not in {chosen} (missing {', '.join(missing)}). Install WordNet 3.0 in its "
            "published WNDB layout, e.g. 'sudo apt-get install wordnet-base' (Debian, gives /usr/share/wordnet; "
            "`make setup` does this when run as root), or set DK_WORDNET_DIR to a folder with index.noun and data.noun.")
    return chosen


@dataclass
class NounHierarchy:
    """The noun synsets' hypernym graph: ``senses[lemma]`` synset offsets (most frequent first),
    ``hypernyms[offset]`` the offsets of its hypernyms, ``words[offset]`` its words."""

    senses: dict[str, tuple[int, ...]]
    hypernyms: dict[int, tuple[int, ...]]
    words: dict[int, tuple[str, ...]]
    _depth: dict[int, int] = field(default_factory=dict, repr=False)

    def synset(self, lemma: str, sense: int = 1) -> int:
        """The offset of the ``sense``-th (1-based, by frequency) noun synset of ``lemma`` (spaces or
        underscores, any case)."""
        key = lemma.strip().lower().replace(" ", "_")
        if key not in self.senses:
            raise KeyError(f"{lemma!r} is not a WordNet noun; choose a lemma WordNet lists (e.g. 'boot' for 'ankle boot')")
        offsets = self.senses[key]
        if not 1 <= sense <= len(offsets):
            raise KeyError(f"{lemma!r} has {len(offsets)} noun sense(s), not {sense}")
        return offsets[sense - 1]

    def ancestors(self, offset: int) -> dict[int, int]:
        """Every hypernym of ``offset`` and the synset itself -> the shortest number of hypernym links to it."""
        distance, frontier = {offset: 0}, [offset]
        while frontier:
            following = []
            for node in frontier:
                for parent in self.hypernyms.get(node, ()):
                    if parent not in distance:
                        distance[parent] = distance[node] + 1
                        following.append(parent)
            frontier = following
        return distance

    def depth(self, offset: int) -> int:
        """Synsets on the longest hypernym path from the root to ``offset``, both ends included (root: 1)."""
        if offset not in self._depth:
            parents = self.hypernyms.get(offset, ())
            self._depth[offset] = 1 + max((self.depth(p) for p in parents), default=0)
        return self._depth[offset]

    def wup_similarity(self, first: int, second: int) -> float:
        """Wu-Palmer similarity in ``(0, 1]`` of two synset offsets (module docstring); 1 for the same synset."""
        up_first, up_second = self.ancestors(first), self.ancestors(second)
        common = set(up_first) & set(up_second)
        if not common:
            return 0.0
        lcs = max(common, key=lambda node: (self.depth(node), -(up_first[node] + up_second[node])))
        depth = self.depth(lcs)
        return 2.0 * depth / (up_first[lcs] + up_second[lcs] + 2.0 * depth)


def _read_index(path: Path) -> dict[str, tuple[int, ...]]:
    senses = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.startswith(" "):          # the licence header
                continue
            fields = line.split()
            synset_count, pointer_count = int(fields[2]), int(fields[3])
            offsets = fields[4 + pointer_count + 2:]
            senses[fields[0]] = tuple(int(o) for o in offsets[:synset_count])
    return senses


def _read_data(path: Path) -> tuple[dict[int, tuple[int, ...]], dict[int, tuple[str, ...]]]:
    hypernyms, words = {}, {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.startswith(" "):
                continue
            fields = line.split(" | ")[0].split()
            offset, word_count = int(fields[0]), int(fields[3], 16)
            names = fields[4:4 + 2 * word_count:2]
            position = 4 + 2 * word_count
            pointer_count = int(fields[position])
            pointers = fields[position + 1:position + 1 + 4 * pointer_count]
            parents = tuple(int(pointers[k + 1]) for k in range(0, len(pointers), 4)
                            if pointers[k] in HYPERNYM_POINTERS and pointers[k + 2] == "n")
            hypernyms[offset], words[offset] = parents, tuple(names)
    return hypernyms, words


@lru_cache(maxsize=2)
def _load(folder: Path) -> NounHierarchy:
    return NounHierarchy(_read_index(folder / "index.noun"), *_read_data(folder / "data.noun"))


def load_noun_hierarchy(folder: str | os.PathLike | None = None) -> NounHierarchy:
    """WordNet's noun hierarchy from a WNDB folder (see :func:`wordnet_dir`); read once per process."""
    return _load(wordnet_dir(folder).resolve())
