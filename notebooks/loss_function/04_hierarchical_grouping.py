# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python (domainknowledge)
#     language: python
#     name: domainknowledge
# ---

# %% [markdown]
# (ch-hierarchical_grouping)=
# # Clustering by mutual information, one head after another (DHOG)
#
# A network can learn to cluster images without labels by making its cluster assignment agree between two
# augmentations of the same image: maximise the mutual information (MI) between the two assignments, as IIC
# does {cite}`ji2019iic`. MI is a proxy. The easiest way to make two views agree is to group them by
# whatever survives the augmentations, such as colour or brightness, and such a solution is a local optimum
# that gradient ascent rarely leaves. Darlow's Deep Hierarchical Object Grouping (DHOG)
# {cite}`darlow2022thesis` trains a sequence of heads on one network and adds a loss term that pushes each
# head's grouping *away* from the groupings of the heads before it, so that later heads must find other,
# harder solutions. This is the *Loss function* principle applied to unsupervised learning.
#
# :::{admonition} What this chapter reproduces
# :class: tip
# Darlow (2022), Chapter 4, "Deep hierarchical object grouping" {cite}`darlow2022thesis`:
#
# - the objective: the MI between augmentations (Eqs. 4.1, 4.3) and the cross-head push (Eqs. 4.2, 4.4)
#   with stopped gradients, $\alpha = 0.05$ (Eq. 4.5), with the index erratum resolved;
# - Table 4.1: Hungarian-matched accuracy, NMI and ARI, for the head chosen without labels and the best
#   head, against the $\alpha = 0$ ablation (close to IIC);
# - Table 4.2: the MI reached between augmentations with and without the push term;
# - Fig. 4.3: accuracy per head; Fig. 4.4: confusion matrices;
# - beyond the thesis: tinted digits, where an easy colour grouping competes with the digits, to watch
#   which heads take which grouping, against a control with the same digits in a single tint.
#
# At `smoke` and `cpu` the data are Fashion-MNIST {cite}`xiao2017fashion` (real), the tinted digits (a
# seeded stand-in) and at `cpu` its one-tint control; `paper` runs CIFAR-10 {cite}`krizhevsky2009cifar` with the thesis' widths.
# {ref}`sec-dhog-deviations` lists every difference.
# :::

# %% tags=["parameters"]
profile = "cpu"
seed = 0
device = "auto"
data_root = None
dry_run = False

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display

import domainknowledge as dk
from domainknowledge.chapters import hierarchical_grouping as chapter
from domainknowledge.principles import hierarchical_grouping as dhog

run = dk.experiment.start("hierarchical_grouping", profile=profile, seed=seed, device=device, data_root=data_root, dry_run=dry_run)
dk.plots.use_book_style()
config = dk.experiment.select(chapter.CONFIGS, run.profile, dry_run=run.dry_run)
display(run.banner())

# %% [markdown]
# ## What each profile runs

# %%
dk.experiment.profile_table(chapter.CONFIGS, run.profile)

# %% [markdown]
# ## The objective
#
# Head $i$ maps an image to a probability vector $\mathbf{z}_i$ over $C$ clusters. For a batch, two such
# matrices define a joint distribution $\mathbf{P} = \frac{1}{B}\sum_b \mathbf{z}_b \mathbf{z}_b'^{\top}$ of
# two discrete labels, and their mutual information (Eq. 4.1)
#
# $$ \operatorname{MI}(c, c') = \sum_{u, v} P_{uv} \log \frac{P_{uv}}{P_{u\cdot} P_{\cdot v}} . \tag{4.1} $$
#
# ```{literalinclude} /src/domainknowledge/principles/hierarchical_grouping.py
# :pyobject: mutual_information
# :language: python
# :caption: `dk.principles.hierarchical_grouping.mutual_information`, Eq. 4.1
# ```
#
# The **pull** term averages, over the $k$ heads, the MI between the assignments of augmented views of the
# same images (four views per image, all pairs):
#
# $$ \operatorname{MI}_{\text{pull}} = \frac{1}{k} \sum_{i=1}^{k} \operatorname{MI}_{\text{aug}}(c_i, c_i') . \tag{4.3} $$
#
# The **push** term measures how much head $i$'s assignment of the *same* view says about the assignments
# of the heads before it, and is minimised; the earlier head's output is treated as a constant, so only
# head $i$ moves away:
#
# $$ \operatorname{MI}_{\text{push}} = \sum_{i=2}^{k} \frac{1}{i - 1} \sum_{j < i} \operatorname{MI}_{\text{head}}(c_i, \operatorname{sg}[c_j]) , \qquad
#    \boldsymbol\theta^* = \arg\max_{\boldsymbol\theta} \ \operatorname{MI}_{\text{pull}} - \alpha \operatorname{MI}_{\text{push}} , \quad \alpha = 0.05 . \tag{4.4-4.5} $$
#
# :::{admonition} Erratum, resolved
# :class: note
# Eq. 4.4 sums $j = 1, \dots, i$, which includes $\operatorname{MI}(c_i, c_i)$, the entropy of head $i$; pushing
# it down would fight the pull. We compare each head with the heads before it only and average over them;
# Eq. 4.3's sum over $i = 0 \dots k$ divided by $k$ becomes a plain mean over the $k$ heads.
# :::
#
# The push term with its stopped gradients, and the objective, as the library implements them:
#
# ```{literalinclude} /src/domainknowledge/principles/hierarchical_grouping.py
# :pyobject: push_term
# :language: python
# :caption: `dk.principles.hierarchical_grouping.push_term`, Eq. 4.4 (with $j < i$)
# ```
#
# ```{literalinclude} /src/domainknowledge/principles/hierarchical_grouping.py
# :pyobject: dhog_loss
# :language: python
# :caption: `dk.principles.hierarchical_grouping.dhog_loss`, Eq. 4.5 (negated, to minimise)
# ```
#
# The network (Fig. 4.2) is a ResNet-style trunk of three residual blocks with a head after each, then
# $k - 3$ separate copies of a final residual block, one per remaining head ($k = 8$). Each head is an MLP
# with one hidden layer and a softmax over $C = 10$ clusters.

