"""Experiment drivers of the MapLUR chapter (Kobs 2023, Ch. 6): what a land-use regression CNN learned.

The chapter trains MapLUR (:class:`~domainknowledge.models.maplur.MapLUR`) on map tiles and NO2 values,
compares it with the classic LUR baselines on hand-made features (Table 6.1), and then feeds it generated
probe tiles, one property at a time (Sec. 6.1.1):

* **entity features** (Table 6.2): tiles covered by one land use (or by a motorway or trunk road), alone and
  with a trunk road or motorway through the centre (:func:`entity_table`);
* **area features** (Fig. 6.2): a trunk road through the centre of a neutral tile, its width varied pixel by
  pixel, vertical and horizontal (:func:`width_sweep`);
* **distance features** (Fig. 6.3): a trunk road of fixed width moved pixel by pixel away from the centre,
  with linear and quadratic fits and Pearson's r (:func:`distance_sweep`, :func:`curve_fits`).

At the ``smoke`` and ``cpu`` profiles the tiles come from the seeded generator
:mod:`domainknowledge.data.synthetic.map_tiles`, whose hidden NO2 function gives the truth for every
probe, so each learned curve is drawn against it. The ``paper`` profile reads the LAEI 2013 values and OSM
renders from ``data_root`` (:mod:`domainknowledge.data.real.laei`) and trains with the thesis' settings.

Verdicts compare numbers over the runs (initialisations) with
:func:`domainknowledge.significance.paired_gap_exceeds_spread`: a difference counts only when its mean
exceeds twice its standard deviation over runs.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import stats
from sklearn.exceptions import ConvergenceWarning

from domainknowledge.data.synthetic import map_tiles
from domainknowledge.data.synthetic.map_tiles import LAND_USES, NO2Function, Scene
from domainknowledge.experiment import describe_profiles as describe_config_profiles
from domainknowledge.models.cnn import Standardize, count_parameters
from domainknowledge.models.maplur import MAPLUR_POOL_AFTER, MapLUR
from domainknowledge.training import (TrainingConfig, as_image_tensor, predict_values, random_dihedral,
                                      train_regressor)

__all__ = ["BASELINES", "CONFIGS", "Config", "MapTask", "Runs", "baseline_runs", "curve_fits", "describe_profiles",
           "distance_sweep", "entity_table", "escape_forward_selection", "load_task",
           "predict_scenes", "r2_score", "rmse", "run_seeds", "summary_table", "sweep_fits", "truth_distance_fits", "sweep_rise", "train_maplur", "width_sweep"]

DATA_SOURCES = ("synthetic", "laei2013")
BASELINES = ("Mean", "LR", "MLP", "RF")
PROBE_ROAD = "trunk"          # the road of the area and distance probes (Sec. 6.1.1)


@dataclass(frozen=True)
class Config:
    """What one profile of the MapLUR chapter runs. Every field is shown on the chapter page.

    ``data`` (``synthetic`` generator or ``laei2013`` from ``data_root``), ``image_size`` (px; 224 in the
    thesis), ``split_sizes`` (train, validation, test tiles of the generator; ``None`` for real data, which are
    split by :func:`~domainknowledge.data.real.laei.non_overlapping_split`: a third for testing, 10 % of the
    rest for validation, no tile overlapping a tile of another split, as the thesis requires), the network (``depth``, ``width``, ``pool_after``, ``hidden``: 15, 16, blocks 1, 3, 5, 7, 10,
    13 and 128 in the thesis), ``training`` (Adam, MSE, early stopping on validation MSE), ``runs``
    (initialisations per model, 40 in the thesis), the baselines' ``feature_radii_m``, ``forest_trees`` and
    ``mlp_hidden``, ``extended_features`` (also fit the baselines on the generator-aware feature set), and
    the probe grids in pixels: ``width_step_px`` (widths 1, 1 + step, ... up to half the tile) and
    ``distance_step_px`` (road centre 0, step, ... px from the tile centre up to the edge).
    """

    data: str
    image_size: int
    split_sizes: tuple[int, int, int] | None
    depth: int
    width: int
    pool_after: tuple[int, ...]
    hidden: int
    training: TrainingConfig
    runs: int
    feature_radii_m: tuple[float, ...]
    forest_trees: int
    mlp_hidden: tuple[int, ...]
    extended_features: bool
    width_step_px: int
    distance_step_px: int

    def __post_init__(self):
        if self.data not in DATA_SOURCES:
            raise ValueError(f"data must be one of {DATA_SOURCES}, got {self.data!r}")
        if self.runs < 1:
            raise ValueError(f"runs must be at least 1, got {self.runs}")
        if self.data == "synthetic" and self.split_sizes is None:
            raise ValueError("synthetic data need split_sizes = (train, validation, test)")
        if self.data == "laei2013" and self.split_sizes is not None:
            raise ValueError("laei2013 is split without overlapping tiles (split_sizes=None), not by fixed sizes")
        if self.split_sizes is not None and (len(self.split_sizes) != 3 or min(self.split_sizes) < 2):
            raise ValueError(f"split_sizes must be three counts of at least 2, got {self.split_sizes}")
        if self.image_size // 2 ** len(self.pool_after) < 1:
            raise ValueError(f"image_size {self.image_size} is too small for {len(self.pool_after)} poolings")
        if self.width_step_px < 1 or self.distance_step_px < 1:
            raise ValueError("the probe steps must be at least 1 px")
        if self.forest_trees < 1 or not self.feature_radii_m:
            raise ValueError("forest_trees must be positive and feature_radii_m non-empty")


CONFIGS: dict[str, Config] = {
    "smoke": Config(
        data="synthetic", image_size=64, split_sizes=(240, 80, 160), depth=15, width=16,
        pool_after=MAPLUR_POOL_AFTER, hidden=128,
        training=TrainingConfig(max_epochs=2, batch_size=32, patience=2, monitor="mse", learning_rate=1e-3),
        runs=2, feature_radii_m=(20.0, 40.0), forest_trees=20, mlp_hidden=(32,), extended_features=True,
        width_step_px=4, distance_step_px=4),
    "cpu": Config(
        data="synthetic", image_size=64, split_sizes=(2000, 500, 1000), depth=15, width=16,
        pool_after=MAPLUR_POOL_AFTER, hidden=128,
        training=TrainingConfig(max_epochs=24, batch_size=32, patience=6, monitor="mse", learning_rate=1e-3),
        runs=3, feature_radii_m=map_tiles.LUR_RADII_M, forest_trees=100, mlp_hidden=(64,), extended_features=True,
        width_step_px=2, distance_step_px=1),
    "paper": Config(
        data="laei2013", image_size=224, split_sizes=None, depth=15, width=16,
        pool_after=MAPLUR_POOL_AFTER, hidden=128,
        training=TrainingConfig(max_epochs=2000, batch_size=400, patience=20, monitor="mse", learning_rate=1e-4),
        runs=40, feature_radii_m=map_tiles.LUR_RADII_M, forest_trees=500, mlp_hidden=(64,), extended_features=False,
        width_step_px=4, distance_step_px=2),
}


def describe_profiles(configs: dict[str, Config] | None = None) -> pd.DataFrame:
    """A table of every Config field (rows) per profile (columns)."""
    return describe_config_profiles(CONFIGS if configs is None else configs)


def run_seeds(seed: int, runs: int) -> tuple[int, ...]:
    """The initialisation seeds of the runs: ``1000 * seed + k`` for ``k < runs``."""
    return tuple(1000 * seed + k for k in range(runs))


# --- data ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MapTask:
    """Tiles per split: ``images[split]`` ``(N, 3, S, S)`` uint8 tensors (for real tiles, a lazy
    :class:`~domainknowledge.data.real.image_files.ImageFiles` indexed like one), ``no2[split]`` ``(N,)`` float64,
    ``labels[split]`` ``(N, S, S)`` int8 label maps (decoded from colours for real renders), ``truth[split]``
    the hidden noise-free values (``None`` for real data), and the NO2 function of the stand-in."""

    description: str
    images: dict[str, torch.Tensor]
    no2: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    truth: dict[str, np.ndarray] | None
    function: NO2Function | None
    is_stand_in: bool

    @property
    def image_size(self) -> int:
        return int(self.images["train"].shape[-1])


def _split_indices(count: int, sizes: tuple[int, int, int], seed: int) -> dict[str, np.ndarray]:
    if sum(sizes) > count:
        raise ValueError(f"split_sizes {sizes} need {sum(sizes)} tiles, only {count} are available")
    order = np.random.default_rng(seed).permutation(count)
    bounds = np.cumsum((0,) + tuple(sizes))
    return {name: np.sort(order[bounds[i]:bounds[i + 1]]) for i, name in enumerate(("train", "validation", "test"))}


#: Tiles decoded at a time where real tiles are read from their files (a bounded slice of the data set).
TILE_CHUNK = 256


def _decoded_labels(images) -> np.ndarray:
    """Label maps ``(N, S, S)`` int8 of renders ``(N, S, S, 3)`` (an array or a lazy reader), decoded
    :data:`TILE_CHUNK` tiles at a time."""
    labels = np.empty(images.shape[:3], dtype=np.int8)
    for start in range(0, len(images), TILE_CHUNK):
        labels[start:start + TILE_CHUNK] = map_tiles.decode_labels(images[start:start + TILE_CHUNK])
    return labels


def _split_images(images, index: dict[str, np.ndarray]) -> dict:
    """Per split, the images ``(n, 3, S, S)`` uint8: contiguous tensors from an array ``(N, S, S, 3)``, or
    lazy channels-first views of an :class:`~domainknowledge.data.real.image_files.ImageFiles` (no pixels
    read here)."""
    from domainknowledge.data.real.image_files import ImageFiles

    if isinstance(images, ImageFiles):
        return {name: ImageFiles([images.paths[k] for k in i], images.prepare, images.size, channels_first=True,
                                 workers=images.workers) for name, i in index.items()}
    tensors = as_image_tensor(images)
    return {name: tensors[i].contiguous() for name, i in index.items()}


def load_task(config: Config, *, seed: int, data_root=None, function: NO2Function | None = None) -> MapTask:
    """Generate (``synthetic``) or read (``laei2013``) the tiles of ``config`` and split them."""
    if config.data == "synthetic":
        function = function or NO2Function()
        tiles = map_tiles.make_map_tiles(sum(config.split_sizes), seed=seed, size=config.image_size,
                                         function=function)
        index = _split_indices(len(tiles.no2), config.split_sizes, seed)
        images, no2, labels, truth = tiles.images, tiles.no2, tiles.labels, tiles.truth
        description = (f"generated OSM-style tiles (seeded stand-in for LAEI 2013 + OpenStreetMap), "
                       f"{config.image_size} x {config.image_size} px for 80 m x 80 m")
    else:
        from domainknowledge.data.real.laei import load_laei_tiles, non_overlapping_split

        # tiles stay files (decoded a batch at a time); only their int8 label maps are kept (0.05 MiB a tile)
        tiles = load_laei_tiles(data_root, config.image_size, lazy=True)
        images, no2, truth, function = tiles.images, tiles.no2, None, None
        labels = _decoded_labels(images)
        # the thesis: a third of the cells for testing, 10 % of the rest for validation, no overlapping tiles
        index = non_overlapping_split(tiles.easting, tiles.northing, seed=seed)
        description = (f"LAEI 2013 NO2 with OSM renders from data_root, resized to {config.image_size} px and "
                       f"decoded a batch at a time (never all in memory); "
                       f"split into spatial blocks with no tile overlapping another split's "
                       f"({', '.join(f'{len(v)} {k}' for k, v in index.items())})")
    return MapTask(
        description=description,
        images=_split_images(images, index),
        no2={name: np.asarray(no2[i], dtype=np.float64) for name, i in index.items()},
        labels={name: labels[i] for name, i in index.items()},
        truth=None if truth is None else {name: truth[i] for name, i in index.items()},
        function=function, is_stand_in=config.data == "synthetic")


# --- metrics and verdicts --------------------------------------------------------------------------------


def r2_score(predicted, target) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot`` (Sec. 2.5.2); 0 for predicting the target mean,
    NaN for a constant target (``SS_tot = 0``: no variance to explain)."""
    predicted, target = np.asarray(predicted, dtype=float), np.asarray(target, dtype=float)
    total = np.sum((target - target.mean()) ** 2)
    if total == 0:
        return float("nan")
    return float(1.0 - np.sum((target - predicted) ** 2) / total)


