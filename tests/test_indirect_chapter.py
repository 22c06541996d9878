"""The InDiReCT chapter's drivers (Kobs 2023, Ch. 13): configs, data and notions, one tiny end-to-end run."""

import dataclasses

import numpy as np
import pytest
import torch

from domainknowledge.chapters import indirect as chapter
from domainknowledge.data.bundled import DataNotFoundError

SMOKE = chapter.CONFIGS["smoke"]


def test_profiles_and_config_validation():
    assert set(chapter.CONFIGS) == {"smoke", "cpu", "paper"}
    cpu, paper = chapter.CONFIGS["cpu"], chapter.CONFIGS["paper"]
    assert cpu.runs == 5 and paper.runs == 5 and paper.real and paper.embedding_dim == 128
    assert chapter.reduced_dim(paper, 512) == 128 and chapter.reduced_dim(cpu, 64) == 16
    assert chapter.reduced_dim(cpu, 384) == 96 and chapter.reduced_dim(cpu, 4) == 2
    with pytest.raises(ValueError, match="analysis target"):
        dataclasses.replace(SMOKE, views_on="world|no-such-encoder")
    with pytest.raises(ValueError, match="analysis target"):
        dataclasses.replace(SMOKE, primary="world|no-such-encoder")
    assert all(config.primary.split("|")[1] in config.encoders for config in chapter.CONFIGS.values())
    cpu_pairs = chapter.evaluated_pairs(cpu, ["cars", "world"])
    assert len(cpu_pairs) == len(cpu.pairs) == 4 and {key for key, _ in cpu_pairs} == {"cars", "world"}
    assert all("-without-cars" not in name for key, name in cpu_pairs if key == "world")
    assert all("-without-captioned" not in name for key, name in cpu_pairs if key == "cars")
    everything = dataclasses.replace(paper, pairs=())                                    # no pairs: all of them
    assert len(chapter.evaluated_pairs(everything, ["cars", "world"])) == 2 * len(paper.encoders)
    with pytest.raises(ValueError, match="pair 'cars' must read"):
        dataclasses.replace(SMOKE, pairs=("cars",))
    with pytest.raises(ValueError, match="not among the evaluated pairs"):
        dataclasses.replace(SMOKE, primary=f"cars|{SMOKE.encoders[0]}")
    with pytest.raises(ValueError, match="unknown sweep methods"):
        dataclasses.replace(SMOKE, sweep_methods=("t-SNE",))
    with pytest.raises(ValueError, match="at least 20"):
        dataclasses.replace(SMOKE, rendered_cars=5)
    assert chapter.parse_target("Cars196|open_clip:ViT-B-32/openai|car model") == (
        "Cars196", "open_clip:ViT-B-32/openai", "car model")


def test_css_colour_names_known_answers():
    names = chapter.css_colour_names([[1, 0, 0], [0.02, 0.01, 0], [0.5, 0.5, 0.52], [1, 0.66, 0.05]])
    assert list(names) == ["red", "black", "gray", "orange"]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        chapter.css_colour_names([[2, 0, 0]])


def test_notions_follow_table_13_1():
    notion = chapter.Notion("Car colour", ("a {} car",), ("red", "blue"))
    assert notion.prompts == ["a red car", "a blue car"]
    assert set(chapter.REAL_DATASETS) == {"Cars196", "CUB200", "DeepFashion", "MoviePosters"}
    assert chapter.REAL_DATASETS["DeepFashion"]["fit"] == "a photo of a person wearing clothes with a {} fit"


def test_real_data_sets_name_the_missing_file_and_source(tmp_path):
    with pytest.raises(DataNotFoundError, match="cars_annos.mat.*ai.stanford.edu"):
        chapter.load_datasets(dataclasses.replace(SMOKE, rendered_cars=20, world_images=20, real=True), seed=0,
                              data_root=tmp_path)
    with pytest.raises(DataNotFoundError, match="data_root"):
        chapter.load_real_dataset("CUB200", None)
    with pytest.raises(ValueError, match="unknown data set"):
        chapter.load_real_dataset("SOP", tmp_path)


