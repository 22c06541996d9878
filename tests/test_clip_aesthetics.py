"""The stand-in photo aesthetics data and the drivers of the CLIP-aesthetics chapter, with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from domainknowledge.chapters import clip_aesthetics as chapter
from domainknowledge.data.bundled import DataNotFoundError
from domainknowledge.data.synthetic import aesthetics as A
from domainknowledge.principles import aesthetic_prompts as P


# --- data ----------------------------------------------------------------------------------------------------


def test_photo_crops_are_seeded_and_about_seventy_percent_aesthetic():
    first = A.generate_photo_aesthetics(300, 32, seed=2)
    second = A.generate_photo_aesthetics(300, 32, seed=2)
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.votes, second.votes)
    assert first.images.shape == (300, 32, 32, 3) and first.images.dtype == np.uint8
    assert 0.6 <= np.mean(first.mean_score > 5) <= 0.8
    assert set(first.properties["photo"]) <= set(A.STAND_IN_PHOTOS)
    assert np.corrcoef(first.hidden_score, first.mean_score)[0, 1] > 0.9


def test_the_photo_score_falls_with_every_flaw():
    ideal = pd.DataFrame({"exposure": [0.0], "contrast": [0.0], "saturation": [0.0], "blur": [0.0], "noise": [0.0],
                          "photo": ["coffee"], "crop_scale": [1.0], "crop_x": [0.5], "crop_y": [0.5],
                          "crop_offset": [0.0], "content_noise": [0.0]})
    assert A.hidden_photo_score(ideal)[0] == pytest.approx(A.PHOTO_BASE_SCORE)
    for column, value in (("exposure", -1.0), ("contrast", 0.5), ("saturation", 0.5), ("blur", 0.5), ("noise", 0.5),
                          ("crop_offset", 0.2)):
        assert A.hidden_photo_score(ideal.assign(**{column: value}))[0] < A.PHOTO_BASE_SCORE
    with pytest.raises(ValueError, match="lack the column"):
        A.hidden_photo_score(ideal.drop(columns=["blur"]))


def test_a_centred_crop_has_no_offset():
    row = {"crop_scale": 0.5, "crop_x": 0.5, "crop_y": 0.5}
    assert A.crop_offset((100, 200, 3), row) == pytest.approx(0.0)
    corner = {"crop_scale": 0.5, "crop_x": 0.0, "crop_y": 0.0}
    assert A.crop_offset((100, 100, 3), corner) == pytest.approx(np.hypot(25, 25) / 100)


def test_mixed_data_holds_both_sources_and_keeps_the_scene_generator_unchanged():
    mixed = A.generate_mixed_aesthetics(40, 32, seed=1, photo_fraction=0.25)
    assert mixed.properties["source"].value_counts().to_dict() == {"scene": 30, "photo": 10}
    scenes = A.generate_aesthetics(30, 32, seed=1)
    # the scenes of the mix are exactly the scene generator's images, in shuffled order
    scene_rows = np.flatnonzero(mixed.properties["source"].to_numpy() == "scene")
    assert {img.tobytes() for img in mixed.images[scene_rows]} == {img.tobytes() for img in scenes.images}
    with pytest.raises(ValueError, match="photo_fraction"):
        A.generate_mixed_aesthetics(10, 32, seed=1, photo_fraction=1.5)


# --- splits, baselines, data errors --------------------------------------------------------------------------


def _task(n=40, seed=0):
    rng = np.random.default_rng(seed)
    scores = rng.uniform(3, 8, n)
    votes = np.stack([np.bincount(np.clip(np.round(rng.normal(s, 1, 50)), 1, 10).astype(int) - 1, minlength=10)
                      for s in scores])
    means = (votes * np.arange(1, 11)).sum(1) / votes.sum(1)
    return chapter.Task("toy", "toy", rng.integers(0, 255, (n, 16, 16, 3), dtype=np.uint8),
                        (votes / votes.sum(1, keepdims=True)).astype(np.float32), means, True, f"toy|{seed}")


def _config(**changes):
    import dataclasses

    return dataclasses.replace(chapter.CONFIGS["smoke"], **{"train_images": 25, "test_images": 15, **changes})


def test_splits_are_disjoint_seeded_and_sized():
    task, config = _task(), _config()
    train, test = chapter.split_indices(task, config, 3)
    assert len(train) == 25 and len(test) == 15 and not set(train) & set(test)
    again = chapter.split_indices(task, config, 3)
    np.testing.assert_array_equal(train, again[0])
    with pytest.raises(ValueError, match="cannot split"):
        chapter.split_indices(task, _config(train_images=40), 0)


def test_majority_accuracy():
    assert chapter.majority_accuracy([6, 7, 4], [6, 6, 6, 2]) == 0.75          # majority aesthetic
    assert chapter.majority_accuracy([2, 3, 7], [6, 6, 6, 2]) == 0.25          # majority not aesthetic


def test_ava_without_data_says_what_to_put_where(tmp_path):
    with pytest.raises(DataNotFoundError, match="AVA.txt"):
        chapter.load_ava(tmp_path, 32)
    (tmp_path / "AVA").mkdir()
    with pytest.raises(DataNotFoundError, match="AVA.txt"):
        chapter.load_ava(tmp_path, 32)


def test_ava_reader_on_a_tiny_copy(tmp_path):
    from PIL import Image

    folder = tmp_path / "AVA"
    (folder / "images").mkdir(parents=True)
    rows = []
    for index, image_id in enumerate((11, 12, 13)):
        votes = [0] * 10
        votes[index + 3] = 5
        rows.append(" ".join(map(str, [index + 1, image_id, *votes, 0, 0, 1])))
        if image_id != 13:                                                    # one image is missing on disk
            Image.fromarray(np.full((40, 60, 3), 50 * index, np.uint8)).save(folder / "images" / f"{image_id}.jpg")
    (folder / "AVA.txt").write_text("\n".join(rows) + "\n")
    images, votes = chapter.load_ava(tmp_path, 32)
    assert images.shape == (2, 32, 32, 3) and votes.shape == (2, 10)
    assert votes[1].argmax() == 4


# --- prompting with an oracle encoder ------------------------------------------------------------------------


class _Oracle:
    """Images embed their mean score ``m`` as ``a = (m - 5.5) / 2.5`` on the first axis and a random direction in
    the other two; texts with 'outstanding' point along +first axis, 'horrible' along -first, others along the
    third axis (so they only add noise to a score)."""

    has_text = True
    name = "oracle"
    cache_key = "oracle|test"

    def __init__(self, task):
        phases = np.random.default_rng(0).uniform(0, 2 * np.pi, len(task))
        self.lookup = {image.tobytes(): (score, phase)
                       for image, score, phase in zip(task.images, task.mean_scores, phases)}

    def encode_images(self, images, progress=None):
        rows = []
        for image in images:
            score, phase = self.lookup[np.asarray(image).tobytes()]
            a = np.clip((score - 5.5) / 2.5, -1, 1)
            b = np.sqrt(1 - a ** 2)
            rows.append([a, b * np.cos(phase), b * np.sin(phase)])
        return np.asarray(rows, np.float32)

    def encode_texts(self, texts):
        rows = [[1.0, 0, 0] if "outstanding" in t else [-1.0, 0, 0] if "horrible" in t else [0, 0, 1.0] for t in texts]
        return np.asarray(rows, np.float32)


def test_prompting_chooses_the_informative_pair_on_training_images(tmp_path):
    task, config = _task(60, seed=1), _config(train_images=40, test_images=20, content_classes=3)
    oracle = _Oracle(task)
    embeddings = chapter.embed_task(oracle, task, cache_dir=tmp_path)
    results = chapter.prompting_results(oracle, embeddings, task, config, [0, 1], cache_dir=tmp_path)
    assert set(results.method) == set(P.METHODS) and len(results) == 3 * 2 * 2
    continuous = results[results.task == "continuous"]
    assert (continuous.pair == "outstanding / horrible").all()
    assert (continuous.spearman > 0.99).all()
    thesis = chapter.thesis_pair_results(oracle, embeddings, task, config, [0], cache_dir=tmp_path)
    assert len(thesis) == len(P.THESIS_BEST_PAIRS)
    assert thesis[(thesis.task == "continuous")].spearman.min() > 0.99


def test_prompt_embeddings_shapes(tmp_path):
    task = _task()
    oracle = _Oracle(task)
    fixed = chapter.prompt_embeddings(oracle, ["outstanding", "horrible"], "fixed", 5, cache_dir=tmp_path)
    context = chapter.prompt_embeddings(oracle, ["outstanding", "horrible"], "context", 5, cache_dir=tmp_path)
    ensemble = chapter.prompt_embeddings(oracle, ["outstanding", "horrible"], "ensemble", 5, cache_dir=tmp_path)
    assert fixed["outstanding"].shape == (1, 3) and context["horrible"].shape == (5, 3)
    np.testing.assert_allclose(ensemble["outstanding"], [[1.0, 0, 0]], atol=1e-6)
    np.testing.assert_allclose(ensemble["horrible"], [[-1.0, 0, 0]], atol=1e-6)
    with pytest.raises(ValueError, match="method must be"):
        chapter.prompt_embeddings(oracle, ["x"], "zero-shot", 5, cache_dir=tmp_path)


def test_probe_results_on_a_separable_feature(tmp_path):
    task, config = _task(80, seed=2), _config(train_images=50, test_images=30)
    features = np.stack([task.mean_scores, np.random.default_rng(0).normal(size=80)], 1)
    table, probes = chapter.probe_results("exact", features, task, config, [0, 1])
    assert (table.pearson > 0.9999).all() and (table.mae < 1e-3).all() and (table.accuracy > 0.95).all()
    assert abs(probes[0].coef[0] - 1.0) < 0.05


def test_property_probes_find_a_property_that_is_a_feature():
    import dataclasses

    task = _task(80, seed=4)
    rng = np.random.default_rng(1)
    properties = pd.DataFrame({c: rng.normal(size=80) for c in ("exposure", "contrast", "saturation", "blur", "noise")})
    task = dataclasses.replace(task, properties=properties)
    features = np.stack([properties["blur"], np.abs(properties["exposure"]), rng.normal(size=80)], 1)
    table = chapter.property_probes({"toy": features}, task, np.arange(50), np.arange(50, 80))
    assert table.loc["toy", "blur"] > 0.99 and table.loc["toy", "|exposure|"] > 0.99
    assert abs(table.loc["toy", "noise"]) < 0.5
    with pytest.raises(ValueError, match="hidden properties"):
        chapter.property_probes({"toy": features}, dataclasses.replace(task, properties=None), np.arange(50),
                                np.arange(50, 80))


def test_summary_table_lists_every_method():
    prompting = pd.DataFrame([
        {"encoder": "e", "method": "fixed", "words": "thesis adjectives", "task": "binary", "seed": 0, "accuracy": 0.7},
        {"encoder": "e", "method": "fixed", "words": "thesis adjectives", "task": "continuous", "seed": 0,
         "spearman": 0.3, "pearson": 0.2}])
    probing = pd.DataFrame([{"encoder": "e", "seed": s, "accuracy": a, "spearman": 0.5, "pearson": 0.5}
                            for s, a in ((0, 0.8), (1, 0.6))])
    table = chapter.summary_table(prompting, probing, pd.DataFrame(columns=["encoder"]), [0.7])
    assert list(table.method) == ["majority vote", "fixed prompt", "linear probe"]
    assert table.loc[2, "accuracy"] == "0.700 ± 0.141"
    assert table.loc[1, "accuracy"] == "0.700" and table.loc[1, "spearman"] == "0.300"


# --- fine-tuning -----------------------------------------------------------------------------------------------


def test_finetuning_learns_a_constant_rating(monkeypatch):
    """Every image is rated 7 by every voter: the fine-tuned head must move its predicted mean towards 7 (a tiny
    convolutional tower stands in for the encoders' towers, whose loading the next test checks)."""
    import dataclasses

    def tiny_tower(name, image_size, device, top_blocks=None):
        torch.manual_seed(0)
        network = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                      torch.nn.Flatten())
        return chapter._ImageTower(network, 8, 32, lambda x: x / 255.0, name)

    monkeypatch.setattr(chapter, "_tower_for", tiny_tower)
    task = _task(40, seed=3)
    point = np.zeros((40, 10), np.float32)
    point[:, 6] = 1.0
    task = dataclasses.replace(task, distributions=point, mean_scores=np.full(40, 7.0) + np.linspace(-0.01, 0.01, 40))
    settings = chapter.FinetuningConfig(towers=("tiny",), max_epochs=20, patience=20, batch_size=16, runs=1,
                                        lr_head=0.5, lr_backbone=1e-3)
    result = chapter.finetune_emd("tiny", task, np.arange(30), np.arange(30, 40), settings, seed=0)
    assert result["mae"] < 1.0                                   # an untrained head predicts about 5.5
    assert result["epochs"] <= 20 and result["validation_emd"] == min(result["history"]) < result["history"][0]


