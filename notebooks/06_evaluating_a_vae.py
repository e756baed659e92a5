# %% [markdown]
# # 6 · Evaluating a VAE
#
# A trained VAE's training loss is one number, and a slightly misleading one. This notebook evaluates a
# model the way papers do, with `tfp_vae.evaluation`, and then saves it and loads it back with `tfp_vae.io`:
#
# 1. the **negative ELBO** on the test set, split into reconstruction and KL;
# 2. the **importance-weighted bound** $\mathcal L_k$ (Burda et al., 2016), which approaches the model's true
#    log-likelihood $\log p(x)$ as the number of samples $k$ grows — how loose is the ELBO?
# 3. **active units**: how many of the latent dimensions the model actually uses;
# 4. **saving and loading**, and checking that the loaded model computes exactly what the saved one did.
#
# The model is a convolutional VAE with a 16-D latent space on binarized MNIST, the classic benchmark for
# these numbers.
#
# `TFP_VAE_QUICK=1` trains on 512 images for one epoch and evaluates on a handful of images (for the
# test suite); unset, the model trains for 5 epochs on all 60,000 images and is evaluated on the 10,000
# test images (the expensive importance-weighted bounds on 200 of them).

# %%
import json
import os
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

import tfp_vae
from tfp_vae import keras
from tfp_vae.evaluation import active_units, evaluate_elbo, iwae_log_likelihood
from tfp_vae.io import load_model, save_model

QUICK = os.environ.get("TFP_VAE_QUICK") == "1"
N_TRAIN = 512 if QUICK else None  # None: all 60,000 training images
N_TEST = 256 if QUICK else 10_000
N_IWAE = 16 if QUICK else 200  # test images for the importance-weighted bounds
EPOCHS = 1 if QUICK else 5
BATCH_SIZE = 128
KS = [1, 10, 100, 1000]
tf.keras.utils.set_random_seed(0)
# The evaluation helpers wrap the model in a fresh tf.function on every call, and TensorFlow
# warns about "retracing" after a few such calls; the warning is harmless here.
tf.get_logger().setLevel("ERROR")

# %% [markdown]
# ## A model to evaluate
#
# Training images are binarized afresh every epoch; the test images once, with a fixed seed, so every
# number below is computed on the same binary images (a log-likelihood is only comparable on identical
# data).

# %%
mnist = tfp_vae.load_dataset("mnist")
x_test = (np.random.default_rng(1).random(mnist.x_test[:N_TEST].shape, dtype=np.float32)
          < mnist.x_test[:N_TEST]).astype(np.float32)
train = tfp_vae.make_dataset(mnist.x_train[:N_TRAIN], batch_size=BATCH_SIZE,
                             binarization="dynamic", seed=0)
config = tfp_vae.ModelConfig(latent_dim=16, network="conv")
vae = tfp_vae.build_model(config)
vae.compile(optimizer=keras.optimizers.Adam(1e-3))
start = time.perf_counter()
history = vae.fit(train, epochs=EPOCHS, verbose=2)
print(f"trained in {time.perf_counter() - start:.0f} s")

# %% [markdown]
# ## 1 · The negative ELBO
#
# `evaluate_elbo` computes, per test image, $-\mathbb E_q[\log p(x\mid z)] + \mathrm{KL}(q(z\mid x)\,\|\,p(z))$
# with the analytic KL and one posterior sample for the reconstruction term (KL weight 1 whatever β
# the model was trained with), and returns the means over the images with a standard error. Bits per
# dimension divide by $784 \log 2$: the unit used to compare image models of different sizes.

# %%
elbo = evaluate_elbo(vae, x_test)
print(f"negative ELBO  {elbo['negative_elbo']:.2f} ± {elbo['negative_elbo_standard_error']:.2f} "
      f"nats/image  ({elbo['negative_elbo_bits_per_dim']:.4f} bits/dim, "
      f"{elbo['num_images']} test images)")
print(f"  = reconstruction {elbo['reconstruction']:.2f} + KL {elbo['kl']:.2f}")

# %% [markdown]
# The ELBO is a *lower bound* on $\log p(x)$: the gap is $\mathrm{KL}(q(z\mid x)\,\|\,p(z\mid x))$, how far the
# encoder's Gaussian is from the true posterior of the decoder. Training maximised the bound, not
# $\log p(x)$, so how good the *model* is (as opposed to model plus encoder) is still unknown.
#
# ## 2 · Tightening the bound with importance sampling
#
# Write $w = p(x\mid z)\,p(z)/q(z\mid x)$ for $z \sim q(z\mid x)$; then $\mathbb E_q[w] = p(x)$ exactly. Averaging
# $k$ such weights inside the log gives the IWAE bound
#
# $$\mathcal L_k = \mathbb E\Big[\log \frac1k \sum_{i=1}^k w_i\Big], \qquad
# \mathcal L_1 = \text{ELBO} \le \mathcal L_k \le \mathcal L_{k+1} \le \log p(x), \qquad
# \mathcal L_k \to \log p(x) \text{ as } k \to \infty .$$
#
# `iwae_log_likelihood` computes it with a log-sum-exp over the $k$ log-weights, decoding the $k$ codes of
# a batch of images in chunks, so $k = 1000$ needs no more memory than one chunk. Its cost is $k$ decoder
# passes per image, which is why the larger $k$ run on a subset of the test images. All four use the same
# images, so their differences can be compared image by image.