def test_notion_labels_come_from_the_published_class_names():
    assert chapter.car_make("Aston Martin V8 Vantage Coupe 2012") == "Aston Martin"
    assert chapter.car_make("AM General Hummer SUV 2000") == "AM General"
    assert chapter.car_make("Range Rover Evoque") == "Land Rover" == chapter.car_make("Land Rover LR2 SUV 2012")
    assert chapter.car_make("smart fortwo Convertible 2012") == "smart"
    assert chapter.car_make("Mercedes-Benz Sprinter Van 2012") == "Mercedes-Benz"
    assert chapter.car_body_type("Ram C/V Cargo Van Minivan 2012") == "minivan"
    assert chapter.car_body_type("Ford F-150 Regular Cab 2012") == "pickup truck"
    assert chapter.car_body_type("BMW 3 Series Wagon 2012") == "wagon"
    assert chapter.car_body_type("Acura TL Type-S 2008") == chapter.UNLABELLED
    assert chapter.cub_species("001.Black_footed_Albatross") == "Black footed Albatross"
    assert list(chapter.labelled(["a", "", "b"])) == [True, False, True]
    # the aspects are not the test labels: every make of the car-model list is a manufacturer aspect
    assert {"BMW", "Aston Martin", "Land Rover"} <= {chapter.car_make(n) for n in chapter.CAR_MODEL_NAMES}


def test_unlabelled_images_are_left_out_of_a_notion():
    rng = np.random.default_rng(1)
    images = rng.standard_normal((12, 8)).astype(np.float32)
    labels = np.asarray(["a", "b", "a", "b", "a", "b", "", "", "a", "b", "a", "b"])
    config = dataclasses.replace(SMOKE, embedding_dim=2, max_iterations=3, oracle_iterations=3)
    rows = chapter.evaluate_notion("d", "e", "n", images, images[:5], labels, config, [0], methods=("Raw", "Oracle"))
    kept = labels != ""
    raw = chapter.indirect.retrieval_scores(images[kept], labels[kept])
    assert rows.set_index("method").loc["Raw", "map_at_r"] == pytest.approx(raw["map_at_r"])
    with pytest.raises(ValueError, match="only 1 of 3"):
        chapter.evaluate_notion("d", "e", "n", images[:3], images[:5], ["a", "", ""], config, [0], methods=("Raw",))


def test_tiny_end_to_end_run_on_known_embeddings():
    """Images whose embeddings vary along the prompts' directions: InDiReCT must find the notion and every
    method of Table 13.2 must produce a row; the sweeps and tables have the documented shapes."""
    rng = np.random.default_rng(0)
    dim, classes = 24, 4
    directions = np.linalg.qr(rng.standard_normal((dim, dim)))[0]
    notion_axes, nuisance_axes = directions[:, :classes], directions[:, classes:]
    labels = np.repeat(np.arange(classes), 15)
    images = 1.0 * notion_axes.T[labels] + 1.5 * rng.standard_normal((60, dim - classes)) @ nuisance_axes.T
    texts = notion_axes.T[rng.integers(0, classes, 12)] + 0.05 * rng.standard_normal((12, dim)) + 0.5 * directions[:, -1]
    config = dataclasses.replace(SMOKE, embedding_dim=4, dim_fraction=1.0, max_iterations=400, oracle_iterations=200,
                                 sweep_dims=(2, 4), prompt_counts=(3, 12), sweep_runs=1)
    results = chapter.evaluate_notion("toy", "toy-encoder", "class", images, texts, labels, config, [0, 1])
    assert set(results.method) == set(chapter.METHODS)
    assert (results.method == "Raw").sum() == 1 and (results.method == "InDiReCT").sum() == 2
    means = results.groupby("method")["map_at_r"].mean()
    assert means["InDiReCT"] > means["Raw"] + 0.1 and means["Oracle"] > means["Raw"]
    assert means["Random"] < means["Raw"]
    table = chapter.table_13_2(results)
    assert list(table.columns) == list(chapter.METHODS) and len(table) == 2
    problem = chapter.Problem.of("toy", "toy-encoder", "class", images, texts, labels)
    sweep = chapter.dimension_sweep([problem], config, [0], methods=("InDiReCT", "PCA"))
    assert set(sweep["dim"]) == {2, 4}
    prompts = chapter.prompt_count_sweep([problem], config, [0, 1], dim=2)
    assert set(prompts["prompts"]) == {3, 12} and len(prompts) == 4
    # the primary pair runs every method, the other pairs only the diagnostic ones
    config = dataclasses.replace(config, diagnostic_methods=chapter.DIAGNOSTIC_CORE)
    primary_key, primary_encoder = config.primary.split("|")
    other = chapter.Problem.of("other", "toy-encoder", "class", images, texts, labels)
    both = chapter.evaluate_table({(primary_key, primary_encoder, "class"): problem,
                                   ("cars", primary_encoder, "class"): other}, config, [0])
    assert set(both[both.dataset == "toy"].method) == set(chapter.METHODS)
    assert set(both[both.dataset == "other"].method) == set(chapter.DIAGNOSTIC_CORE)
    with pytest.raises(ValueError, match="diagnostic_methods must"):
        dataclasses.replace(config, diagnostic_methods=("Raw", "InDiReCT"))
    chosen, views = chapter.tsne_views({"a": images, "b": images[:, :3]}, 20, seed=0)
    assert len(chosen) == 20 and views["a"].shape == (20, 2)
    import matplotlib.pyplot as plt

    chapter.plot_dimension_sweep(sweep, {"class": float(means["Raw"])})
    chapter.plot_views(views, {"a": labels[chosen], "b": labels[chosen]})
    plt.close("all")