# %% [markdown]
# ## The data
#
# :::{admonition} Tinted digits: a stand-in with two competing groupings
# :class: warning
# `dk.data.synthetic.tinted_digits` draws each of scikit-learn's 1,797 handwritten digits in two of ten
# tints chosen independently of the digit. Two partitions are equally clean: by digit and by tint. The tint
# partition survives crops and flips perfectly, so it is the easy MI optimum the thesis warns about; random
# greyscale (half of the views) hides it. **Preserved**: a shortcut grouping that competes with the
# semantic one (in CIFAR-10, colour and background). **Not preserved**: the variety of natural images; the
# digits are small, clean and few.
#
# The **one-tint control** draws every digit once, all in the same tint: the digit partition is the only
# one left. What the network reaches on it is what the tints take away on the tinted set.
# :::

# %%
allow_download = dk.experiment.check_profile(run.profile).allow_download
tasks = {name: chapter.load_task(name, config, seed=seed, data_root=data_root, allow_download=allow_download)
         for name in config.datasets}
pd.DataFrame({task.name: {"training images": len(task.train_labels), "test images": len(task.test_labels),
                          "image size": "x".join(map(str, task.train_images.shape[1:]))} for task in tasks.values()})

# %% [markdown]
# ## Training with and without the push term
#
# Each data set is clustered with $\alpha = 0$ (the pull alone, close to IIC) and $\alpha = 0.05$, several
# seeds each. After training, every head assigns clusters to the centre crops of the training and test
# images; the Hungarian method maps clusters to classes on the training set and the mapping is applied to
# the test set.

# %%
seeds = tuple(1000 * seed + k for k in range(config.runs))
per_head, trained_models = [], {}
for name, task in tasks.items():
    for alpha in config.alphas:
        for run_seed in seeds:
            model = chapter.train_clusterer(task, config, alpha=alpha, seed=run_seed, device=run.device)
            trained_models[(name, alpha, run_seed)] = model
            heads = chapter.evaluate_heads(model, task, config, seed=run_seed, device=run.device)
            per_head.append(heads.assign(dataset=task.name, alpha=alpha, seed=run_seed, seconds=model.seconds))
            print(f"{task.name}, alpha {alpha}, seed {run_seed}: best head accuracy {heads.accuracy.max():.3f} "
                  f"({model.seconds:.0f} s)", flush=True)
per_head = pd.concat(per_head, ignore_index=True)
run.record("per_head", per_head.to_dict(orient="list"))
run.glue("dhog_runs", config.runs)

# %% [markdown]
# ### Head selection and Table 4.1
#
# Without labels, DHOG picks the head whose clusters agree most between two augmentations of the training
# images (highest NMI between them); the "best" head is picked with the test labels, post hoc, as the
# thesis' second row does.

# %%
def selected(frame, by):
    return frame.loc[frame.groupby(["dataset", "alpha", "seed"])[by].idxmax()]


unsupervised, best = selected(per_head, "augmentation_nmi"), selected(per_head, "nmi")
summary = pd.concat([unsupervised.assign(selection="unsupervised"), best.assign(selection="best (labels)")])
table = summary.groupby(["dataset", "selection", "alpha"])[["accuracy", "nmi", "ari", "augmentation_nmi"]].agg(["mean", "std"])
table.round(3)

# %% [markdown]
# Mean and standard deviation over {glue:text}`dhog_runs:d` seeds. `augmentation_nmi` is Table 4.2's
# quantity for the selected head: how well its clusters survive augmentation on the training set.
#
# ### Accuracy per head (Fig. 4.3)
#
# {numref}`fig-hierarchical_grouping-heads` shows the test accuracy of every head.

# %% mystnb={"figure": {"caption": "Test accuracy of every head with and without the push term, mean and standard deviation over seeds (cf. Darlow (2022), Fig. 4.3).", "name": "fig-hierarchical_grouping-heads"}}
grid = dk.plots.relplot(data=per_head, x="head", y="accuracy", hue="alpha", col="dataset", kind="line", marker="o",
                   errorbar="sd", height=3.2, aspect=1.3, palette="deep")
grid.set_axis_labels("head", "test accuracy (Hungarian)")
plt.show()

