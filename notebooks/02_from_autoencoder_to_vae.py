# %% [markdown]
# # 2 · From autoencoder to VAE
#
# An autoencoder compresses an image to a code and decodes it back. It reconstructs well, but it
# cannot *generate*: nothing says which codes are meaningful. A variational autoencoder fixes that with
# two changes, and this notebook makes them one at a time on binarized MNIST:
#
# 1. the encoder outputs a **distribution** $q(z\mid x)$ (a `MultivariateNormalDiag` layer) instead of a
#    point, and the decoder outputs a distribution over pixels $p(x\mid z)$ (an `IndependentBernoulli`
#    layer);
# 2. a **prior** $p(z) = \mathcal N(0, I)$ and the KL term of tutorial 1 pull every $q(z\mid x)$ towards it,
#    so that codes drawn from the prior decode to digits.
#
# The loss is the negative ELBO, which we compute with an analytic and with a Monte Carlo KL, and train
# with a hand-written `GradientTape` loop. A 2-D latent space keeps every code plottable.
#
# Conventions in all the tutorials: losses are **negative** ELBOs in nats per image (lower is better);
# bounds on $\log p(x)$ (the ELBO, the IWAE bound of tutorial 6) are log-likelihoods (higher is
# better); latent dimensions are numbered from 0, `z[0]`, `z[1]`, as in `tfp_vae.plots`.
#
# The notebook trains on 15,000 MNIST images for a few epochs (a few minutes on 2 CPU cores);
# `TFP_VAE_QUICK=1` uses 1,024 images and is what the test suite runs. The `assert` lines state
# what each step should show.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

import tfp_vae
from tfp_vae import keras

from tfp_vae import tfd
from tfp_vae.data import binarize

QUICK = os.environ.get("TFP_VAE_QUICK") == "1"
N_TRAIN = 1024 if QUICK else 15_000
N_TEST = 500 if QUICK else 10_000
AE_EPOCHS = 2 if QUICK else 3
VAE_EPOCHS = 2 if QUICK else 6
BATCH_SIZE = 128
LATENT_DIM = 2
tf.keras.utils.set_random_seed(0)

# %% [markdown]
# ## Data
#
# `tfp_vae.load_dataset` reads MNIST from `$TFP_VAE_DATA_DIR` (or downloads it) as float images in
# $[0, 1]$. A Bernoulli likelihood wants binary pixels, so the training pipeline draws each pixel from
# $\mathrm{Bernoulli}(\text{intensity})$ afresh every epoch (*dynamic binarization*, a mild regulariser);
# the test images are binarized once with `tfp_vae.data.binarize` (same seed, same binary images),
# so every evaluation below sees the same data.

# %%
mnist = tfp_vae.load_dataset("mnist")
x_train = mnist.x_train[:N_TRAIN]
x_test = binarize(mnist.x_test[:N_TEST], seed=0)
y_test = mnist.y_test[:N_TEST]
train = tfp_vae.make_dataset(x_train, batch_size=BATCH_SIZE, binarization="dynamic")
print("train images:", x_train.shape, " test images:", x_test.shape)

# %% [markdown]
# ## Step 0: a deterministic autoencoder
#
# `tfp_vae.Autoencoder` has the same convolutional encoder and decoder bodies as the VAE, but its
# encoder ends in a plain `Dense(2)`: one point $z$ per image. Its decoder already ends in a
# Bernoulli distribution, so its loss is the reconstruction negative log-likelihood
# $-\log p(x\mid z)$ in nats per image (the binary cross-entropy summed over the 784 pixels).

# %%
ae = tfp_vae.build_model(tfp_vae.ModelConfig(kind="autoencoder", latent_dim=LATENT_DIM))
ae.compile(optimizer=keras.optimizers.Adam(1e-3))
ae_history = ae.fit(train, epochs=AE_EPOCHS, verbose=2)
ae_test = ae.evaluate(x_test, batch_size=500, verbose=0, return_dict=True)
print(f"autoencoder test reconstruction loss: {ae_test['loss']:.1f} nats/image")


