# %% [markdown]
# # 7 · Beyond the Gaussian prior
#
# Tutorial 4 ended with a VAE whose codes leave holes in $\mathcal N(0, I)$: the prior puts mass where no
# image's posterior goes, so samples drawn there decode to nothing. The ELBO pays for that mismatch
# too: its KL term is $\mathbb E_x\,\mathrm{KL}(q(z\mid x)\,\|\,p(z))$, and a prior that fits the codes'
# distribution (the *aggregate posterior*) charges less for the same codes. This notebook changes the
# three parts of the model that a Gaussian VAE fixes, one `ModelConfig` field each:
#
# 1. a **learnable prior** (`prior=`): a mixture of Gaussians, the **VampPrior** (Tomczak & Welling,
#    2018: a mixture of the encoder's own posteriors at learned *pseudo-inputs*), or a **flow prior**
#    ($\mathcal N(0, I)$ pushed through masked autoregressive flows);
# 2. a more flexible **posterior**: an inverse autoregressive flow on top of the Gaussian
#    (`posterior_flow=`, Kingma et al., 2016);
# 3. a tighter **objective**: the importance-weighted bound (`objective="iwae"`, Burda et al., 2016).
#
# Six models on the same binarized MNIST images, compared by the test IWAE log-likelihood (tutorial
# 6), with their codes, priors and samples side by side. The latent space is **2-D**: too small for a
# good model of MNIST, but it is where the prior matters most (two numbers per image cannot be made to
# look Gaussian for free) and where the prior's density, the codes and the holes can all be drawn.
# The network is the `mlp` preset (dense 512 and 256 ReLU units).
#
# Each model trains for 20 epochs on 20,000 images, with 5,000 more held out for validation: the
# epoch kept is the one with the best validation loss, and any choice *between* models would be made on
# the validation column of the table below. The test images are used only for the final numbers.
# 20 to 30 minutes on one (shared) CPU core. `TFP_VAE_QUICK=1` trains on 2,048 images for 3 epochs and is
# what the test suite runs; the `assert` lines state what each step should show.

# %%
import os
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

import tfp_vae
from tfp_vae.config import TrainingConfig
from tfp_vae.data import load_splits
from tfp_vae.evaluation import evaluate_elbo, iwae_log_likelihood
from tfp_vae.io import load_model, save_model
from tfp_vae.runs import train_run

QUICK = os.environ.get("TFP_VAE_QUICK") == "1"
N_TRAIN = 2048 if QUICK else 20_000
N_VALIDATION = 512 if QUICK else 5_000
N_TEST = 500 if QUICK else 10_000
N_IWAE = 100 if QUICK else 1_000  # test images for the importance-weighted bound
K = 100 if QUICK else 1_000  # importance samples of the test log-likelihood
EPOCHS = 3 if QUICK else 20

# %% [markdown]
# ## Six models, one field each
#
# Every model has the same encoder and decoder networks and a 2-D latent space. None of the learnable
# priors and neither flow has a closed-form KL, so those models use the Monte Carlo estimator `mc`
# ($\log q(z\mid x) - \log p(z)$ at the posterior's own sample; tutorial 5), and `ModelConfig` refuses
# `kl_estimator="analytic"` for them with a sentence that says so. The IWAE model uses `mc` too, so the
# ELBO it reports comes from the same samples as its bound.

# %%
base = dict(network="mlp", latent_dim=2)
variants = {
    "Gaussian": dict(),
    "mixture": dict(prior="mixture", prior_options={"num_components": 10}, kl_estimator="mc"),
    "VampPrior": dict(prior="vamp", prior_options={"num_components": 50}, kl_estimator="mc"),
    "flow prior": dict(prior="flow", prior_options={"num_layers": 2}, kl_estimator="mc"),
    "IAF posterior": dict(posterior_flow=2, kl_estimator="mc"),
    "IWAE, k=5": dict(objective="iwae", num_samples=5, kl_estimator="mc"),
}
configs = {name: tfp_vae.ModelConfig(**base, **fields) for name, fields in variants.items()}
try:
    tfp_vae.ModelConfig(**base, prior="vamp")
except ValueError as error:
    print("ModelConfig(prior='vamp') with the default analytic KL:", error)