# %% [markdown]
# Without the push term nothing stops the heads from converging to one solution; with it, each head is
# driven away from the groupings before it. The push term has a trivial minimiser, though: a head that puts
# every image in one cluster shares no information with any other head. The table counts, per data set and
# $\alpha$ and summed over seeds, the heads that *collapsed* to one cluster on the test set and the heads
# that are *degenerate*: the entropy of their cluster sizes is below {glue:text}`dhog_degenerate_fraction`
# of the maximum $\log C$ (about three equal clusters out of ten), so a few stray images in other clusters
# do not hide a near-collapse. A degenerate head has chance-level accuracy whatever the data, so it widens
# the spread of accuracies across heads without being a different grouping.

# %%
run.glue("dhog_degenerate_fraction", f"{chapter.DEGENERATE_ENTROPY:.2f}")
(per_head.groupby(["dataset", "alpha"])[["collapsed", "degenerate"]].sum().unstack("alpha")
 .rename_axis(columns=["heads", "alpha"]))

# %% [markdown]
# ### Which grouping does each head find? (tinted digits)
#
# For every head, its test clusters' NMI with the digits and with the tints; if the tints win everywhere,
# the easy grouping has captured the objective.

# %% mystnb={"figure": {"caption": "NMI of every head's test clusters with the digits and with the tints, tinted digits (no thesis counterpart).", "name": "fig-hierarchical_grouping-tints"}}
if "nmi_easy" in per_head and per_head["nmi_easy"].notna().any():
    tinted = per_head[per_head["nmi_easy"].notna()].melt(
        id_vars=["head", "alpha", "seed"], value_vars=["nmi", "nmi_easy"], var_name="partition", value_name="NMI")
    tinted["partition"] = tinted["partition"].map({"nmi": "digits", "nmi_easy": "tints"})
    grid = dk.plots.relplot(data=tinted, x="head", y="NMI", hue="partition", col="alpha", kind="line", marker="o",
                       errorbar="sd", height=3.2, aspect=1.3)
    plt.show()

# %% [markdown]
# ### Confusion matrices (Fig. 4.4)
#
# For the first data set and seed: the unsupervised-selected head with and without the push term, clusters
# mapped to classes ({numref}`fig-hierarchical_grouping-confusion`).

# %% mystnb={"figure": {"caption": "Confusion matrices of the unsupervised-selected head without and with the push term, clusters mapped to classes (cf. Darlow (2022), Fig. 4.4).", "name": "fig-hierarchical_grouping-confusion"}}
first_name = config.datasets[0]
task = tasks[first_name]
fig, axes = plt.subplots(1, len(config.alphas), figsize=(5.2 * len(config.alphas), 4.4))
for ax, alpha in zip(np.atleast_1d(axes), config.alphas):
    model = trained_models[(first_name, alpha, seeds[0])]
    head = int(unsupervised.query("dataset == @task.name and alpha == @alpha and seed == @seeds[0]")["head"].iloc[0])
    train_c = chapter.predict_clusters(model, task.train_images, config.crop, run.device)[head - 1]
    test_c = chapter.predict_clusters(model, task.test_images, config.crop, run.device)[head - 1]
    mapping = dk.metrics.hungarian_mapping(train_c, task.train_labels, task.num_classes, task.num_classes)
    confusion = dk.metrics.confusion_counts(mapping[test_c], task.test_labels, task.num_classes)
    sns.heatmap(confusion, annot=True, fmt="d", cbar=False, cmap="Blues", ax=ax, annot_kws={"fontsize": 7})
    ax.set(title=f"alpha = {alpha}, head {head}", xlabel="cluster (mapped to a class)", ylabel="true class")
plt.show()

# %% [markdown]
# ### What an early and a late head group together (Table 4.3)
#
# For the first data set and seed, trained with the push term: each row is one cluster; the first image is
# the mean of the ten images with the highest probability of that cluster, followed by those ten, most
# probable first. The thesis' reading on CIFAR-10 is that an early head ($i = 2$) groups by similar pixel
# values, a late head ($i = 8$) less so.

# %%
push_alpha = max(config.alphas)
model = trained_models[(first_name, push_alpha, seeds[0])]
for head in (2, config.heads):
    exemplars = chapter.cluster_exemplars(model, task.train_images, head=head, crop=config.crop, device=run.device)
    pictures = task.train_images.numpy().transpose(0, 2, 3, 1)           # (N, H, W, C)
    pictures = pictures[..., 0] if pictures.shape[-1] == 1 else pictures
    rows = [np.concatenate([pictures[chosen].astype(float).mean(axis=0, keepdims=True), pictures[chosen]])
            for chosen in exemplars]
    titles = sum(([f"cluster {c}: mean"] + [""] * exemplars.shape[1] for c in range(len(exemplars))), [])
    dk.plots.plot_image_grid(np.concatenate(rows), titles, columns=exemplars.shape[1] + 1,
                             title=f"{task.name}, alpha = {push_alpha}, head {head}")
    plt.show()