# %% [markdown]
# **Where do the autoencoder's codes live?** Nothing constrains them, so their scale and position
# are arbitrary, and they differ from run to run. The dashed circle marks 2 standard deviations of
# $\mathcal N(0, I)$, the obvious distribution to "sample" codes from; the right panel decodes such draws.
# They only visit whichever digits happen to sit near the origin, blurred where the draws fall
# between clusters — and nothing in the model tells us which region to sample instead.

# %%
def show_images(ax, images, rows, title):
    cols = len(images) // rows
    tiles = images[: rows * cols, :, :, 0].reshape(rows, cols, 28, 28)
    ax.imshow(tiles.transpose(0, 2, 1, 3).reshape(rows * 28, cols * 28), cmap="gray_r",
              vmin=0, vmax=1)
    ax.set_title(title)
    ax.axis("off")


def scatter_codes(ax, codes, title):
    points = ax.scatter(codes[:, 0], codes[:, 1], c=y_test, cmap="tab10", s=3, alpha=0.6,
                        vmin=-0.5, vmax=9.5)
    ax.set_title(title)
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    return points


ae_codes = ae.encode(x_test).numpy()
angles = np.linspace(0, 2 * np.pi, 100)
circle = 2 * np.stack([np.cos(angles), np.sin(angles)])  # 2 sd of N(0, I)
fig, (ax_codes, ax_samples) = plt.subplots(1, 2, figsize=(11, 5))
points = scatter_codes(ax_codes, ae_codes, "autoencoder codes of test digits")
ax_codes.plot(*circle, color="black", ls="--", lw=1)
fig.colorbar(points, ax=ax_codes, ticks=range(10), label="digit")
z_prior = np.random.default_rng(1).standard_normal((36, LATENT_DIM)).astype(np.float32)
show_images(ax_samples, ae.decode(z_prior).mean().numpy(), 6,
            "autoencoder decoding z ~ N(0, I)")
plt.tight_layout()
plt.show()
print("code range per dimension:", ae_codes.min(axis=0), ae_codes.max(axis=0))

# %% [markdown]
# ## The whole model
#
# `tfp_vae.build_model` builds the VAE from a `ModelConfig`: the `conv` network (the keras-io VAE's
# convolutional encoder and decoder), a diagonal Gaussian posterior, a Bernoulli likelihood and the
# analytic KL. Here is all of it, layer by layer, with the shapes that flow through (`None` is the
# batch). The encoder's last two layers turn features into a distribution: a `Dense` layer with
# `MultivariateNormalDiag.params_size(2)` = 4 outputs (2 means, 2 raw scales) and the
# distribution layer. The decoder's last two do the same for the 784 pixels: a transposed
# convolution with one logit per pixel, reshaped, and `IndependentBernoulli((28, 28, 1))`.

# %%
config = tfp_vae.ModelConfig(latent_dim=LATENT_DIM, posterior="diag", likelihood="bernoulli",
                             kl_estimator="analytic")
vae = tfp_vae.build_model(config)
print(config.to_json(indent=None))
vae.encoder.summary()
vae.decoder.summary()

# %% [markdown]
# ## Step 1: an encoder that outputs a distribution
#
# Calling the encoder on 5 images returns one 2-D Gaussian per image: batch shape `[5]`, event shape
# `[2]`. The object's class is TFP's `_TensorCoercible`: a wrapper that behaves as the distribution
# it holds (`.tensor_distribution`, here a `tfd.MultivariateNormalDiag`; it has the same `mean()`,
# `stddev()`, `sample()`, `log_prob()`) and can *also* be converted to a tensor, so that a Keras
# layer after it receives numbers. The scales go through `softplus` (plus `1e-5`), the positivity
# trick of tutorial 1.

# %%
posterior = vae.encode(x_test[:5])
print(type(posterior).__name__, "holding a", type(posterior.tensor_distribution).__name__)
print(posterior)
print("means:\n", posterior.mean().numpy(), "\nstddevs:\n", posterior.stddev().numpy())
assert isinstance(posterior.tensor_distribution, tfd.MultivariateNormalDiag)

