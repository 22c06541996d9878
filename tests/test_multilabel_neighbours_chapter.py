"""The multi-label neighbour-search chapter's drivers (Bynke 2022): configs, the paper layout, a tiny run."""

import dataclasses

import numpy as np
import pytest

from domainknowledge.chapters import multilabel_neighbours as chapter
from domainknowledge.data.bundled import DataNotFoundError

SMOKE = chapter.CONFIGS["smoke"]


def test_profiles_and_config_validation(tmp_path):
    assert set(chapter.CONFIGS) == {"smoke", "cpu", "paper"}
    cpu, paper = chapter.CONFIGS["cpu"], chapter.CONFIGS["paper"]
    assert cpu.runs >= 3 and paper.min_keyword_count == 50 and paper.prototypes_per_class == 16
    # one image-text model for both halves at every profile, as the thesis' one CLIP; the stand-in profiles use
    # the aligned heads that have read vehicle captions (another draw of the world)
    assert all(config.image_encoder == config.text_encoder for config in chapter.CONFIGS.values())
    assert (SMOKE.text_encoder, cpu.text_encoder) == (chapter.EVERY_WORLD["smoke"], chapter.EVERY_WORLD["cpu"])
    assert chapter.EVERY_WORLD["cpu"].endswith("all-worlds")
    assert paper.source == "imet"
    assert cpu.scale_references >= 100_000
    assert "trials" in chapter.describe_profiles().index
    with pytest.raises(ValueError, match="source"):
        dataclasses.replace(SMOKE, source="web")
    with pytest.raises(ValueError, match="at least 100"):
        dataclasses.replace(SMOKE, images=10)
    with pytest.raises(DataNotFoundError, match="train.csv"):
        chapter.load_images(paper, data_root=None)
    with pytest.raises(DataNotFoundError, match="imet-2020-fgvc7"):
        chapter.load_images(paper, data_root=tmp_path)
    (tmp_path / "imet-2020-fgvc7").mkdir()
    with pytest.raises(DataNotFoundError, match="labels.csv"):
        chapter.load_images(paper, data_root=tmp_path)
    ffi = dataclasses.replace(paper, source="ffi")
    with pytest.raises(DataNotFoundError, match="keywords.csv"):
        chapter.load_images(ffi, data_root=None)
    (tmp_path / "bynke").mkdir()
    with pytest.raises(DataNotFoundError, match="duplicate_pairs.csv"):
        chapter.load_images(ffi, data_root=tmp_path)


