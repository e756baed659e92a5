# %% [markdown]
# # 4 · β and the latent space
#
# A VAE minimises the negative ELBO, a reconstruction term plus a KL term. A **β-VAE** weights the second:
#
# $$\mathcal L_\beta(x) = \underbrace{-\mathbb E_{q(z\mid x)}[\log p(x\mid z)]}_{\text{reconstruction}}
# \; + \; \beta \, \underbrace{\mathrm{KL}\big(q(z\mid x)\,\|\,p(z)\big)}_{\text{KL}}.$$
#
# β is the exchange rate between the two: how many nats of reconstruction the model will give up to
# make its posteriors one nat closer to the prior $p(z) = \mathcal N(0, I)$. This notebook trains the same
# convolutional VAE with a **2-D latent space** on Fashion-MNIST three times,
#
# * **β = 0**: no KL at all — an autoencoder whose codes happen to be noisy;
# * **β = 1**: the ordinary VAE, whose loss is exactly the negative ELBO;
# * **β = 10**: a KL ten times as expensive as in the ELBO,
#
# and asks, with numbers and pictures, what β changes: how well each reconstructs, how much information
# its codes carry, where the codes of the ten classes lie, and what the decoder draws at points of the prior.
# Two latent dimensions are too few for a good model of Fashion-MNIST, but every code can be plotted.
#
# Each model trains for 5 epochs on 12,000 images (about a minute each on 2 CPU cores);
# `TFP_VAE_QUICK=1` uses 2,048 images and 2 epochs, and is what the test suite runs. The `assert` lines
# state what the comparison should show.

# %%
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
from IPython.display import Image, display

import tfp_vae
from tfp_vae.config import TrainingConfig
from tfp_vae.data import load_splits
from tfp_vae.evaluation import active_units, evaluate_elbo, posterior_means
from tfp_vae.plots import plot_label_clusters, plot_latent_grid
from tfp_vae.runs import train_run

QUICK = os.environ.get("TFP_VAE_QUICK") == "1"
N_TRAIN = 2048 if QUICK else 12_000
N_TEST = 1000 if QUICK else 10_000
EPOCHS = 2 if QUICK else 5
BETAS = [0.0, 1.0, 10.0]
PLOT_DIR = Path(tempfile.mkdtemp(prefix="beta_plots_"))  # tfp_vae.plots writes PNG files

# %% [markdown]
# ## Data
#
# The models are trained with `tfp_vae.runs.train_run`, the same function behind `tfp-vae train`,
# from a `TrainingConfig`: Fashion-MNIST from `$TFP_VAE_DATA_DIR`, training images binarized afresh
# every epoch, test images binarized once from the run's seed. The decoder ends in an
# `IndependentBernoulli` layer (the default `likelihood="bernoulli"`), which models binary pixels.
# Binarizing loses the fabric's grey texture but keeps each garment's silhouette, which is what a 2-D
# code can hope to capture. `tfp_vae.data.load_splits` with the same settings gives us the very test
# images the runs evaluated on.

# %%
training = TrainingConfig(data="fashion_mnist", binarization="dynamic", train_size=N_TRAIN,
                          test_size=N_TEST, epochs=EPOCHS, batch_size=128, seed=0, plots=False)
splits = load_splits(training.data, train_size=N_TRAIN, test_size=N_TEST,
                     binarization=training.binarization, seed=training.seed)
x_test, y_test, class_names = splits.x_test, splits.y_test, splits.class_names
print(training.to_json(indent=None))
print("train images:", splits.x_train.shape, " test images:", x_test.shape)
print("classes:", ", ".join(class_names))

# %% [markdown]
# ## Three models that differ only in β
#
# `ModelConfig(beta=β)` sets the model's KL weight (`vae.kl_weight`, a variable that a warm-up schedule
# could change; here it stays fixed). Everything else — the `conv` network, the
# `MultivariateNormalDiag` posterior, the analytic KL, the initial weights, the batches — is the same.
# During training Keras reports `loss = reconstruction_loss + kl_loss`, where `kl_loss` is already
# multiplied by β, so the three training losses are *not* comparable with each other: that is what
# the evaluation below is for. (`train_run` resets the weight to 1 after training, so that the model
# reports its true negative ELBO.) `run_dir=None` keeps the runs in memory.

# %%
tfp_vae.keras.utils.set_random_seed(0)  # the shared initial weights, reproducibly
start = tfp_vae.build_model(tfp_vae.ModelConfig(latent_dim=2, network="conv")).get_weights()
models = {}
for beta in BETAS:
    config = tfp_vae.ModelConfig(latent_dim=2, network="conv", beta=beta)
    result = train_run(None, config, training, initial_weights=start)
    models[beta] = result.model
    print(f"beta = {beta:g}: training loss per epoch "
          f"{[round(row['loss'], 1) for row in result.history]}, "
          f"{sum(row['seconds'] for row in result.history):.0f} s")