# %% [markdown]
# ## Step 2: a decoder that outputs a distribution over pixels
#
# The decoder maps a latent $z$ to one logit per pixel and ends in `tfp_vae.IndependentBernoulli((28, 28, 1))`:
# 784 independent Bernoulli variables, treated as one event, so `log_prob(x)` is one number per image —
# the log-likelihood of the whole image. Its `mean()` is the image of pixel probabilities we plot.
#
# **What should an untrained decoder score?** Its weights start small and its biases at 0, so every
# logit is close to 0 and every pixel gets probability $\sigma(0) = \tfrac12$, whatever $z$ is. A binary
# image then has probability $(\tfrac12)^{784}$: $\log p(x\mid z) \approx -784\log 2 = -543.4$ nats. That
# is the starting point of every Bernoulli VAE's loss curve on 28×28 images (and the loss of a model
# that has learned nothing).

# %%
likelihood = vae.decode(posterior.sample(seed=(0, 0)))
print(type(vae.decoder.layers[-1]).__name__, "->", likelihood)
untrained = likelihood.log_prob(x_test[:5]).numpy()
print("log p(x | z) per image (untrained):", untrained, f"  -784 log 2 = {-784 * np.log(2):.2f}")
assert np.allclose(untrained, -784 * np.log(2), rtol=0.01)

# %% [markdown]
# ## From a distribution to a tensor: `convert_to_tensor_fn`
#
# When a distribution layer's output is used as a tensor (passed to the next Keras layer, or to
# `tf.convert_to_tensor`), the tensor is the one the layer's `convert_to_tensor_fn` computed when the
# layer was called. For the posterior it is `tfd.Distribution.sample` (TFP's default): every *call*
# of the encoder draws a new $z$, and the returned object carries it — which is how an encoder
# chained to a decoder in one Keras model samples its codes (tutorial 3). `tfp_vae`'s likelihood
# layers use `tfd.Distribution.mean`, so a decoder converts to its pixel probabilities. A head built
# with `convert_to_tensor_fn=tfd.Distribution.mean` makes the posterior's tensor deterministic.

# %%
first = tf.convert_to_tensor(vae.encode(x_test[:5]))
second = tf.convert_to_tensor(vae.encode(x_test[:5]))
print("two calls of the encoder, first image's z:", first[0].numpy(), second[0].numpy())
print("one call converted twice, the same z:",
      np.array_equal(tf.convert_to_tensor(posterior), tf.convert_to_tensor(posterior)))
print("decoder output converted = its mean:",
      np.allclose(tf.convert_to_tensor(likelihood), likelihood.mean()))
params = tf.random.stateless_normal([5, tfp_vae.MultivariateNormalDiag.params_size(2)], seed=(0, 3))
mean_head = tfp_vae.MultivariateNormalDiag(2, convert_to_tensor_fn=tfd.Distribution.mean)
print("a mean head converts to the mean:", np.allclose(tf.convert_to_tensor(mean_head(params)),
                                                       mean_head(params).mean()))
assert not np.allclose(first, second)
assert np.allclose(tf.convert_to_tensor(likelihood), likelihood.mean())
assert np.allclose(tf.convert_to_tensor(mean_head(params)), mean_head(params).mean())

# %% [markdown]
# ## Step 3: the prior
#
# $p(z) = \mathcal N(0, I)$. `tfp_vae.isotropic_gaussian_prior` writes it as a `MultivariateNormalDiag`
# because TFP registers the closed-form KL of both Diag and TriL posteriors against that class (but not
# against `Independent(Normal)`). The VAE holds it as `vae.prior`; `vae.sample` decodes draws from it.

# %%
prior = tfp_vae.isotropic_gaussian_prior(LATENT_DIM)
print(prior)
print("same as vae.prior:", np.allclose(prior.stddev(), vae.prior.stddev()))

