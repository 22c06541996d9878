"""The thesis' human-judgement data sets for the ``paper`` profile: ImageNet-HSJ, Birds-16, BAPPS-2AFC.

Layout under ``--data-root`` (:data:`LAYOUT`), each as published:

* ``imagenet-hsj/``: the PsiZ observation file of Roads and Love (2021, https://osf.io/7f96y/),
  ``obs-195.hdf5`` (50,000 ILSVRC validation images; ``obs-118.hdf5``, one image per class, is read if it is
  the only one), its ``catalog.hdf5``, and ``images/<stimulus_filepath>``, the ILSVRC 2012 validation images
  at the relative paths the catalog names (``n01440764/ILSVRC2012_val_00000293.JPEG``);
* ``birds-16/``: ``obs.hdf5`` and ``catalog.hdf5`` as PsiZ hosts them (https://www.psiz.org/datasets/birds-16/,
  Attarian et al. 2020; 8-rank-2 and 2-rank-1 trials in one file) and ``images/<stimulus_filepath>``; the
  catalog's class labels colour the feature maps (an optional ``families.csv`` with columns ``file, family``
  replaces them);
* ``bapps/2afc/val/<category>/{ref,p0,p1}/<id>.png`` and ``judge/<id>.npy`` (the fraction of people who
  judged ``p1`` closer to ``ref``), the released layout of Zhang et al. (2018), categories ``traditional,
  cnn, superres, deblur, frameinterp, color``.

A PsiZ observation file (``RankObservations.save``) holds ``stimulus_set (T, 9)``: per trial the query, the
selected references in the order chosen, then the unselected ones, ``-1`` where a trial has fewer references;
``n_select (T,)`` and ``is_ranked (T,)``. A catalog holds ``stimulus_id (N,)``, ``stimulus_filepath (N,)`` (bytes)
and ``class_id (N,)``, optionally ``class_map_class_id`` and ``class_map_label``. An 8-rank-2 trial has 8
references and 2 ranked selections; a 2-rank-1 trial 2 references and 1 selection.

Each evaluation set takes ``triplets`` trials at random and the fine-tuning pool the next ``finetune`` (a set
with fewer trials than both splits them in half), as in :mod:`domainknowledge.data.synthetic.similarity_judgements`;
only the images those trials use are read (ImageNet-HSJ's trials reference up to 50,000), each resized on read
(shorter side, centre crop). A missing folder or file is a :class:`~domainknowledge.data.bundled.DataNotFoundError`
naming what to put where and the data set's source.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["BAPPS_CATEGORIES", "CATALOG_FILE", "LAYOUT", "OBSERVATION_FILES", "load_human_similarity_sources",
           "read_psiz_catalog", "read_psiz_observations"]

BAPPS_CATEGORIES = ("traditional", "cnn", "superres", "deblur", "frameinterp", "color")
#: The PsiZ observation file(s) of each source, in order of preference, and where each is published.
OBSERVATION_FILES = {"ImageNet-HSJ": ("imagenet-hsj", ("obs-195.hdf5", "obs-118.hdf5"), "https://osf.io/7f96y/"),
                     "Birds-16": ("birds-16", ("obs.hdf5",), "https://www.psiz.org/datasets/birds-16/")}
CATALOG_FILE = "catalog.hdf5"
LAYOUT = ("imagenet-hsj/{obs-195.hdf5, catalog.hdf5, images/<catalog stimulus_filepath>} (https://osf.io/7f96y/), "
          "birds-16/{obs.hdf5, catalog.hdf5, images/<catalog stimulus_filepath>} "
          "(https://www.psiz.org/datasets/birds-16/), "
          "bapps/2afc/val/<category>/{ref,p0,p1,judge}/ (https://github.com/richzhang/PerceptualSimilarity) "
          "(see domainknowledge.data.real.human_similarity)")


def _need(path: Path, what: str) -> Path:
    from domainknowledge.data.bundled import DataNotFoundError

    if not path.exists():
        raise DataNotFoundError(f"{what} was not found at {path}; expected under --data-root: {LAYOUT}")
    return path


def _read_images(files: list[Path], size: int) -> np.ndarray:
    from domainknowledge.data.real.image_files import ImageFiles, resize_center_crop

    return ImageFiles(files, resize_center_crop(size), size)[:]


def read_psiz_observations(path: Path) -> dict[str, np.ndarray]:
    """A PsiZ ``RankObservations`` HDF5 file: ``{"stimulus_set": int (T, R+1), "n_select": (T,),
    "n_reference": (T,), "is_ranked": bool (T,)}`` (see the module docstring)."""
    import h5py

    with h5py.File(path, "r") as file:
        missing = [key for key in ("stimulus_set", "n_select") if key not in file]
        if missing:
            raise ValueError(f"{path} is not a PsiZ observation file (no {', '.join(missing)} dataset)")
        stimulus_set = np.asarray(file["stimulus_set"][()], dtype=np.int64)
        n_select = np.asarray(file["n_select"][()], dtype=np.int64).ravel()
        is_ranked = (np.asarray(file["is_ranked"][()], dtype=bool).ravel() if "is_ranked" in file
                     else np.ones(len(n_select), bool))
    if stimulus_set.ndim != 2 or len(stimulus_set) != len(n_select):
        raise ValueError(f"{path}: stimulus_set must be (trials, 1 + references) with one n_select per trial")
    return {"stimulus_set": stimulus_set, "n_select": n_select, "is_ranked": is_ranked,
            "n_reference": (stimulus_set[:, 1:] >= 0).sum(axis=1)}


def read_psiz_catalog(path: Path) -> pd.DataFrame:
    """A PsiZ ``Catalog`` HDF5 file as a table indexed by ``stimulus_id`` with columns ``filepath``,
    ``class_id`` and ``class_label`` (the class map's label, or the class id as text)."""
    import h5py

    with h5py.File(path, "r") as file:
        if "stimulus_id" not in file or "stimulus_filepath" not in file:
            raise ValueError(f"{path} is not a PsiZ catalog (needs stimulus_id and stimulus_filepath)")
        ids = np.asarray(file["stimulus_id"][()], dtype=np.int64)
        paths = [p.decode() if isinstance(p, bytes) else str(p) for p in file["stimulus_filepath"][()]]
        class_id = (np.asarray(file["class_id"][()], dtype=np.int64) if "class_id" in file
                    else np.zeros(len(ids), np.int64))
        names = {}
        if "class_map_class_id" in file and "class_map_label" in file:
            names = {int(k): (v.decode() if isinstance(v, bytes) else str(v))
                     for k, v in zip(file["class_map_class_id"][()], file["class_map_label"][()])}
    return pd.DataFrame({"filepath": paths, "class_id": class_id,
                         "class_label": [names.get(int(c), str(c)) for c in class_id]},
                        index=pd.Index(ids, name="stimulus_id"))


def _split_counts(available: int, evaluation: int, tuning: int) -> tuple[int, int]:
    """How many of ``available`` trials go to evaluation and to the fine-tuning pool: as asked when there are
    enough, else at least half to evaluation and the rest to fine-tuning."""
    if available >= evaluation + tuning:
        return evaluation, tuning
    first = min(evaluation, max(available // 2, available - tuning))
    return first, available - first


def _observation_file(folder: Path, name: str) -> Path:
    from domainknowledge.data.bundled import DataNotFoundError

    _, candidates, source = OBSERVATION_FILES[name]
    for candidate in candidates:
        if (folder / candidate).is_file():
            return folder / candidate
    raise DataNotFoundError(f"{name}: none of the PsiZ observation files {', '.join(candidates)} is in {folder} "
                            f"(published at {source}); expected under --data-root: {LAYOUT}")


def _psiz_source(folder: Path, name: str, size, rng: np.random.Generator, with_2rank1: bool):
    from domainknowledge.data.synthetic.similarity_judgements import SimilaritySource, TripletSet, _balanced_finetune

    trials = read_psiz_observations(_observation_file(folder, name))
    catalog = read_psiz_catalog(_need(folder / CATALOG_FILE, f"{name} catalog"))
    stimuli, selected, references = trials["stimulus_set"], trials["n_select"], trials["n_reference"]
    nan = lambda n: np.full(n, np.nan)  # noqa: E731
    sets, tuning = {}, []
    rank8 = np.flatnonzero((references == 8) & (selected == 2))
    if len(rank8) < 2:
        raise ValueError(f"{name}: the observations hold {len(rank8)} 8-rank-2 trials; the chapter needs some")
    order = rank8[rng.permutation(len(rank8))]
    count, pool = _split_counts(len(order), size.triplets, size.finetune)
    evaluation, rest = order[:count], order[count:count + pool]
    for part, rows in (("evaluation", evaluation), ("fine-tuning", rest)):
        unchosen = stimuli[rows, 3:9]
        pick = rng.integers(6, size=len(rows))
        extra = unchosen[np.arange(len(rows)), (pick + 1 + rng.integers(5, size=len(rows))) % 6]
        other = unchosen[np.arange(len(rows)), pick]
        query, first = stimuli[rows, 0], stimuli[rows, 1]
        for kind, second in (("8rank2-similar", stimuli[rows, 2]), ("8rank2-dissimilar", other)):
            triplets = TripletSet(f"{name} {kind}", name, kind, query, first, second, nan(len(rows)))
            if part == "evaluation":
                sets[kind] = triplets
            else:
                tuning.append((triplets, extra))
    if with_2rank1:
        rank2 = np.flatnonzero((references == 2) & (selected == 1))
        if len(rank2) < 2:
            raise ValueError(f"{name}: the observations hold {len(rank2)} 2-rank-1 trials; the chapter needs some")
        order = rank2[rng.permutation(len(rank2))]
        count, pool = _split_counts(len(order), size.triplets, size.finetune)
        for part, rows in (("evaluation", order[:count]), ("fine-tuning", order[count:count + pool])):
            triplets = TripletSet(f"{name} 2rank1-dissimilar", name, "2rank1-dissimilar", stimuli[rows, 0],
                                  stimuli[rows, 1], stimuli[rows, 2], nan(len(rows)))
            if part == "evaluation":
                sets["2rank1-dissimilar"] = triplets
            else:                                       # the fourth image: from a different 2-rank-1 trial
                tuning.append((triplets, np.roll(triplets.query, 1)))
    finetune, quadruplets = _balanced_finetune(name, tuning, size.finetune, rng)
    unique = np.unique(np.concatenate([finetune.query, finetune.first, finetune.second]))
    singletons = np.sort(rng.choice(unique, min(size.finetune, len(unique)), replace=False))
    # read only the images the sampled trials use, and index them 0 .. n-1
    used = np.unique(np.concatenate([np.concatenate([t.query, t.first, t.second]) for t in sets.values()]
                                    + [quadruplets.query, quadruplets.first, quadruplets.second,
                                       quadruplets.extra, singletons]))
    unknown = np.setdiff1d(used, catalog.index.to_numpy())
    if len(unknown):
        raise ValueError(f"{name}: the observations use stimulus ids {unknown[:5].tolist()} that "
                         f"{folder / CATALOG_FILE} does not list")
    position = lambda ids: np.searchsorted(used, ids)  # noqa: E731

    def remapped(triplets):
        return dataclasses.replace(triplets, query=position(triplets.query), first=position(triplets.first),
                                   second=position(triplets.second),
                                   extra=None if triplets.extra is None else position(triplets.extra))

    files = catalog.loc[used, "filepath"].tolist()
    paths = [folder / "images" / f for f in files]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        _need(missing[0], f"{name} image ({len(missing)} of the {len(paths)} images the sampled trials use are "
                          "missing)")
    images = _read_images(paths, size.image_size)
    labels = catalog.loc[used, "class_label"].to_numpy(str)
    if (folder / "families.csv").is_file():
        families = pd.read_csv(folder / "families.csv").set_index("file")["family"]
        labels = np.array([families.get(f, "unknown") for f in files])
    observed = len(catalog)
    return SimilaritySource(name, images, pd.DataFrame({"file": files, "stimulus_id": used}),
                            {k: remapped(t) for k, t in sets.items()}, remapped(finetune), remapped(quadruplets),
                            position(singletons), is_stand_in=False, labels=labels,
                            description=f"{len(files)} of the {observed} images of {folder} (those the sampled "
                                        f"trials use)")


def _bapps_source(folder: Path, size, rng: np.random.Generator):
    from domainknowledge.data.synthetic.similarity_judgements import SimilaritySource, TripletSet, _balanced_finetune

    blocks, infos, sets, tuning, offset = [], [], {}, [], 0
    for category in BAPPS_CATEGORIES:
        root = _need(folder / "2afc" / "val" / category, f"BAPPS-2AFC category {category!r}")
        ids = sorted(p.stem for p in (root / "judge").glob("*.npy"))
        if not ids:
            raise FileNotFoundError(f"no judge/*.npy files in {root}; expected the released BAPPS 2AFC layout")
        evaluation_count, tuning_count = _split_counts(len(ids), size.bapps_triplets,
                                                       -(-size.finetune // len(BAPPS_CATEGORIES)))
        chosen = rng.permutation(len(ids))[:evaluation_count + tuning_count]
        picked = [ids[k] for k in chosen]
        count = len(picked)
        images = np.concatenate([_read_images([root / role / f"{i}.png" for i in picked], size.patch_size)
                                 for role in ("ref", "p0", "p1")])
        fraction_p1 = np.array([float(np.load(root / "judge" / f"{i}.npy").ravel()[0]) for i in picked])
        p0_wins = fraction_p1 < 0.5
        base = offset + np.arange(count)
        first = np.where(p0_wins, base + count, base + 2 * count)
        second = np.where(p0_wins, base + 2 * count, base + count)
        agreement = np.where(p0_wins, 1 - fraction_p1, fraction_p1)
        for part, rows in (("evaluation", slice(0, evaluation_count)),
                           ("fine-tuning", slice(evaluation_count, None))):
            triplets = TripletSet(f"BAPPS-2AFC {category}", "BAPPS-2AFC", category, base[rows], first[rows],
                                  second[rows], agreement[rows])
            if part == "evaluation":
                sets[category] = triplets
            else:
                tuning.append((triplets, np.roll(triplets.second, 1)))
        blocks.append(images)
        infos.append(pd.DataFrame({"family": category, "part": ["evaluation" if k < evaluation_count else "fine-tuning"
                                                                for k in range(count)] * 3}))
        offset += len(images)
    finetune, quadruplets = _balanced_finetune("BAPPS-2AFC", tuning, size.finetune, rng)
    unique = np.unique(np.concatenate([finetune.query, finetune.first, finetune.second]))
    info = pd.concat(infos, ignore_index=True)
    return SimilaritySource("BAPPS-2AFC", np.concatenate(blocks), info, sets, finetune, quadruplets,
                            np.sort(rng.choice(unique, min(size.finetune, len(unique)), replace=False)),
                            is_stand_in=False, description=f"BAPPS 2AFC validation patches from {folder}",
                            labels=info["family"].to_numpy())


def load_human_similarity_sources(data_root, size, *, seed: int = 0) -> dict:
    """ImageNet-HSJ, Birds-16 and BAPPS-2AFC from ``data_root`` (layout in the module docstring) as
    :class:`~domainknowledge.data.synthetic.similarity_judgements.SimilaritySource` objects, keyed by name."""
    from domainknowledge.data.bundled import data_root_folder

    rng = np.random.default_rng(seed)
    hsj = data_root_folder(data_root, "imagenet-hsj", "ImageNet-HSJ triplets", LAYOUT)
    birds = data_root_folder(data_root, "birds-16", "Birds-16 triplets", LAYOUT)
    bapps = data_root_folder(data_root, "bapps", "BAPPS-2AFC patches", LAYOUT)
    sources = [_psiz_source(hsj, "ImageNet-HSJ", size, rng, with_2rank1=False),
               _psiz_source(birds, "Birds-16", size, rng, with_2rank1=True), _bapps_source(bapps, size, rng)]
    return {s.name: s for s in sources}
