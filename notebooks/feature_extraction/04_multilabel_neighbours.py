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
# (ch-multilabel_neighbours)=
# # Multi-label keywords from frozen features: neighbour search and cache models
#
# A specialised archive of pictures (military vehicles, tagged by hand with Norwegian keywords such as
# "treakslet", three axle vehicle) should get keyword suggestions for new pictures. The tags are
# fine-grained, domain-specific and inconsistent: a generic keyword such as "truck" is left out of most
# pictures that show a truck, so a missing keyword means "maybe", not "no". Bynke asks how far a general
# pretrained language-image model gets without being trained on any of it: by describing each keyword in
# words (zero-shot), or by looking up the labelled pictures whose features are most similar (neighbour
# search and cache models) {cite}`bynke2022thesis`. The answer in the thesis is clear: the words help
# little, and the neighbours a lot.
#
# :::{admonition} What this chapter reproduces
# :class: tip
# Bynke (2022), Chapters 3-4 {cite}`bynke2022thesis`:
#
# - the data preparation of Sec. 3.1.2: duplicate thresholds from a logistic regression at
#   P(duplicate) = 1 % and 99 %, keyword filtering, the 60/20/20 split stratified on deciles of the
#   maximum softmaxed similarity; the label statistics of Figs. 3.2-3.4;
# - the models of Sec. 3.2 on frozen embeddings: zero-shot scores with rescaled cosines and
#   context-weighted prompt ensembles in three label languages (Table 3.1, Tables 4.1, 4.2, 4.5); 1-NN
#   {cite}`conde2021clipart`; neighbour search (Table 4.3, 4.6); simple and class-wise neighbour nets with
#   and without prototypes, fine-tuned or not (Table 4.7) {cite}`orhan2018cache,zhang2022tipadapter`;
#   Tip-Adapter's own formula with its zero-shot residual, the extension of Sec. 6.3;
# - Table 4.8 (seven micro-averaged metrics), Table 4.9 (per-class ROC AUC), the worked example of
#   Tables 4.10-4.11, and neighbour search over at least 100,000 references against a brute-force
#   `faiss` index {cite}`johnson2019faiss`.
#
# The thesis' images are proprietary and its CLIP weights need a download: here a seeded renderer draws a
# stand-in vehicle world, and the frozen image-text model is built from real pretrained networks that load
# offline.
# {ref}`sec-multilabel_neighbours-deviations` lists every difference.
# :::

# %% tags=["parameters"]
profile = "cpu"
seed = 0
device = "auto"
data_root = None
dry_run = False

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

import domainknowledge as dk
from domainknowledge.chapters import multilabel_neighbours as chapter
from domainknowledge.data.synthetic import vehicles
from domainknowledge.principles import neighbour_search as ns

run = dk.experiment.start("multilabel_neighbours", profile=profile, seed=seed, device=device, data_root=data_root, dry_run=dry_run)
dk.plots.use_book_style()
config = dk.experiment.select(chapter.CONFIGS, run.profile, dry_run=run.dry_run)
display(run.banner())
started = time.process_time()

# %% [markdown]
# ## What each profile runs
#
# A `Config` per profile sets the size of the world, the encoders, the keyword threshold, the number of
# split seeds (`runs`) and the optuna budget per model. The thesis' own images are private, so `paper`
# reads the public multi-label set the thesis compares itself with, the iMet collection of the Metropolitan
# Museum of Art (culture, tag and medium attributes recorded by its curators; 1-NN with CLIP reaches F2 51.6 %
# there {cite}`conde2021clipart`), from `--data-root` in its published layout:
# {glue:text}`mln_paper_layout`. Those who hold Bynke's data can read it with `source="ffi"`. Images are read
# from disk one batch at a time at the encoder's input size and embedded with OpenAI's CLIP ViT-B/32 from the
# open_clip cache; without the data the chapter stops with an error that names what to put where.

# %%
run.glue("mln_paper_layout", chapter.PAPER_LAYOUT)
dk.experiment.profile_table(chapter.CONFIGS, run.profile)

# %% [markdown]
# ## A stand-in vehicle world with noisy Norwegian keywords
#
# :::{admonition} Stand-in data: rendered vehicles instead of the FFI archive
# :class: warning
# The thesis' 290,000 images belong to the Norwegian Defence Research Establishment and cannot be shared.
# `dk.data.synthetic.vehicles` draws side views of trucks (plain, tank, crane, communication, radar,
# surface-to-air missile, maintenance), trailers, main battle tanks, helicopters and aircraft. Wheeled
# vehicles have 2 to 8 axles, visible as wheels, and one of three "manufacturer" cabins (Kamaz: flat
# cab-over; Ural: bonnet; ZiL: sloped). Nuisances vary freely: background, lighting, colour, scale,
# position, antennas, and a drawing style. Some images re-render an earlier vehicle (near-duplicates), with
# keywords drawn again. Each true keyword is recorded with its own probability (the generic "lastebil",
# truck, only one time in five), and junk keywords (dates, "????", exercise names) come from a Zipf pool, so
# most occur once. It keeps what makes the task hard: classes that differ in a few pixels (one more axle),
# nuisances that dominate a generic encoder's similarity, a long tail of labels, missing generic labels and
# duplicates with different labels. It cannot give the variety of real photographs or the real vocabulary
# of 570 keywords; no number here estimates the thesis' values.
# :::

# %% mystnb={"figure": {"caption": "Two renders per body type of the stand-in vehicle world with the keywords an annotator recorded (stand-in for Bynke (2022), Fig. 3.1).", "name": "fig-multilabel_neighbours-renders"}}
images = chapter.load_images(config, seed=seed, data_root=data_root)
if images.factors is not None:
    rows = []
    for body in vehicles.BODIES:
        rows += list(np.flatnonzero(images.factors.body.to_numpy() == body)[:2])
    fig, _ = dk.plots.plot_image_grid(
        np.asarray(images.images)[rows], ["\n".join(images.keywords[i][:3]) or "(no keyword)" for i in rows],
        columns=11, title="Two renders per body type with the keywords an annotator recorded (up to three shown)")

# %% [markdown]
# The keyword statistics ({numref}`fig-multilabel_neighbours-keywords`) echo Sec. 3.1.1: a few keywords (axle counts and manufacturers) are very common,
# most are rare, and most images carry one to three keywords. Of the
# {glue:text}`mln_keywords_total:d` distinct keywords, {glue:text}`mln_keywords_once:d` occur only once
# (the thesis: 151 of 570); {glue:text}`mln_unlabelled:d` images carry none and are dropped, as in the thesis.

# %% mystnb={"figure": {"caption": "Keyword statistics: the most common keywords, occurrences per keyword and keywords per image (cf. Bynke (2022), Figs. 3.2-3.4).", "name": "fig-multilabel_neighbours-keywords"}}
counts, per_image = chapter.keyword_statistics(images.keywords)
run.glue("mln_keywords_total", int(len(counts)))
run.glue("mln_keywords_once", int((counts == 1).sum()))
run.glue("mln_unlabelled", int(sum(len(k) == 0 for k in images.keywords)))
fig = chapter.plot_keyword_statistics(images.keywords, translations=images.manual)