# %% [markdown]
# (sec-dhog-deviations)=
# ## Deviations from the thesis
#
# - **Data.** Fashion-MNIST, tinted digits and the one-tint control at `cpu` (tinted digits alone at
#   `smoke`), subsampled; the thesis clusters CIFAR-10,
#   CIFAR-100-20, CINIC-10, SVHN and STL-10 (the `paper` profile runs CIFAR-10).
# - **Network and training.** At `cpu` the residual blocks are 8-32 channels wide instead of 64-512, the
#   first block has stride 2 (a quarter of the cost of every block; in trials it also learned faster than
#   stride 1 at this budget), heads have a smaller hidden layer, and training lasts a few epochs instead of
#   1,000; IIC-style objectives
#   improve for hundreds of epochs, so the numbers here are early in training. The thesis states no
#   optimiser or learning rate; we use Adam with cosine annealing.
# - **Augmentation.** Random crops, flips, brightness-contrast jitter and random greyscale; the Fast
#   AutoAugment policy of the thesis is not reproduced.
# - **Push gradients.** The earlier head is always detached (Sec. 4.3.2); whether the push term may also
#   move the shared trunk is ambiguous in the thesis. `detach_trunk_on_push` is off here: the trunk receives
#   the push gradient through head $i$.
# - **Verdict rules changed in review.** (1) One claim per thesis statement: the thesis' data sets are
#   natural images, so Fashion-MNIST, the only real image set at `cpu`, is the primary setting of the
#   Table 4.1 and 4.2 claims; the tinted digits and the one-tint control are shown as diagnostics. (2) "Later
#   heads converge without the push term" compares the spread of accuracies across heads; a degenerate head
#   sits at chance and widens that spread without being a distinct grouping, so degenerate heads are left
#   out of the spread (a run with fewer than two others left is dropped), and a check asks that at least two
#   runs per $\alpha$ remain. (3) The
#   accuracy comparison needs the selected heads to cluster above chance; that is now a sanity check
#   the claim requires, not a clause of the claim.
#
# ## Checks and claims
#
# The checks are not thesis claims: two known answers of the objective (a balanced grouping shares
# $\log C$ nats with itself; a constant head has zero MI with any other head, the push term's trivial
# minimiser), two sanity checks on the primary data set (the selected heads cluster above chance; enough
# runs keep at least two non-degenerate later heads to compare their spread), and, where the tinted digits run, a positive control that
# this stand-in carries what it was built for: an easy grouping (the tints) that captures the objective,
# with a network that can find the digits once the tints are gone.
#
# The claims are the thesis' findings, each judged once, on the primary data set. Verdict rules, fixed
# before the run: for the unsupervised-selected head, the mean over seeds with $\alpha = 0.05$ must exceed
# the mean with $\alpha = 0$ by more than the larger standard deviation over seeds of the two
# (`dk.significance.exceeds_seed_spread`; the thesis' own gaps on CIFAR-10 are eight or more of its standard
# deviations); a gap inside the seed spread is not read as an effect. Values are mean ± standard deviation
# over seeds. A miss names its cause: `budget` when the training loss of the runs with the push term was
# still falling over their last three epochs (more than 2 % relative), otherwise `genuine`.

# %%
push, pull_only = max(config.alphas), min(config.alphas)
datasets = [task.name for task in tasks.values()]
tasks_by_name = {task.name: task for task in tasks.values()}
primary = "Fashion-MNIST" if "Fashion-MNIST" in datasets else datasets[0]
run.glue("dhog_primary", primary)

balanced = torch.nn.functional.one_hot(torch.arange(200) % 10, 10).double()
self_mi = float(dhog.mutual_information(balanced, balanced, symmetric=True))
run.check("mi-of-a-balanced-grouping-with-itself", kind="known-answer",
          statement="Eq. 4.1: a balanced grouping into ten clusters shares log 10 nats with itself",
          expected=f"{np.log(10):.4f} nats", measured=f"{self_mi:.4f} nats", passes=bool(abs(self_mi - np.log(10)) < 1e-4))
constant = torch.zeros_like(balanced)
constant[:, 0] = 1
push_of_constant = float(dhog.push_term([[balanced], [constant]]))
run.check("constant-head-minimises-the-push", kind="known-answer",
          statement="Eq. 4.4: a head that puts every image in one cluster has zero MI with the heads before it (the push term's trivial minimiser)",
          expected="0 nats", measured=f"{push_of_constant:.2e} nats", passes=bool(abs(push_of_constant) < 1e-5))


def mean_sd(frame, dataset, alpha, column, scale=1.0):
    """``mean ± sd`` over seeds (the mean alone for one seed); ``scale=100`` for percentages."""
    values = scale * frame.query("dataset == @dataset and alpha == @alpha")[column]
    digits, unit = (3, "") if scale == 1 else (1, " %")
    spread = f" ± {values.std(ddof=1):.{digits}f}" if len(values) > 1 else ""
    return f"{values.mean():.{digits}f}{spread}{unit}"


def values_of(frame, dataset, alpha, column):
    return frame.query("dataset == @dataset and alpha == @alpha")[column].to_numpy()


def push_beats_pull(frame, dataset, column):
    """Whether on ``dataset`` the selected heads with the push term beat those without by more than the seed
    spread in ``column``."""
    return dk.significance.exceeds_seed_spread(values_of(frame, dataset, push, column),
                                               values_of(frame, dataset, pull_only, column))