# %% [markdown]
# ## The negative ELBO
#
# For each image the VAE minimises
#
# $$-\mathrm{ELBO}(x) = \underbrace{-\mathbb E_{q(z\mid x)}[\log p(x\mid z)]}_{\text{reconstruction}}
#  + \underbrace{\mathrm{KL}\big(q(z\mid x)\,\|\,p(z)\big)}_{\text{KL}} \;\ge\; -\log p(x).$$
#
# The reconstruction term is estimated with samples $z_s \sim q(z\mid x)$. To train the encoder through
# it, the gradient must flow from $\log p(x\mid z_s)$ back into the posterior's mean and standard
# deviation. The **reparameterisation trick** makes that possible: draw the noise first, independent
# of every weight, and build the sample from it,
#
# $$z = \mu(x) + \sigma(x) \odot \epsilon, \qquad \epsilon \sim \mathcal N(0, I),$$
#
# so $z$ is a differentiable function of $\mu$ and $\sigma$ ($\partial z/\partial\mu = 1$,
# $\partial z/\partial\sigma = \epsilon$). Written out by hand:

# %%
x_one = x_test[:1]
epsilon = tf.random.stateless_normal([1, LATENT_DIM], seed=(0, 7))
with tf.GradientTape(persistent=True) as tape:
    q_one = vae.encoder(x_one)
    mu, sigma = q_one.mean(), q_one.stddev()
    z_one = mu + sigma * epsilon  # the reparameterisation trick
    log_likelihood = vae.decoder(z_one).log_prob(x_one)
print("epsilon", epsilon.numpy(), "-> z", z_one.numpy())
print("dz/dmu", tape.gradient(z_one, mu).numpy(), " dz/dsigma", tape.gradient(z_one, sigma).numpy())
encoder_gradients = tape.gradient(log_likelihood, vae.encoder.trainable_variables)
print("encoder weights reached by the gradient of log p(x|z):",
      sum(int(tf.reduce_any(g != 0)) for g in encoder_gradients), "of", len(encoder_gradients))
print("TFP samples this way too:", q_one.reparameterization_type)
assert np.allclose(tape.gradient(z_one, sigma), epsilon)
assert all(bool(tf.reduce_any(g != 0)) for g in encoder_gradients)

# %% [markdown]
# `q.sample()` does the same inside TFP (`FULLY_REPARAMETERIZED`), so the training loop below simply
# samples. The KL can be exact (tutorial 1's formula) or a Monte Carlo average of
# $\log q(z_s\mid x) - \log p(z_s)$ over the same samples. `tfp_vae.negative_elbo` computes both terms
# per image; with an untrained model both are near the values above.

# %%
x_batch = x_test[:32]
q = vae.encode(x_batch)
print(f"{'KL estimator':>12} {'S':>5} {'-ELBO':>8} {'recon':>8} {'KL':>8}")
for estimator, num_samples in [("analytic", 1), ("mc", 1), ("mc", 10), ("mc", 100)]:
    terms = tfp_vae.negative_elbo(x_batch, q, vae.decoder, prior, kl_estimator=estimator,
                                  num_samples=num_samples, seed=0)
    print(f"{estimator:>12} {num_samples:>5} " + " ".join(
        f"{float(tf.reduce_mean(t)):8.3f}" for t in terms))

# %% [markdown]
# The batch means agree; what differs is the *noise* of the per-image KL. The Monte Carlo KL is
# unbiased but a single sample can even be negative. With a Gaussian posterior and prior the analytic
# KL is free, so we train with it. (Tutorial 5 compares lower-variance Monte Carlo estimators for
# cases without a closed form.)

# %%
analytic = tfp_vae.analytic_kl(q, prior).numpy()
z = q.sample(200, seed=(0, 1))  # 200 independent one-sample estimates per image
single = (q.log_prob(z) - prior.log_prob(z)).numpy()
print(f"image 0: analytic KL {analytic[0]:.4f}; 1-sample MC over 200 seeds: "
      f"mean {single[:, 0].mean():.4f} ± {single[:, 0].std() / np.sqrt(200):.4f}, "
      f"sd {single[:, 0].std():.4f}, min {single[:, 0].min():.4f}")
assert abs(single[:, 0].mean() - analytic[0]) < 4.5 * single[:, 0].std() / np.sqrt(200)

# %% [markdown]
# ## A custom training loop
#
# `vae.fit` would do this for us (its `train_step` calls the same `negative_elbo`), but the whole
# algorithm fits in a few lines: encode, compute the per-image negative ELBO, average over the batch,
# differentiate with respect to encoder *and* decoder weights, step. The loop keeps both terms per
# step so we can watch the trade-off. (`tfp_vae.train_loop` is this loop packaged, with validation
# and KL warm-up.)