# %% [markdown]
# ## What β changes, in numbers
#
# For each model, on the test images:
#
# * `evaluate_elbo` splits the **true** negative ELBO (KL weight 1, whatever β the model was trained
#   with) into reconstruction and KL, in nats per image. The KL is the number of nats the codes carry
#   about the image: an upper bound on the information that gets through the encoder.
# * `active_units` counts latent dimensions whose posterior mean $\mathbb E[z_u\mid x]$ varies across images
#   (variance above 0.01); a dimension whose mean ignores the image is *collapsed*.
# * From the posteriors themselves: how wide a typical $q(z\mid x)$ is (its mean standard deviation), and
#   where the codes of all images lie together — the centre and spread of the posterior means. A model
#   that samples well needs these codes to cover the prior, which has centre 0 and spread 1.

# %%
results = {}
for beta, model in models.items():
    elbo = evaluate_elbo(model, x_test)
    units = active_units(model, x_test)
    means = posterior_means(model, x_test)
    posterior_sd = np.concatenate([model.encode(tf.constant(x_test[i:i + 1000])).stddev().numpy()
                                   for i in range(0, len(x_test), 1000)])
    results[beta] = {**elbo, "active_units": units["active_units"],
                     "posterior_sd": float(posterior_sd.mean()), "means_sd": means.std(axis=0),
                     "means": means}

print(f"{'beta':>5} {'reconstruction':>15} {'KL':>7} {'-ELBO':>8} {'± s.e.':>7} "
      f"{'active':>7} {'mean sd of q':>13} {'centre of E[z|x]':>17} {'spread of E[z|x]':>17}")
for beta, r in results.items():
    centre = np.array2string(r["means"].mean(axis=0), precision=2, floatmode="fixed")
    spread = np.array2string(r["means_sd"], precision=2, floatmode="fixed")
    print(f"{beta:>5g} {r['reconstruction']:>15.1f} {r['kl']:>7.2f} {r['negative_elbo']:>8.1f} "
          f"{r['negative_elbo_standard_error']:>7.1f} {r['active_units']:>5d}/2 "
          f"{r['posterior_sd']:>13.3f} {centre:>17} {spread:>17}")
kl, reconstruction = ([results[b][key] for b in BETAS] for key in ["kl", "reconstruction"])
assert kl[0] > kl[1] > kl[2] and reconstruction[1] < reconstruction[2]
assert min(BETAS, key=lambda b: results[b]["negative_elbo"]) == 1.0

# %% [markdown]
# Reading the table from top to bottom, β buys KL with reconstruction:
#
# * **β = 0** reconstructs best and pays by far the largest KL. Nothing pulls the posteriors towards the
#   prior, so the encoder makes them *narrow* (the noise barely moves the code) and spreads the codes
#   over a range many times the prior's, far from the origin. Measured as an ELBO it is the worst of
#   the three: its small reconstruction gain is dwarfed by the KL it never paid for in training.
# * **β = 1** has the best (lowest) negative ELBO, as it should — it is the only one of the three
#   trained on that objective. Its posteriors are still narrow, and its codes, now at the prior's
#   scale, are *off-centre*: the centre column shows them shifted by more than one prior standard
#   deviation along one axis.
# * **β = 10** keeps the KL small — well under half of β = 1's — at the price of almost 30 nats of
#   reconstruction. Its posteriors are much wider, and its codes are centred near 0, but their spread
#   is very unequal: broad along one axis, narrow along the other. At ten times the price per nat,
#   the model spends little information on one of its two dimensions.
# * All three count both latent dimensions as active (`active_units` is 2 everywhere: the variance of
#   each dimension's posterior mean is above 0.01, even β = 10's narrow one). Tutorial 6 shows truly
#   collapsed dimensions in a larger latent space.
#
# ## Where do the codes go?
#
# The next three cells show, for each β, two `tfp_vae.plots` figures (PNG files, displayed here):
#
# * `plot_label_clusters`: the posterior mean $\mathbb E[z\mid x]$ of test images, coloured by class: which
#   garments the 2-D code tells apart;
# * `plot_latent_grid`: the decoder's pixel means at a 15 × 15 grid of points $z \in [-2, 2]^2$, the
#   region holding about 91% of the prior's mass — the images a sampler would mostly draw.
#
# Both are drawn in z units, so a region of the scatter can be read off on the grid.

# %%
N_SCATTER = min(len(x_test), 5000)  # enough points to see every cluster, few enough to see through


def show_beta(beta):
    model = models[beta]
    clusters = plot_label_clusters(model, x_test[:N_SCATTER], y_test[:N_SCATTER],
                                   PLOT_DIR / f"clusters_beta{beta:g}.png", class_names)
    grid = plot_latent_grid(model, PLOT_DIR / f"grid_beta{beta:g}.png", grid_size=15, extent=2.0)
    print(f"beta = {beta:g}: posterior means by class, then the decoded grid over [-2, 2]^2")
    display(Image(filename=str(clusters), width=620))
    display(Image(filename=str(grid), width=520))


show_beta(0.0)

# %% [markdown]
# **β = 0.** The codes spread over tens of units (look at the scatter's axis range), in arms by class:
# without a KL term the scale of the latent space is arbitrary, and the encoder stretches it to keep
# images apart. The region the prior covers, $[-2, 2]^2$, is a small corner at the edge of that map,
# so the whole grid decodes to nearly the same blurry garment. A sampler drawing $z$ from the prior
# would see nothing else.