# %%
x_iwae = x_test[:N_IWAE]
bounds, per_image, seconds = {}, {}, {}
for k in KS:
    start = time.perf_counter()
    result = iwae_log_likelihood(vae, x_iwae, num_samples=k, seed=0, return_per_image=True)
    seconds[k] = time.perf_counter() - start
    bounds[k], per_image[k] = result, result["per_image"]
elbo_subset = evaluate_elbo(vae, x_iwae)

print(f"{N_IWAE} test images; ELBO with the analytic KL on them: "
      f"{-elbo_subset['negative_elbo']:.2f} ± {elbo_subset['negative_elbo_standard_error']:.2f}\n")
print(f"{'k':>5} {'L_k (nats)':>18} {'gain over L_1':>16} {'time':>8} {'ms per code':>12}")
for k in KS:
    gain = per_image[k] - per_image[1]
    gain_error = gain.std(ddof=1) / np.sqrt(len(gain))
    print(f"{k:>5} {bounds[k]['log_likelihood']:>10.2f} ± {bounds[k]['log_likelihood_standard_error']:<5.2f} "
          f"{gain.mean():>8.2f} ± {gain_error:<5.2f} {seconds[k]:>7.1f}s "
          f"{1000 * seconds[k] / (k * N_IWAE):>12.3f}")

# %% [markdown]
# **How fast does the bound tighten, and can we tell?** Left: each $\mathcal L_k$ with its standard error
# over images. The error bars are wide because images differ a lot from each other (a "1" is far more
# probable than an "8") — wide enough to swallow the differences between the bounds. Right: the same
# comparison made *image by image*, $\mathcal L_k - \mathcal L_1$ for every image, then averaged; the differences
# vary much less than the bounds themselves, so their error bars are small. Comparing two estimators on
# the same images is the way to see small effects.

# %%
means = np.array([bounds[k]["log_likelihood"] for k in KS])
errors = np.array([bounds[k]["log_likelihood_standard_error"] for k in KS])
gains = np.array([(per_image[k] - per_image[1]).mean() for k in KS])
gain_errors = np.array([(per_image[k] - per_image[1]).std(ddof=1) / np.sqrt(N_IWAE) for k in KS])

fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.3))
left.errorbar(KS, means, yerr=errors, marker="o", capsize=5, label="IWAE bound $\\mathcal{L}_k$")
elbo_value = -elbo_subset["negative_elbo"]
left.axhspan(elbo_value - elbo_subset["negative_elbo_standard_error"],
             elbo_value + elbo_subset["negative_elbo_standard_error"], color="C1", alpha=0.2)
left.axhline(elbo_value, color="C1", ls="--", label="ELBO, analytic KL (± s.e.)")
left.set_title(f"bounds on log p(x), mean ± s.e. over {N_IWAE} images")
left.set_ylabel("nats per image")
right.errorbar(KS, gains, yerr=gain_errors, marker="o", capsize=5, color="C2")
right.axhline(0, color="grey", lw=0.8)
right.set_title("gain over the ELBO, image by image: $\\mathcal{L}_k - \\mathcal{L}_1$ (mean ± s.e.)")
right.set_ylabel("nats per image")
for ax in (left, right):
    ax.set_xscale("log")
    ax.set_xticks(KS, [str(k) for k in KS])
    ax.set_xlabel("number of importance samples k")
    ax.grid(alpha=0.3)
left.legend(loc="lower right")
plt.tight_layout()
plt.show()

# %% [markdown]
# The gain flattens as $k$ grows: each tenfold increase in $k$ buys less (here about 4 nats from 1 to 10
# samples, 2 from 10 to 100, 1 from 100 to 1000), as the bound creeps towards $\log p(x)$. The bound at $k = 1000$ is still a lower bound, so the model's true log-likelihood is at least
# that good; the distance between it and the ELBO is (a lower bound on) how much the Gaussian encoder
# costs. Two more things the table shows:
#
# * $\mathcal L_1$ is a one-sample ELBO: it agrees with `evaluate_elbo` up to the noise of that sample (the
#   analytic KL removes part of it).
# * The cost is linear in $k$. At small $k$ the time is mostly fixed overhead (tracing the `tf.function`,
#   one call per batch); at large $k$ it settles to a fixed time per decoded code, so $k = 1000$ on the
#   full test set would take `N_test / N_IWAE` times the last row's time: plan for it, or use a subset
#   as here.
#
# ## 3 · Active units
#
# A latent dimension that the model does not use has a posterior equal to the prior for every image: its
# mean $\mathbb E[z_u\mid x]$ does not depend on $x$. `active_units` measures the variance of each dimension's
# posterior mean across the test images and counts those above 0.01 (Burda et al., 2016).