def rmse(predicted, target) -> float:
    """Root mean squared error, in the target's unit (ug/m3)."""
    return float(np.sqrt(np.mean((np.asarray(predicted, float) - np.asarray(target, float)) ** 2)))


# --- baselines (Table 6.1) -------------------------------------------------------------------------------


def escape_forward_selection(features: np.ndarray, target: np.ndarray, min_gain: float = 0.01) -> list[int]:
    """Supervised forward selection of the ESCAPE studies (Eeftens et al. 2012), used for the LR baseline:
    start with the feature whose linear regression has the highest adjusted R2, then keep adding the feature
    that raises the adjusted R2 most, while it raises it by at least ``min_gain`` (1 %). Returns the column
    indices in the order chosen. (ESCAPE also requires the expected sign of each slope; the generator's
    features have no sign convention, so that check is left out.)"""
    features, target = np.asarray(features, float), np.asarray(target, float)
    count = len(target)

    def adjusted_r2(columns):
        design = np.column_stack([np.ones(count), features[:, columns]])
        coefficients, *_ = np.linalg.lstsq(design, target, rcond=None)
        r2 = r2_score(design @ coefficients, target)
        return 1 - (1 - r2) * (count - 1) / max(count - len(columns) - 1, 1)

    chosen, best = [], -np.inf
    remaining = list(range(features.shape[1]))
    while remaining:
        scores = [adjusted_r2(chosen + [j]) for j in remaining]
        k = int(np.argmax(scores))
        if chosen and scores[k] - best < min_gain:
            break
        best = scores[k]
        chosen.append(remaining.pop(k))
    return chosen


