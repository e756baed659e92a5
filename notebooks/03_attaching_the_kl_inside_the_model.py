# %% [markdown]
# # 3 · Attaching the KL inside the model
#
# In tutorial 2 the training loop computed the KL term itself. TFP's Keras layers offer another way:
# attach the KL to the encoder, so the model adds it to its own losses and a plain
# `model.compile(loss=reconstruction)` / `model.fit` trains a VAE. There are two attachments,
#
# * `KLDivergenceAddLoss(prior)`: a pass-through layer after the posterior layer, and
# * `KLDivergenceRegularizer(prior)`: an activity regularizer on the posterior layer,
#
# and both exist upstream in `tfp.layers` and, as drop-in replacements, in `tfp_vae`. This notebook
#
# 1. measures, on one batch, what each attachment adds and what its options `weight`, `use_exact_kl`,
#    `test_points_fn` and `test_points_reduce_axis` change — next to upstream's numbers, which are
#    off by a factor of 2 or of the batch size;
# 2. trains a VAE with a full-covariance `MultivariateNormalTriL` posterior and an `IndependentNormal`
#    decoder on Fashion-MNIST with `compile`/`fit`, once with each attachment.
#
# `TFP_VAE_QUICK=1` trains on 512 images for one epoch; unset, on all 60,000 images.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import tfp_vae
from tfp_vae import keras

tfd, tfpl = tfp.distributions, tfp.layers  # upstream, for the comparison only
QUICK = os.environ.get("TFP_VAE_QUICK") == "1"
N_TRAIN = 512 if QUICK else None  # None: all 60,000 training images
N_TEST = 256 if QUICK else 10_000
EPOCHS = 1 if QUICK else 10
BATCH_SIZE = 128
CALLS = 10 if QUICK else 50  # repeated Monte Carlo evaluations
tf.keras.utils.set_random_seed(0)

# %% [markdown]
# ## One batch, in numbers
#
# A batch of 8 "encoder outputs": 9 numbers each, the `params_size` of a 3-D `MultivariateNormalTriL`
# (3 means, 6 scale entries through `FillScaleTriL`, tutorial 1). Every attachment below sees the same
# posteriors, so its loss can be compared with one reference: the exact KL of each example to the
# prior $\mathcal N(0, I)$, **averaged over the batch** — the scale of Keras's reconstruction loss, which
# is also a batch mean.

# %%
params = tf.random.stateless_normal([8, 9], seed=[1, 2])
prior = tfp_vae.isotropic_gaussian_prior(3)
posterior = tfp_vae.MultivariateNormalTriL(3)(params)
exact = tfd.kl_divergence(posterior, prior).numpy()
print("exact KL per example:", np.round(exact, 3))
print(f"batch mean {exact.mean():.4f}, batch sum {exact.sum():.4f}")


# %% [markdown]
# A helper calls layers one after the other on the batch (eagerly, as a `Sequential` model would) and
# returns the losses they added: every term Keras would add to the training loss.

# %%
def added_losses(*layers):
    outputs = params
    for layer in layers:
        outputs = layer(outputs)
    return [round(float(loss), 4) for layer in layers for loss in layer.losses]


print("tfp_vae add-loss layer: ", added_losses(
    tfp_vae.MultivariateNormalTriL(3), tfp_vae.KLDivergenceAddLoss(prior, use_exact_kl=True)))
print("tfp_vae regularizer:    ", added_losses(tfp_vae.MultivariateNormalTriL(
    3, activity_regularizer=tfp_vae.KLDivergenceRegularizer(prior, use_exact_kl=True))))

# %% [markdown]
# Both add exactly one term, equal to the batch-mean exact KL above.
#
# ### `weight`
#
# `weight` multiplies the term (a β-VAE's β). In `tfp_vae` it is a non-trainable `tf.Variable`, so it can
# be changed after the model is built — which is what KL warm-up needs
# (`tfp_vae.KLWeightScheduler` does it from a callback). Upstream stores a Python float fixed at build
# time (TFP issue #1657).