def above_chance(frame, dataset):
    """Whether the selected heads of either alpha cluster the classes above chance by more than their seed
    spread: only then can one alpha be said to cluster more accurately than the other."""
    chance = 1 / tasks_by_name[dataset].num_classes
    return any(dk.significance.exceeds_seed_spread(values_of(frame, dataset, a, "accuracy"), [chance])
               for a in config.alphas)


def loss_drop(dataset, alpha, last=3):
    """Mean relative fall of the training loss over the ``last`` epochs of the runs on ``dataset``."""
    drops = [(m.losses[-last - 1] - m.losses[-1]) / abs(m.losses[-last - 1])
             for (name, a, _), m in trained_models.items()
             if tasks[name].name == dataset and a == alpha and len(m.losses) > last]
    return float(np.mean(drops)) if drops else float("nan")


primary_drop = loss_drop(primary, push)
training_cause = "genuine" if primary_drop <= 0.02 else "budget"     # too few epochs to tell (nan) counts as budget
falling = (f"the loss with the push term still fell {100 * primary_drop:.1f} % over the last three of {config.epochs} epochs"
           if np.isfinite(primary_drop) else f"training covers only {config.epochs} epoch(s), too few to tell")


def later_heads(dataset, alpha):
    """Heads 2..k (the ones the push term compares with earlier heads) of every run on ``dataset``."""
    return per_head.query("dataset == @dataset and alpha == @alpha and head >= 2")


def head_spreads(dataset, alpha):
    """Per seed, the standard deviation of test accuracy across the non-degenerate heads among 2..k."""
    usable = later_heads(dataset, alpha).query("not degenerate")
    return usable.groupby("seed")["accuracy"].std(ddof=1).dropna()


comparable_runs = {alpha: len(head_spreads(primary, alpha)) for alpha in config.alphas}   # runs with >= 2 usable heads
needed_runs = min(2, config.runs)
run.check("later-heads-not-degenerate", kind="sanity",
          statement=(f"{primary}: for each alpha, at least {needed_runs} run(s) keep two or more non-degenerate heads "
                     f"among 2..{config.heads}, so that their spread can be compared"),
          expected=f"at least {needed_runs} of {config.runs} runs per alpha",
          measured=", ".join(f"{n} of {config.runs} (alpha = {a})" for a, n in comparable_runs.items()),
          passes=bool(min(comparable_runs.values()) >= needed_runs))
chance = 1 / tasks_by_name[primary].num_classes
run.check("selected-heads-above-chance", kind="sanity",
          statement=f"{primary}: the unsupervised-selected heads of at least one alpha cluster the test set above chance",
          expected=f"above {100 * chance:.0f} % by more than the seed spread",
          measured=f"{mean_sd(unsupervised, primary, pull_only, 'accuracy', 100)} (alpha = {pull_only}), "
                   f"{mean_sd(unsupervised, primary, push, 'accuracy', 100)} (alpha = {push})",
          passes=above_chance(unsupervised, primary))

if {"tinted digits", "one-tint digits"} <= set(datasets):
    tinted_heads = unsupervised.query("dataset == 'tinted digits'")
    control_heads = unsupervised.query("dataset == 'one-tint digits'")
    run.check("tinted-digits-carry-an-easy-grouping", kind="positive-control",
              statement=("Tinted digits: the selected heads group by tint rather than by digit, and the same network "
                         "clusters the digits better once every digit has one tint (the easy-grouping trap of Sec. 4.2.1)"),
              expected="NMI with tints > NMI with digits; one-tint accuracy above tinted by more than the seed spread",
              measured=(f"NMI with tints {tinted_heads['nmi_easy'].mean():.2f} vs with digits {tinted_heads['nmi'].mean():.2f}; "
                        f"accuracy {100 * control_heads['accuracy'].mean():.1f} % (one tint) vs "
                        f"{100 * tinted_heads['accuracy'].mean():.1f} % (tinted)"),
              passes=bool(tinted_heads["nmi_easy"].mean() > tinted_heads["nmi"].mean())
              and dk.significance.exceeds_seed_spread(control_heads["accuracy"], tinted_heads["accuracy"]))

# %% [markdown]
# The comparisons on every data set, the primary one ({glue:text}`dhog_primary`) judged below as the claims
# and the others shown as diagnostics: the selected head's NMI between augmentations (Table 4.2) and its
# test accuracy (Table 4.1) with and without the push term, whether the gap exceeds the seed spread, and the
# spread of accuracies across the non-degenerate later heads (Fig. 4.3), with the mean NMI between the
# clusterings of every pair of those heads on the test set, a direct measure of how similar their
# solutions are.