def _baseline_model(name: str, config: Config, seed: int):
    from sklearn.dummy import DummyRegressor
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import LinearRegression
    from sklearn.neural_network import MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if name == "Mean":
        return DummyRegressor(strategy="mean")
    if name == "LR":
        return LinearRegression()
    if name == "RF":
        return RandomForestRegressor(n_estimators=config.forest_trees, min_samples_leaf=2, max_features=0.33,
                                     random_state=seed, n_jobs=1)
    if name == "MLP":
        return make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=config.mlp_hidden, early_stopping=True,
                                                            max_iter=500, random_state=seed))
    raise ValueError(f"unknown baseline {name!r}; choose one of {BASELINES}")


def baseline_runs(task: MapTask, config: Config, seeds: Sequence[int], feature_set: str = "thesis"
                  ) -> tuple[pd.DataFrame, list[str]]:
    """Fit Mean, LR (on ESCAPE-selected features), MLP and RF (on all features of ``feature_set``) on the
    training and validation tiles, once per seed, and score them on the test tiles.

    Returns a tidy frame (``model``, ``features``, ``seed``, ``r2``, ``rmse``, ``seconds``) and the names of
    the features LR kept. Mean and LR do not depend on the seed; they are fitted once and repeated."""
    train_labels = np.concatenate([task.labels["train"], task.labels["validation"]])
    train_target = np.concatenate([task.no2["train"], task.no2["validation"]])
    train_x, names = map_tiles.lur_features(train_labels, config.feature_radii_m, feature_set)
    test_x, _ = map_tiles.lur_features(task.labels["test"], config.feature_radii_m, feature_set)
    selected = escape_forward_selection(train_x, train_target)
    rows = []
    for name in BASELINES:
        columns = selected if name == "LR" else list(range(train_x.shape[1]))
        for position, seed in enumerate(seeds):
            if name in ("Mean", "LR") and position > 0:
                rows.append({**rows[-1], "seed": seed})
                continue
            started = time.perf_counter()
            with warnings.catch_warnings():      # the MLP's early stopping ends before sklearn's iteration cap
                warnings.simplefilter("ignore", category=ConvergenceWarning)
                model = _baseline_model(name, config, seed).fit(train_x[:, columns], train_target)
            predicted = model.predict(test_x[:, columns])
            rows.append({"model": name, "features": feature_set, "seed": seed,
                         "r2": r2_score(predicted, task.no2["test"]), "rmse": rmse(predicted, task.no2["test"]),
                         "seconds": time.perf_counter() - started})
    return pd.DataFrame(rows), [names[j] for j in selected]


