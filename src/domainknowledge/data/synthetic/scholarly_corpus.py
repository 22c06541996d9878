"""Scholarly papers with a known venue: a seeded, offline stand-in for the Semantic Scholar subsets of
Kobs 2023, Ch. 8 (Sec. 3.6.2, Table 3.1).

The thesis trains its venue recommender on all Semantic Scholar papers (release 2019-01-31) of 77 AI venues
plus a "non-AI" class of 20,000 papers (245,573 papers in all), and on the 78 largest Medline venues
(2,924,609 papers). Neither dump is available offline. This module writes papers (title, abstract,
keywords) whose venue is known, for two fields, ``"ai"`` and ``"medicine"``, with the properties Ch. 8
relies on: venues of one subfield (three vision venues, three language venues, ...) share a vocabulary and
are hard to tell apart, so the right venue is often only in the top five; general venues mix subfields;
venue sizes are skewed as in Table 3.1; and one planted word follows the thesis' "learning" observation.

What separates the venues of one subfield is put where the thesis' network can read it and a word counter
cannot (issue 20): each venue writes its subfield's key words in its own **ordered two- and three-word
phrases**, every key word equally often in every venue, and the phrases' words have **rare synonyms** that
stand in the same places. A unigram term-frequency classifier sees the same word counts in every venue of a
subfield; a bigram classifier sees the phrases but each synonym spelling splits their counts; a TextCNN over
Word2Vec embeddings sees the order through its filters and, through embeddings learned from shared contexts,
reads a synonym like its common word.

The hidden generative process (:func:`make_scholarly_corpus`; :class:`CorpusConfig` holds every rate):

1. **Venues.** A fixed catalogue per field (:data:`AI_VENUES`, :data:`MEDICINE_VENUES`): each venue has
   an invented name, the real venue it imitates (``like``, for the reader only), a mixture over the
   field's subfields, and the rate of the planted word. The AI catalogue ends with the ``non-AI`` class,
   whose papers come from non-AI topics.
2. **Venue sizes.** Relative sizes are log-normal with ``size_sigma`` (AI 0.99, medicine 0.67: the
   log-normal whose coefficient of variation is Table 3.1's standard deviation over mean, 1.30 and 0.75),
   drawn with the seed and handed out in the order of the catalogue's popularity ranks (the CVPR-like
   venue gets the largest AI size, as CVPR is the largest AI venue); the ``non-AI`` class gets the thesis' share (20,000 / 245,573 = 8.1 %). Every venue
   keeps at least ``min_papers`` papers.
3. **A venue's vocabulary.** Each subfield has a topic vocabulary (:data:`AI_TOPICS`,
   :data:`MEDICINE_TOPICS`) with Zipf-like word weights. Each venue may tilt the weights of every subfield
   by its own log-normal factors (``venue_tilt``, 0 by default: venues of one subfield then use its single
   words in the same proportions).
3a. **A venue's phrases** (:func:`venue_phrases`). The first ``phrase_words`` words of a subfield's topic
   list are its key words. For every venue and every subfield, a seeded permutation of the key words is
   cut into ordered chunks of three and two words: the venue's phrases for that subfield. Every key word is
   in exactly one phrase of every venue, so drawing a venue's phrases uniformly gives every key word the
   same expected count in every venue; only the order and grouping differ.
3b. **Rare synonyms** (:func:`synonyms`). Each key word has ``synonyms_per_word`` synonyms (the word with a
   suffix, ``"detection-var"``), written only inside phrases, in place of the word with probability
   ``synonym_rate`` (split evenly among the synonyms): they share the word's contexts (its phrase partners)
   and are each several times rarer than it.
4. **A paper's topics.** The paper's subfield is drawn from its venue's mixture; with probability
   ``cross_topic_rate`` a second subfield of the field (uniformly) contributes half of its topic words.
5. **Lengths.** Title, abstract and keyword counts are Gamma-distributed around Table 3.1's means
   (AI: 9.24 title words, 153.65 abstract words, 8.73 keywords; medicine: 13.29, 185.18, 12.33), at least
   3, 20 and 1.
6. **Words.** Each word of a title or abstract is a generic word (function words and academic filler,
   :data:`GENERIC_WORDS`) with probability ``generic_share``, a word of the field (:data:`FIELD_WORDS`) with
   probability ``field_share``, and a topic word of the paper's subfield(s) otherwise, drawn with the
   venue's tilted weights. With probability ``phrase_rate`` per topic unit, one of the venue's phrases for
   the subfield (3a, with synonyms 3b) is written instead, its words adjacent and in order. Keywords are
   topic words or phrases of the same subfields. Words are in random order apart from phrases.
7. **The planted word** (:data:`PLANTED_WORD`, "learning", in no other word list): a paper of venue ``v``
   contains it with the venue's probability ``planted_rate`` (Sec. 8.3: about 26 % of CVPR papers, 56 %
   of ICML, 59 % of ECML and 90 % of CoRL papers contain "learning"), independently of everything else:
   once in the title with probability ``planted_title_rate``, and one to three times in the abstract. Its
   presence therefore says "not a vision venue" and "probably a learning venue" and nothing about the rest
   of the text, so a recommender that reads it should give it a negative attribution for a vision venue.

Medicine has no planted word (its catalogue's rates are all zero). Everything is lower case; keywords are
phrases of one to three words. The same seed gives the same corpus.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["SPECIALTY_WORDS", "SYNONYM_SUFFIXES", "AI_TOPICS", "AI_VENUES", "FIELDS", "FIELD_WORDS", "GENERIC_WORDS",
           "MEDICINE_TOPICS", "MEDICINE_VENUES", "NON_AI_VENUE", "PLANTED_WORD", "TABLE_3_1", "CorpusConfig",
           "ScholarlyCorpus", "Venue", "corpus_statistics", "default_config", "make_scholarly_corpus"]

FIELDS = ("ai", "medicine")
PLANTED_WORD = "learning"
NON_AI_VENUE = "non-AI"

# Table 3.1 of the thesis (Semantic Scholar subsets).
TABLE_3_1 = {
    "ai": {"publications": 245_573, "venues": 78, "avg_title_length": 9.24, "avg_abstract_length": 153.65,
           "avg_keywords": 8.73, "total_keywords": 32_139, "min_publications": 63, "mean_publications": 3148.37,
           "std_publications": 4102.96, "median_publications": 1597.5, "max_publications": 21_122},
    "medicine": {"publications": 2_924_609, "venues": 78, "avg_title_length": 13.29, "avg_abstract_length": 185.18,
                 "avg_keywords": 12.33, "total_keywords": 209_525, "min_publications": 20_959,
                 "mean_publications": 37494.99, "std_publications": 28170.86, "median_publications": 27734.5,
                 "max_publications": 201_469},
}

GENERIC_WORDS = (
    "the of and a to in we for is that this on with by are an our as which be from it these can results "
    "paper approach method propose show based using novel new problem performance proposed present two "
    "also both than existing different used such set however while their study its evaluate demonstrate "
    "analysis framework experiments each between most more has have been not only may well large first "
    "three significant important effective several provide compared efficient simple general").split()

FIELD_WORDS = {
    "ai": ("algorithm algorithms neural network networks model models training deep system systems task tasks "
           "accuracy features representation representations benchmark datasets data architecture "
           "computational automatic artificial intelligence trained").split(),
    "medicine": ("patients clinical treatment disease outcomes hospital diagnosis cases therapy chronic "
                 "incidence randomized controlled trial cohort years age women men associated risk "
                 "follow-up baseline compared treated").split(),
}

AI_TOPICS = {
    "machine learning": ("gradient optimization convex stochastic kernel bayesian inference variational "
                         "regularization generalization bounds loss sample complexity regret bandit "
                         "reinforcement policy reward sparse matrix estimator convergence theoretical "
                         "supervised unsupervised latent probabilistic normalization descent").split(),
    "computer vision": ("image images visual recognition object detection segmentation pixel camera video "
                        "scene pose depth stereo convolutional tracking face shape texture resolution "
                        "illumination optical flow photometric").split(),
    "natural language": ("language text word sentence translation parsing semantic syntactic corpus lexical "
                         "dialogue question answering entity summarization tokens multilingual grammar "
                         "discourse sentiment annotation transformers embeddings").split(),
    "speech": ("speech acoustic speaker audio phoneme prosody spoken vocoder pitch utterance waveform "
               "spectrogram synthesis transcription accent listeners voice").split(),
    "robotics": ("robot robots control motion manipulation grasping trajectory navigation locomotion sensor "
                 "actuator dynamics autonomous legged torque kinematics localization terrain manipulator "
                 "contact").split(),
    "knowledge and reasoning": ("logic reasoning knowledge ontology constraint satisfiability theorem "
                                "argumentation belief axioms semantics solver planning heuristic search "
                                "rules propositional temporal").split(),
    "data mining": ("mining graph graphs social recommendation users patterns frequent itemsets web link "
                    "anomaly streams scalable queries clustering community influence").split(),
    "multi-agent systems": ("agents agent game equilibrium auction mechanism voting negotiation coalition "
                            "strategic utility allocation fairness cooperative welfare").split(),
    "non-AI": ("quantum particle energy magnetic thermal market price firms labor protein gene species "
               "molecular software compiler bugs circuit voltage fluid soil climate legal").split(),
}

MEDICINE_TOPICS = {
    "cardiology": ("cardiac heart coronary artery myocardial infarction atrial fibrillation hypertension "
                   "ventricular blood pressure valve arrhythmia cholesterol statin").split(),
    "oncology": ("cancer tumor carcinoma chemotherapy metastatic survival breast lung lymphoma leukemia "
                 "radiotherapy malignant biopsy staging").split(),
    "neurology": ("brain neurons cognitive dementia alzheimer parkinson epilepsy seizures cortex stroke "
                  "sclerosis neuropathy migraine").split(),
    "infectious disease": ("infection virus viral bacterial hiv antibiotic resistance vaccine influenza "
                           "tuberculosis malaria pathogen hepatitis sepsis").split(),
    "pediatrics": ("children infants neonatal pediatric birth childhood adolescents preterm maternal growth "
                   "vaccination").split(),
    "surgery": ("surgical surgery postoperative laparoscopic resection complications anesthesia operative "
                "transplant fracture implant wound").split(),
    "psychiatry": ("depression anxiety psychiatric schizophrenia disorder mental symptoms bipolar suicide "
                   "antidepressant trauma").split(),
    "radiology": ("imaging mri ct ultrasound scan contrast tomography radiographic diagnostic lesion").split(),
    "public health": ("population prevalence mortality obesity smoking socioeconomic epidemiological screening "
                      "survey national").split(),
    "pharmacology": ("drug dose pharmacokinetics receptor inhibitor plasma efficacy placebo adverse "
                     "metabolism").split(),
}

# Specialty words: each venue whose mixture has one main subfield owns a few of that subfield's specialty
# words (dealt out in catalogue order); they are in no other word list.
SPECIALTY_WORDS = {
    "machine learning": "minimax pac-bayes boosting submodular martingale lipschitz meta-gradient kernelized".split(),
    "computer vision": "superpixel keypoint inpainting deblurring panoptic silhouette epipolar saliency".split(),
    "natural language": "coreference morphology paraphrase treebank lemma idiom dependency-parse anaphora".split(),
    "speech": "diarization formant cepstral keyword-spotting".split(),
    "robotics": "exoskeleton quadruped gripper odometry teleoperation servo".split(),
    "knowledge and reasoning": "epistemic abduction circumscription modal".split(),
    "data mining": "clickstream co-clustering subgraph bipartite".split(),
    "multi-agent systems": "bargaining matching-market swarm".split(),
    "non-AI": "tectonic enzyme jurisprudence".split(),
    "cardiology": "angioplasty echocardiography stent troponin".split(),
    "oncology": "her2 immunotherapy sarcoma mastectomy melanoma radiosurgery".split(),
    "neurology": "glioma neuroinflammation tremor electroencephalography".split(),
    "infectious disease": "antiretroviral capsid serotype zoonotic".split(),
    "pediatrics": "breastfeeding kindergarten".split(),
    "surgery": "arthroplasty anastomosis ligament meniscus".split(),
    "psychiatry": "psychotherapy mindfulness".split(),
    "radiology": "fluoroscopy mammography".split(),
    "public health": "vaccination-coverage sanitation".split(),
    "pharmacology": "cytochrome agonist".split(),
}


@dataclass(frozen=True)
class Venue:
    """One venue: ``name`` (invented), ``like`` (the real venue it imitates), ``mixture`` (subfield ->
    weight, normalised when used), ``planted_rate`` (share of its papers with :data:`PLANTED_WORD`) and
    ``popularity`` (size rank within its catalogue: 1 gets the largest drawn size)."""

    name: str
    like: str
    mixture: Mapping[str, float]
    planted_rate: float
    popularity: int = 0

    @property
    def subfield(self) -> str:
        """The subfield with the largest weight (ties: the first), or ``general`` for an even mixture."""
        weights = list(self.mixture.values())
        if len(weights) > 2 and max(weights) == min(weights):
            return "general"
        return max(self.mixture, key=self.mixture.get)


def _ai(name, like, mixture, rate, popularity):
    return Venue(name, like, dict(mixture), rate, popularity)


_AI_GENERAL = {topic: 1.0 for topic in AI_TOPICS if topic != "non-AI"}
# Planted rates of the ICML-, ECML-, CVPR- and CoRL-like venues are the thesis' shares (Sec. 8.3); the
# others are set between them by how "learning"-heavy the subfield is. The last number is a popularity rank
# (1: the largest drawn size), roughly the real venues' order of size.
AI_VENUES = (
    _ai("ML-A", "ICML", {"machine learning": 0.9, "computer vision": 0.05, "natural language": 0.05}, 0.56, 4),
    _ai("ML-B", "NeurIPS", {"machine learning": 0.7, "computer vision": 0.1, "natural language": 0.1,
                            "robotics": 0.1}, 0.55, 2),
    _ai("ML-C", "ECML", {"machine learning": 0.7, "data mining": 0.3}, 0.59, 17),
    _ai("ML-J", "JMLR", {"machine learning": 1.0}, 0.60, 18),
    _ai("VIS-A", "CVPR", {"computer vision": 0.9, "machine learning": 0.1}, 0.26, 1),
    _ai("VIS-B", "ICCV", {"computer vision": 0.9, "machine learning": 0.1}, 0.27, 7),
    _ai("VIS-C", "ECCV", {"computer vision": 0.95, "machine learning": 0.05}, 0.27, 9),
    _ai("VIS-J", "TPAMI", {"computer vision": 0.6, "machine learning": 0.4}, 0.35, 12),
    _ai("NLP-A", "ACL", {"natural language": 0.95, "machine learning": 0.05}, 0.30, 8),
    _ai("NLP-B", "EMNLP", {"natural language": 0.9, "machine learning": 0.1}, 0.35, 10),
    _ai("NLP-C", "NAACL", {"natural language": 0.9, "speech": 0.1}, 0.32, 16),
    _ai("SPEECH", "INTERSPEECH", {"speech": 0.85, "natural language": 0.15}, 0.30, 11),
    _ai("ROB-A", "ICRA", {"robotics": 0.9, "computer vision": 0.1}, 0.25, 5),
    _ai("ROB-B", "RSS", {"robotics": 0.8, "machine learning": 0.1, "computer vision": 0.1}, 0.45, 19),
    _ai("ROB-L", "CoRL", {"robotics": 0.5, "machine learning": 0.5}, 0.90, 20),
    _ai("GEN-A", "AAAI", _AI_GENERAL, 0.35, 3),
    _ai("GEN-B", "IJCAI", _AI_GENERAL, 0.33, 6),
    _ai("KR", "KR", {"knowledge and reasoning": 0.9, "multi-agent systems": 0.1}, 0.10, 21),
    _ai("DM-A", "KDD", {"data mining": 0.8, "machine learning": 0.2}, 0.40, 13),
    _ai("DM-B", "ICDM", {"data mining": 0.9, "machine learning": 0.1}, 0.38, 14),
    _ai("AGENTS", "AAMAS", {"multi-agent systems": 0.8, "knowledge and reasoning": 0.2}, 0.30, 15),
    _ai(NON_AI_VENUE, "non-AI papers", {"non-AI": 1.0}, 0.04, 22),     # its size is fixed, not drawn
)

_MED_GENERAL = {topic: 1.0 for topic in MEDICINE_TOPICS}
MEDICINE_VENUES = (
    Venue("CARD-A", "Circulation", {"cardiology": 1.0}, 0.0, 4),
    Venue("CARD-B", "J Am Coll Cardiol", {"cardiology": 0.9, "radiology": 0.1}, 0.0, 5),
    Venue("CARD-C", "Am J Cardiol", {"cardiology": 0.8, "pharmacology": 0.2}, 0.0, 6),
    Venue("ONC-A", "J Clin Oncol", {"oncology": 1.0}, 0.0, 7),
    Venue("ONC-B", "Cancer", {"oncology": 0.9, "surgery": 0.1}, 0.0, 8),
    Venue("ONC-C", "Int J Radiat Oncol", {"oncology": 0.6, "radiology": 0.4}, 0.0, 9),
    Venue("NEURO-A", "Neurology", {"neurology": 1.0}, 0.0, 10),
    Venue("NEURO-B", "Brain Res", {"neurology": 0.8, "pharmacology": 0.2}, 0.0, 11),
    Venue("INF-A", "Clin Infect Dis", {"infectious disease": 1.0}, 0.0, 12),
    Venue("INF-B", "J Virol", {"infectious disease": 0.9, "pharmacology": 0.1}, 0.0, 13),
    Venue("PED", "Pediatrics", {"pediatrics": 0.9, "public health": 0.1}, 0.0, 14),
    Venue("SURG-A", "Ann Surg", {"surgery": 1.0}, 0.0, 15),
    Venue("SURG-B", "J Bone Joint Surg", {"surgery": 0.9, "radiology": 0.1}, 0.0, 16),
    Venue("PSY", "Am J Psychiatry", {"psychiatry": 0.9, "neurology": 0.1}, 0.0, 17),
    Venue("RAD", "Radiology", {"radiology": 0.9, "oncology": 0.1}, 0.0, 18),
    Venue("PH", "Am J Public Health", {"public health": 0.9, "pediatrics": 0.1}, 0.0, 19),
    Venue("PHARM", "J Pharmacol Exp Ther", {"pharmacology": 1.0}, 0.0, 20),
    Venue("GEN-A", "N Engl J Med", _MED_GENERAL, 0.0, 1),
    Venue("GEN-B", "Lancet", _MED_GENERAL, 0.0, 2),
    Venue("GEN-C", "BMJ", _MED_GENERAL, 0.0, 3),
)

_CATALOGUE = {"ai": (AI_VENUES, AI_TOPICS), "medicine": (MEDICINE_VENUES, MEDICINE_TOPICS)}
#: Suffixes that make a key word's rare synonyms (3b of the module docstring): "detection-var", ...
SYNONYM_SUFFIXES = ("var", "alt", "syn")


@dataclass(frozen=True)
class CorpusConfig:
    """Every rate of the generator (see the module docstring for where each enters).

    ``field`` (``ai`` or ``medicine``), ``papers`` (in all), ``size_sigma`` (log-normal spread of venue
    sizes), ``non_ai_share`` (AI only), ``min_papers`` per venue, mean lengths ``title_length``,
    ``abstract_length``, ``keywords`` and their Gamma shapes ``length_shape``, word shares
    ``generic_share`` and ``field_share`` (title: ``title_generic_share``), ``venue_tilt`` (log-normal
    sigma of a venue's word weights), ``cross_topic_rate``, ``phrase_rate`` (share of topic units that are
    one of the venue's phrases), ``phrase_words`` (key words per subfield that make the phrases),
    ``synonyms_per_word`` and ``synonym_rate`` (rare synonyms inside phrases), ``specialty_rate`` and
    ``specialty_leak`` (a venue's own specialty words, and a sibling's), ``planted_title_rate``.
    """

    field: str
    papers: int
    size_sigma: float
    non_ai_share: float
    min_papers: int
    title_length: float
    abstract_length: float
    keywords: float
    length_shape: float = 6.0
    generic_share: float = 0.55
    title_generic_share: float = 0.3
    field_share: float = 0.12
    venue_tilt: float = 0.0
    specialty_rate: float = 0.35
    specialty_leak: float = 0.1
    cross_topic_rate: float = 0.3
    phrase_rate: float = 0.1
    phrase_words: int = 10
    synonyms_per_word: int = 3
    synonym_rate: float = 0.4
    planted_title_rate: float = 0.3

    def __post_init__(self):
        if self.field not in FIELDS:
            raise ValueError(f"field must be one of {FIELDS}, got {self.field!r}")
        venues = len(_CATALOGUE[self.field][0])
        if self.papers < venues * max(self.min_papers, 1):
            raise ValueError(f"papers ({self.papers}) must be at least min_papers ({self.min_papers}) times the "
                             f"{venues} venues of {self.field!r}")
        for name in ("size_sigma", "venue_tilt"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}")
        for name in ("non_ai_share", "generic_share", "title_generic_share", "field_share", "cross_topic_rate",
                     "phrase_rate", "specialty_rate", "specialty_leak", "planted_title_rate", "synonym_rate"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must lie in [0, 1), got {getattr(self, name)}")
        if self.generic_share + self.field_share >= 1 or self.title_generic_share + self.field_share >= 1:
            raise ValueError("generic and field shares must leave room for topic words (sum below 1)")
        if min(self.title_length, self.abstract_length, self.keywords, self.length_shape) <= 0:
            raise ValueError("mean lengths and the Gamma shape must be positive")
        shortest = min(len(words) for words in _CATALOGUE[self.field][1].values())
        if not 2 <= self.phrase_words <= shortest:
            raise ValueError(f"phrase_words must lie in [2, {shortest}] (the shortest topic list of {self.field!r}), "
                             f"got {self.phrase_words}")
        if self.synonyms_per_word > len(SYNONYM_SUFFIXES) or self.synonyms_per_word < 0:
            raise ValueError(f"synonyms_per_word must lie in [0, {len(SYNONYM_SUFFIXES)}], got {self.synonyms_per_word}")


def default_config(field: str, papers: int, **changes) -> CorpusConfig:
    """The generator's settings for ``field`` with Table 3.1's mean lengths and size skew."""
    if field not in FIELDS:
        raise ValueError(f"field must be one of {FIELDS}, got {field!r}")
    table = TABLE_3_1[field]
    coefficient_of_variation = table["std_publications"] / table["mean_publications"]
    values = dict(field=field, papers=papers, size_sigma=round(float(np.sqrt(np.log1p(coefficient_of_variation ** 2))), 3),
                  non_ai_share=20_000 / 245_573 if field == "ai" else 0.0, min_papers=max(1, min(30, papers // 200)),
                  title_length=table["avg_title_length"], abstract_length=table["avg_abstract_length"],
                  keywords=table["avg_keywords"])
    values.update(changes)
    return CorpusConfig(**values)


@dataclass(frozen=True)
class ScholarlyCorpus:
    """Papers and their venues. ``titles`` and ``abstracts`` are N strings, ``keywords`` N lists of keyword
    phrases, ``venues`` ``(N,)`` int64 indices into ``venue_names``; ``venue_subfields`` and ``venue_like``
    describe each venue, ``planted_rates`` ``(V,)`` the generator's rate of :data:`PLANTED_WORD` per venue,
    ``venue_phrases[v][subfield]`` venue ``v``'s ordered phrases for that subfield (:func:`venue_phrases`)."""

    field: str
    titles: list[str]
    abstracts: list[str]
    keywords: list[list[str]]
    venues: np.ndarray
    venue_names: tuple[str, ...]
    venue_subfields: tuple[str, ...]
    venue_like: tuple[str, ...]
    planted_rates: np.ndarray
    venue_phrases: tuple[dict[str, list[tuple[str, ...]]], ...] = ()

    def __len__(self) -> int:
        return len(self.titles)


def _venue_sizes(config: CorpusConfig, venues: Sequence[Venue], rng: np.random.Generator) -> np.ndarray:
    # log-normal sizes, the largest to the most popular venue (the catalogue's ``popularity`` rank)
    drawn = np.sort(rng.lognormal(0.0, config.size_sigma, size=len(venues)))[::-1]
    weights = np.empty(len(venues))
    weights[np.argsort([v.popularity for v in venues], kind="stable")] = drawn
    non_ai = [i for i, v in enumerate(venues) if v.name == NON_AI_VENUE]
    others = [i for i in range(len(venues)) if i not in non_ai]
    shares = np.zeros(len(venues))
    shares[others] = weights[others] / weights[others].sum() * (1 - (config.non_ai_share if non_ai else 0.0))
    shares[non_ai] = config.non_ai_share
    free = config.papers - config.min_papers * len(venues)
    counts = config.min_papers + np.floor(shares * free).astype(np.int64)
    counts[np.argmax(shares)] += config.papers - counts.sum()          # rounding goes to the largest venue
    return counts


def _zipf(count: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, count + 1) ** 0.8
    return weights / weights.sum()


def _deal_specialties(venues: Sequence[Venue]) -> list[list[str]]:
    """Each venue with one main subfield (not ``general``) gets every k-th specialty word of that subfield,
    k = the number of such venues in the subfield, in catalogue order."""
    owners: dict[str, list[int]] = {}
    for index, venue in enumerate(venues):
        if venue.subfield in SPECIALTY_WORDS:
            owners.setdefault(venue.subfield, []).append(index)
    dealt: list[list[str]] = [[] for _ in venues]
    for subfield, members in owners.items():
        for position, index in enumerate(members):
            dealt[index] = SPECIALTY_WORDS[subfield][position::len(members)]
    return dealt


def _chunk_sizes(count: int) -> list[int]:
    """Phrase lengths that cut ``count`` >= 2 key words into ordered chunks of three and two words,
    alternating from three and never leaving one word alone (10 -> 3, 2, 3, 2; 7 -> 3, 2, 2)."""
    if count < 2:
        raise ValueError(f"a phrase needs at least two key words, got {count}")
    sizes, left = [], count
    while left:
        size = left if left in (2, 3) else (2 if left == 4 or len(sizes) % 2 else 3)
        sizes.append(size)
        left -= size
    return sizes


def venue_phrases(venues: Sequence[Venue], topics: Mapping[str, Sequence[str]], phrase_words: int,
                  rng: np.random.Generator) -> list[dict[str, list[tuple[str, ...]]]]:
    """For every venue and every subfield of ``topics``: the venue's ordered phrases (3a of the module
    docstring), a seeded permutation of the subfield's first ``phrase_words`` words cut by
    :func:`_chunk_sizes`. Every key word is in exactly one phrase of every venue."""
    phrases = []
    for _ in venues:
        per_topic = {}
        for topic, words in topics.items():
            keys = [words[i] for i in rng.permutation(phrase_words)]
            cuts = np.cumsum([0, *_chunk_sizes(phrase_words)])
            per_topic[topic] = [tuple(keys[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
        phrases.append(per_topic)
    return phrases


def synonyms(word: str, count: int) -> tuple[str, ...]:
    """The ``count`` rare synonyms of a key word (3b of the module docstring): ``word-var``, ``word-alt``, ..."""
    return tuple(f"{word}-{suffix}" for suffix in SYNONYM_SUFFIXES[:count])


def _draw(cdf: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` indices drawn from the distribution with cumulative weights ``cdf``."""
    return np.minimum(np.searchsorted(cdf, rng.random(count) * cdf[-1], side="right"), len(cdf) - 1)


def _length(rng: np.random.Generator, mean: float, shape: float, minimum: int) -> int:
    return max(minimum, int(round(rng.gamma(shape, mean / shape))))


def make_scholarly_corpus(config: CorpusConfig, *, seed: int) -> ScholarlyCorpus:
    """Generate ``config.papers`` papers of ``config.field`` with ``seed`` (the process of the module
    docstring). Returns a :class:`ScholarlyCorpus` with papers in random venue order."""
    venues, topics = _CATALOGUE[config.field]
    rng = np.random.default_rng(seed)
    counts = _venue_sizes(config, venues, rng)
    generic_cdf = np.cumsum(_zipf(len(GENERIC_WORDS)))
    field_words = FIELD_WORDS[config.field]
    field_cdf = np.cumsum(_zipf(len(field_words)))
    # each venue's tilted weights over every subfield's words
    tilted = []
    for _ in venues:
        per_topic = {}
        for topic, words in topics.items():
            weights = _zipf(len(words)) * rng.lognormal(0.0, config.venue_tilt, len(words))
            per_topic[topic] = np.cumsum(weights / weights.sum())
        tilted.append(per_topic)
    field_topics = [t for t in topics if t != "non-AI"]
    specialties = _deal_specialties(venues)
    phrases = venue_phrases(venues, topics, config.phrase_words, rng)
    mean_phrase_length = float(np.mean([len(p) for p in phrases[0][next(iter(topics))]]))

    def spell(word: str) -> str:
        """``word``, or with ``synonym_rate`` one of its rare synonyms."""
        if config.synonyms_per_word and rng.random() < config.synonym_rate:
            return synonyms(word, config.synonyms_per_word)[rng.integers(config.synonyms_per_word)]
        return word
    siblings = [[j for j, other in enumerate(venues) if j != i and specialties[j]
                 and other.subfield == venue.subfield] for i, venue in enumerate(venues)]

    def topic_words(topic: str, venue: int, count: int) -> list[list[str]]:
        """``count`` topic units of ``topic``: single words by the venue's weights, or (``phrase_rate``) one of
        the venue's phrases for ``topic``, each word possibly a rare synonym."""
        if count <= 0:
            return []
        is_phrase = rng.random(count) < config.phrase_rate
        singles = iter(_draw(tilted[venue][topic], int((~is_phrase).sum()), rng))
        own = phrases[venue][topic]
        chosen = iter(rng.integers(len(own), size=int(is_phrase.sum())))
        return [[spell(w) for w in own[next(chosen)]] if flag else [topics[topic][next(singles)]] for flag in is_phrase]

    def text(venue: int, subfields: list[str], length: int, generic_share: float) -> list[str]:
        kinds = rng.random(length)
        generic = int((kinds < generic_share).sum())
        field = int(((kinds >= generic_share) & (kinds < generic_share + config.field_share)).sum())
        topical = (length - generic - field) / (1 + config.phrase_rate * (mean_phrase_length - 1))   # units
        words = [GENERIC_WORDS[i] for i in _draw(generic_cdf, generic, rng)]
        words += [field_words[i] for i in _draw(field_cdf, field, rng)]
        # topic words come as units (a phrase stays adjacent), the units are shuffled among the rest
        units = [[w] for w in words]
        shares = [1.0] if len(subfields) == 1 else [0.5, 0.5]
        for topic, share in zip(subfields, shares):
            units += topic_words(topic, venue, int(round(topical * share)))
        order = rng.permutation(len(units))
        return [w for i in order for w in units[i]]

    titles, abstracts, keyword_lists, labels = [], [], [], []
    for venue_index, venue in enumerate(venues):
        mixture = np.array(list(venue.mixture.values()), dtype=float)
        names = list(venue.mixture)
        for _ in range(int(counts[venue_index])):
            subfields = [names[rng.choice(len(names), p=mixture / mixture.sum())]]
            if rng.random() < config.cross_topic_rate:
                pool = field_topics if venue.name != NON_AI_VENUE else [t for t in topics if t == "non-AI"]
                subfields.append(pool[rng.integers(len(pool))])
            title = text(venue_index, subfields, _length(rng, config.title_length, config.length_shape, 3),
                         config.title_generic_share)
            abstract = text(venue_index, subfields, _length(rng, config.abstract_length, config.length_shape / 1.5, 20),
                            config.generic_share)
            own = specialties[venue_index]
            if own and rng.random() < config.specialty_rate:
                for _ in range(1 + int(rng.poisson(1.0))):
                    abstract.insert(int(rng.integers(len(abstract) + 1)), own[rng.integers(len(own))])
                if rng.random() < config.planted_title_rate:
                    title.insert(int(rng.integers(len(title) + 1)), own[rng.integers(len(own))])
            if siblings[venue_index] and rng.random() < config.specialty_leak:
                other = specialties[siblings[venue_index][rng.integers(len(siblings[venue_index]))]]
                abstract.insert(int(rng.integers(len(abstract) + 1)), other[rng.integers(len(other))])
            if venue.planted_rate > 0 and rng.random() < venue.planted_rate:
                if rng.random() < config.planted_title_rate:
                    title.insert(int(rng.integers(len(title) + 1)), PLANTED_WORD)
                for _ in range(int(rng.integers(1, 4))):
                    abstract.insert(int(rng.integers(len(abstract) + 1)), PLANTED_WORD)
            wanted, keywords = _length(rng, config.keywords, config.length_shape, 1), {}
            for topic, share in zip(subfields, [1.0] if len(subfields) == 1 else [0.5, 0.5]):
                for unit in topic_words(topic, venue_index, int(np.ceil(3 * wanted * share))):
                    keywords[" ".join(unit)] = None                     # distinct, in order of drawing
            keywords = list(keywords)[:wanted]
            rng.shuffle(keywords)
            titles.append(" ".join(title))
            abstracts.append(" ".join(abstract))
            keyword_lists.append(list(keywords))
            labels.append(venue_index)
    order = rng.permutation(len(labels))
    return ScholarlyCorpus(
        config.field, [titles[i] for i in order], [abstracts[i] for i in order],
        [keyword_lists[i] for i in order], np.asarray(labels, dtype=np.int64)[order],
        tuple(v.name for v in venues), tuple(v.subfield for v in venues), tuple(v.like for v in venues),
        np.array([v.planted_rate for v in venues]), tuple(phrases))


def corpus_statistics(titles: Sequence[Sequence[str]], abstracts: Sequence[Sequence[str]],
                      keywords: Sequence[Sequence[str]], venues, num_venues: int) -> dict[str, float]:
    """The rows of Table 3.1 for tokenised ``titles`` and ``abstracts`` (lists of tokens), ``keywords``
    (lists of keyword phrases) and venue indices ``(N,)``: publications, venues, mean title and abstract
    length in tokens, mean keywords per paper, distinct keywords, and min/mean/sd/median/max papers per venue
    (sample standard deviation)."""
    counts = np.bincount(np.asarray(venues, dtype=np.int64), minlength=num_venues)
    return {"publications": int(len(titles)), "venues": int(num_venues),
            "avg_title_length": float(np.mean([len(t) for t in titles])),
            "avg_abstract_length": float(np.mean([len(a) for a in abstracts])),
            "avg_keywords": float(np.mean([len(k) for k in keywords])),
            "total_keywords": int(len({k for ks in keywords for k in ks})),
            "min_publications": int(counts.min()), "mean_publications": float(counts.mean()),
            "std_publications": float(counts.std(ddof=1)) if num_venues > 1 else 0.0,
            "median_publications": float(np.median(counts)), "max_publications": int(counts.max())}