# %% [markdown]
# A learnable prior is a Keras layer, `vae.prior_layer`, that owns the prior's variables: the model
# trains, saves and loads them with the encoder's and decoder's weights. `vae.prior` builds the
# distribution $p(z)$ from their current values each time it is asked for, so the gradient of the loss
# reaches them. What each prior learns:

# %%
models = {name: tfp_vae.build_model(config) for name, config in configs.items()}
for name in ["mixture", "VampPrior", "flow prior"]:
    vae = models[name]
    shapes = [tuple(v.shape) for v in vae.prior_layer.trainable_variables]
    size = sum(int(np.prod(shape)) for shape in shapes)
    print(f"{name:<11} {type(vae.prior).__name__:<25} {size:>6,} parameters in "
          f"{len(shapes)} variables: {shapes}")
vamp = models["VampPrior"]
print("\nVampPrior components: the encoder's posteriors at the pseudo-inputs,",
      vamp.prior.components_distribution.batch_shape, "of",
      type(vamp.prior.components_distribution).__name__)

# %% [markdown]
# * The **mixture** learns 10 weights (logits), 10 means and 10 diagonal scales.
# * The **VampPrior** learns 50 images $u_k$ (stored as logits, $u_k = \mathrm{sigmoid}$ of them, so they
#   stay in the pixels' range $[0, 1]$) and has no other variables: $p(z) = \frac1{50}\sum_k q(z\mid u_k)$
#   reuses the encoder, so it moves whenever the encoder does.
# * The **flow prior** learns the two MADE networks of its masked autoregressive flows.
#
# ## Training
#
# `train_run` trains each model from a `ModelConfig` and a `TrainingConfig` (in memory, `run_dir=None`),
# with fresh binarization of the training images every epoch. We record every model's initial weights
# first, to check afterwards that the priors' variables did move. (`jit_compile=False`: XLA takes longer
# to compile these small models, flows above all, than it saves in 20 epochs on a CPU.)

# %%
training = TrainingConfig(data="mnist", binarization="dynamic", train_size=N_TRAIN,
                          validation_size=N_VALIDATION, test_size=N_TEST, epochs=EPOCHS,
                          batch_size=100, seed=0, plots=False, jit_compile=False)
splits = load_splits("mnist", validation_size=N_VALIDATION, train_size=N_TRAIN,
                     test_size=N_TEST, seed=training.seed)
x_test, y_test = splits.x_test, splits.y_test

runs, initial_prior = {}, {}
for name, config in configs.items():
    tfp_vae.keras.utils.set_random_seed(0)
    model = tfp_vae.build_model(config)
    initial_prior[name] = [w.copy() for w in model.prior_layer.get_weights()]
    runs[name] = train_run(None, config, training, initial_weights=model.get_weights())
models = {name: run.model for name, run in runs.items()}

print(f"{'model':<14} {'seconds':>8} {'kept epoch':>11} {'validation -ELBO':>17}")
for name, run in runs.items():
    metrics = run.metrics
    print(f"{name:<14} {metrics['train_seconds']:>8.0f} {metrics['selected_epoch']:>11} "
          f"{metrics['validation_negative_elbo']:>10.2f} ± "
          f"{metrics['validation_negative_elbo_standard_error']:.2f}")

# %% [markdown]
# The validation column is the number a model choice would rest on (the kept epoch too was chosen on
# validation data: the best validation loss, which for the IWAE model is its bound $-\mathcal L_5$).
# Nearly every model kept its last or next-to-last epoch: all were still improving after 20 epochs, so
# every number below would fall with longer training; the comparison is between equally short runs.
# On validation data the VampPrior is ahead, then the flow prior; the IWAE model's ELBO is the worst,
# which is not what it was trained for (next cell).
#
# **Did the priors learn?** Every learnable prior's variables should have moved away from their initial
# values; the Gaussian prior has none.

# %%
for name in ["mixture", "VampPrior", "flow prior"]:
    trained = models[name].prior_layer
    changes = [np.abs(new - old).max()
               for new, old in zip(trained.get_weights(), initial_prior[name], strict=True)]
    print(f"{name:<11} largest change of each prior variable: {np.round(changes, 3)}")
    assert all(change > 1e-2 for change in changes), name
assert initial_prior["Gaussian"] == [] and models["Gaussian"].prior_layer.get_weights() == []