def test_zero_shot_naming_reads_the_classes_the_words_name():
    """Images that lie along their class's prompts are named (balanced accuracy 1, p at its floor); images
    unrelated to the words are not; notions whose aspects do not name the classes give NaN."""
    rng = np.random.default_rng(0)
    axes = np.linalg.qr(rng.standard_normal((16, 16)))[0][:, :3].T                 # three class directions
    notion = chapter.Notion("Toy", ("a {} thing", "one {}"), ("red", "crimson", "blue", "green"),
                            ("red", "red", "blue", "green"))
    classes = {"red": 0, "blue": 1, "green": 2}
    texts = np.stack([axes[classes[c]] + 0.1 * rng.standard_normal(16)
                      for _ in notion.templates for c in notion.aspect_classes])   # (8, 16), template-major
    labels = np.array(["red", "blue", "green"] * 20 + ["purple"] * 5)
    images = np.stack([axes[classes.get(c, 0)] for c in labels]) + 0.1 * rng.standard_normal((65, 16))
    named = chapter.zero_shot_naming(images, texts, notion, labels, rounds=200)
    assert named["accuracy"] == 1.0 and named["chance"] == pytest.approx(1 / 3) and named["images"] == 60
    assert named["p_value"] == pytest.approx(1 / 201)
    unrelated = chapter.zero_shot_naming(rng.standard_normal((65, 16)), texts, notion, labels, rounds=200)
    assert unrelated["p_value"] > 0.01
    unnamed = chapter.zero_shot_naming(images, texts, dataclasses.replace(notion, aspect_classes=None), labels)
    assert np.isnan(unnamed["accuracy"])
    with pytest.raises(ValueError, match="aspect classes"):
        chapter.Notion("Bad", ("{}",), ("a", "b"), ("a",))


def test_world_object_masks_and_attribution_share():
    import pandas as pd

    factors = pd.DataFrame({"x": [0.5], "y": [0.5], "radius": [0.25]})
    masks = chapter.world_object_masks(factors, 8)
    assert masks.shape == (1, 8, 8) and masks[0, 4, 4] and not masks[0, 0, 0]
    maps = {"inside": masks.astype(float) / masks.sum(), "outside": (~masks).astype(float) / (~masks).sum()}
    shares = chapter.attribution_share(maps, masks)
    assert shares["inside"] == pytest.approx(1.0) and shares["outside"] == pytest.approx(0.0)