# %% [markdown]
# ## One frozen image-text model
#
# The thesis embeds every image once with CLIP's image tower and never trains it. The same embedding serves
# both halves: zero-shot compares it with CLIP's text embeddings of the keywords, and every image-based model
# (neighbour search, the nets, the duplicate thresholds) compares it with the embeddings of the labelled
# images. No CLIP weights can be had offline, so this page uses the book's **aligned image-text model**
# ({ref}`ch-encoders`): a frozen EfficientNet-Lite0 {cite}`tan2019efficientnet` image tower and the frozen
# MiniLM sentence encoder (all-MiniLM-L6-v2, {cite}`reimers2019sbert`), both with real pretrained weights,
# joined by two small heads trained contrastively on captioned images of every synthetic world of the book.
# One 384-d unit embedding per image serves both halves, as in the thesis.
#
# CLIP has read captions of military vehicles on the web and never saw the FFI archive. The heads used here
# (`...-all-worlds`) are in the same situation: their vehicle captions ("a photo of a three-axle truck made by
# Kamaz with an antenna") describe renders drawn with other seeds than this page's, never these images. Heads
# that never saw a vehicle cannot name its type at all: the appendix's fitness table measures them at chance
# on the vehicles' body types. The captions are English. MiniLM has seen "trailer" and "antenna", not
# "tilhenger" or "treakslet", which is the situation that makes the label language matter in the thesis.

# %%
features, language, text_encoder = chapter.embed(images, config, device=run.device)
display(Markdown(f"Embedded {len(features):,} images: image features {features.shape[1]}-d "
                 f"(`{config.image_encoder}`), language-image embeddings {language.shape[1]}-d "
                 f"(`{config.text_encoder}`)."))

# %% [markdown]
# ## Data preparation (Sec. 3.1.2)
#
# **Duplicates.** Bynke labels random pairs of an image and its most similar image as duplicate or not,
# fits a logistic regression $P(\text{duplicate} \mid s) = \sigma(a + b s)$ of the label on the cosine
# similarity $s$, and reads off two thresholds: where $P = 1\,\%$ ("suspected": keep one image) and where
# $P = 99\,\%$ ("certain": keep one and merge the keywords of the removed copies into it). Here the
# generator knows which images re-render the same vehicle, and that knowledge plays the person who labels
# the pairs. **Keywords** with fewer than `min_keyword_count` training occurrences are dropped (the thesis:
# 50 of about 76,000 training images; scaled here with the size of the world). **The split** is 60/20/20,
# stratified on deciles of each image's highest softmaxed similarity to the others,
# $\max_j \operatorname{softmax}_j(T\cos(f_i, f_j))$ with $T = 100$ (the thesis does not state $T$).
#
# With the seed of the first run ({numref}`fig-multilabel_neighbours-duplicates`), {glue:text}`mln_pairs:d` labelled pairs (of which
# {glue:text}`mln_true_pairs:d` duplicates) give the thresholds {glue:text}`mln_suspected:.3f` and
# {glue:text}`mln_certain:.3f`; {glue:text}`mln_removed:d` images are removed as duplicates,
# {glue:text}`mln_kept_keywords:d` keywords remain, and the test labels have a prevalence of
# {glue:text}`mln_prevalence:.1f` % (the thesis: 159 keywords, 1.16 %).

# %% mystnb={"figure": {"caption": "Labelled pairs of an image and its most similar image, the logistic regression of duplicate on cosine similarity, and the thresholds at P = 1 % and 99 % (Bynke (2022), Sec. 3.1.2; no thesis figure).", "name": "fig-multilabel_neighbours-duplicates"}}
prepared_runs = [chapter.prepare(images, features, language, config, seed=seed + r) for r in range(config.runs)]
prepared = prepared_runs[0]
stats = prepared.statistics
run.glue("mln_pairs", int(len(prepared.pairs)))
run.glue("mln_true_pairs", int(prepared.pairs.duplicate.sum()))
run.glue("mln_suspected", float(stats["suspected threshold"]))
run.glue("mln_certain", float(stats["certain threshold"]))
run.glue("mln_removed", int(stats["removed duplicates"]))
run.glue("mln_labelled", int(stats["labelled images"]))
rerenders = stats["re-renders among the labelled images"]
run.glue("mln_rerenders", f"{int(rerenders):,}" if np.isfinite(rerenders) else "not known for this data set")
run.glue("mln_kept_keywords", int(stats["keywords kept"]))
run.glue("mln_prevalence", 100 * float(stats["test prevalence"]))
if len(prepared.pairs) == 0:
    display(Markdown("No (image, most similar image) pairs were labelled for this data set, so no duplicates "
                     "are removed and no thresholds are drawn."))
else:
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    grid = np.linspace(prepared.pairs.similarity.min() - 0.02, 1.0, 200)
    _, _, model = ns.duplicate_thresholds(prepared.pairs.similarity, prepared.pairs.duplicate)
    ax.scatter(prepared.pairs.similarity, prepared.pairs.duplicate
               + np.random.default_rng(0).uniform(-0.03, 0.03, len(prepared.pairs)),
               s=6, alpha=0.5, label="labelled pairs (jittered)")
    ax.plot(grid, model.predict_proba(grid[:, None])[:, 1], color="black", label="logistic regression")
    for value, name in ((stats["suspected threshold"], "P = 1 %"), (stats["certain threshold"], "P = 99 %")):
        ax.axvline(value, ls="--", color="grey")
        ax.text(value, 0.5, name, rotation=90, va="center", ha="right", fontsize=8)
    ax.set_xlabel("cosine similarity to the most similar other image")
    ax.set_ylabel("duplicate")
    ax.set_title(f"Duplicate thresholds ({run.profile} profile)")
    ax.legend(fontsize=8, loc="center left");

# %%
pd.DataFrame({"split": ["train", "validation", "test"],
              "images": [len(prepared.labels[s]) for s in ("train", "validation", "test")],
              "keyword occurrences": [int(prepared.labels[s].sum()) for s in ("train", "validation", "test")]}
             ).set_index("split")