# %%
def pairwise_head_nmi(dataset, alpha):
    """Mean over seeds of the mean test NMI between every pair of non-degenerate heads among 2..k."""
    name = next(key for key, t in tasks.items() if t.name == dataset)
    per_seed = []
    for run_seed in seeds:
        clusters = chapter.predict_clusters(trained_models[(name, alpha, run_seed)], tasks[name].test_images,
                                            config.crop, run.device)
        keep = [h for h in range(2, config.heads + 1)
                if not chapter.is_degenerate(clusters[h - 1], tasks[name].num_classes)]
        pairs = [dk.metrics.normalized_mutual_information(clusters[a - 1], clusters[b - 1])
                 for i, a in enumerate(keep) for b in keep[i + 1:]]
        if pairs:
            per_seed.append(np.mean(pairs))
    return float(np.mean(per_seed)) if per_seed else float("nan")


diagnostics = pd.DataFrame([{
    "data set": dataset,
    f"NMI(c, c') alpha = {pull_only}": mean_sd(unsupervised, dataset, pull_only, "augmentation_nmi"),
    f"NMI(c, c') alpha = {push}": mean_sd(unsupervised, dataset, push, "augmentation_nmi"),
    "NMI higher with push": push_beats_pull(unsupervised, dataset, "augmentation_nmi"),
    f"accuracy alpha = {pull_only}": mean_sd(unsupervised, dataset, pull_only, "accuracy", 100),
    f"accuracy alpha = {push}": mean_sd(unsupervised, dataset, push, "accuracy", 100),
    "accuracy higher with push": push_beats_pull(unsupervised, dataset, "accuracy") if above_chance(unsupervised, dataset) else "both at chance",
    f"head spread alpha = {pull_only}": round(float(head_spreads(dataset, pull_only).mean()), 3),
    f"head spread alpha = {push}": round(float(head_spreads(dataset, push).mean()), 3),
    f"head-pair NMI alpha = {pull_only}": round(pairwise_head_nmi(dataset, pull_only), 3),
    f"head-pair NMI alpha = {push}": round(pairwise_head_nmi(dataset, push), 3),
} for dataset in datasets]).set_index("data set")
run.record("diagnostics", diagnostics.astype(str).to_dict())
diagnostics.T

# %%
nmi_gap = values_of(unsupervised, primary, push, "augmentation_nmi").mean() - values_of(unsupervised, primary, pull_only, "augmentation_nmi").mean()
nmi_sd = max(np.std(values_of(unsupervised, primary, a, "augmentation_nmi"), ddof=1) if config.runs > 1 else 0.0
             for a in config.alphas)
run.claim(
    "push-finds-better-mi-optima",
    statement=f"With the push term the selected head reaches a higher NMI between augmentations on the training set than without it ({primary})",
    source="Table 4.2",
    thesis_value="CIFAR-10: 0.7994 ± 0.0081 vs 0.7292 ± 0.0066 (higher on 4 of 5 data sets; STL-10 0.6610 vs 0.6713)",
    measured=(f"{mean_sd(unsupervised, primary, push, 'augmentation_nmi')} vs "
              f"{mean_sd(unsupervised, primary, pull_only, 'augmentation_nmi')}"),
    holds=push_beats_pull(unsupervised, primary, "augmentation_nmi"), cause=training_cause,
    diagnosis=(f"on {primary} the gap of {nmi_gap:+.3f} is not beyond the seed spread of {nmi_sd:.3f} (see the "
               f"diagnostics table); {falling}"))

accuracy_gap = 100 * (values_of(unsupervised, primary, push, "accuracy").mean() - values_of(unsupervised, primary, pull_only, "accuracy").mean())
accuracy_sd = 100 * max(np.std(values_of(unsupervised, primary, a, "accuracy"), ddof=1) if config.runs > 1 else 0.0
                        for a in config.alphas)
run.claim(
    "push-raises-accuracy",
    statement=f"With the push term the unsupervised-selected head clusters the test set more accurately than without it ({primary})",
    source="Table 4.1",
    thesis_value="CIFAR-10: 66.61 ± 1.70 vs 57.49 ± 0.89 % (higher on 4 of 5 data sets; CINIC-10 37.65 vs 41.66 %)",
    measured=(f"{mean_sd(unsupervised, primary, push, 'accuracy', 100)} vs "
              f"{mean_sd(unsupervised, primary, pull_only, 'accuracy', 100)}"),
    holds=push_beats_pull(unsupervised, primary, "accuracy"), requires=["selected-heads-above-chance"],
    cause=training_cause,
    diagnosis=(f"on {primary} the accuracy gap of {accuracy_gap:+.1f} points is not beyond the seed spread of "
               f"{accuracy_sd:.1f} points (see the diagnostics table); {falling}"))

spread_pull, spread_push = head_spreads(primary, pull_only), head_spreads(primary, push)
degenerate_counts = {alpha: int(later_heads(primary, alpha)["degenerate"].sum()) for alpha in config.alphas}
pair_nmi = {alpha: pairwise_head_nmi(primary, alpha) for alpha in config.alphas}
run.claim(
    "later-heads-converge-without-push",
    statement=f"Without the push term the later heads converge to similar solutions: the accuracies of heads 2..k vary less across heads than with it ({primary})",
    source="Fig. 4.3", thesis_value="qualitative (accuracy per head, CIFAR-10)",
    measured=(f"std of accuracy across the non-degenerate heads 2..{config.heads}: {spread_pull.mean():.3f} "
              f"(alpha = {pull_only}) vs {spread_push.mean():.3f}; degenerate heads left out: "
              f"{degenerate_counts[pull_only]} vs {degenerate_counts[push]}"),
    holds=dk.significance.exceeds_seed_spread(spread_push, spread_pull) if len(spread_pull) and len(spread_push) else None,
    requires=["later-heads-not-degenerate"], cause=training_cause,
    diagnosis=(f"the non-degenerate later heads spread by {spread_pull.mean():.3f} without and {spread_push.mean():.3f} "
               f"with the push term, and the mean NMI between pairs of them is {pair_nmi[pull_only]:.2f} without and "
               f"{pair_nmi[push]:.2f} with it (diagnostics table); {falling}"));