# %%
units = active_units(vae, x_test)
variance = np.array(units["posterior_mean_variance"])
print(f"active units: {units['active_units']} of {units['latent_dim']}")
order = np.argsort(variance)[::-1]
fig, ax = plt.subplots(figsize=(9, 3.6))
ax.bar(np.arange(len(variance)), variance[order],
       color=["C0" if v > 0.01 else "C3" for v in variance[order]])
ax.axhline(0.01, color="k", ls="--", lw=1, label="threshold 0.01")
ax.set_yscale("log")
ax.set_xticks(np.arange(len(variance)), [f"z{i}" for i in order])
ax.set_xlabel("latent dimension (sorted by variance)")
ax.set_ylabel("Var over x of E[z_u | x]")
ax.set_title(f"{units['active_units']} of {units['latent_dim']} dimensions active "
             "(blue: active, red: collapsed)")
ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# Most dimensions are clearly on one side or the other: the active ones mostly have a variance near 1
# (the prior's own), the collapsed ones sit below 0.005, several times under the threshold. The
# collapsed dimensions are the KL term at work: every dimension costs nats unless it carries
# information worth more than that, and a 16-D code is more than this decoder needs — about half of
# the dimensions are enough to describe a binarized digit at this level of detail. Fewer active
# units than latent dimensions is normal; *all* units inactive (the posterior ignoring the input) is the
# failure called posterior collapse.
#
# ## 4 · Saving and loading
#
# `save_model` writes a directory with three files: the `ModelConfig` as JSON, the weights as HDF5, and a
# metadata JSON with versions and any metrics we pass. It writes to a temporary directory and renames it
# into place, so an interrupted save never leaves a half-written model. `load_model` rebuilds the model
# from the config (plain JSON, nothing unpickled) and loads the weights, checking that they fit.

# %%
model_dir = Path(tempfile.mkdtemp(prefix="saved_vae_")) / "mnist_vae"
save_model(vae, model_dir, metrics={"test_negative_elbo": elbo["negative_elbo"],
                                    f"iwae_{KS[-1]}": bounds[KS[-1]]["log_likelihood"]},
           training={"dataset": "mnist", "binarization": "dynamic", "epochs": EPOCHS})
for path in sorted(model_dir.iterdir()):
    print(f"{path.name:<14} {path.stat().st_size:>9,} bytes")
print("\nconfig.json:", json.dumps(json.loads((model_dir / "config.json").read_text())))
print("metrics in metadata.json:", json.loads((model_dir / "metadata.json").read_text())["metrics"])

# %% [markdown]
# **Does the loaded model compute exactly what the saved one did?** We compare, on the same inputs, the
# posterior parameters, the decoder's pixel means, prior samples drawn with the same seed, and the two
# evaluations above with the same seeds. A freshly built model with the same config (new random weights)
# is the control: it shows how large the differences would be if loading had silently failed.

# %%
loaded = load_model(model_dir)
fresh = tfp_vae.build_model(config)  # same architecture, untrained weights
x = tf.constant(x_test[:100])


def max_difference(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


comparisons = {
    "posterior means": lambda m: m.encode(x).mean(),
    "posterior stddevs": lambda m: m.encode(x).stddev(),
    "decoded pixel means": lambda m: m.decode(vae.encode(x).mean()).mean(),
    "prior samples (seed 3)": lambda m: m.sample(8, seed=3),
    "negative ELBO (seed 0)": lambda m: evaluate_elbo(m, x_iwae, seed=0)["negative_elbo"],
    "IWAE bound, k=10 (seed 0)": lambda m: iwae_log_likelihood(m, x_iwae, 10, seed=0)[
        "log_likelihood"],
}
print(f"{'max |saved - other|':<28} {'loaded model':>14} {'fresh model':>13}")
for name, compute in comparisons.items():
    saved = compute(vae)
    print(f"{name:<28} {max_difference(saved, compute(loaded)):>14.3g} "
          f"{max_difference(saved, compute(fresh)):>13.3g}")

# %% [markdown]
# Every difference for the loaded model is exactly 0: same weights, same config, and the stateless seeds of
# `sample`, `evaluate_elbo` and `iwae_log_likelihood` make even the random parts repeat. The fresh model
# differs everywhere, so the comparison would have caught a failed load. (What is *not* saved: the
# optimizer's state. To resume training, use the checkpoints that `tfp-vae train` writes.)
#
# ## Summary
#
# * Report the negative ELBO on held-out data with its split into reconstruction and KL —
#   `evaluate_elbo`, which always uses KL weight 1.
# * The ELBO is a lower bound on $\log p(x)$; the IWAE bound `iwae_log_likelihood(num_samples=k)` tightens it
#   as $k$ grows, with diminishing returns, at a cost linear in $k$. Compare bounds on the same images, image
#   by image.
# * `active_units` counts the latent dimensions in use; a few collapsed dimensions are normal, all of them
#   collapsed is a broken model.
# * `save_model` / `load_model` round-trip a model exactly: config as JSON, weights as HDF5, written
#   atomically.