# %% [markdown]
# **The IWAE model's two numbers.** With `objective="iwae"` the loss minimised is $-\mathcal L_5$, and the
# negative ELBO of the same five samples per image is reported beside it. For every image,
# $\mathcal L_5 = \log \frac15 \sum_i w_i \ge \frac15 \sum_i \log w_i$ = that ELBO (Jensen's inequality on
# the same samples), so the reported bound can never be the worse of the two, epoch by epoch:

# %%
history = runs["IWAE, k=5"].history
print("epoch  -L_5 (loss)  -ELBO (same samples)")
for row in [history[i] for i in sorted({0, 1, 2, len(history) - 2, len(history) - 1})]:
    print(f"{row['epoch']:>5} {row['negative_iwae_bound']:>12.2f} {row['negative_elbo']:>20.2f}")
assert all(row["negative_iwae_bound"] <= row["negative_elbo"] + 1e-3 for row in history)

# %% [markdown]
# ## Test log-likelihoods
#
# Each model's test negative ELBO (all test images; Monte Carlo KL with 10 samples for every model, so
# the column is computed the same way for all) and its IWAE bound $\mathcal L_K$ with $K$ = 1,000
# importance samples on the first 1,000 test images (`iwae_log_likelihood`, tutorial 6): the closest
# lower bound on $\log p(x)$ we have, and the number to compare models by.

# %%
table, per_image = {}, {}
for name, model in models.items():
    start = time.perf_counter()
    elbo = evaluate_elbo(model, x_test, kl_estimator="mc", num_samples=10, seed=0)
    bound_k = iwae_log_likelihood(model, x_test[:N_IWAE], num_samples=K, seed=0,
                                  return_per_image=True)
    bound_1 = iwae_log_likelihood(model, x_test[:N_IWAE], num_samples=1, seed=0,
                                  return_per_image=True)
    per_image[name] = (bound_1["per_image"], bound_k["per_image"])
    table[name] = dict(elbo=elbo, iwae=bound_k, seconds=time.perf_counter() - start)

def mean_and_error(values):
    return f"{values.mean():>7.2f} ± {values.std(ddof=1) / np.sqrt(len(values)):.2f}"


print(f"{'model':<14} {'test -ELBO':>15} {'KL':>6} {f'test log p(x) >= L_{K}':>22} "
      f"{'minus Gaussian':>15} {'L_K - L_1':>14} {'eval s':>7}")
for name, row in table.items():
    elbo, iwae = row["elbo"], row["iwae"]
    gain = per_image[name][1] - per_image[name][0]
    versus_gaussian = per_image[name][1] - per_image["Gaussian"][1]
    print(f"{name:<14} {elbo['negative_elbo']:>8.2f} ± {elbo['negative_elbo_standard_error']:.2f} "
          f"{elbo['kl']:>6.2f} {iwae['log_likelihood']:>14.2f} ± "
          f"{iwae['log_likelihood_standard_error']:.2f} {mean_and_error(versus_gaussian):>15} "
          f"{mean_and_error(gain):>14} {row['seconds']:>7.0f}")
for name, (bound_1, bound_k) in per_image.items():  # the IWAE bound is the tighter one
    gain = bound_k - bound_1
    assert gain.mean() > 3 * gain.std(ddof=1) / np.sqrt(N_IWAE), name

# %% [markdown]
# The standard errors of the bounds themselves (about 1.5 nats) are mostly the spread between images;
# the `minus Gaussian` column compares each model with the Gaussian one image by image, on the same
# images, and its errors are about three times smaller. What it shows:
#
# * All three **learnable priors** beat $\mathcal N(0, I)$ on the test bound; the **VampPrior** by the most,
#   about 4 nats, the flow prior by about 2 and the mixture by about 1.4. The test ELBO ranks them the same
#   way, as did the validation ELBO.
# * The **IAF posterior** gains less than a nat, about one standard error: no gain we can tell from
#   noise. A better posterior mainly tightens the ELBO of the model it has (its `L_K - L_1` gap is the
#   smallest), and in a 2-D latent space a Gaussian posterior is not far off.
# * The **IWAE-trained** model has the worst ELBO, by about 3.6 nats, and one of the two best bounds
#   $\mathcal L_{1000}$, level with the VampPrior. It trained its decoder for the bound it is measured by;
#   its encoder's single samples are worse, as its `L_K - L_1` gap of about 10 nats (three times the
#   others') shows. Judged by the ELBO it would look like the worst model.
#
# The `L_K - L_1` column is how much importance sampling gains over the one-sample ELBO: the looseness
# of each model's ELBO.
#
# **$\mathcal L_1$ is the ELBO.** With one importance sample the IWAE bound is $\log w_1 = \log p(x\mid z_1)
# + \log p(z_1) - \log q(z_1\mid x)$: exactly the one-sample ELBO with the `mc` KL. `negative_iwae_bound`
# and `negative_elbo` draw their samples from the same seed the same way, so for every model and every
# image the two agree, up to float32 round-off at most:

# %%
x = tf.constant(x_test[:200])
for name, model in models.items():
    posterior = model.encode(x)
    iwae_1 = tfp_vae.negative_iwae_bound(x, posterior, model.decoder, model.prior,
                                         num_samples=1, seed=5).negative_iwae_bound
    elbo_1 = tfp_vae.negative_elbo(x, posterior, model.decoder, model.prior, "mc",
                                   num_samples=1, seed=5).negative_elbo
    difference = float(tf.reduce_max(tf.abs(iwae_1 - elbo_1)))
    print(f"{name:<14} max |-L_1 - (-ELBO)| over 200 images: {difference:.2g} nats")
    np.testing.assert_allclose(iwae_1, elbo_1, rtol=1e-5)

# %% [markdown]
# ## Codes and priors
#
# Each panel shows the prior's log-density $\log p(z)$ (shaded) and the codes of 2,000 test images coloured by digit
# (the posterior mean $\mathbb E[z\mid x]$, estimated from 32 posterior samples because an IAF posterior has
# no closed-form mean). A good prior puts its mass where the codes are, and nowhere else.

# %%
N_SCATTER = min(2_000, len(x_test))
codes = {name: model.encode(x_test[:N_SCATTER]).sample(32, seed=(1, 2)).numpy().mean(axis=0)
         for name, model in models.items()}
palette = plt.get_cmap("tab10")


def square_grid(limit, points=161):
    """The axis and the `[points², 2]` points of a square grid over [-limit, limit]²."""
    axis = np.linspace(-limit, limit, points, dtype=np.float32)
    return axis, np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2)


fig, axes = plt.subplots(2, 3, figsize=(15, 10))
for ax, (name, model) in zip(axes.flat, models.items(), strict=True):
    limit = 1.15 * float(np.percentile(np.abs(codes[name]), 99.5))
    axis, grid = square_grid(limit)
    log_density = model.prior.log_prob(grid).numpy().reshape(len(axis), len(axis))
    top = log_density.max()
    ax.contourf(axis, axis, log_density, levels=np.linspace(top - 8, top, 9), cmap="Greys",
                alpha=0.8)
    for digit in range(10):
        chosen = y_test[:N_SCATTER] == digit
        ax.scatter(codes[name][chosen, 0], codes[name][chosen, 1], s=2, alpha=0.6,
                   color=palette(digit), label=str(digit))
    ll = table[name]["iwae"]["log_likelihood"]
    ax.set_title(f"{name}: test log p(x) >= {ll:.1f}")
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
mixture = models["mixture"].prior  # the mixture's component means, sized by weight
means = mixture.components_distribution.mean().numpy()
weights = mixture.mixture_distribution.probs_parameter().numpy()
axes.flat[1].scatter(means[:, 0], means[:, 1], s=20 + 500 * weights, marker="x", color="k",
                     linewidths=2)
axes.flat[2].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), markerscale=6, title="digit")
fig.suptitle("codes of test images on the prior's log-density (grey: its top 8 nats, one level "
             "per nat); each panel its own axis range")
plt.tight_layout()
plt.show()

# %% [markdown]
# Note the axes: each panel has its own range. With the Gaussian prior (top left, and the IAF and IWAE
# models at the bottom) the codes fill the prior's disc of radius about 3, the classes packed against
# each other; the prior's circles take no notice of where the classes are. The learnable priors let
# the codes spread out, the mixture's to about ±7 and the flow prior's and the VampPrior's over tens of
# units, with the classes further apart, and the prior takes their shape: the mixture's components
# (crosses, sized by weight) sit in the crowded centre and on the 0s and the 1s; the flow prior's
# density grows arms along the arms of 1s, 7s and 0s. The VampPrior's density peaks on the crowded
# centre, and its far-off arm of 1s lies in the prior's outskirts.
#
# ## Samples from each prior
#
# Generating is drawing $z \sim p(z)$ and decoding it (`vae.sample`, the pixel means of $p(x\mid z)$). The
# same seed for every model; the prior differs, so the codes differ too.