# %% [markdown]
# ## The models (Sec. 3.2)
#
# Every model gives each keyword a score in $[0, 1]$, and one global threshold, chosen on the validation
# set for the highest micro $F_2$ (recall counts twice as much as precision, because a missing keyword
# means "maybe"), turns scores into suggestions. For $N$ reference (training) images with unit features
# $f_n$ and 0/1 labels $L_n \in \{0,1\}^C$, and a query $f_q$:
#
# - **Zero-shot** (Sec. 3.2.1). The caption of keyword $c$ in context $k$ (e.g. "a photo from the military
#   of a {}") has text embedding $t_{c,k}$; the class vector is the weighted mean
#   $\bar t_c = \sum_k w_k t_{c,k} / \sum_k w_k$ with context weights $w_k \in [0, 100]$ tuned on
#   validation, and the score is the rescaled cosine $(\cos(f_q, \bar t_c) + 1)/2$, without a softmax, so
#   keywords do not compete. It runs in the three label languages of Table 3.1: the original Norwegian
#   keywords (with Norwegian contexts added), an automatic translation with the table's errors
#   ("tilhenger" becomes "supporter", "stridsvogn" becomes "trailer", axle counts stay untranslated) and
#   the expert's manual translation.
# - **Neighbour search** (Sec. 3.2.2, Fig. 3.7). $s_n = T \cos(f_q, f_n)$; keep the references with
#   $s_n \ge \max_m s_m - \Delta$, at most $M$ of them; $w = \operatorname{softmax}(s_\text{kept})$;
#   $\text{score}_c = \sum_n w_n L_{n,c}$, summed in descending weight until 99 % of the weight is used.
#   **1-NN** is the case $M = 1$ {cite}`conde2021clipart`.
# - **Simple neighbour net** (Sec. 3.2.3, Fig. 3.8): $\hat y = L^\top \operatorname{softmax}(e^\tau F f_q)$,
#   a bias-free two-layer network whose first layer holds the reference features $F$ (or prototypes) and
#   second layer their labels, the cache model of {cite}`orhan2018cache`; it is neighbour search without the
#   filter. **Class-wise net**: for each keyword, a softmax over only the references that carry it,
#   $\text{score}_c = (\sum_n a_{n,c}\cos(f_q, f_n) + 1)/2$ with $a_{\cdot,c} = \operatorname{softmax}(T
#   \cos(f_q, f_\cdot))$ over those references, so keywords do not compete for one softmax.
#   **Prototypes** (after Tip-Adapter's 16 per class {cite}`zhang2022tipadapter`): each class's images are
#   split into $k$ groups, at random or by mini-batch k-means, a prototype is a group's mean feature, and
#   its label is the group's average label vector or the one-hot vector of its class; a group that receives
#   no image has no prototype (the thesis: it is "not considered"). **Fine-tuning**
#   trains the first layer (and $\tau$ of the simple net) with the MSE, SGD with momentum and cosine
#   annealing. Where the first layer holds the training images themselves, each training image is left out
#   of its own row of the softmax while it trains, as the neighbour search leaves a query out of its
#   references; otherwise it would find itself at cosine 1 and learn to copy its own keywords. The thesis
#   does not say how it handles this; we say so here.
# - **Tip-Adapter** {cite}`zhang2022tipadapter`, the combination of text and reference images that the
#   thesis proposes as future work (Sec. 6.3): the zero-shot score (manual labels) plus $\alpha$ times the
#   average of the reference labels weighted by the affinities $\exp(-\beta(1 - \cos(f_q, f_n)))$.
#
# Neighbour search and the two neighbour nets, as the library implements them:
#
# ```{literalinclude} /src/domainknowledge/principles/neighbour_search.py
# :pyobject: neighbour_search
# :language: python
# :caption: `dk.principles.neighbour_search.neighbour_search`, Sec. 3.2.2 (Fig. 3.7)
# ```
#
# ```{literalinclude} /src/domainknowledge/principles/neighbour_search.py
# :pyobject: SimpleNeighbourNet
# :language: python
# :caption: `dk.principles.neighbour_search.SimpleNeighbourNet`, the simple neighbour net (Sec. 3.2.3)
# ```
#
# ```{literalinclude} /src/domainknowledge/principles/neighbour_search.py
# :pyobject: ClassWiseNeighbourNet
# :language: python
# :caption: `dk.principles.neighbour_search.ClassWiseNeighbourNet`, the class-wise neighbour net (Sec. 3.2.3)
# ```
#
# Hyper-parameters (context weights, $T$, $\Delta$, $M$, epochs, batch size, learning rate, momentum,
# $\alpha$, $\beta$) are chosen by Bayesian optimisation on the validation set only, with optuna's seeded
# TPE sampler {cite}`akiba2019optuna` ({glue:text}`mln_trials:d` trials per model, {glue:text}`mln_ft_trials:d`
# for a fine-tuned one, at this profile; the first quarter of a search's trials, at least 2 and at most 10, are
# random draws, the rest follow TPE's model); for every trial the threshold is the exact $F_2$-optimal one. The
# test set is read once per model. All of it is repeated for {glue:text}`mln_runs:d` split seed(s).
# Fine-tuning draws 1 to {glue:text}`mln_max_epochs:d` epochs (the thesis chose 63 and 100 for the class-wise
# nets, Table 4.4), a mini-batch size from {glue:text}`mln_batch_sizes` (the thesis chose 33 to 319), a
# learning rate from $10^{-5}$ to 100 and a momentum from 0 to 0.99; the table of fine-tuned nets below shows
# what the search chose.

# %%
run.glue("mln_trials", int(config.trials))
run.glue("mln_ft_trials", int(config.fine_tune_trials))
run.glue("mln_max_epochs", int(config.max_epochs))
run.glue("mln_batch_sizes", "{} to {}".format(*chapter.FINE_TUNE_BATCH_SIZES))
run.glue("mln_runs", int(config.runs))
all_results = []
for r, prep in enumerate(prepared_runs):
    captions = chapter.text_embeddings(text_encoder, prep.translations)
    all_results.append(chapter.run_models(prep, captions, config, seed=seed + r, device=run.device))
summary = chapter.summarise_runs(all_results)
run.record("summary", summary.reset_index().round(4).to_dict(orient="list"));

# %% [markdown]
# ## Results
#
# ### Label language and prompt contexts (Tables 4.1, 4.2, 4.5)

# %%
zero_shot_names = ["zero-shot (original)", "zero-shot (automatic)", "zero-shot (manual)",
                   "zero-shot (manual, single context)"]


def table(names, columns=("F2", "recall", "precision", "ROC AUC")):
    frame = pd.DataFrame(index=names)
    for column in columns:
        frame[column] = [f"{100 * summary.loc[n, column]:.1f}" + (
            f" ± {100 * summary.loc[n, column + ' sd']:.1f}" if config.runs > 1 else "") for n in names]
    frame["threshold"] = [f"{100 * summary.loc[n, 'threshold']:.2f}" for n in names]
    return frame


display(Markdown(f"Test values in % (mean ± standard deviation over {config.runs} split seed(s); "
                 f"{run.profile} profile, {run.device_name}). The thesis (Table 4.5): 11.6, 15.8, 19.1 and 18.6 % F2."))
display(table(zero_shot_names))
weights = pd.DataFrame({language: all_results[0][f"zero-shot ({language})"].parameters["context weights"]
                        for language in chapter.LANGUAGES})
display(Markdown("Context weights chosen on validation (first run; Table 4.1 analogue; empty: context not used "
                 "with those labels):"))
display(weights.map(lambda v: "" if pd.isna(v) else f"{v:.1f}"))

# %% [markdown]
# ### Neighbour search and 1-NN (Tables 4.3, 4.6)

# %%
best_search = all_results[0]["neighbour search"].parameters
display(Markdown(
    f"Neighbour search chose T = {best_search['temperature']:.1f}, Δ = {best_search['max_difference']:.2f}, "
    f"M = {best_search['max_neighbours']} and the threshold {100 * all_results[0]['neighbour search'].threshold:.1f} % "
    "(first run; the thesis: 68.6, 5.26, 36 and 14.34 %)."))