# %%
kl_layer = tfp_vae.KLDivergenceAddLoss(prior, use_exact_kl=True, weight=0.5)
print("weight 0.5:               ", added_losses(tfp_vae.MultivariateNormalTriL(3), kl_layer))
kl_layer.weight.assign(0.1)
print("same layer, weight -> 0.1:", added_losses(tfp_vae.MultivariateNormalTriL(3), kl_layer))

# %% [markdown]
# ### `use_exact_kl`
#
# With `use_exact_kl=False` (the default, as upstream) the KL is a Monte Carlo estimate: the log-ratio
# $\log q(z) - \log p(z)$ at the *one* sample $z$ that the posterior layer hands on to the decoder. It is
# unbiased but noisy; repeating the call with new samples shows both.

# %%
head = tfp_vae.MultivariateNormalTriL(3)  # draws a new z on every call
mc_layer = tfp_vae.KLDivergenceAddLoss(prior)  # use_exact_kl=False
mc_values = np.array([added_losses(head, mc_layer)[0] for _ in range(CALLS)])
print(f"exact: {exact.mean():.4f}   Monte Carlo over {CALLS} calls: mean {mc_values.mean():.4f}, "
      f"sd {mc_values.std():.4f}, range [{mc_values.min():.2f}, {mc_values.max():.2f}]")

# %% [markdown]
# ### `test_points_fn`
#
# `test_points_fn` chooses *where* the log-ratio is evaluated: a function of the posterior. The default
# (`tf.convert_to_tensor`) is the layer's own sample; `lambda q: q.sample(64)` evaluates it at 64 fresh
# samples per example, and `tfp_vae` averages them, cutting the noise by $\sqrt{64} = 8$.

# %%
many_layer = tfp_vae.KLDivergenceAddLoss(prior, test_points_fn=lambda q: q.sample(64))
many_values = np.array([added_losses(head, many_layer)[0] for _ in range(CALLS)])
print(f"64 test points: mean {many_values.mean():.4f}, sd {many_values.std():.4f} "
      f"(1 test point: sd {mc_values.std():.4f})")


# %% [markdown]
# ### `test_points_reduce_axis`
#
# Upstream, the log-ratios at the test points (shape `[samples, batch]`) are reduced with
# `reduce_mean(axis=test_points_reduce_axis)` and then *summed*, so this option decides whether the term is
# a mean or a sum over samples and batch — it rescales the KL by the number of samples, the batch
# size, or both. In `tfp_vae` the log-ratio is always averaged over the samples and then over the batch,
# so the option is accepted (for drop-in compatibility) but cannot change the scale. The table shows
# all the options at once, upstream next to `tfp_vae`; every `tfp_vae` entry should be one term close
# to the exact batch mean.

# %%
def compare(name, head, kl_options, attach):
    # attach: "add_loss" (layer after the head) or "regularizer" (activity regularizer).
    result = []
    for layers_module in (tfpl, tfp_vae):
        if attach == "add_loss":
            layers = [getattr(layers_module, head)(3),
                      layers_module.KLDivergenceAddLoss(prior, **kl_options)]
        else:
            layers = [getattr(layers_module, head)(
                3, activity_regularizer=layers_module.KLDivergenceRegularizer(prior, **kl_options))]
        result.append(added_losses(*layers))
    print(f"{name:<46} {str(result[0]):<24} {str(result[1]):<12}")


many = lambda q: q.sample(64)  # noqa: E731
print(f"exact KL: batch mean {exact.mean():.4f}, batch sum {exact.sum():.4f}\n")
print(f"{'attachment and options':<46} {'upstream tfp.layers':<24} {'tfp_vae':<12}")
compare("regularizer, use_exact_kl=True", "MultivariateNormalTriL",
        {"use_exact_kl": True}, "regularizer")
compare("add-loss, use_exact_kl=True", "MultivariateNormalTriL", {"use_exact_kl": True}, "add_loss")
compare("add-loss, Monte Carlo (1 sample)", "MultivariateNormalTriL", {}, "add_loss")
for axis in [None, (), 0]:
    compare(f"add-loss, 64 samples, reduce_axis={axis}", "MultivariateNormalTriL",
            {"test_points_fn": many, "test_points_reduce_axis": axis}, "add_loss")
for axis in [None, (), 0]:
    compare(f"regularizer, 64 samples, reduce_axis={axis}", "MultivariateNormalTriL",
            {"test_points_fn": many, "test_points_reduce_axis": axis}, "regularizer")

