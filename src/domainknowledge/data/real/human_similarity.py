"""The thesis' human-judgement data sets for the ``paper`` profile: ImageNet-HSJ, Birds-16, BAPPS-2AFC.

Layout under ``--data-root`` (:data:`LAYOUT`):

* ``imagenet-hsj/images/<file>`` and ``imagenet-hsj/trials_8rank2.csv`` with columns ``query, chosen_1,
  chosen_2, unchosen_1 .. unchosen_6`` (image file names; one 8-rank-2 trial per row, catch trials already
  removed), e.g. exported from the PsiZ observations of Roads and Love (2021);
* ``birds-16/images/<file>``, ``birds-16/trials_8rank2.csv`` (as above) and ``birds-16/trials_2rank1.csv``
  with columns ``query, chosen, unchosen`` (Attarian et al. 2020); an optional ``birds-16/families.csv``
  (``file, family``) labels the UMAP figure;
* ``bapps/2afc/val/<category>/{ref,p0,p1}/<id>.png`` and ``judge/<id>.npy`` (the fraction of people who
  judged ``p1`` closer to ``ref``), the released layout of Zhang et al. (2018), categories ``traditional,
  cnn, superres, deblur, frameinterp, color``.

Each evaluation set takes ``triplets`` trials at random; the fine-tuning sets are drawn from the remaining
trials, as in :mod:`domainknowledge.data.synthetic.similarity_judgements`. A missing folder or file is a
:class:`~domainknowledge.data.bundled.DataNotFoundError` naming what to put where.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["BAPPS_CATEGORIES", "LAYOUT", "load_human_similarity_sources"]

BAPPS_CATEGORIES = ("traditional", "cnn", "superres", "deblur", "frameinterp", "color")
LAYOUT = ("imagenet-hsj/{images/, trials_8rank2.csv}, birds-16/{images/, trials_8rank2.csv, trials_2rank1.csv}, "
          "bapps/2afc/val/<category>/{ref,p0,p1,judge}/ (see domainknowledge.data.real.human_similarity)")


def _need(path: Path, what: str) -> Path:
    from domainknowledge.data.bundled import DataNotFoundError

    if not path.exists():
        raise DataNotFoundError(f"{what} was not found at {path}; expected under --data-root: {LAYOUT}")
    return path


def _read_images(files: list[Path], size: int) -> np.ndarray:
    from PIL import Image

    out = np.empty((len(files), size, size, 3), np.uint8)
    for i, file in enumerate(files):
        image = Image.open(file).convert("RGB")
        scale = size / min(image.size)
        image = image.resize((max(size, round(image.width * scale)), max(size, round(image.height * scale))))
        left, top = (image.width - size) // 2, (image.height - size) // 2
        out[i] = np.asarray(image.crop((left, top, left + size, top + size)))
    return out


def _psiz_source(folder: Path, name: str, size, rng: np.random.Generator, with_2rank1: bool):
    from domainknowledge.data.synthetic.similarity_judgements import SimilaritySource, TripletSet, _balanced_finetune

    trials = pd.read_csv(_need(folder / "trials_8rank2.csv", f"{name} 8-rank-2 trials"))
    tables = {"8rank2": trials}
    if with_2rank1:
        tables["2rank1"] = pd.read_csv(_need(folder / "trials_2rank1.csv", f"{name} 2-rank-1 trials"))
    files = sorted({f for table in tables.values() for f in table.to_numpy().ravel()})
    index = {f: i for i, f in enumerate(files)}
    images = _read_images([_need(folder / "images" / f, f"{name} image {f}") for f in files], size.image_size)
    sets, tuning = {}, []
    nan = lambda n: np.full(n, np.nan)  # noqa: E731
    table = trials.apply(lambda column: column.map(index))
    order = rng.permutation(len(table))
    evaluation, rest = order[:size.triplets], order[size.triplets:]
    unchosen = table[[f"unchosen_{k}" for k in range(1, 7)]].to_numpy()
    pick = rng.integers(6, size=len(table))
    extra_pick = (pick + 1 + rng.integers(5, size=len(table))) % 6
    rows = np.arange(len(table))
    other, extra = unchosen[rows, pick], unchosen[rows, extra_pick]
    for kind, second in (("8rank2-similar", table["chosen_2"].to_numpy()), ("8rank2-dissimilar", other)):
        for part, chosen in (("evaluation", evaluation), ("fine-tuning", rest)):
            triplets = TripletSet(f"{name} {kind}", name, kind, table["query"].to_numpy()[chosen],
                                  table["chosen_1"].to_numpy()[chosen], second[chosen], nan(len(chosen)))
            (sets.__setitem__(kind, triplets) if part == "evaluation" else tuning.append((triplets, extra[chosen])))
    if with_2rank1:
        pairs = tables["2rank1"].apply(lambda column: column.map(index))
        order = rng.permutation(len(pairs))
        for part, chosen in (("evaluation", order[:size.triplets]), ("fine-tuning", order[size.triplets:])):
            triplets = TripletSet(f"{name} 2rank1-dissimilar", name, "2rank1-dissimilar",
                                  pairs["query"].to_numpy()[chosen], pairs["chosen"].to_numpy()[chosen],
                                  pairs["unchosen"].to_numpy()[chosen], nan(len(chosen)))
            if part == "evaluation":
                sets["2rank1-dissimilar"] = triplets
            else:
                shifted = np.roll(triplets.query, 1)
                tuning.append((triplets, shifted))
    finetune, quadruplets = _balanced_finetune(name, tuning, size.finetune, rng)
    unique = np.unique(np.concatenate([finetune.query, finetune.first, finetune.second]))
    labels = None
    if (folder / "families.csv").is_file():
        families = pd.read_csv(folder / "families.csv").set_index("file")["family"]
        labels = np.array([families.get(f, "unknown") for f in files])
    return SimilaritySource(name, images, pd.DataFrame({"file": files}), sets, finetune, quadruplets,
                            np.sort(rng.choice(unique, min(size.finetune, len(unique)), replace=False)),
                            is_stand_in=False, description=f"{len(files)} images from {folder}", labels=labels)


def _bapps_source(folder: Path, size, rng: np.random.Generator):
    from domainknowledge.data.synthetic.similarity_judgements import SimilaritySource, TripletSet, _balanced_finetune

    blocks, infos, sets, tuning, offset = [], [], {}, [], 0
    for category in BAPPS_CATEGORIES:
        root = _need(folder / "2afc" / "val" / category, f"BAPPS-2AFC category {category!r}")
        ids = sorted(p.stem for p in (root / "judge").glob("*.npy"))
        if not ids:
            raise FileNotFoundError(f"no judge/*.npy files in {root}; expected the released BAPPS 2AFC layout")
        chosen = rng.permutation(len(ids))[:size.bapps_triplets + -(-size.finetune // len(BAPPS_CATEGORIES))]
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
        for part, rows in (("evaluation", slice(0, size.bapps_triplets)),
                           ("fine-tuning", slice(size.bapps_triplets, None))):
            triplets = TripletSet(f"BAPPS-2AFC {category}", "BAPPS-2AFC", category, base[rows], first[rows],
                                  second[rows], agreement[rows])
            if part == "evaluation":
                sets[category] = triplets
            else:
                tuning.append((triplets, np.roll(triplets.second, 1)))
        blocks.append(images)
        infos.append(pd.DataFrame({"family": category, "part": ["evaluation" if k < size.bapps_triplets else "fine-tuning"
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