def test_attribution_maps_are_normalised_and_follow_the_projection():
    """A linear image tower whose four outputs each read one pixel of the left half: every map puts all its mass
    there, and a projection that keeps two of the outputs puts it on exactly their two pixels."""
    import torch

    class Tower(torch.nn.Module):
        def __init__(self):
            super().__init__()
            weight = torch.zeros(4, 3 * 4 * 4)
            index = torch.arange(3 * 4 * 4).reshape(3, 4, 4)
            weight[0, index[0, 0, 0]] = weight[1, index[1, 1, 1]] = weight[2, index[2, 2, 0]] = weight[3, index[0, 3, 1]] = 1.0
            self.register_buffer("weight", weight)

        def encode_image(self, x):
            return x.flatten(1) @ self.weight.T

    class Encoder:
        name = "toy"
        model = Tower()

        @staticmethod
        def preprocess(x):
            return x / 255.0

    images = np.full((2, 4, 4, 3), 200, dtype=np.uint8)
    maps = chapter.attribution_maps(Encoder(), images, {"Raw": None, "first": np.eye(4, 2, dtype=np.float32)}, steps=8)
    assert set(maps) == {"Raw", "first"} and maps["Raw"].shape == (2, 4, 4)
    for values in maps.values():
        assert np.allclose(values.sum(axis=(1, 2)), 1.0, atol=1e-5)
        assert np.allclose(values[:, :, 2:], 0.0, atol=1e-6)                 # the tower never reads the right half
    assert {tuple(p) for p in np.argwhere(maps["first"][0] > 1e-6)} == {(0, 0), (1, 1)}
    with pytest.raises(ValueError, match="differentiable"):
        chapter.attribution_maps(type("NoTower", (), {"name": "x"})(), images, {"Raw": None}, steps=2)

    class AlignedLike:                                   # the aligned model's interface: a trainable image side
        name = "aligned-like"

        @staticmethod
        def trainable_image_tower():
            tower = Tower()
            return type("Side", (torch.nn.Module,), {"forward": lambda self, x: tower.encode_image(x / 255.0)})()

    again = chapter.attribution_maps(AlignedLike(), images, {"first": np.eye(4, 2, dtype=np.float32)}, steps=8)
    np.testing.assert_allclose(again["first"], maps["first"], atol=1e-6)


def _rows(notion, values):
    """Result rows of one notion: ``values[method]`` is a list of MAP@R per seed (one value for Raw)."""
    import pandas as pd

    return pd.DataFrame([{"dataset": "D", "encoder": "E", "notion": notion, "method": method, "seed": seed,
                          "map_at_r": value} for method, runs in values.items() for seed, value in enumerate(runs)])


def test_notion_findings_follow_the_rules_of_the_claims():
    import pandas as pd

    held = _rows("held", {"Random": [0.05, 0.06, 0.05], "Raw": [0.30], "InDiReCT": [0.50, 0.51, 0.49],
                          "Random U": [0.20, 0.22, 0.21], "PCA": [0.495, 0.495, 0.495], "LAE": [0.40, 0.41, 0.39],
                          "AE": [0.20, 0.35, 0.10], "Oracle": [0.80, 0.81, 0.79]})
    # the ceiling ties the floor at chance: not held, whatever InDiReCT does
    chance = _rows("chance", {"Random": [0.05, 0.06, 0.05], "Raw": [0.05], "InDiReCT": [0.05, 0.05, 0.05],
                              "Oracle": [0.05, 0.06, 0.05]})
    table = chapter.notion_findings(pd.concat([held, chance], ignore_index=True))
    row = table.loc[("D", "E", "held")]
    assert row["held"] and row["indirect_beats_raw"] and row["oracle_above_indirect"] and row["random_u_below_raw"]
    assert row["pca_gap_share"] == pytest.approx(0.005 / (0.50 - 0.16 / 3), rel=1e-6) and row["pca_similar"]
    assert row["lae_not_above_indirect"] and row["lae_above_raw"] and row["ae_below_raw"]
    assert row["ae_spread_above_indirect"]
    tie = table.loc[("D", "E", "chance")]
    assert not tie["held"]
    assert np.isnan(tie["pca_gap_share"]) and np.isnan(tie["random_u_below_raw"])
    # a ceiling only a hair above the floor, consistent over seeds, is still not held (under 5 % of the headroom)
    hair = _rows("hair", {"Random": [0.05, 0.05, 0.05], "Raw": [0.05], "InDiReCT": [0.05, 0.05, 0.05],
                          "Oracle": [0.06, 0.061, 0.059]})
    assert not chapter.notion_findings(hair).loc[("D", "E", "hair"), "held"]