def test_tiny_run_end_to_end(tmp_path):
    config = dataclasses.replace(SMOKE, images=160, image_size=32, labelled_pairs=60, min_keyword_count=2,
                                 trials=2, fine_tune_trials=1, max_epochs=1, prototypes_per_class=2,
                                 scale_references=2000, scale_queries=8)
    images = chapter.load_images(config, seed=1)
    # a random stand-in for the encoders keeps this test fast; duplicates get near-identical features
    rng = np.random.default_rng(0)
    base = rng.normal(size=(len(images.keywords), 32)).astype(np.float32)
    features = base[images.duplicate_group] + rng.normal(0, 0.05, base.shape).astype(np.float32)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    language = features[:, :16] / np.linalg.norm(features[:, :16], axis=1, keepdims=True)
    prepared = chapter.prepare(images, features, language, config, seed=0)
    assert prepared.statistics["removed duplicates"] > 0
    labelled = [len(words) > 0 for words in images.keywords]
    group = images.duplicate_group[labelled]
    assert prepared.statistics["re-renders among the labelled images"] == len(group) - len(np.unique(group)) > 0
    n = sum(len(prepared.labels[s]) for s in ("train", "validation", "test"))
    assert len(prepared.labels["train"]) == pytest.approx(0.6 * n, abs=2)
    counts = prepared.labels["train"].sum(axis=0)
    assert (counts >= config.min_keyword_count).all() and len(prepared.vocabulary) == prepared.labels["test"].shape[1]
    c = len(prepared.vocabulary)
    captions = {language_name: (np.tile(language[:c, None, :], (1, len(contexts), 1)), contexts)
                for language_name, contexts in (("original", chapter.ENGLISH_CONTEXTS + chapter.NORWEGIAN_CONTEXTS),
                                                ("automatic", chapter.ENGLISH_CONTEXTS),
                                                ("manual", chapter.ENGLISH_CONTEXTS))}
    results = chapter.run_models(prepared, captions, config, seed=0)
    assert {"1-NN", "neighbour search", "zero-shot (manual)", "Tip-Adapter (zero-shot + cache)"} <= set(results)
    for result in results.values():
        assert result.test_scores.shape == prepared.labels["test"].shape
        assert 0 <= result.test_metrics["F2"] <= 1
    chosen = chapter.chosen_settings([results, results], ["neighbour search", "1-NN"])
    assert list(chosen.index) == [("neighbour search", 0), ("1-NN", 0), ("neighbour search", 1), ("1-NN", 1)]
    assert chosen.loc[("1-NN", 1), "M"] == 1 and chosen.loc[("neighbour search", 0), "temperature"] > 0
    summary = chapter.summarise_runs([results, results])
    best = chapter.best_by_validation(summary, ["1-NN", "neighbour search"])
    assert best == max(["1-NN", "neighbour search"], key=lambda name: results[name].validation_f2)
    with pytest.raises(ValueError, match="at least one"):
        chapter.best_by_validation(summary, [])
    words = prepared.vocabulary[:3]
    auc = chapter.keyword_group_auc([results], [prepared], words, name="neighbour search")
    assert 0 <= auc <= 1 and np.isnan(chapter.keyword_group_auc([results], [prepared], ["no such keyword"]))
    assert (summary["F2 sd"].fillna(0) == 0).all()
    matches, suggestions, indices = chapter.worked_example(prepared, results, results["neighbour search"].parameters, 0)
    assert len(matches) == len(indices) and len(suggestions) == len(results)
    scale = chapter.scale_benchmark(features, config.scale_references, config.scale_queries)
    assert scale["same top-k sets"] == 1.0
    import matplotlib.pyplot as plt

    chapter.plot_keyword_statistics(images.keywords)
    chapter.plot_model_comparison(summary, ["1-NN", "neighbour search"])
    plt.close("all")


def test_paper_layout_is_read_and_prepared(tmp_path):
    from PIL import Image

    folder = tmp_path / "bynke"
    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"img{i}.png" for i in range(40)]
    for name in names:
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(folder / "images" / name)
    words = ["treakslet;Kamaz", "toakslet", "tilhenger", ""]
    (folder / "keywords.csv").write_text("file,keywords\n" + "".join(f"{n},{words[i % 4]}\n" for i, n in enumerate(names)))
    (folder / "duplicate_pairs.csv").write_text("file_a,file_b,duplicate\n" + "".join(
        f"{names[i]},{names[i + 1]},{int(i < 6)}\n" for i in range(0, 30, 2)))
    (folder / "translations.csv").write_text("keyword,automatic,manual\ntreakslet,treakslet,three axle vehicle\n"
                                             "toakslet,toakslet,two axle vehicle\ntilhenger,supporter,trailer\n"
                                             "Kamaz,Kamaz,Kamaz\n")
    config = dataclasses.replace(chapter.CONFIGS["paper"], source="ffi", min_keyword_count=1, image_size=16)
    images = chapter.load_images(config, data_root=tmp_path)
    assert len(images.images) == 40 and images.keywords[0] == ["treakslet", "Kamaz"] and images.keywords[3] == []
    # read lazily, resized on read: no image is held at its native 20 x 24 px
    assert not isinstance(images.images, np.ndarray) and images.images[0].shape == (16, 16, 3)
    assert images.images[np.array([1, 3])].shape == (2, 16, 16, 3)
    assert images.manual["tilhenger"] == "trailer" and images.automatic["tilhenger"] == "supporter"
    # features in which the first six labelled pairs are near-duplicates
    features = rng.normal(size=(40, 8)).astype(np.float32)
    for i in range(0, 6, 2):
        features[i + 1] = features[i] + 0.01
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    prepared = chapter.prepare(images, features, features, config, seed=0)
    assert prepared.statistics["unlabelled images"] == 10
    assert set(prepared.vocabulary) <= {"treakslet", "Kamaz", "toakslet", "tilhenger"}
    assert prepared.translations["manual"][prepared.vocabulary.index("tilhenger")] == "trailer"