# %%
optimizer = keras.optimizers.Adam(1e-3)


@tf.function
def train_step(x):
    with tf.GradientTape() as tape:
        terms = tfp_vae.negative_elbo(x, vae.encoder(x, training=True), vae.decoder, prior,
                                      kl_estimator="analytic")
        loss = tf.reduce_mean(terms.negative_elbo)
    gradients = tape.gradient(loss, vae.trainable_variables)
    optimizer.apply_gradients(zip(gradients, vae.trainable_variables))
    return loss, tf.reduce_mean(terms.reconstruction), tf.reduce_mean(terms.kl)


steps = []
for epoch in range(VAE_EPOCHS):
    for x in train:
        steps.append([float(v) for v in train_step(x)])
    loss, reconstruction, kl = np.mean(steps[-len(train):], axis=0)
    print(f"epoch {epoch + 1}: -ELBO {loss:.2f} = reconstruction {reconstruction:.2f} "
          f"+ KL {kl:.2f} nats/image")
steps = np.array(steps)
assert steps[-len(train):, 0].mean() < steps[:3, 0].mean() - 50  # the loss fell


# %% [markdown]
# **How do the two terms evolve?** The reconstruction term falls from about $784\log 2$ (the untrained
# decoder) throughout. The KL does not simply fall: it starts near 0 (an untrained encoder's posteriors
# are close to the prior), jumps in the first steps, settles, and then grows slowly while the encoder
# puts more information about the digit into $z$ — worth it as long as the reconstruction improves by
# more than the KL costs. With a 2-D latent it stays at a few nats per image: roughly how much
# information about each digit goes through the bottleneck.

# %%
def smooth(values, width=20):
    width = min(width, len(values))
    return np.convolve(values, np.ones(width) / width, mode="valid")


fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
for ax, column, title in zip(axes, range(3), ["-ELBO", "reconstruction", "KL"]):
    ax.plot(steps[:, column], color="C0", alpha=0.25, lw=0.8)
    ax.plot(np.arange(len(smooth(steps[:, column]))) + min(20, len(steps)) // 2,
            smooth(steps[:, column]), color="C0")
    ax.set_title(f"{title} (nats/image)")
    ax.set_xlabel("training step")
if len(steps) > 50:
    axes[0].set_ylim(top=np.percentile(steps[:, 0], 99))
    axes[1].set_ylim(top=np.percentile(steps[:, 1], 99))
plt.tight_layout()
plt.show()


# %% [markdown]
# ## Test negative ELBO
#
# On the fixed test images, analytic and Monte Carlo KL give the same bound up to noise: with the same
# seed both use the same posterior samples for the reconstruction term, so the per-image difference
# is the Monte Carlo KL's noise alone, and its standard error says how close "the same" must be. The
# deterministic autoencoder's reconstruction loss is lower, because it never pays for the KL nor for
# noisy codes — but, as we saw, it cannot sample.

# %%
def test_negative_elbo(kl_estimator):
    # Per-image terms [3, n]: negative ELBO, reconstruction, KL.
    chunks = [tfp_vae.negative_elbo(x_test[i:i + 500], vae.encode(x_test[i:i + 500]), vae.decoder,
                                    prior, kl_estimator, seed=i)
              for i in range(0, len(x_test), 500)]
    return np.concatenate([np.stack(terms) for terms in chunks], axis=1)


per_image = {estimator: test_negative_elbo(estimator) for estimator in ["analytic", "mc"]}
for estimator, (loss, reconstruction, kl) in per_image.items():
    print(f"VAE, {estimator:>8} KL: -ELBO {loss.mean():.2f} = {reconstruction.mean():.2f} "
          f"+ {kl.mean():.2f} nats/image")
difference = per_image["mc"][0] - per_image["analytic"][0]
difference_se = difference.std(ddof=1) / np.sqrt(len(difference))
print(f"mc - analytic, image by image: {difference.mean():+.3f} ± {difference_se:.3f}")
print(f"autoencoder reconstruction: {ae_test['loss']:.2f}")
assert abs(difference.mean()) < 4.5 * difference_se