display(table(["1-NN", "neighbour search"]))

# %% [markdown]
# ### Neighbour nets: prototypes, clustering, labels and fine-tuning (Table 4.7)
#
# The table and {numref}`fig-multilabel_neighbours-nets` give the test values of every variant.

# %%
net_names = [n for n in summary.index if n.startswith("neighbour net")]
display(table(net_names))

# %% [markdown]
# What the search chose for each net in each run (Table 4.4; the thesis' fine-tuned class-wise nets took 63
# and 100 epochs at mini-batch 64, learning rates 100 and 52 and momentum 0.90 and 0.99):

# %%
chapter.chosen_settings(all_results, net_names).round(4)

# %% mystnb={"figure": {"caption": "Test F2 of the neighbour-net variants against neighbour search (cf. Bynke (2022), Table 4.7).", "name": "fig-multilabel_neighbours-nets"}}
fig, ax = plt.subplots(figsize=(9, 0.38 * len(net_names) + 1))
values = summary.loc[net_names, "F2"]
ax.barh(range(len(net_names)), values, xerr=summary.loc[net_names, "F2 sd"] if config.runs > 1 else None,
        color=["#4c72b0" if "fine-tuned" in n else "#8fa9d6" for n in net_names], capsize=2)
ax.axvline(summary.loc["neighbour search", "F2"], color="black", ls="--", label="neighbour search")
ax.set_yticks(range(len(net_names)), [n.replace("neighbour net: ", "") for n in net_names])
ax.invert_yaxis()
ax.set_xlabel("test F2 (dark: fine-tuned)")
ax.set_title(f"Table 4.7 analogue ({run.profile} profile, {config.runs} split seed(s))")
ax.legend(fontsize=8);

# %% [markdown]
# ### Model comparison (Table 4.8) and per-class ROC AUC (Table 4.9)
#
# Table 4.8 compares the best variant of each model. For the class-wise net that is the variant with the
# highest validation $F_2$ (the thesis' best was the fine-tuned one with random prototypes, 55.9 % against
# 55.3 % with k-means, a difference it calls within random variation); the simple net is the one without
# prototypes, as in the thesis.

# %%
k = config.prototypes_per_class
best_class_wise = chapter.best_by_validation(summary, [n for n in summary.index
                                                       if n.startswith("neighbour net: class-wise")])
display(Markdown(f"Best class-wise variant on validation: **{best_class_wise}**."))
headline = ["zero-shot (manual)", "1-NN", "neighbour search", "neighbour net: simple", best_class_wise,
            "Tip-Adapter (zero-shot + cache)"]
metrics = ["F2", "MSE", "recall", "precision", "accuracy", "subset accuracy", "ROC AUC"]
comparison = pd.DataFrame(index=headline)
for metric in metrics:
    scale = 1 if metric == "MSE" else 100
    comparison[metric] = [f"{scale * summary.loc[n, metric]:.{4 if metric == 'MSE' else 1}f}" for n in headline]
display(comparison)

# %% mystnb={"figure": {"caption": "Micro-averaged test metrics of the best model of each kind (cf. Bynke (2022), Table 4.8).", "name": "fig-multilabel_neighbours-comparison"}}
fig = chapter.plot_model_comparison(summary, headline, title=f"Test metrics ({run.profile} profile, "
                                    f"mean and spread over {config.runs} split seed(s))")

# %% mystnb={"figure": {"caption": "ROC AUC of the ten most common keywords for each model, first run (cf. Bynke (2022), Table 4.9).", "name": "fig-multilabel_neighbours-per-class-auc"}}
labels_test = prepared.labels["test"]
top_classes = np.argsort(-labels_test.sum(axis=0))[:10]
auc = pd.DataFrame({name: ns.per_class_roc_auc(all_results[0][name].test_scores, labels_test)[top_classes]
                    for name in ["neighbour search", "1-NN", "zero-shot (manual)", "neighbour net: simple",
                                 best_class_wise]},
                   index=[prepared.translations["manual"][c] for c in top_classes])
auc.columns = ["NS", "1-NN", "LI", "Simple", "Class-wise"]
fig = chapter.plot_per_class_auc(auc, title=f"ROC AUC of the 10 most common keywords (first run, {run.profile})")

# %% [markdown]
# **Reading the comparison** ({numref}`fig-multilabel_neighbours-comparison` and
# {numref}`fig-multilabel_neighbours-per-class-auc`). In the thesis, the image-based models are far ahead of zero-shot, neighbour
# search is the best or level with the best, and 1-NN has the highest precision and subset accuracy but much
# lower recall, since one neighbour's keywords are all or nothing; the claims at the end test each of these
# on this page's numbers. Zero-shot ranks the keywords well above chance (ROC AUC
# {glue:text}`mln_zero_shot_auc:.2f`, the check below; the thesis: 0.805), best for what a caption names in
# plain words (a helicopter, a radar, an antenna) and worst for cabin makers, which the image shows in a few
# pixels, and for the generic "truck", which the archive seldom records. Its F2 still trails the image-based
# models, whose neighbours carry the archive's own keywords, quirks of annotation included.
#
# ### A worked example (Tables 4.10-4.11)
#
# Neighbour search explains itself: its suggestions are the weighted labels of the reference images it
# found. The query below is the test image with the most true keywords (first run); the top row shows it
# and its five most heavily weighted matches with their weights, the table the suggestions of each model
# above its threshold (✓: a recorded keyword of the query).

# %% mystnb={"figure": {"caption": "A test query and its most heavily weighted matches with their softmax weights (cf. Bynke (2022), Table 4.11).", "name": "fig-multilabel_neighbours-worked-example"}}
query = int(np.argmax(labels_test.sum(axis=1)))
matches, suggestions, match_indices = chapter.worked_example(prepared, all_results[0], best_search, query)
gallery = images.images[np.asarray([prepared.indices["test"][query], *prepared.indices["train"][match_indices]])]
names = prepared.translations["manual"]
if len(gallery):
    fig, _ = dk.plots.plot_image_grid(
        gallery, ["query"]
        + [f"match {row.rank}: {100 * row.weight:.1f} %" for row in matches.itertuples()],
        columns=len(gallery), title="A test query and its top matches with their softmax weights")

# %%
display(Markdown("Recorded keywords of the query: " + ", ".join(names[c] for c in np.flatnonzero(labels_test[query]))))
display(matches.assign(weight=lambda d: (100 * d.weight).round(1)).rename(columns={"weight": "weight (%)"})
        .set_index("rank"))
display(suggestions.assign(threshold=lambda d: (100 * d.threshold).round(2)).set_index("model"))

# %% [markdown]
# ### Neighbour search at scale
#
# The thesis searches 76,000 references per query. The search above is one chunked matrix product and a
# top-$M$ per chunk, in PyTorch, on CPU or GPU. To check that it scales, the same function searches
# {glue:text}`mln_scale_refs:,` references (the language-image embeddings of the world, replicated with
small noise; 384-d, near CLIP's 512) for
# {glue:text}`mln_scale_queries:,` queries, and `faiss.IndexFlatIP`, an exact brute-force inner-product
# index {cite}`johnson2019faiss`, searches the same; both return the same top-32 sets for
# {glue:text}`mln_scale_same:.0f` % of the queries.