# %%
fig, axes = plt.subplots(len(models), 1, figsize=(11, 2.0 * len(models)))
for ax, (name, model) in zip(axes, models.items(), strict=True):
    images = model.sample(32, seed=7).numpy()[..., 0]
    rows = [np.concatenate(list(images[i:i + 16]), axis=1) for i in (0, 16)]
    ax.imshow(np.concatenate(rows, axis=0), cmap="Greys_r", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=11)
fig.suptitle("decoded samples z ~ p(z) of each model's prior (seed 7)")
plt.tight_layout()
plt.show()

# %% [markdown]
# **What the VampPrior's pseudo-inputs became.** They started as near-uniform grey images; training
# moved each towards an image whose posterior is a useful mixture component. They need not look like
# digits: only their codes $q(z\mid u_k)$ matter, not their pixels.

# %%
pseudo = models["VampPrior"].prior_layer.pseudo_inputs.numpy()[:20, ..., 0]
initial_pseudo = 1 / (1 + np.exp(-initial_prior["VampPrior"][0][:20, ..., 0]))
fig, axes = plt.subplots(2, 1, figsize=(11, 2.0))
for ax, images, label in [(axes[0], initial_pseudo, "initial"), (axes[1], pseudo, "trained")]:
    ax.imshow(np.concatenate(list(images), axis=1), cmap="Greys_r", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_ylabel(label, rotation=0, ha="right", va="center")
fig.suptitle("20 of the VampPrior's 50 pseudo-inputs u_k (pixel values in [0, 1])")
plt.tight_layout()
plt.show()
print(f"pseudo-input pixels: initial range [{initial_pseudo.min():.3f}, "
      f"{initial_pseudo.max():.3f}], trained range [{pseudo.min():.3f}, {pseudo.max():.3f}]")

# %% [markdown]
# The VampPrior trains here from the first epoch at full KL weight. With a network that is slow to start
# (Burda et al.'s tanh 200-200 MLP) it can instead collapse: the codes of all images and pseudo-inputs start
# nearly equal, the KL is near 0 and its gradient widens the posterior scale that the prior shares until
# the decoder ignores $z$. The `VampPrior` docstring gives the measurements and the remedy (a KL warm-up
# that starts near 0.01, as in the paper).
#
# ## Saving and loading
#
# The priors' variables are the model's own weights, so `save_model` / `load_model` round-trip them with
# the rest. For each learnable prior and the flow posterior: the loaded model's prior density on a grid
# over $[-6, 6]^2$ and its IWAE bound (same seed) must be *identical* to the saved model's.

# %%
save_root = Path(tempfile.mkdtemp(prefix="priors_"))
_, grid = square_grid(6.0)
for name in ["mixture", "VampPrior", "flow prior", "IAF posterior"]:
    model = models[name]
    save_model(model, save_root / name.replace(" ", "_"))
    loaded = load_model(save_root / name.replace(" ", "_"))
    log_density = [m.prior.log_prob(grid).numpy() for m in (model, loaded)]
    bounds = [iwae_log_likelihood(m, x_test[:100], num_samples=10, seed=3)["log_likelihood"]
              for m in (model, loaded)]
    print(f"{name:<14} max |log p(z) difference| {np.abs(log_density[0] - log_density[1]).max():.1g}"
          f"   L_10 saved {bounds[0]:.4f}, loaded {bounds[1]:.4f}")
    np.testing.assert_array_equal(log_density[0], log_density[1])
    assert bounds[0] == bounds[1], name

# %% [markdown]
# ## Summary
#
# * A learnable prior is one `ModelConfig` field: `prior="mixture"`, `"vamp"` or `"flow"` (options in
#   `prior_options`), with a Monte Carlo `kl_estimator`. Its variables live in `vae.prior_layer`, are
#   trained with the rest of the model and saved and loaded with it; `vae.prior` is $p(z)$.
# * An IAF posterior is `posterior_flow=n`; the IWAE objective is `objective="iwae", num_samples=k`.
# * Compare models by the test IWAE bound with many samples, on the same images, and choose between them
#   on validation data only.
# * $\mathcal L_1$ is exactly the one-sample ELBO, and $\mathcal L_k$ rises above it as $k$ grows; an
#   IWAE-trained model reports both, and the bound is never the worse.