# %% [markdown]
# Reading the upstream column (tfp 0.25):
#
# * **The regularizer adds the KL twice** (two equal terms). Keras applies an activity regularizer to
#   every output of a layer, and a TFP distribution layer outputs both the distribution and its sample
#   tensor (TFP issue #1215). `tfp_vae.MultivariateNormalTriL` hands the regularizer only the
#   distribution.
# * **`use_exact_kl=True` in the add-loss layer gives the batch *sum*** — 8 times the mean here, 128
#   times with a batch of 128 — while the Monte Carlo default gives the batch *mean*. Flipping one
#   boolean silently changes the KL weight by the batch size.
# * **`test_points_reduce_axis` rescales the term**: `()` sums over 64 samples and the batch (thousands
#   of nats), `0` averages the samples and sums the batch, `None` averages everything — and the
#   regularizer, which Keras divides by the batch size, is then 8 times too small *and* doubled.
#
# `tfp_vae` adds one term, the batch-mean KL, in every row; the Monte Carlo rows differ from the exact
# value only by sampling noise.
#
# ## A VAE trained with `compile`/`fit`
#
# Now the real model, on Fashion-MNIST with its grey-level pixels kept as they are (no binarization):
#
# * **encoder**: `Flatten → Dense(256) → Dense(params_size) → MultivariateNormalTriL(8) → KLDivergenceAddLoss`;
#   a full-covariance posterior over 8 latent dimensions: 8 means + 36 scale entries per image;
# * **decoder**: `Dense(256) → Dense(2·784) → IndependentNormal((28, 28, 1))`: a mean *and* a standard
#   deviation per pixel. `tfp_vae.IndependentNormal` floors the scale at $10^{-3}$; upstream's uses a bare
#   softplus that can collapse to 0 on Fashion-MNIST's constant black borders and turn the loss into NaN.

# %%
fashion = tfp_vae.load_dataset("fashion_mnist")
x_train, x_test = fashion.x_train[:N_TRAIN], fashion.x_test[:N_TEST]
IMAGE_SHAPE, LATENT_DIM = (28, 28, 1), 8
prior = tfp_vae.isotropic_gaussian_prior(LATENT_DIM)


def make_encoder(attachment):
    posterior_kwargs, kl_layers = {}, []
    if attachment == "add_loss":
        kl_layers = [tfp_vae.KLDivergenceAddLoss(prior, use_exact_kl=True, name="kl")]
    else:
        posterior_kwargs["activity_regularizer"] = tfp_vae.KLDivergenceRegularizer(
            prior, use_exact_kl=True)
    return keras.Sequential([
        keras.layers.InputLayer(input_shape=IMAGE_SHAPE),
        keras.layers.Flatten(),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(tfp_vae.MultivariateNormalTriL.params_size(LATENT_DIM),
                           name="posterior_params"),
        tfp_vae.MultivariateNormalTriL(LATENT_DIM, name="posterior", **posterior_kwargs),
        *kl_layers,
    ], name=f"encoder_{attachment}")


def make_decoder():
    return keras.Sequential([
        keras.layers.InputLayer(input_shape=(LATENT_DIM,)),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(tfp_vae.IndependentNormal.params_size(IMAGE_SHAPE),
                           name="likelihood_params"),
        tfp_vae.IndependentNormal(IMAGE_SHAPE, name="likelihood"),
    ], name="decoder")


encoder, decoder = make_encoder("add_loss"), make_decoder()
encoder.summary()


# %% [markdown]
# The full model chains them: the posterior layer converts to a tensor by *sampling* $z$ (the
# reparameterised draw), and the decoder returns a distribution over images. The KL is already inside
# the encoder, so the only loss we give `compile` is the reconstruction term,
# $-\log p(x\mid z)$ — Keras averages it over the batch and adds the encoder's batch-mean KL.

# %%
def make_vae(encoder, decoder):
    vae = keras.Model(encoder.inputs, decoder(encoder.outputs[0]))
    vae.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=lambda x, likelihood: -likelihood.log_prob(x))
    return vae