# %%
scale = chapter.scale_benchmark(language, config.scale_references, config.scale_queries, seed=seed,
                                device=run.device)
run.glue("mln_scale_refs", int(scale["references"]))
run.glue("mln_scale_queries", int(scale["queries"]))
run.glue("mln_scale_same", 100 * float(scale["same top-k sets"]))
run.record("scale", scale)
display(pd.Series(scale).to_frame(f"value ({run.profile}, {run.device_name})"))

# %% [markdown]
# (sec-multilabel_neighbours-deviations)=
# ## Deviations from the thesis
#
# - **Data.** A rendered stand-in world (above) instead of the FFI archive: 25 real keywords plus junk instead
#   of 570, a few thousand images instead of 126,654, and a test prevalence of about
#   {glue:text}`mln_prevalence:.0f` % instead of 1.16 %, so absolute values are not comparable with the
#   thesis'; orders and gaps are what this page tests.
# - **Encoder.** No CLIP at `smoke` and `cpu`: the aligned model of {ref}`ch-encoders` (frozen
#   EfficientNet-Lite0 and MiniLM with trained heads) for both halves, as the thesis has one CLIP. Its heads
#   have read captions of other renders of the vehicle world, as CLIP has read captions of military vehicles.
#   `paper` uses OpenAI's CLIP ViT-B/32 for both, as the thesis (its exact variant is not stated).
# - **Translations.** The automatic translation is a table that copies Table 3.1's errors, not a call to
#   Google Translate (offline); keywords the table does not list get plausible machine translations.
# - **Duplicates.** The generator's knowledge of re-rendered vehicles labels the pairs instead of a person.
#   The stand-in world draws its vehicles from a few factors, so many different renders look almost alike
#   (in raw pixels too), and an embedding that keeps what captions name keeps even less of what tells them
#   apart. The threshold at P = 1 % therefore also removes look-alikes that are not re-renders:
#   {glue:text}`mln_removed:d` of {glue:text}`mln_labelled:d` labelled images here (first run), where a perfect
#   removal would take out the re-renders ({glue:text}`mln_rerenders`); the thesis lost about 3 % (about
#   131,000 labelled images, 126,654 kept).
# - **Keyword threshold** scaled from 50 to `min_keyword_count` training occurrences (see the profile table).
# - **Optimisation.** optuna's seeded TPE sampler with a fixed number of trials instead of scikit-optimize's
#   Gaussian process stopped when the 10 best scores lie within 0.1 points (at most 1000 calls); the global
#   threshold is the exact $F_2$-optimal one on validation rather than one more optimised dimension.
# - **Spread.** Several split seeds with the spread shown; the thesis reports one split.
# - **Tip-Adapter** is an extension (the thesis' Sec. 6.3 proposes it): its cache term is divided by the
#   total affinity so that it is an average of label vectors, the multi-label normalisation of the thesis.
# - **Errata resolved.** Sec. 3.2.3 says "16 prototypes like CLIP-art"; the 16 prototypes per class are
#   Tip-Adapter's. The gain of neighbour search over 1-NN is printed as 10.9 and 11.0 points; Table 4.6 gives 11.0.
# - **Verdicts.** The thesis compares single numbers on one split. Here every comparison of two models is
#   a matched-pair test over the test images of all split seeds (5 %); an earlier version of this page
#   compared means, or asked each step to exceed two standard deviations over seeds. Zero-shot's part in any
#   claim is judged only once a check shows zero-shot above chance: at chance, an order between zero-shot
#   variants, or between zero-shot and 1-NN, is an order between guesses.

# %% [markdown]
# ## Checks and claims
#
# Each claim is judged on the test sets of all split seeds together. Where two models are compared, the
# comparison is paired by test image: Yeh's randomized matched-pair test {cite}`yeh2000significance`, which
# swaps the two models' suggestions for an image at random, within each split seed, and asks how often the
# mean difference over the seeds is at least the one observed (`chapter.paired_model_test`, 5 %). Micro F2,
# precision and subset accuracy are not averages over images, so a per-image test such as the sign test
# does not apply; this one does.
#
# One check comes first: the thesis never claims that zero-shot is better than chance, but every claim that
# reads something into zero-shot needs it. Suggesting every keyword for every image reaches an $F_2$ of
# $5p/(4p + 1)$ at prevalence $p$, {glue:text}`mln_all_positive:.1f` % here, without looking at an image; a
# zero-shot model whose best threshold suggests nearly everything scores about that. So the check asks for
# a micro ROC AUC whose 95 % bootstrap interval over the test images lies above 0.5, and an $F_2$ above the
# all-positive one. The claims about zero-shot, the label languages and Tip-Adapter require it. The same
# floor makes "far below" comparable across prevalences: in the thesis, zero-shot gains a third of what 1-NN
# gains over suggesting every keyword (19.1 and 45.8 % against 5.5 % at a prevalence of 1.16 %), so the claim
# asks for a significant gap and at most half of 1-NN's gain.

# %%
def mean(name, metric="F2"):
    return float(summary.loc[name, metric])


note = (f"{config.runs} split seed(s), {len(features):,} rendered images, image features {config.image_encoder}, "
        f"zero-shot {config.text_encoder}; stand-in data")
test_labels = [prep.labels["test"] for prep in prepared_runs]


def paired(first, second, metric="F2"):
    return chapter.paired_model_test(all_results, test_labels, first, second, metric, seed=seed)


def p_text(p):
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


chance = chapter.zero_shot_chance(all_results, test_labels, seed=seed)
body_words = [word for words in vehicles.BODY_KEYWORDS.values() for word in words]
body_auc = chapter.keyword_group_auc(all_results, prepared_runs, body_words)
run.glue("mln_all_positive", 100 * chance["all_positive_f2"])
run.glue("mln_zero_shot_auc", chance["auc"])
run.check("zero-shot-above-chance", kind="sanity",
          statement="The zero-shot model (manual labels) ranks keywords better than chance",
          expected="micro ROC AUC's 95 % bootstrap interval above 0.5, and F2 above the all-positive F2",
          measured=(f"ROC AUC {chance['auc']:.3f} [{chance['low']:.3f}, {chance['high']:.3f}]; F2 "
                    f"{100 * chance['f2']:.1f} % vs {100 * chance['all_positive_f2']:.1f} % for suggesting every keyword"
                    + (f"; body-type keywords alone: mean ROC AUC {body_auc:.3f}" if np.isfinite(body_auc) else "")),
          passes=bool(chance["low"] > 0.5 and chance["f2"] > chance["all_positive_f2"]),
          note="the thesis' zero-shot model reaches ROC AUC 0.805 (Table 4.8)")
zero_shot_gate = ("zero-shot-above-chance",)

