"""WordNet's noun hierarchy from its published WNDB files, and the Wu-Palmer similarity."""

import pytest

from domainknowledge.data.real.wordnet import (NounHierarchy, WordNetNotFoundError, load_noun_hierarchy,
                                               wordnet_dir)

LICENCE = "  1 This software and database is being provided to you, the LICENSEE, by Princeton University\n"
# entity <- animal <- {dog, cat}; entity <- artifact <- bag; "pup" is an instance of dog (@i); dog has 2 senses
DATA_NOUN = LICENCE + "".join(f"{line}\n" for line in (
    "00000001 03 n 01 entity 0 000 | that which exists",
    "00000002 05 n 01 animal 0 001 @ 00000001 n 0000 | a living organism",
    "00000003 05 n 02 dog 0 domestic_dog 0 001 @ 00000002 n 0000 | a member of the genus Canis",
    "00000004 05 n 01 cat 0 001 @ 00000002 n 0000 | a feline",
    "00000005 06 n 01 artifact 0 001 @ 00000001 n 0000 | a man-made object",
    "00000006 06 n 01 bag 0 001 @ 00000005 n 0000 | a container",
    "00000007 18 n 01 Pup 0 001 @i 00000003 n 0000 | a named dog",
    "00000008 18 n 01 dog 1 001 @ 00000001 n 0000 | a second, rarer sense",
))
INDEX_NOUN = LICENCE + "".join(f"{line}\n" for line in (
    "animal n 1 1 @ 1 0 00000002",
    "bag n 1 1 @ 1 0 00000006",
    "cat n 1 1 @ 1 0 00000004",
    "dog n 2 1 @ 2 1 00000003 00000008",
    "domestic_dog n 1 1 @ 1 0 00000003",
    "pup n 1 1 @i 1 0 00000007",
))


@pytest.fixture()
def tiny_wordnet(tmp_path):
    (tmp_path / "data.noun").write_text(DATA_NOUN)
    (tmp_path / "index.noun").write_text(INDEX_NOUN)
    return tmp_path


def test_the_tiny_hierarchy_is_read_with_senses_in_order(tiny_wordnet):
    nouns = load_noun_hierarchy(tiny_wordnet)
    assert nouns.synset("dog") == 3 and nouns.synset("Dog", sense=2) == 8 and nouns.synset("domestic dog") == 3
    assert nouns.words[3] == ("dog", "domestic_dog") and nouns.hypernyms[7] == (3,)     # @i counts as a hypernym
    assert [nouns.depth(o) for o in (1, 2, 3, 7)] == [1, 2, 3, 4]
    with pytest.raises(KeyError, match="not a WordNet noun"):
        nouns.synset("ankle boot")
    with pytest.raises(KeyError, match="2 noun sense"):
        nouns.synset("dog", sense=3)


def test_wu_palmer_by_hand(tiny_wordnet):
    nouns = load_noun_hierarchy(tiny_wordnet)
    dog, cat, bag, pup = (nouns.synset(n) for n in ("dog", "cat", "bag", "pup"))
    assert nouns.wup_similarity(dog, dog) == 1.0
    assert nouns.wup_similarity(dog, cat) == pytest.approx(2 * 2 / (1 + 1 + 2 * 2))      # lcs animal, depth 2
    assert nouns.wup_similarity(dog, bag) == pytest.approx(2 * 1 / (2 + 2 + 2 * 1))      # lcs entity, depth 1
    assert nouns.wup_similarity(pup, dog) == pytest.approx(2 * 3 / (1 + 0 + 2 * 3))      # lcs dog, depth 3
    assert nouns.wup_similarity(dog, cat) == nouns.wup_similarity(cat, dog)
    assert isinstance(nouns, NounHierarchy)


def test_a_missing_wordnet_says_how_to_install_it(tmp_path):
    with pytest.raises(WordNetNotFoundError, match="wordnet-base.*DK_WORDNET_DIR"):
        wordnet_dir(tmp_path)


def test_real_wordnet_gives_nltks_documented_dog_cat_similarity():
    try:
        nouns = load_noun_hierarchy()
    except WordNetNotFoundError:
        pytest.skip("WordNet is not installed here (tools/setup installs Debian's wordnet-base as root)")
    # NLTK's WordNet how-to: dog.n.01 and cat.n.01 have a Wu-Palmer similarity of 0.857
    assert nouns.wup_similarity(nouns.synset("dog"), nouns.synset("cat")) == pytest.approx(0.857, abs=5e-4)