vae = make_vae(encoder, decoder)
history_add_loss = vae.fit(x_train, x_train, epochs=EPOCHS, batch_size=BATCH_SIZE,
                           validation_data=(x_test, x_test), verbose=2)


# %% [markdown]
# **Is the loss `fit` reports really reconstruction + KL?** We recompute both terms on a test batch by
# hand: the encoder's `losses` after a call hold the batch-mean KL it added.

# %%
def elbo_terms(encoder, decoder, x):
    q = encoder(x)
    kl = float(tf.add_n(encoder.losses))
    reconstruction = float(tf.reduce_mean(-decoder(tf.convert_to_tensor(q)).log_prob(x)))
    return q, reconstruction, kl


x_batch = x_test[:BATCH_SIZE]
q, reconstruction, kl = elbo_terms(encoder, decoder, x_batch)
exact_mean = float(tf.reduce_mean(tfd.kl_divergence(q, prior)))
print(f"reconstruction {reconstruction:.1f} + KL {kl:.2f} = {reconstruction + kl:.1f} nats/image")
print(f"KL added by the encoder {kl:.3f}; exact batch-mean KL {exact_mean:.3f}")
print(f"vae.evaluate on the same batch: {vae.evaluate(x_batch, x_batch, verbose=0):.1f}")

# %% [markdown]
# The evaluation differs from the hand computation only by the noise of the sampled $z$. The
# reconstruction term is *negative*: a Normal likelihood is a density, and a pixel predicted with a
# small standard deviation (the black background) contributes a log-density far above 0. Losses of
# Normal and Bernoulli decoders are therefore not comparable.
#
# **What would upstream have added here?** The same trained posterior through
# `tfp.layers.KLDivergenceAddLoss(use_exact_kl=True)`:

# %%
upstream = tfpl.KLDivergenceAddLoss(prior, use_exact_kl=True)
upstream(q)
upstream_kl = float(upstream.losses[0])
print(f"upstream KL term {upstream_kl:.1f} = {upstream_kl / kl:.0f} x tfp_vae's {kl:.2f}, "
      f"against a reconstruction term of {reconstruction:.1f}")

# %% [markdown]
# With upstream's add-loss layer the optimiser would see a KL weighted by the batch size (β = 128 here)
# and squeeze the posterior towards the prior; with its regularizer, a KL weighted by 2. Nothing warns
# about either.
#
# ## The same VAE with the activity regularizer
#
# The regularizer attaches the same term from inside the posterior layer. Retraining with it from the
# same seed should give the same learning curves up to noise: **do the two attachments train the same
# model?**

# %%
tf.keras.utils.set_random_seed(0)
encoder_reg, decoder_reg = make_encoder("regularizer"), make_decoder()
vae_reg = make_vae(encoder_reg, decoder_reg)
history_regularizer = vae_reg.fit(x_train, x_train, epochs=EPOCHS, batch_size=BATCH_SIZE,
                                  validation_data=(x_test, x_test), verbose=2)
_, reconstruction_reg, kl_reg = elbo_terms(encoder_reg, decoder_reg, x_batch)
print(f"regularizer model, test batch: reconstruction {reconstruction_reg:.1f} + KL {kl_reg:.2f}")

# %%
epochs = np.arange(1, EPOCHS + 1)
fig, ax = plt.subplots(figsize=(7.5, 4))
for key, color, split in [("loss", "C0", "train"), ("val_loss", "C1", "test")]:
    ax.plot(epochs, history_add_loss.history[key], color=color, lw=5, alpha=0.35,
            label=f"KLDivergenceAddLoss, {split}")
    ax.plot(epochs, history_regularizer.history[key], color=color, lw=1.5, ls="--", marker="o",
            markersize=4, label=f"KLDivergenceRegularizer, {split}")
gap = max(np.max(np.abs(np.subtract(history_add_loss.history[key],
                                    history_regularizer.history[key])))
          for key in ["loss", "val_loss"])
ax.set_xticks(epochs)
ax.set_xlabel("epoch")
ax.set_ylabel("negative ELBO (nats/image)")
ax.set_title(f"the two attachments: largest difference {gap:.3g} nats/image")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# The curves lie on top of each other (the title gives the largest gap): the two attachments add the
# same term, so they train the same objective. An upstream regularizer would have trained against
# twice the KL.