zs, nn1, search = mean("zero-shot (manual)"), mean("1-NN"), mean("neighbour search")
test = paired("neighbour search", "1-NN")
run.claim("search-beats-1nn", statement="Neighbour search beats the 1-NN baseline (micro F2)",
          source="Table 4.6", thesis_value="56.8 % vs 45.8 % (+11.0 points)",
          measured=f"{100 * search:.1f} % vs {100 * nn1:.1f} % ({100 * test['difference']:+.1f} points, {p_text(test['p_value'])})",
          holds=bool(test["difference"] > 0 and test["p_value"] < 0.05), cause="genuine",
          diagnosis=(f"neighbour search is {100 * test['difference']:+.1f} points from 1-NN ({p_text(test['p_value'])}) "
                     "in the Table 4.8 analogue"),
          note=note + "; rule: positive and significant, paired matched-pair test over the test images, 5 %")
test = paired("zero-shot (manual)", "1-NN")
# "far" on a scale that does not depend on the prevalence: each model's F2 gain over suggesting every keyword
floor = chance["all_positive_f2"]
nn1_gains = nn1 - floor >= 0.01                                   # a share of under 1 point means nothing
gain_share = (zs - floor) / (nn1 - floor) if nn1_gains else float("nan")
share_text = (f"zero-shot gains {gain_share:.0%} of 1-NN's gain over suggesting every keyword ({100 * floor:.1f} %)"
              if nn1_gains else f"1-NN gains under 1 point over suggesting every keyword ({100 * floor:.1f} %)")
thesis_floor = 5 * 0.0116 / (4 * 0.0116 + 1)                      # the thesis' test prevalence, 1.16 %
thesis_share = (0.191 - thesis_floor) / (0.458 - thesis_floor)
run.claim("zero-shot-far-below-1nn", statement="Zero-shot (manual labels) is far below the 1-NN baseline (micro F2)",
          source="Table 4.8", thesis_value="19.1 % vs 45.8 % (26.7 points below)",
          measured=(f"{100 * zs:.1f} % vs {100 * nn1:.1f} % ({100 * test['difference']:+.1f} points, "
                    f"{p_text(test['p_value'])}); {share_text}"),
          holds=bool(test["difference"] < 0 and test["p_value"] < 0.05 and gain_share <= 0.5), cause="stand-in",
          diagnosis=(f"zero-shot is {100 * test['difference']:+.1f} points from 1-NN ({p_text(test['p_value'])}); "
                     f"{share_text} (the thesis' share: {thesis_share:.0%})"),
          requires=zero_shot_gate,
          note=note + (f"; rule: negative and significant (paired matched-pair test, 5 %), and far: zero-shot's F2 gain "
                       f"over suggesting every keyword at most half of 1-NN's (the thesis: {thesis_share:.0%} at its "
                       f"prevalence of 1.16 %); only once zero-shot is above chance"))

nn1_rivals = ["zero-shot (manual)", "neighbour search", "neighbour net: simple", best_class_wise]
parts, holds_all = [], True
for metric in ("precision", "subset accuracy"):
    runner = max(nn1_rivals, key=lambda n: mean(n, metric))
    test = paired("1-NN", runner, metric)
    ok = bool(mean("1-NN", metric) > mean(runner, metric) and test["p_value"] < 0.05)
    holds_all &= ok
    parts.append(f"{metric} {100 * mean('1-NN', metric):.1f} % vs {100 * mean(runner, metric):.1f} % for the runner-up, "
                 f"{runner} ({100 * test['difference']:+.1f} points, {p_text(test['p_value'])})")
run.claim("1nn-highest-precision-and-subset-accuracy",
          statement="1-NN has the highest precision and the highest subset accuracy of the models compared",
          source="Table 4.8", thesis_value="precision 45.6 % (next 35.8 %), subset accuracy 35.8 % (next 19.7 %)",
          measured="; ".join(parts), holds=holds_all, cause="genuine",
          diagnosis="in the Table 4.8 analogue: " + "; ".join(parts),
          note=note + "; rule: 1-NN's mean is the highest of the Table 4.8 models for each metric and significantly "
                      "above the runner-up's (paired matched-pair test, 5 %)")

nets = {"simple": "neighbour net: simple", "best class-wise": best_class_wise}
net_tests = {label: paired(name, "neighbour search") for label, name in nets.items()}
far = [label for label, t in net_tests.items() if t["difference"] < -0.02 and t["p_value"] < 0.05]
epochs = [all_results[r][nets[label]].parameters.get("epochs") for r in range(config.runs) for label in far]
at_budget = any(e == config.max_epochs for e in epochs)
above = [label for label, t in net_tests.items() if t["difference"] > 0 and t["p_value"] < 0.05]
measured = ", ".join(f"{label} {100 * mean(nets[label]):.1f} % ({100 * t['difference']:+.1f} points, "
                     f"{p_text(t['p_value'])})" for label, t in net_tests.items()) + f" vs {100 * search:.1f} %"
run.claim("nets-close-to-search",
          statement="The neighbour nets come close to neighbour search but do not improve upon it (micro F2)",
          source="Table 4.8", thesis_value="55.8 % and 55.9 % vs 56.8 % (1.0 and 0.9 points below)",
          measured=measured, holds=not far and not above, cause="budget" if at_budget else "genuine",
          diagnosis=(f"{', '.join(far) or 'no net'} more than 2 points and significantly below search, and "
                     f"{', '.join(above) or 'no net'} significantly above it, in the Table 4.7 figure"
                     + (f"; fine-tuning chose the most epochs allowed ({config.max_epochs}) in some run"
                        if at_budget else "")),
          note=note + "; rule: no net significantly above search, and none both significantly below it and more "
                      "than 2 points below (twice the thesis' gaps; paired matched-pair test, 5 %)")

languages = [mean(f"zero-shot ({language})") for language in chapter.LANGUAGES]
steps = [paired(f"zero-shot ({b})", f"zero-shot ({a})") for a, b in zip(chapter.LANGUAGES, chapter.LANGUAGES[1:])]
run.claim("label-language-order", statement="Zero-shot F2 orders the label languages original < automatic < manual",
          source="Table 4.5", thesis_value="11.6 % < 15.8 % < 19.1 %",
          measured=(", ".join(f"{language} {100 * v:.1f} %" for language, v in zip(chapter.LANGUAGES, languages))
                    + "; steps " + ", ".join(f"{100 * t['difference']:+.1f} points ({p_text(t['p_value'])})"
                                             for t in steps)),
          holds=all(t["difference"] > 0 and t["p_value"] < 0.05 for t in steps) if images.has_translations else None,
          cause="stand-in" if images.has_translations else "not-at-this-profile",
          diagnosis=(("the steps between label languages are " + " and ".join(
              f"{100 * t['difference']:+.1f} points ({p_text(t['p_value'])})" for t in steps)
              + " in the zero-shot table") if images.has_translations else
              "this data set's keywords are English already, so there are no label languages to compare; "
              "the claim needs Bynke's Norwegian keywords and their translations (source='ffi')"),
          requires=zero_shot_gate,
          note=note + "; rule: each step positive and significant (paired matched-pair test, 5 %), and zero-shot "
                      "above chance (the check)")