# %%
run.finish();

# %% [markdown]
# ## Summary
#
# DHOG turns one clustering objective into a sequence: every head maximises the agreement of its clusters
# across augmentations, and every head after the first is also pushed away from the groupings found before
# it. The claims table gives, on the primary data set, whether the push term led the selected head to a better
# optimum than the pull alone at this profile, after a few epochs of a narrow network (the diagnostics table
# shows the other data sets); the thesis' own gains
# came after 1,000 epochs on CIFAR-sized data, and the `paper` profile reruns the same code at that scale.
# Two observations go beyond the thesis. The push term has a trivial minimiser, a head that puts every image
# in one cluster, and the collapsed- and degenerate-head table counts how often training found it or came
# close; such heads are left out when the spread across heads is judged. And the tinted digits ask
# whether pushing away from earlier groupings leads to the semantic one:

# %%
if {"tinted digits", "one-tint digits"} <= set(datasets):
    display(Markdown(
        f"On tinted digits the selected heads' clusters had an NMI of {tinted_heads['nmi_easy'].mean():.2f} with the "
        f"tints and {tinted_heads['nmi'].mean():.2f} with the digits (both values of alpha, all seeds), while the same "
        f"network reached {100 * control_heads['accuracy'].mean():.1f} % accuracy on the digits once every digit had "
        "one tint. " + (
            "Here, being pushed away from the heads before it did not lead a head from the easy grouping to the "
            "semantic one; that a weight of alpha = 0.05 is too small against a pull term the tints satisfy well "
            "is our reading, not a tested explanation."
            if tinted_heads["nmi_easy"].mean() > tinted_heads["nmi"].mean() else
            "Here the selected heads followed the digits more than the tints.")))
else:
    display(Markdown("This profile runs no one-tint control, so the question stays open here."))