def test_a_paper_dry_run_caps_loop_counts_not_sizes():
    from domainknowledge.experiment import select

    paper, dry = chapter.CONFIGS["paper"], select(chapter.CONFIGS, "paper", dry_run=True)
    assert dry.encoders == paper.encoders[:1] == ("open_clip:ViT-B-32/openai",)
    keys = ["cars", "world", *chapter.REAL_DATASETS]
    assert chapter.evaluated_pairs(dry, keys) == [(key, dry.encoders[0]) for key in keys]
    assert len(chapter.evaluated_pairs(paper, keys)) == len(keys) + 4               # and the aligned model's
    assert dry.rendered_cars < paper.rendered_cars and dry.world_images < paper.world_images
    assert dry.attributed_images < paper.attributed_images and dry.max_iterations < paper.max_iterations
    assert dry.aspects_per_notion < paper.aspects_per_notion == chapter.EVERY_ASPECT
    assert dry.car_image_size == paper.car_image_size and dry.embedding_dim == paper.embedding_dim
    assert dry.primary == paper.primary and dry.real


def _small_problem(seed=0, n=12, width=10):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, width)).astype(np.float32)


@pytest.mark.parametrize("batched, sequential", [
    (chapter.fit_indirect_batch, chapter.indirect.fit_indirect),
    (chapter.fit_linear_autoencoder_batch, chapter.indirect.fit_linear_autoencoder),
    (chapter.fit_autoencoder_batch, chapter.indirect.fit_autoencoder),
])
def test_batched_fits_follow_the_sequential_fits(batched, sequential):
    """Seeds, r' values and prompt sets of different sizes in one call: every member takes the same Adam steps as
    its own sequential fit (same losses, same parameters, up to float32 noise)."""
    texts, other = _small_problem(0), _small_problem(1)
    members = [chapter.Member(texts, 3, 0), chapter.Member(texts, 5, 1), chapter.Member(other, 2, 2),
               chapter.Member(texts[:7], 4, 3)]
    images = _small_problem(2, n=20)
    fits = batched(members, max_iterations=40)
    for member, fit in zip(members, fits):
        reference = sequential(member.texts, member.dim, seed=member.seed, max_iterations=40)
        assert fit.iterations == reference.iterations == 40
        np.testing.assert_allclose(fit.losses, reference.losses, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(fit(images), reference(images), atol=2e-4)
        assert fit(images).shape == (20, member.dim)


def test_members_are_padded_only_within_a_bucket_of_dimensions():
    """An r' sweep from 2 to 384 in one batch would pad every member to 384 columns: members are stacked per
    prompt shape and per power-of-4 bucket of r'."""
    from domainknowledge.principles import indirect_batch

    assert [indirect_batch._dim_bucket(d) for d in (1, 2, 4, 5, 16, 17, 96, 384)] == [1, 4, 4, 16, 16, 64, 256, 1024]
    texts = _small_problem(0, width=400)
    members = [chapter.Member(texts, d, 0) for d in (2, 4, 8, 96, 384)] + [chapter.Member(texts[:5], 2, 0)]
    assert indirect_batch._shape_groups(members) == {(12, 400, 4): [0, 1], (12, 400, 16): [2], (12, 400, 256): [3],
                                                     (12, 400, 1024): [4], (5, 400, 4): [5]}


def test_batched_early_stopping_is_per_member():
    """Prompts in a 2-d subspace are reconstructed exactly at r' = 2, so that member plateaus and stops early by
    the thesis' patience, while a member that cannot (r' = 1) stops on its own schedule, each at the best loss of its
    sequential fit. The stopping iterations are not compared with the sequential ones: on a plateau, float32 noise
    of another summation order can still count as an improvement (on one CPU the r' = 1 member stopped at 309
    batched against 191 alone, at the same best loss)."""
    rng = np.random.default_rng(3)
    basis = np.linalg.qr(rng.standard_normal((10, 2)))[0]
    texts = (rng.standard_normal((15, 2)) @ basis.T).astype(np.float32)
    members = [chapter.Member(texts, 2, 0), chapter.Member(texts, 1, 1)]
    fits = chapter.fit_indirect_batch(members, max_iterations=3000)
    for member, fit in zip(members, fits):
        reference = chapter.indirect.fit_indirect(texts, member.dim, seed=member.seed, max_iterations=3000)
        assert fit.iterations < 3000 and reference.iterations < 3000
        assert fit.best_loss == pytest.approx(reference.best_loss, rel=1e-3, abs=1e-3)
    assert fits[0].iterations != fits[1].iterations                  # each member stopped on its own
    assert fits[0].best_loss < 1e-2 < 0.5 < fits[1].best_loss


def test_batched_oracle_follows_the_sequential_oracle():
    """Oracle members on the same images with different label sets (class counts) and r' values. Its loss (logits
    up to 1 / 0.05) amplifies float32 noise within tens of steps, so the comparison is over the first 15."""
    rng = np.random.default_rng(4)
    images = rng.standard_normal((40, 10)).astype(np.float32)
    labels = [rng.integers(0, 4, 40), rng.integers(0, 3, 40)]
    members = [chapter.Member(None, 3, 0, labels=labels[0]), chapter.Member(None, 5, 1, labels=labels[1]),
               chapter.Member(None, 2, 2, labels=labels[0])]
    fits = chapter.fit_oracle_batch(images, members, max_iterations=15)
    for member, fit in zip(members, fits):
        reference = chapter.indirect.fit_oracle(images, member.labels, member.dim, seed=member.seed, max_iterations=15)
        np.testing.assert_allclose(fit.losses, reference.losses, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(fit.matrix, reference.matrix, atol=2e-4)
    with pytest.raises(ValueError, match="labels"):
        chapter.fit_oracle_batch(images, [chapter.Member(None, 2, 0, labels=labels[0][:5])], max_iterations=2)


def test_min_improvement_ends_a_creeping_fit():
    """With ``min_improvement`` a loss that keeps falling by less than that share no longer resets the patience."""
    def creeping(parameters, members):
        return 1.0 + 1.0 / (1.0 + parameters[0][:, 0].abs())                   # falls slowly as |x| grows

    start = torch.zeros(2, 1) + torch.tensor([[1.0], [2.0]])
    strict, _ = chapter.optimise_members([start], creeping, lr=1e-3, patience=10, max_iterations=300)
    loose, _ = chapter.optimise_members([start], creeping, lr=1e-3, patience=10, max_iterations=300,
                                        min_improvement=1e-2)
    assert [len(h) for h in strict] == [300, 300] and all(len(h) < 300 for h in loose)


def test_orderings_set_the_thesis_ranking_beside_the_measured_one():
    assert chapter.ordering({"Raw": 0.3, "Random": 0.1, "InDiReCT": 0.5, "PCA": float("nan")}) == "Random < Raw < InDiReCT"
    import pandas as pd

    rows = [{"dataset": "cars", "encoder": "e", "notion": "car colour", "method": m, "seed": 0, "map_at_r": v}
            for m, v in {"Random": 0.05, "Raw": 0.2, "InDiReCT": 0.1, "Oracle": 0.5}.items()]
    table = chapter.orderings(pd.DataFrame(rows), "Synthetic Cars", "cars", "e")
    assert list(table.notion) == ["car colour"]
    assert table.loc[0, "thesis"] == "Random < Raw < InDiReCT < Oracle"
    assert table.loc[0, "measured"] == "Random < InDiReCT < Raw < Oracle"
    assert table.loc[0, "pairs in the thesis' order"] == "5 of 6"