names = {"base": "neighbour net: simple", "one-hot": f"neighbour net: simple, {k} random prototypes, one-hot",
         "clustered": f"neighbour net: simple, {k} k-means prototypes, one-hot",
         "average": f"neighbour net: simple, {k} k-means prototypes, average",
         "tuned": f"neighbour net: simple, {k} k-means prototypes, average, fine-tuned"}
base, one_hot, clustered, average, tuned = (mean(names[key]) for key in names)
lost = base - one_hot
t_lost, t_cluster, t_average = (paired(names["one-hot"], names["base"]), paired(names["clustered"], names["one-hot"]),
                                paired(names["average"], names["clustered"]))
ablation_ok = bool(t_lost["difference"] < 0 and t_lost["p_value"] < 0.05
                   and not (t_cluster["difference"] < 0 and t_cluster["p_value"] < 0.05)
                   and t_average["difference"] > 0 and t_average["p_value"] < 0.05 and tuned - one_hot >= 0.5 * lost)
run.claim("prototype-ablation",
          statement=("Prototypes without fine-tuning lose much; clustering and average labels recover part; "
                     "fine-tuning recovers most"),
          source="Table 4.7", thesis_value="55.8 → 22.5 → 27.6 → 38.6 → 54.8 %",
          measured=(f"{100 * base:.1f} → {100 * one_hot:.1f} ({p_text(t_lost['p_value'])}) → {100 * clustered:.1f} "
                    f"({p_text(t_cluster['p_value'])}) → {100 * average:.1f} ({p_text(t_average['p_value'])}) → "
                    f"{100 * tuned:.1f} %"),
          holds=ablation_ok, cause="genuine",
          diagnosis=(f"the steps in the Table 4.7 figure are {100 * (one_hot - base):+.1f}, {100 * (clustered - one_hot):+.1f}, "
                     f"{100 * (average - clustered):+.1f} and {100 * (tuned - average):+.1f} points"),
          note=note + "; rule: prototypes lose significantly, clustering does not lose significantly, average labels "
                      "gain significantly (paired matched-pair tests, 5 %), and fine-tuning recovers at least half "
                      "of the loss")

class_wise, class_wise_tuned = (mean(f"neighbour net: class-wise, {k} k-means prototypes"),
                                mean(f"neighbour net: class-wise, {k} k-means prototypes, fine-tuned"))
t_cw = paired(f"neighbour net: class-wise, {k} k-means prototypes", names["average"])
run.claim("class-wise-needs-fine-tuning",
          statement="The class-wise net with prototypes is far worse than the simple one without fine-tuning and gains most from it",
          source="Table 4.7", thesis_value="17.8 % (vs 38.6 %) → 55.3 % fine-tuned",
          measured=(f"{100 * class_wise:.1f} % (vs {100 * average:.1f} %, {p_text(t_cw['p_value'])}) → "
                    f"{100 * class_wise_tuned:.1f} % fine-tuned"),
          holds=bool(t_cw["difference"] < 0 and t_cw["p_value"] < 0.05
                     and class_wise_tuned - class_wise > tuned - average), cause="genuine",
          diagnosis=(f"the class-wise net is {100 * t_cw['difference']:+.1f} points from the simple one "
                     f"({p_text(t_cw['p_value'])}) and fine-tuning adds {100 * (class_wise_tuned - class_wise):+.1f} "
                     f"against {100 * (tuned - average):+.1f} for the simple net"),
          note=note + "; rule: significantly below the simple net with average-label prototypes (paired test, 5 %), "
                      "and a larger gain from fine-tuning than the simple net's")

simple_tuned = mean("neighbour net: simple, fine-tuned")
t_ft = paired("neighbour net: simple, fine-tuned", "neighbour net: simple")
run.claim("simple-net-fine-tuning-changes-nothing",
          statement="Fine-tuning the simple neighbour net without prototypes makes no meaningful difference",
          source="Table 4.7, Sec. 5.3", thesis_value="55.8 % both without and with fine-tuning",
          measured=(f"{100 * base:.1f} % → {100 * simple_tuned:.1f} % fine-tuned ({100 * t_ft['difference']:+.1f} "
                    f"points, {p_text(t_ft['p_value'])})"),
          holds=bool(t_ft["p_value"] >= 0.05 or abs(t_ft["difference"]) <= 0.01), cause="genuine",
          diagnosis=(f"fine-tuning moves the simple net by {100 * t_ft['difference']:+.1f} points "
                     f"({p_text(t_ft['p_value'])}) in the Table 4.7 figure"),
          note=note + "; rule: no meaningful difference, i.e. not both significant (paired matched-pair test, 5 %) "
                      "and larger than 1 point (the thesis calls a 0.7-point gap 'slightly lower' and gaps of about "
                      "1 point 'close')")

tip = mean("Tip-Adapter (zero-shot + cache)")
t_tip = paired("Tip-Adapter (zero-shot + cache)", "neighbour search")
run.claim("tip-adapter-extension", statement="(Extension, Sec. 6.3) adding the zero-shot residual to the cache beats neighbour search",
          source="Sec. 6.3 (proposed, not run)", thesis_value="not measured",
          measured=f"Tip-Adapter {100 * tip:.1f} % vs neighbour search {100 * search:.1f} % ({p_text(t_tip['p_value'])})",
          holds=bool(t_tip["difference"] > 0 and t_tip["p_value"] < 0.05), cause="genuine",
          diagnosis=f"Tip-Adapter is {100 * t_tip['difference']:+.1f} points from search ({p_text(t_tip['p_value'])})",
          requires=zero_shot_gate,
          note=note + "; rule: positive and significant (paired matched-pair test, 5 %), and zero-shot above chance")
run.glue("mln_zero_shot", 100 * zs)
run.glue("mln_one_nn", 100 * nn1)
run.glue("mln_search", 100 * search)
run.glue("mln_tip", 100 * tip)
run.glue("mln_cpu_seconds", float(time.process_time() - started))
run.finish();