# %%
show_beta(1.0)

# %% [markdown]
# **β = 1.** The KL term has pulled the codes to the prior's scale: they now lie within a few units of
# the origin, and similar garments are neighbours (the footwear classes together, trousers next to
# dresses, the tops in between). Where the scatter has codes, the grid decodes smoothly changing
# garments. But the codes occupy only part of the prior's square — almost none lie in its right
# half, `z[0] > 0` — and the grid's columns there, where no image's code lies, decode to the same few
# bright, generic shapes: **holes**, regions the prior samples from but no image maps to. The ELBO does not penalise them
# directly — it only asks each $q(z\mid x)$ to be close to the prior, not that the codes together
# cover it.

# %%
show_beta(10.0)

# %% [markdown]
# **β = 10.** The codes are centred near 0 and spread along `z[1]` over the prior's range, but
# squeezed into a narrow band along `z[0]`; the grid changes with `z[1]` (from footwear at the bottom,
# through tops, to dresses and trousers at the top) and hardly with `z[0]`.
# Classes overlap much more than at β = 1: the encoder keeps the coarse distinction (what kind of
# silhouette) and drops the finer ones. In return every point of the grid decodes to a garment-like
# image: no holes, but blurrier, more generic images — the decoder cannot draw more detail than the
# codes carry.
#
# ## The three side by side
#
# The same posterior means with the prior's 1σ and 2σ circles (each panel with its own axis range: β = 0's
# codes would squeeze the others into a dot). A VAE can sample well only if its codes — the *aggregate
# posterior* — cover the same region as the prior it samples from.

# %%
palette = plt.get_cmap("tab10")
fig, axes = plt.subplots(1, 3, figsize=(15, 5.3))
for ax, beta in zip(axes, BETAS):
    means = results[beta]["means"][:N_SCATTER]
    limit = max(3.0, 1.05 * float(np.abs(means).max()))
    for label in range(10):
        chosen = y_test[:N_SCATTER] == label
        ax.scatter(means[chosen, 0], means[chosen, 1], s=3, alpha=0.5, color=palette(label),
                   label=class_names[label])
    for radius in (1, 2):
        ax.add_patch(plt.Circle((0, 0), radius, fill=False, ls="--", lw=1.2, color="k"))
    r = results[beta]
    ax.set_title(f"β = {beta:g}: KL {r['kl']:.1f} nats, reconstruction {r['reconstruction']:.0f}")
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    ax.set_xlabel("E[z[0] | x]")
    ax.set_ylabel("E[z[1] | x]")
axes[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), markerscale=4, fontsize=9)
fig.suptitle("posterior means of test images; dashed: 1σ and 2σ circles of the prior N(0, I)")
plt.tight_layout()
plt.show()

# %% [markdown]
# **Can each model generate?** Drawing $z \sim \mathcal N(0, I)$ and decoding it (`vae.sample`, the pixel
# means of $p(x\mid z)$) is how a VAE generates images. The same 24 draws of $z$ (the same seed) for all
# three models:

# %%
fig, axes = plt.subplots(3, 1, figsize=(11, 7.8))
for ax, beta in zip(axes, BETAS):
    images = models[beta].sample(24, seed=7).numpy()[..., 0]
    rows = [np.concatenate(list(images[i:i + 12]), axis=1) for i in (0, 12)]
    ax.imshow(np.concatenate(rows, axis=0), cmap="Greys_r", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_ylabel(f"β = {beta:g}", rotation=0, ha="right", va="center", fontsize=12)
fig.suptitle("decoded prior samples z ~ N(0, I), same z for every model")
plt.tight_layout()
plt.show()

# %% [markdown]
# At β = 0 every draw lands in the same corner of the code map and decodes to the same blurry shape.
# At β = 1 the draws that land among the codes give garments, and those that land in the empty half
# give the same bright blob again and again, some with a dark notch that no garment has. At β = 10
# the draws give a varied set — tops, trousers, boots, sneakers — smooth and generic, but garments:
# here the model with the worse ELBO is the better sampler.
#
# ## Summary
#
# * β trades reconstruction for KL: a larger β gives wider posteriors, fewer nats of information per
#   code, more overlap between classes, and codes closer to the prior's centre and scale.
# * β = 0 is an autoencoder in disguise: a code map with an arbitrary scale that the prior does not match,
#   so samples from the prior are useless.
# * β = 1 is the only setting whose training loss *is* the negative ELBO, and it has the best test ELBO;
#   but a good ELBO does not guarantee that the codes cover the prior — this 2-D model has holes, and
#   many of its samples are the same blob.
# * β = 10 gives up reconstruction, and most of one latent dimension, for a decoder that draws a
#   plausible, if blurry, garment wherever the prior samples. Which β is "best" depends on what the
#   model is for.
# * Compare models trained with different β on the same yardstick (`tfp_vae.evaluation.evaluate_elbo`,
#   which always uses weight 1), never on their training losses.
# * Tutorial 6 looks at that yardstick more closely: how tight the ELBO is, and what "active units" count.