def test_imet_published_layout_is_read_lazily_and_prepared_without_labelled_pairs(tmp_path):
    from domainknowledge.fixtures import write_fixtures

    write_fixtures(tmp_path, ["imet"])
    config = dataclasses.replace(chapter.CONFIGS["paper"], min_keyword_count=5, image_size=24)
    images = chapter.load_images(config, data_root=tmp_path)
    assert len(images.images) == len(images.keywords) >= 100 and not images.has_translations
    assert images.images[5].shape == (24, 24, 3) and images.labelled_duplicates is None
    assert all(all("::" in word for word in words) for words in images.keywords)
    assert images.manual["culture::american"] == "american"
    rng = np.random.default_rng(0)
    features = rng.normal(size=(len(images.keywords), 8)).astype(np.float32)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    prepared = chapter.prepare(images, features, features, config, seed=0)
    assert prepared.statistics["removed duplicates"] == 0 and len(prepared.pairs) == 0
    assert {"culture::american", "tag::men"} <= set(prepared.vocabulary)
    assert prepared.translations["manual"][prepared.vocabulary.index("tag::men")] == "men"
    (tmp_path / "imet-2020-fgvc7" / "train.csv").write_text("id,attribute_ids\nabc,0 999\n")
    with pytest.raises(ValueError, match="999"):
        chapter.load_images(config, data_root=tmp_path)


def test_paired_tests_and_the_chance_check_known_answers():
    labels = np.zeros((40, 4), bool)
    labels[:, 0] = True                                       # prevalence 1/4
    # suggesting everything: precision 1/4, recall 1, F2 = 5 p / (4 p + 1) = 0.625
    assert chapter.all_positive_f2(labels) == pytest.approx(0.625)
    from domainknowledge.principles import neighbour_search as ns

    assert ns.multilabel_metrics(np.ones(labels.shape), labels, 0.5)["F2"] == pytest.approx(0.625)
    perfect = chapter.ModelResult("perfect", "x", 1.0, 0.5, {}, labels.astype(float),
                                  ns.multilabel_metrics(labels.astype(float), labels, 0.5))
    blind = chapter.ModelResult("blind", "x", 0.0, 0.5, {}, np.ones(labels.shape),
                                ns.multilabel_metrics(np.ones(labels.shape), labels, 0.5))
    runs = [{"perfect": perfect, "blind": blind}] * 2
    test = chapter.paired_model_test(runs, [labels, labels], "perfect", "blind", iterations=500)
    assert test["difference"] == pytest.approx(1 - 0.625) and test["p_value"] < 0.01
    assert chapter.paired_model_test(runs, [labels, labels], "blind", "blind")["p_value"] == 1.0
    subset = chapter.paired_model_test(runs, [labels, labels], "perfect", "blind", "subset accuracy", iterations=200)
    assert subset["difference"] == pytest.approx(1.0)
    chance = chapter.zero_shot_chance(runs, [labels, labels], "perfect", resamples=50)
    assert chance["auc"] == pytest.approx(1.0) and chance["low"] == pytest.approx(1.0)
    assert chance["f2"] == pytest.approx(1.0) and chance["all_positive_f2"] == pytest.approx(0.625)
    flat = chapter.zero_shot_chance(runs, [labels, labels], "blind", resamples=50)
    assert flat["auc"] == pytest.approx(0.5) and flat["f2"] == pytest.approx(flat["all_positive_f2"])