# %% [markdown]
# ## Summary
#
# On frozen features, the labelled reference images carry the task. At this profile the zero-shot model
# reaches {glue:text}`mln_zero_shot:.1f` % micro $F_2$ with the manual English labels, 1-NN
# {glue:text}`mln_one_nn:.1f` % and neighbour search {glue:text}`mln_search:.1f` %: neighbour search spreads
# the vote over a few close references, and its softmax weights show which references it trusted. Cache
# models (neighbour nets) are the same computation written as a two-layer network; compressing the cache into
# prototypes costs accuracy that clustering, average labels and fine-tuning buy back, in the order of
# Table 4.7 where the claims above say so. Adding the zero-shot text scores to the cache, as Tip-Adapter does,
# gives {glue:text}`mln_tip:.1f` %. Whether the zero-shot scores rank keywords above chance is the check
# (micro ROC AUC {glue:text}`mln_zero_shot_auc:.2f` here): where it passes, as at `cpu`, the claims that read
# something into zero-shot (its distance to 1-NN, the label-language order, Tip-Adapter) are judged; where it
# fails, as with the few images of `smoke`, they are marked not run rather than judged on guesses. Where
# zero-shot comes closer to 1-NN than in the thesis (the share in the claim's measurement), the stand-in is
# the reason: the captions the heads learnt from name axle counts, makers and antennas, the archive's own
# keywords, where CLIP's web captions seldom do.
# The chapter took {glue:text}`mln_cpu_seconds:.0f` s of CPU time in its kernel, embedding included unless
# cached.
#
# ## Exercises
#
# To change a setting, add a line after `config = dk.experiment.select(chapter.CONFIGS, run.profile, dry_run=run.dry_run)` in
# `notebooks/feature_extraction/04_multilabel_neighbours.py`, for example
# `config = dataclasses.replace(config, prototypes_per_class=1)` (with `import dataclasses`), and run
# `dk-book run --chapter multilabel_neighbours --profile smoke`. Small checks run on random unit vectors, e.g.
# `R = rng.normal(size=(40, 8)); R /= np.linalg.norm(R, axis=1, keepdims=True)` and 0/1 labels
# `L = (rng.random((40, 6)) < 0.3).astype(float)`.
#
# :::{exercise}
# :label: multilabel_neighbours-ex-1
# Show from `ns.neighbour_search` that 1-NN is the case $\Delta = 0$ (any $M$, no ties) as well as $M = 1$,
# and that the cut $T\cos(f_q, f_n) \ge \max_m T\cos(f_q, f_m) - \Delta$ keeps the references within
# $\Delta / T$ of the best cosine. What happens to the scores as $T$ grows with $\Delta / T$ fixed? Check the
# $\Delta = 0$ case against `L[np.argmax(Q @ R.T, axis=1)]`.
# :::
#
# :::{solution} multilabel_neighbours-ex-1
# :class: dropdown
# With $\Delta = 0$ only references whose $T\cos$ equals the maximum survive the `keep` mask; without ties that
# is the nearest one alone, its softmax weight is 1, and the score is its label vector: 1-NN. Dividing the cut
# by $T$ gives $\cos(f_q, f_n) \ge \max_m \cos(f_q, f_m) - \Delta/T$, so $\Delta/T$ is the admitted gap in cosine.
# With that gap fixed and $T$ growing, the same references are kept but the softmax over them sharpens, and the
# weight concentrates on the nearest: the scores tend to 1-NN's. The library's result equals
# `L[np.argmax(Q @ R.T, axis=1)]` exactly for $\Delta = 0$.
# :::
#
# :::{exercise}
# :label: multilabel_neighbours-ex-2
# The text says the simple neighbour net "is neighbour search without the filter". Make that exact: which
# arguments of `ns.neighbour_search` reproduce `ns.SimpleNeighbourNet(R, L, T)` with the reference features as
# keys and their labels as values? Check that the two agree to float precision.
# :::
#
# :::{solution} multilabel_neighbours-ex-2
# :class: dropdown
# The net computes $L^\top\operatorname{softmax}(e^\tau R f_q)$ over *all* keys, with $e^\tau = T$ at
# initialisation. Neighbour search does the same once nothing is filtered and nothing is cut short:
# `temperature=T`, `max_neighbours=len(R)` (all references), `max_difference=float("inf")` (keep all) and
# `early_stop=1.0` (use all the weight). The two then differ by about $10^{-7}$, float32 rounding. Fine-tuning
# moves the net's keys away from the reference features and $\tau$ away from $\log T$, and prototypes replace
# the references by group means, which is where the two models part.
# :::
#
# :::{exercise}
# :label: multilabel_neighbours-ex-3
# A model whose scores carry no information (every keyword the same score for every image) gets its
# $F_2$-optimal threshold from `ns.best_f2_threshold` by suggesting every keyword. Derive its micro $F_2$ as a
# function of the test prevalence $\pi$, evaluate it for this page's prevalence
# ({glue:text}`mln_prevalence:.1f` %) and for the thesis' 1.16 %, and compare with the zero-shot rows.
# :::
#
# :::{solution} multilabel_neighbours-ex-3
# :class: dropdown
# Suggesting everything gives recall 1 and precision $\pi$, so
# $F_2 = \frac{5 \cdot \pi \cdot 1}{4\pi + 1} = \frac{5\pi}{4\pi + 1}$; in the code's counts, $\mathrm{TP} = P$,
# $\mathrm{FN} = 0$, $\mathrm{FP} = (1/\pi - 1)P$, and $5P / (5P + (1/\pi - 1)P)$ is the same. For $\pi = 1.16$ %
# this is about 5.5 %. `best_f2_threshold(np.full(y.shape, 0.3), y)` returns exactly this value. A zero-shot
# $F_2$ close to it, with recall near 100 % and precision near $\pi$, means the threshold found nothing better
# than suggesting every keyword; that is why the chance check asks for an $F_2$ above it.
# :::
#
# :::{exercise}
# :label: multilabel_neighbours-ex-4
# Set `prototypes_per_class = 1` (a field of `Config`) and run the chapter at `smoke`. Before running,
# predict from `ns.class_prototypes` how the k-means and the random prototype rows of Table 4.7 will compare,
# and how the prototype nets will fare against the full cache.
# :::
#
# :::{solution} multilabel_neighbours-ex-4
# :class: dropdown
# With one group per class, k-means (`MiniBatchKMeans(1)`) and the random split (`permutation % 1`) both put
# every member of class $c$ in the one group, so both give the same key, the class mean, and the same value:
# the k-means and random rows should coincide, up to whatever the tuning does differently. One mean per class
# cannot represent a class whose images differ (a three-axle ZiL and a three-axle Kamaz share the axle
# keyword), and an image's nearest prototype is then the class mean closest to it, so the prototype nets
# should fall further behind the full cache (the simple net and neighbour search, which do not use prototypes
# and should not change). Fine-tuning can move the single key but cannot split it, so it recovers less.
# :::
#
# :::{exercise}
# :label: multilabel_neighbours-ex-5
# Extend the models with a plain $k$-NN vote: the mean label vector of the $k$ most similar references, with
# equal weights. Write it with `torch.topk` (or `ns.faiss_neighbours`), then show that it is a limit of
# `ns.neighbour_search` and say why `temperature=0` is *not* the right limit.
# :::
#
# :::{solution} multilabel_neighbours-ex-5
# :class: dropdown
# ```python
# def knn_vote(Q, R, L, k):
#     index = np.argsort(-(Q @ R.T), axis=1)[:, :k]
#     return L[index].mean(axis=1)
# ```
# Neighbour search with `max_neighbours=k`, `early_stop=1.0`, a `max_difference` that keeps all $k$ and a
# small positive temperature gives almost equal softmax weights over the true top $k$: with `temperature=1e-4`
# the scores agree with `knn_vote` to about $10^{-6}$. At exactly `temperature=0`, every $T\cos$ is 0, so
# `torch.topk` no longer ranks by similarity and picks an arbitrary $k$ references: the weights are uniform,
# but over the wrong images. The limit has to be taken from above, after the ranking.
# :::
#
# ## References

# %% [markdown]
# ```{bibliography}
# :filter: docname in docnames
# ```