# %% [markdown]
# ## Encoding: what does the latent space look like?
#
# Each test image's posterior mean, coloured by its digit. Compared with the autoencoder, the KL has
# pulled the codes to the scale of the prior (a few units instead of tens; the dashed circle is 2
# prior standard deviations), and digits form neighbouring regions. The codes need not be centred
# on the origin: nothing but the KL of each image holds them there. The posterior standard
# deviations (right) are well below 1: each image still pins down its code.

# %%
posterior = vae.encode(x_test)
codes, scales = posterior.mean().numpy(), posterior.stddev().numpy()
fig, (ax_codes, ax_scales) = plt.subplots(1, 2, figsize=(12, 5),
                                          gridspec_kw={"width_ratios": [1.3, 1]})
points = scatter_codes(ax_codes, codes, "VAE posterior means of test digits")
ax_codes.plot(*circle, color="black", ls="--", lw=1)
ax_codes.set_aspect("equal")
fig.colorbar(points, ax=ax_codes, ticks=range(10), label="digit")
for dim in range(LATENT_DIM):
    ax_scales.hist(scales[:, dim], bins=np.linspace(0, 1.05, 106), alpha=0.6,
                   label=f"sd of z[{dim}]")
ax_scales.axvline(1.0, color="black", ls="--", lw=1, label="prior sd")
ax_scales.set_xlabel("posterior standard deviation")
ax_scales.set_ylabel("test images")
ax_scales.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Reconstructing
#
# Top: test digits. Middle: `vae.reconstruct` decodes the posterior mean and shows the pixel
# probabilities. Bottom: the autoencoder. Two latent dimensions are a tight bottleneck: with two
# numbers per image both keep a digit's overall shape and slant, not its exact strokes, and both
# turn some digits into a similar-looking neighbour.

# %%
originals = x_test[:12]
fig, axes = plt.subplots(3, 1, figsize=(12, 3.6))
show_images(axes[0], originals, 1, "test images")
show_images(axes[1], vae.reconstruct(originals).numpy(), 1, "VAE reconstructions")
show_images(axes[2], ae.reconstruct(originals).numpy(), 1, "autoencoder reconstructions")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Sampling new digits
#
# `vae.sample(n, seed)` draws $z \sim p(z)$ and decodes it — the experiment that failed for the
# autoencoder. Because the KL pulled the codes to the prior's scale, draws from the prior land among
# codes and decode to digit-like images. Decoding a regular grid of $z$ shows how the digits morph
# across the latent plane. Look at *which* digits come out, though: the prior's region is not
# covered evenly by the codes of all ten digits (compare the scatter above), and the draws decode
# mostly to the digits whose codes fill that region. The KL asks every $q(z\mid x)$ to be close to
# the prior, not the codes of all images together to fill it; tutorial 4 shows how the KL's weight
# changes that.

# %%
fig, (ax_samples, ax_grid) = plt.subplots(1, 2, figsize=(12, 6))
show_images(ax_samples, vae.sample(36, seed=1).numpy(), 6, "VAE: decoded z ~ N(0, I)")
side = np.linspace(-2, 2, 12, dtype=np.float32)
grid = np.stack(np.meshgrid(side, -side), axis=-1).reshape(-1, 2)
show_images(ax_grid, vae.decode(grid).mean().numpy(), 12,
            "VAE: decoded grid, z[0], z[1] in [-2, 2]")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Summary
#
# | | autoencoder | VAE |
# |---|---|---|
# | encoder output | a point $z$ | `MultivariateNormalDiag` $q(z\mid x)$ |
# | decoder output | `IndependentBernoulli` $p(x\mid z)$ | the same |
# | loss | $-\log p(x\mid z)$ | $-\mathbb E_q\log p(x\mid z) + \mathrm{KL}(q\,\|\,p)$ |
# | samples from $\mathcal N(0, I)$ | mostly meaningless | digits |
#
# Next: [tutorial 3](03_attaching_the_kl_inside_the_model.ipynb) moves the KL *inside* the Keras model,
# with a full-covariance posterior, so that plain `compile`/`fit` trains a VAE.