# --- MapLUR --------------------------------------------------------------------------------------------


@dataclass
class Runs:
    """Trained MapLUR runs: the models (eval mode), their histories, and a tidy frame of test metrics."""

    models: list[MapLUR]
    histories: list
    results: pd.DataFrame


def train_maplur(task: MapTask, config: Config, seeds: Sequence[int], *, device="cpu", log=print) -> Runs:
    """Train one MapLUR per seed with flips and transposes (Sec. 6), early stopping on validation MSE, and
    score each on the test tiles. Inputs are standardised per channel and the target by its training mean
    and standard deviation (both fixed layers of the model)."""
    standardize = Standardize.fit(task.images["train"])
    train_target = torch.tensor(task.no2["train"], dtype=torch.float32)
    mean, std = float(train_target.mean()), float(train_target.std())

    def build():
        return MapLUR(image_size=task.image_size, depth=config.depth, width=config.width,
                      pool_after=config.pool_after, hidden=config.hidden, standardize=standardize,
                      target_mean=mean, target_std=std)

    models, histories, rows = [], [], []
    for seed in seeds:
        started = time.perf_counter()
        model, history = train_regressor(
            build, (task.images["train"], train_target),
            (task.images["validation"], torch.tensor(task.no2["validation"])), config.training, seed=seed,
            device=device, augment=random_dihedral, log=log)
        predicted = predict_values(model, task.images["test"], 256, device)
        seconds = time.perf_counter() - started
        rows.append({"model": "MapLUR", "features": "image", "seed": seed, "r2": r2_score(predicted, task.no2["test"]),
                     "rmse": rmse(predicted, task.no2["test"]), "seconds": seconds,
                     "best_epoch": history.best_epoch, "epochs_run": len(history.epochs)})
        log(f"MapLUR seed {seed}: test R2 {rows[-1]['r2']:.3f}, RMSE {rows[-1]['rmse']:.2f}, kept epoch "
            f"{history.best_epoch} of {len(history.epochs)}, {seconds:.0f} s")
        models.append(model.cpu().eval())
        histories.append(history)
    return Runs(models, histories, pd.DataFrame(rows))