# %% [markdown]
# ## What did the model learn?
#
# **Does the full-covariance posterior use its correlations?** Tutorial 1 showed a diagonal
# posterior underestimates the variance of a correlated target. Here are the posterior correlations
# $\Sigma_{ij}/\sqrt{\Sigma_{ii}\Sigma_{jj}}$ of the test images: a diagonal posterior would put them all
# at 0.

# %%
q_test = encoder(x_test[:1000])
covariance = q_test.covariance().numpy()
stddev = np.sqrt(np.diagonal(covariance, axis1=1, axis2=2))
correlation = covariance / (stddev[:, :, None] * stddev[:, None, :])
off_diagonal = correlation[:, ~np.eye(LATENT_DIM, dtype=bool)].ravel()
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.hist(off_diagonal, bins=60, range=(-1, 1))
ax.set_xlabel("posterior correlation between two latent dimensions")
ax.set_ylabel("count (pairs x images)")
ax.set_title(f"mean |correlation| = {np.abs(off_diagonal).mean():.2f}")
plt.tight_layout()
plt.show()

# %% [markdown]
# **What does a Normal decoder say about each pixel?** For test images: the decoder's mean (the
# reconstruction), its standard deviation (where the model is unsure — edges and textures, not the
# background), and one *sample* from $p(x\mid z)$, which adds independent per-pixel noise and shows why
# one plots the mean.

# %%
likelihood = decoder(q_test.mean()[:8])
rows = [("test image", x_test[:8]), ("decoder mean", likelihood.mean().numpy()),
        ("decoder stddev", likelihood.stddev().numpy()),
        ("sample of p(x|z)", likelihood.sample(seed=(0, 0)).numpy())]
fig, axes = plt.subplots(len(rows), 8, figsize=(10, 5.4))
for row, (name, images) in enumerate(rows):
    for col in range(8):
        ax = axes[row, col]
        vmax = max(images.max(), 1e-3) if name == "decoder stddev" else 1
        ax.imshow(images[col, :, :, 0], cmap="gray_r" if row != 2 else "magma", vmin=0,
                  vmax=vmax)
        ax.set_xticks([])
        ax.set_yticks([])
    label = f"{name}\n(brightest = {images.max():.2f})" if name == "decoder stddev" else name
    axes[row, 0].set_ylabel(label, rotation=0, ha="right", va="center")
plt.tight_layout()
plt.show()

# %% [markdown]
# **How good are samples from the prior?** $z \sim \mathcal N(0, I)$ decoded to the mean image. They are
# visibly worse than the reconstructions above: the prior puts mass in regions of latent space that no
# training image's posterior covers, and the decoder has never learned what to draw there. A Normal
# likelihood makes this worse, because most of its loss is won on near-constant background pixels
# (large negative reconstruction values), not on the garment's shape. Better samples need a larger
# KL weight (tutorial 4 varies it), a Bernoulli or discretised likelihood, or a richer prior.

# %%
z = prior.sample(24, seed=(0, 3))
images = decoder(z).mean().numpy()
fig, axes = plt.subplots(3, 8, figsize=(10, 4))
for ax, image in zip(axes.ravel(), images):
    ax.imshow(np.clip(image[:, :, 0], 0, 1), cmap="gray_r", vmin=0, vmax=1)
    ax.axis("off")
fig.suptitle("decoder means for z drawn from the prior")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Summary
#
# * Attach the KL inside the model with `tfp_vae.KLDivergenceAddLoss` (a layer after the posterior) or
#   `tfp_vae.KLDivergenceRegularizer` (the posterior layer's `activity_regularizer`); compile with only
#   the reconstruction loss `lambda x, rv: -rv.log_prob(x)`.
# * Either way, `tfp_vae` adds one term, `weight · mean over the batch of KL(q(z|x) ‖ p(z))`, whatever
#   `use_exact_kl`, `test_points_fn` and `test_points_reduce_axis` are; `weight` is a variable you can
#   anneal.
# * Upstream `tfp.layers` (0.25) doubles the regularizer's KL and sums the exact add-loss KL over the
#   batch; the same options give numbers that differ by factors of 2, 8, 64 or 128.