def test_efficientnet_towers_are_fine_tuned_at_the_size_their_name_gives():
    sized = chapter._tower_for("efficientnet-lite0-96px", 224, "cpu")
    plain = chapter._tower_for("efficientnet-lite0", 64, "cpu")
    assert (sized.image_size, plain.image_size, sized.feature_dim) == (96, 64, 1280)
    assert sized(torch.zeros(2, 3, 50, 50)).shape == (2, 1280)
    from domainknowledge.models.encoders.registry import parse_efficientnet_name

    assert [parse_efficientnet_name(n) for n in ("efficientnet-lite2", "efficientnet-lite0-96px",
                                                 "efficientnet-lite3", "efficientnet-lite0-96")] == [
        (2, None), (0, 96), None, None]


def test_trunk_trained_twins_have_their_roles_and_need_trunk_blocks():
    import dataclasses

    config = chapter.CONFIGS["cpu"]
    names = ["aligned-lite0-minilm-cpu-top2-without-aesthetics",
             "aligned-lite0-minilm-cpu-top2-class-labels-without-aesthetics",
             "aligned-lite0-minilm-cpu-top2-150-without-aesthetics", config.multimodal[0], config.label_counterpart]
    roles = chapter.encoder_roles(config, names, dict(zip(("captions", "class-labels", "smaller"), names[:3])))
    assert roles[names[0]] == chapter.TRUNK_ROLES["captions"]
    assert roles[names[1]] == chapter.TRUNK_ROLES["class-labels"]
    assert "150 images per world" in roles[names[2]]
    assert roles[config.multimodal[0]].startswith("primary") and "twin" in roles[config.label_counterpart]
    with pytest.raises(ValueError, match="set trunk_blocks too"):
        dataclasses.replace(config, trunk_blocks=None)
    with pytest.raises(ValueError, match="aligned primary encoder and trunk_blocks"):
        chapter.trunk_encoders(chapter.CONFIGS["paper"])


def test_a_split_tower_computes_the_whole_towers_features():
    """Fine-tuning only the top blocks on cached maps (FinetuningConfig.top_blocks) must start from the very
    features of the whole tower: upper(*lower(x)) equals the unsplit tower's output (the aligned tower's split:
    tests/test_aligned_encoder.py)."""
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 3, 64, 64), dtype=np.uint8))
    whole = chapter._tower_for("efficientnet-lite0-96px", 224, "cpu").eval()
    split = chapter._tower_for("efficientnet-lite0-96px", 224, "cpu", top_blocks=2).eval()
    with torch.no_grad():
        assert torch.allclose(split.upper(*split.lower(images)), whole(images), atol=1e-5)
    trained = [p for p in split.tower.parameters() if p.requires_grad]
    assert 0 < sum(p.numel() for p in trained) < sum(p.numel() for p in whole.tower.parameters())
    split.train()
    assert not any(m.training for m in split.modules() if isinstance(m, torch.nn.BatchNorm2d))