def parameter_count(config: Config) -> int:
    """Trainable parameters of the profile's MapLUR."""
    return count_parameters(MapLUR(image_size=config.image_size, depth=config.depth, width=config.width,
                                   pool_after=config.pool_after, hidden=config.hidden))


def summary_table(results: pd.DataFrame) -> pd.DataFrame:
    """Table 6.1 analogue: mean and standard deviation over runs of R2 and RMSE per model and feature set,
    sorted by mean R2."""
    grouped = results.groupby(["features", "model"], sort=False)[["r2", "rmse"]]
    table = grouped.mean().join(grouped.std(ddof=1).fillna(0.0), rsuffix="_sd").join(grouped.size().rename("runs"))
    table = table[["r2", "r2_sd", "rmse", "rmse_sd", "runs"]]
    return table.sort_values("r2")


# --- probes (Sec. 6.1.1) ---------------------------------------------------------------------------------


def predict_scenes(models: Sequence[MapLUR], scenes: Sequence[Scene], image_size: int,
                   function: NO2Function | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Render ``scenes`` and return each model's estimates ``(runs, len(scenes))``, the hidden truth
    ``(len(scenes),)`` (``None`` without a ``function``) and the images ``(len(scenes), S, S, 3)``."""
    images, labels = map_tiles.render_scenes(scenes, image_size)
    tensor = as_image_tensor(images)
    estimates = np.stack([predict_values(model, tensor, 256) for model in models])
    truth = None if function is None else np.atleast_1d(function(labels))
    return estimates, truth, images


def entity_table(models, image_size: int, function: NO2Function | None = None) -> dict[str, pd.DataFrame]:
    """Table 6.2: estimates for uniform tiles of each entity, alone and overlaid with a trunk road or a
    motorway. Returns frames (rows: ``no road``, ``trunk``, ``motorway``; columns: entities): ``mean`` and
    ``sd`` over runs, ``truth`` (the hidden function, if given), and ``runs`` (a long frame with one row per
    run and cell)."""
    scenes = map_tiles.entity_probe_scenes()
    keys = list(scenes)
    estimates, truth, _ = predict_scenes(models, [scenes[k] for k in keys], image_size, function)
    index = pd.MultiIndex.from_tuples(keys, names=["road", "entity"])
    order = ["no road", "trunk", "motorway"]
    columns = list(THESIS_TABLE_6_2.columns)          # the thesis' column order

    def frame(values):
        return pd.Series(values, index=index).unstack("entity").reindex(index=order, columns=columns)

    long = pd.DataFrame([{"run": r, "road": k[0], "entity": k[1], "estimate": estimates[r, i]}
                         for r in range(estimates.shape[0]) for i, k in enumerate(keys)])
    out = {"mean": frame(estimates.mean(axis=0)),
           "sd": frame(estimates.std(axis=0, ddof=1) if len(models) > 1 else np.zeros(len(keys))),
           "runs": long}
    if truth is not None:
        out["truth"] = frame(truth)
    return out


def overlay_effects(table: dict[str, pd.DataFrame], road: str) -> np.ndarray:
    """Per run, the estimate with ``road`` overlaid minus the land use alone: ``(runs, land uses)``."""
    long = table["runs"].pivot_table(index=["run", "entity"], columns="road", values="estimate")
    effects = (long[road] - long["no road"]).unstack("entity")[list(LAND_USES)]
    return effects.to_numpy()


def width_sweep(models, image_size: int, step_px: int, function: NO2Function | None = None) -> pd.DataFrame:
    """Fig. 6.2: a trunk road through the centre of a neutral tile, width 1, 1 + step, ... up to half the
    tile (px). A long frame: ``orientation``, ``width_px``, ``width_m``, ``run``, ``estimate``, ``truth``."""
    widths_px = np.arange(1, image_size // 2 + 1, step_px)
    metres = widths_px * map_tiles.TILE_METRES / image_size
    return _sweep(models, image_size, function, "width",
                  lambda orientation: map_tiles.width_probe_scenes(metres, orientation, PROBE_ROAD), widths_px, metres)


def distance_sweep(models, image_size: int, step_px: int, function: NO2Function | None = None) -> pd.DataFrame:
    """Fig. 6.3: a trunk road of its standard width whose centre line lies 0, step, ... px from the tile
    centre, up to the edge. A long frame: ``orientation``, ``distance_px``, ``distance_m``, ``run``,
    ``estimate``, ``truth``."""
    distances_px = np.arange(0, image_size // 2 + 1, step_px)
    metres = distances_px * map_tiles.TILE_METRES / image_size
    return _sweep(models, image_size, function, "distance",
                  lambda orientation: map_tiles.distance_probe_scenes(metres, orientation, PROBE_ROAD),
                  distances_px, metres)


def _sweep(models, image_size, function, name, scenes_for, values_px, values_m) -> pd.DataFrame:
    rows = []
    for orientation in ("vertical", "horizontal"):
        estimates, truth, _ = predict_scenes(models, scenes_for(orientation), image_size, function)
        for run in range(estimates.shape[0]):
            for i in range(len(values_px)):
                rows.append({"orientation": orientation, f"{name}_px": int(values_px[i]), f"{name}_m": float(values_m[i]),
                             "run": run, "estimate": float(estimates[run, i]),
                             "truth": float(truth[i]) if truth is not None else np.nan})
    return pd.DataFrame(rows)


def curve_fits(x, y) -> dict[str, float]:
    """Linear and quadratic least-squares fits of ``y`` on ``x`` (Sec. 6.1.2): Pearson's r, the R2 of each
    fit, the F statistic and p-value of the squared term (the quadratic fit always has the smaller residual;
    the F-test asks whether it is smaller by more than one extra parameter explains), and the R2 of a fit
    on ``log(x)`` (``nan`` when some ``x <= 0``)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    if n < 4:
        raise ValueError(f"curve_fits needs at least 4 points, got {n}")
    linear = np.polyval(np.polyfit(x, y, 1), x)
    quadratic = np.polyval(np.polyfit(x, y, 2), x)
    rss_linear, rss_quadratic = np.sum((y - linear) ** 2), np.sum((y - quadratic) ** 2)
    if rss_quadratic <= 1e-12 * max(rss_linear, 1e-300):
        f_statistic, p_value = np.inf, 0.0
    else:
        f_statistic = (rss_linear - rss_quadratic) / (rss_quadratic / (n - 3))
        p_value = float(stats.f.sf(f_statistic, 1, n - 3))
    log_r2 = np.nan
    if np.all(x > 0):
        log_r2 = r2_score(np.polyval(np.polyfit(np.log(x), y, 1), np.log(x)), y)
    pearson = float(stats.pearsonr(x, y)[0]) if np.std(y) > 0 else np.nan
    return {"pearson_r": pearson, "linear_r2": r2_score(linear, y), "quadratic_r2": r2_score(quadratic, y),
            "f_squared_term": float(f_statistic), "p_squared_term": float(p_value), "log_r2": float(log_r2)}


def truth_distance_fits(function: NO2Function, image_size: int, step_px: int) -> dict[str, float]:
    """:func:`curve_fits` of the hidden truth on the distance probe (a vertical trunk road moved from the
    centre to the edge in steps of ``step_px``): how curved the stand-in makes the response before any
    network is trained."""
    distances_px = np.arange(0, image_size // 2 + 1, step_px)
    scenes = map_tiles.distance_probe_scenes(distances_px * map_tiles.TILE_METRES / image_size, "vertical", PROBE_ROAD)
    _, labels = map_tiles.render_scenes(scenes, image_size)
    return curve_fits(distances_px, function(labels))


def sweep_fits(sweep: pd.DataFrame, variable: str) -> pd.DataFrame:
    """:func:`curve_fits` of every run's curve and of the truth, per orientation (rows ``run`` = ``truth``)."""
    rows = []
    for orientation, part in sweep.groupby("orientation", sort=False):
        for run, curve in part.groupby("run"):
            rows.append({"orientation": orientation, "run": str(run), **curve_fits(curve[variable], curve["estimate"])})
        truth = part[part["run"] == part["run"].min()]
        if truth["truth"].notna().all():
            rows.append({"orientation": orientation, "run": "truth", **curve_fits(truth[variable], truth["truth"])})
    return pd.DataFrame(rows)


def sweep_rise(sweep: pd.DataFrame, variable: str) -> np.ndarray:
    """Per run, the estimate at the largest ``variable`` minus that at the smallest, averaged over the two
    orientations: ``(runs,)``."""
    ends = sweep.pivot_table(index=variable, columns=["run", "orientation"], values="estimate")
    return (ends.iloc[-1] - ends.iloc[0]).groupby(level="run").mean().to_numpy()


def learned_versus_truth(sweep: pd.DataFrame) -> dict[str, float]:
    """How close the mean learned curve is to the hidden truth: Pearson r and RMSE (ug/m3) over all points."""
    mean = sweep.groupby([c for c in sweep.columns if c.endswith("_px")] + ["orientation"])[["estimate", "truth"]].mean()
    return {"pearson_r": float(stats.pearsonr(mean["estimate"], mean["truth"])[0]),
            "rmse": rmse(mean["estimate"], mean["truth"])}


# --- figures -------------------------------------------------------------------------------------------


def plot_hidden_function(function: NO2Function, image_size: int):
    """The stand-in's hidden NO2 function: (a) the proximity weights, (b) the truth against a trunk road's
    width on three land uses, (c) against its distance from the centre. Returns ``(fig, axes)``."""
    import matplotlib.pyplot as plt

    from domainknowledge.plots import BOOK_COLORS

    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.2))
    weights = map_tiles.proximity_weights(image_size, function.length_m, function.kernel)
    axes[0].imshow(weights, cmap="viridis", extent=(-40, 40, 40, -40))
    axes[0].set_title(f"(a) {function.kernel} proximity weights, l = {function.length_m:g} m")
    axes[0].set_xlabel("m")
    axes[0].grid(False)
    size = 128
    pixel = map_tiles.TILE_METRES / size             # whole pixels at 128 px, so that no step aliases
    widths = np.arange(2, size // 2 + 1, 2) * pixel       # up to half the tile, as the probes
    distances = np.arange(0, size // 2 + 1, 2) * pixel    # up to the edge
    for colour, background in zip(BOOK_COLORS, ("commercial", "neutral", "park")):
        _, labels = map_tiles.render_scenes(map_tiles.width_probe_scenes(widths, background=background), size)
        axes[1].plot(widths, function(labels), color=colour, label=background)
        _, labels = map_tiles.render_scenes(map_tiles.distance_probe_scenes(distances, background=background), size)
        axes[2].plot(distances, function(labels), color=colour, label=background)
    axes[1].set(title="(b) truth against trunk-road width", xlabel="width (m)", ylabel="NO2 (ug/m3)")
    axes[2].set(title="(c) truth against the road's distance", xlabel="distance from the centre (m)")
    axes[1].legend(title="land use")
    return fig, axes


def plot_sweep(sweep: pd.DataFrame, variable: str, *, fits: bool = False, title: str | None = None, ax=None):
    """A probe sweep: the mean estimate over runs per orientation with its min-max band, the hidden truth
    (dashed) and, with ``fits``, the linear and quadratic fits of the mean vertical curve (dotted)."""
    import matplotlib.pyplot as plt

    from domainknowledge.plots import BOOK_COLORS

    if ax is None:
        _, ax = plt.subplots(figsize=(5.6, 3.4))
    for colour, (orientation, part) in zip(BOOK_COLORS, sweep.groupby("orientation", sort=False)):
        curve = part.groupby(variable)["estimate"].agg(["mean", "min", "max"])
        ax.plot(curve.index, curve["mean"], color=colour, marker=".", label=f"MapLUR, {orientation} road")
        ax.fill_between(curve.index, curve["min"], curve["max"], color=colour, alpha=0.2, linewidth=0)
        if fits and orientation == "vertical":
            for degree, style in ((1, ":"), (2, "-.")):
                fitted = np.polyval(np.polyfit(curve.index, curve["mean"], degree), curve.index)
                ax.plot(curve.index, fitted, style, color="0.35", label=("linear" if degree == 1 else "quadratic") + " fit")
    truth = sweep[(sweep["run"] == 0) & (sweep["orientation"] == "vertical")]
    if truth["truth"].notna().all():
        ax.plot(truth[variable], truth["truth"], "--", color="black", label="hidden truth")
    ax.set_xlabel(variable.replace("_px", " (px)"))
    ax.set_ylabel("NO2 estimate (ug/m3)")
    ax.legend(fontsize=7.5)
    if title:
        ax.set_title(title)
    return ax.figure, ax


# --- the thesis' numbers, for the tables next to ours ------------------------------------------------------

THESIS_TABLE_6_1 = pd.DataFrame({"r2": [0.000, 0.487, 0.499, 0.662, 0.673],
                                 "rmse": [13.971, 10.004, 9.887, 8.119, 8.002]},
                                index=pd.Index(["Mean", "LR", "MLP", "RF", "MapLUR"], name="model"))
THESIS_TABLE_6_2 = pd.DataFrame(
    [[37.71, 38.29, 38.72, 38.87, 39.27, 41.66, 42.06, 47.23, 80.63],
     [61.70, 50.94, 59.73, 64.14, 57.94, 59.62, 58.62, np.nan, np.nan],
     [60.04, 48.48, 64.18, 46.05, 54.21, 53.45, 55.00, np.nan, np.nan]],
    index=pd.Index(["no road", "trunk", "motorway"], name="road"),
    columns=["industrial", "residential", "commercial", "park", "forest", "water", "neutral", "motorway", "trunk"])


def table_6_1(results: pd.DataFrame) -> pd.DataFrame:
    """Table 6.1 analogue for display: ``mean ± sd`` of R2 and RMSE per model and feature set, with the
    thesis' values next to the rows of the thesis' feature set and MapLUR."""
    summary = summary_table(results)
    rows = []
    for (features, model), row in summary.iterrows():
        thesis = THESIS_TABLE_6_1.loc[model] if features in ("thesis", "image") else None
        rows.append({"model": model, "features": features,
                     "R2": f"{row['r2']:.3f} ± {row['r2_sd']:.3f}", "RMSE (ug/m3)": f"{row['rmse']:.2f} ± {row['rmse_sd']:.2f}",
                     "runs": int(row["runs"]),
                     "thesis R2": f"{thesis['r2']:.3f}" if thesis is not None else "",
                     "thesis RMSE": f"{thesis['rmse']:.3f}" if thesis is not None else ""})
    return pd.DataFrame(rows).set_index(["model", "features"])