# %% [markdown]
# ## Exercises
#
# To change a setting, add a line after `config = dk.experiment.select(chapter.CONFIGS, run.profile, dry_run=run.dry_run)` in
# `notebooks/loss_function/04_hierarchical_grouping.py`, for example
# `config = dataclasses.replace(config, alphas=(0.0, 0.5))` (with `import dataclasses`), and run
# `dk-book run --chapter hierarchical_grouping --profile smoke`. The library is imported as
# `from domainknowledge.principles import hierarchical_grouping as dhog`.
#
# :::{exercise}
# :label: hierarchical_grouping-ex-1
# Using Eq. 4.1, find the largest MI two heads with $C = 10$ clusters can share, and the MI of (a) a head
# that puts every image in one cluster with any other head, (b) a head that groups tinted digits by digit
# with one that groups them by tint, when every digit appears in every tint equally often. Check with
# `dhog.mutual_information` on one-hot matrices, e.g. `torch.eye(10)[torch.arange(100) % 10]` and
# `torch.eye(10)[torch.arange(100) // 10]` with `symmetric=False`. What do (a) and (b) say about what the
# push term can and cannot do?
# :::
#
# :::{solution} hierarchical_grouping-ex-1
# :class: dropdown
# $\operatorname{MI} = H(c) - H(c \mid c') \le H(c) \le \log C = \log 10 \approx 2.303$ nats, reached when
# both heads use all ten clusters equally and determine each other. (a) A collapsed head has $P_{uv} =
# P_{\cdot v}$ for its one cluster $u$, so every log-ratio is zero: MI 0 with anything. That is the trivial
# minimiser of the push term the chapter counts. (b) Independent balanced partitions give $P_{uv} = 1/100 =
# P_{u\cdot} P_{\cdot v}$, MI 0 too (the code returns 0 up to the $\epsilon$ clamp). The push term only
# penalises groupings that *depend* on earlier ones: a head that found the tints is no obstacle to a later
# head finding the digits, but nothing in the push term points a later head at the digits rather than at
# another grouping independent of the tints, or at collapse.
# :::
#
# :::{exercise}
# :label: hierarchical_grouping-ex-2
# In `dhog_loss`, the pull term is averaged over the $k$ heads, while the push term is summed over the heads
# $i \ge 2$ (each averaged over its earlier heads). Derive, for the parameters of one head $i \ge 2$, the ratio
# of the weight of its push MI to the weight of its pull MI, as a function of $\alpha$ and $k$, and evaluate
# it at `smoke` ($k = 4$) and at `paper` ($k = 8$). Check it with `torch.autograd.grad`: for random logits
# `logits[i][a]` of shape `(32, 10)` with `requires_grad=True` and `views[i][a] = logits[i][a].softmax(1)`,
# the gradient of `dhog.dhog_loss(views, alpha)` with respect to the last head's logits should equal that of
# `-dhog.pull_term([views[-1]]) / k + alpha * p`, where `p` is the last head's own push MI.
# :::
#
# :::{solution} hierarchical_grouping-ex-2
# :class: dropdown
# Head $i$ enters the pull as $\frac{1}{k}\operatorname{MI}_{\text{aug}}(c_i, c_i')$ and the push as
# $\alpha \cdot \frac{1}{i-1}\sum_{j<i} \operatorname{MI}_{\text{head}}(c_i, \operatorname{sg}[c_j])$, i.e. with
# weight $\alpha$ on its mean MI with the earlier heads (the earlier heads are detached, so they receive
# nothing from this term). The ratio is $\alpha / (1/k) = \alpha k$: 0.2 at $k = 4$ and 0.4 at $k = 8$. Adding
# heads therefore strengthens the push on every head, even at a fixed $\alpha$. (The shared trunk receives the
# sum over all heads.) The two gradients in the check agree to floating-point precision, because a head
# appears undetached only in its own pull and its own push term.
# :::
#
# :::{exercise}
# :label: hierarchical_grouping-ex-3
# Run the chapter at `smoke` with `alphas=(0.0, 0.5)`, ten times the thesis' weight. Predict what happens to
# the collapsed-heads table, to the NMI between augmentations of the selected head, and to the spread of
# accuracy across heads in the Fig. 4.3 panel.
# :::
#
# :::{solution} hierarchical_grouping-ex-3
# :class: dropdown
# With $\alpha k = 2$ at $k = 4$, the push on a later head outweighs its pull: the cheapest way down is to
# share no information with the earlier heads, and the trivial way to do that is collapse (MI 0 with
# everything, exercise 1). The mechanism predicts more collapsed heads at $\alpha = 0.5$, a pull MI (and an
# NMI between augmentations) that is lower for the later heads, and a larger spread of accuracies across
# heads, partly because collapsed heads sit at chance. The first head feels no push at all (it has no earlier
# heads), so it behaves as at $\alpha = 0$ apart from what the shared trunk does. One epoch at `smoke` is
# short, so how far each head has moved is a matter of running it.
# :::
#
# :::{exercise}
# :label: hierarchical_grouping-ex-4
# Set `heads = 8` at `smoke` (a field of `Config`; at least 4: three trunk heads and one final block). Before
# running, say how the network grows, what happens to the per-head push/pull ratio of exercise 2, and why the
# selected head need not improve.
# :::
#
# :::{solution} hierarchical_grouping-ex-4
# :class: dropdown
# Heads 1-3 sit on the trunk; every head beyond them gets its own copy of the final residual block, so four
# more blocks and heads are trained (roughly that much more compute per step). The ratio $\alpha k$ doubles to
# 0.4, so every later head is pushed harder, and the last heads are compared with seven earlier ones. More heads
# give the unsupervised selection more candidates, which helps only if some later head finds a better optimum;
# with one epoch, the stronger push and more collapsed heads can as well make the new heads worse. The
# selection (highest NMI between augmentations) never picks a collapsed head unless all are: `evaluate_heads`
# scores a collapsed head's NMI between augmentations as 0, where a constant labelling would otherwise count
# as perfect agreement.
# :::
#
# :::{exercise}
# :label: hierarchical_grouping-ex-5
# Extend the loss against collapse: subtract $\lambda$ times the mean entropy of each head's marginal cluster
# distribution $H(\bar{\mathbf{z}}_i)$, $\bar{\mathbf{z}}_i = \frac{1}{B}\sum_b \mathbf{z}_{i,b}$, from `dhog_loss`.
# Write the function, check that it is 0 for a collapsed head and $\log C$ for a head that uses all clusters
# equally, and explain why the pull term alone already rewards the same quantity.
# :::
#
# :::{solution} hierarchical_grouping-ex-5
# :class: dropdown
# ```python
# def marginal_entropy(z):                       # z: (B, C) probabilities
#     p = z.mean(dim=0).clamp_min(1e-8)
#     return -(p * p.log()).sum()
#
# def dhog_loss_with_entropy(views, alpha=0.05, lam=0.1):
#     entropy = torch.stack([marginal_entropy(z) for head in views for z in head]).mean()
#     return dhog.dhog_loss(views, alpha) - lam * entropy
# ```
# A collapsed head has $\bar{\mathbf{z}} = (1, 0, \dots, 0)$ and entropy 0 (the clamped zeros contribute
# about $10^{-7}$); `torch.eye(10).repeat(5, 1)` has $\bar{\mathbf{z}}$ uniform and entropy $\log 10$. The pull is
# $\operatorname{MI}(c, c') = H(c) - H(c \mid c')$ (IIC's argument), so it already contains the marginal
# entropy with weight $1/k$ per head; the extra term raises that weight, which counters the push term's
# incentive to collapse without changing which non-trivial groupings are preferred. IIC itself adds such a
# weight as an exponent on the marginals.
# :::

# %% [markdown]
# ## References

# %% [markdown]
# ```{bibliography}
# :filter: docname in docnames
# ```
