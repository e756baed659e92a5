# %% [markdown]
# # 6 · Evaluating a VAE
#
# A trained VAE's training loss is one number, and a slightly misleading one. This notebook evaluates a
# model the way papers do, with `tfp_vae.evaluation`, and then saves it and loads it back with `tfp_vae.io`:
#
# 1. the **negative ELBO** on the test set, split into reconstruction and KL;
# 2. the **importance-weighted bound** $\mathcal L_k$ (Burda et al., 2016), which approaches the model's true
#    log-likelihood $\log p(x)$ as the number of samples $k$ grows — how loose is the ELBO?
# 3. **active units**: how many of the latent dimensions the model actually uses, and what **KL warm-up**
#    changes about them;
# 4. a **diagonal against a full-covariance** posterior, compared by both bounds;
# 5. **saving and loading**, and checking that the loaded model computes exactly what the saved one did.
#
# The models are VAEs with a 16-D latent space on binarized MNIST, the classic benchmark for these
# numbers, with the `mlp` network (dense layers of 512 and 256 units, as in the IWAE paper's models):
# it trains fast enough on a CPU to compare three models. Each trains for 10 epochs on 20,000 images
# and is evaluated on the 10,000 test images (the expensive importance-weighted bounds on 200 of
# them); a few minutes in all on 2 CPU cores. `TFP_VAE_QUICK=1` trains on 2,048 images and evaluates
# on a few hundred, and is what the test suite runs. The `assert` lines state what each step should
# show.

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
from tfp_vae.config import TrainingConfig
from tfp_vae.data import load_splits
from tfp_vae.evaluation import active_units, evaluate_elbo, iwae_log_likelihood
from tfp_vae.io import load_model, save_model
from tfp_vae.runs import train_run

QUICK = os.environ.get("TFP_VAE_QUICK") == "1"
N_TRAIN = 2048 if QUICK else 20_000
N_TEST = 500 if QUICK else 10_000
N_IWAE = 32 if QUICK else 200  # test images for the importance-weighted bounds
EPOCHS = 3 if QUICK else 10
KS = [1, 10, 100, 1000]

# %% [markdown]
# ## A model to evaluate
#
# `tfp_vae.runs.train_run` trains the model from a `ModelConfig` and a `TrainingConfig` (in memory:
# `run_dir=None`). Training images are binarized afresh every epoch; the test images once, from the
# run's seed, so every number below is computed on the same binary images (a log-likelihood is only
# comparable on identical data). `tfp_vae.data.load_splits` with the run's settings returns those
# test images.

# %%
training = TrainingConfig(data="mnist", binarization="dynamic", train_size=N_TRAIN,
                          test_size=N_TEST, epochs=EPOCHS, batch_size=128, seed=0, plots=False)
config = tfp_vae.ModelConfig(latent_dim=16, network="mlp")
x_test = load_splits("mnist", train_size=N_TRAIN, test_size=N_TEST, seed=training.seed).x_test
tfp_vae.keras.utils.set_random_seed(0)
initial_weights = tfp_vae.build_model(config).get_weights()  # reused below
run = train_run(None, config, training, initial_weights=initial_weights)
vae = run.model
print(f"trained in {sum(row['seconds'] for row in run.history):.0f} s; training loss per epoch:",
      [round(row["loss"], 1) for row in run.history])

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
print(f"train_run's own test metric: {run.metrics['test_negative_elbo']:.2f}")
assert np.isclose(elbo["negative_elbo"], run.metrics["test_negative_elbo"], rtol=1e-3)

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
for smaller, larger in zip(KS, KS[1:]):  # L_k rises with k, image by image on average
    gain = per_image[larger] - per_image[smaller]
    assert gain.mean() > -3 * gain.std(ddof=1) / np.sqrt(N_IWAE)
total_gain = per_image[KS[-1]] - per_image[1]
assert total_gain.mean() > 3 * total_gain.std(ddof=1) / np.sqrt(N_IWAE)

# %% [markdown]
# **How fast does the bound tighten, and can we tell?** Left: each $\mathcal L_k$ with its standard error
# over images. The error bars are wide because images differ a lot from each other (a "1" is far more
# probable than an "8") — wide enough to swallow the differences between neighbouring bounds. Right: the same
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
# The gain flattens as $k$ grows: each tenfold increase in $k$ buys less than the one before (the
# table's "gain" column), as the bound creeps towards $\log p(x)$. The bound at $k = 1000$ is still a
# lower bound, so the model's true log-likelihood is at least that good; the distance between it and
# the ELBO is (a lower bound on) how much the Gaussian encoder costs. Two more things the table shows:
#
# * $\mathcal L_1$ is a one-sample ELBO: it agrees with `evaluate_elbo` up to the noise of that sample (the
#   analytic KL removes part of it).
# * The cost grows with $k$: $k$ decoder passes per image. The time *per decoded code* falls as $k$
#   grows, because fixed overhead (tracing the `tf.function`, one call per batch) dominates small $k$
#   and large $k$ fills the decoder's batches; $k = 1000$ on the full test set would take about
#   `N_test / N_IWAE` times the last row's time: plan for it, or use a subset as here.
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
active, collapsed = variance[variance > 0.01], variance[variance <= 0.01]
print(f"active dimensions' variances: {np.round(np.sort(active), 3)}")
if len(collapsed):
    print(f"largest collapsed variance: {collapsed.max():.4f} "
          f"({0.01 / collapsed.max():.1f} times below the threshold)")
assert units["active_units"] == int(np.sum(variance > 0.01))
order = np.argsort(variance)[::-1]
fig, ax = plt.subplots(figsize=(9, 3.6))
ax.bar(np.arange(len(variance)), variance[order],
       color=["C0" if v > 0.01 else "C3" for v in variance[order]])
ax.axhline(0.01, color="k", ls="--", lw=1, label="threshold 0.01")
ax.set_yscale("log")
ax.set_xticks(np.arange(len(variance)), [f"z[{i}]" for i in order])
ax.set_xlabel("latent dimension (sorted by variance)")
ax.set_ylabel("Var over x of E[z[u] | x]")
ax.set_title(f"{units['active_units']} of {units['latent_dim']} dimensions active "
             "(blue: active, red: collapsed)")
ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# This model uses all 16 dimensions: most have a variance near 1 (the prior's own), and the least
# used ones are lower but still above the threshold (the printout lists them all). A dimension
# collapses when the information it could carry is worth less to the reconstruction than the nats
# the KL charges for it; models with more latent dimensions, or a decoder strong enough to model the
# image without them, often leave several dimensions collapsed (orders of magnitude below 0.01, so
# the count does not hinge on the exact threshold). Fewer active units than latent dimensions is
# normal; *all* units inactive (the posterior ignoring the input) is the failure called posterior
# collapse.
#
# ### KL warm-up
#
# A common remedy for dimensions that collapse early is **KL warm-up** (Bowman et al., 2016; Sønderby
# et al., 2016): train the first epochs with a KL weight rising linearly from 0 to 1, so the encoder
# learns to use its dimensions before the KL starts charging for them. In tfp_vae the weight is a
# variable that the `KLWeightScheduler` callback sets at the start of every epoch from a schedule such
# as `linear_kl_warmup(n)`; `TrainingConfig(warmup_epochs=n)` makes `train_run` add it (with Keras
# `fit` you pass `callbacks=[tfp_vae.KLWeightScheduler(tfp_vae.linear_kl_warmup(n))]` yourself). We
# retrain the same model, from the same initial weights, with half of its epochs as warm-up.
#
# %%
warmup_epochs = EPOCHS // 2
schedule = tfp_vae.linear_kl_warmup(warmup_epochs)
print("KL weight by epoch:", [round(schedule(epoch), 3) for epoch in range(EPOCHS)])
run_warmup = train_run(None, config, training.replace(warmup_epochs=warmup_epochs),
                       initial_weights=initial_weights)
print("kl_weight the runs trained with:", [round(row["kl_weight"], 3) for row in run_warmup.history])
units_warmup = active_units(run_warmup.model, x_test)
elbo_warmup = evaluate_elbo(run_warmup.model, x_test)
for name, model_units, model_elbo in [("no warm-up", units, elbo),
                                      (f"warm-up over {warmup_epochs} epochs", units_warmup,
                                       elbo_warmup)]:
    print(f"{name:<24} active units {model_units['active_units']:>2} of 16, test negative ELBO "
          f"{model_elbo['negative_elbo']:.2f} ± {model_elbo['negative_elbo_standard_error']:.2f} "
          f"(KL {model_elbo['kl']:.2f})")
assert np.allclose([row["kl_weight"] for row in run_warmup.history],
                   [schedule(epoch) for epoch in range(EPOCHS)])

# %% [markdown]
# The scheduler did what it was asked (the two printed weight lists agree). Warm-up did not change
# the active units: all 16 are active in both runs. The warm-up run's codes carry about 2 nats more
# KL and its test negative ELBO is lower by less than a nat, about twice the standard error over
# images; with one run per setting that cannot be told apart from what another seed would do.
# Warm-up earns its keep when dimensions collapse early in training, which this model, with every
# dimension active, does not do: measure active units before reaching for it.
#
# ## 4 · Diagonal or full-covariance posterior?
#
# Tutorial 1 showed what a diagonal Gaussian gives up when the distribution it approximates is
# correlated, and tutorial 3 that a `MultivariateNormalTriL` posterior does learn correlations. Does
# that buy a better model? Retrain with `posterior="tril"` (16 means + 136 scale entries per image)
# and compare both bounds on the same test images, image by image. The ELBO measures model plus
# encoder; the IWAE bound at large $k$ is closer to the model's own $\log p(x)$.

# %%
# Its own initial weights; XLA cannot compile the TriL scale's gradient, so no jit_compile here.
run_tril = train_run(None, config.replace(posterior="tril"), training.replace(jit_compile=False))
k_compare = KS[-2]
comparison = {}
for name, model in [("diag", vae), ("tril", run_tril.model)]:
    negative_elbo = np.concatenate([
        tfp_vae.negative_elbo(x_iwae[i:i + 100], model.encode(x_iwae[i:i + 100]), model.decoder,
                              model.prior, seed=i).negative_elbo.numpy()
        for i in range(0, N_IWAE, 100)])
    iwae = iwae_log_likelihood(model, x_iwae, num_samples=k_compare, seed=0,
                               return_per_image=True)["per_image"]
    comparison[name] = (-negative_elbo, iwae)
    print(f"{name}: ELBO {-negative_elbo.mean():.2f}, IWAE bound (k={k_compare}) {iwae.mean():.2f}, "
          f"gap {iwae.mean() + negative_elbo.mean():.2f} nats")
for index, bound in enumerate(["ELBO", f"IWAE bound (k={k_compare})"]):
    difference = comparison["tril"][index] - comparison["diag"][index]
    print(f"tril - diag, {bound}: {difference.mean():+.2f} ± "
          f"{difference.std(ddof=1) / np.sqrt(N_IWAE):.2f} nats (paired over {N_IWAE} images)")
for name, (elbo_values, iwae_values) in comparison.items():
    assert (iwae_values - elbo_values).mean() > 0, name  # the IWAE bound is the tighter one

# %% [markdown]
# The full-covariance posterior is **not** automatically better. Trained for the same epochs, this
# TriL model is worse on both bounds, by about the same amount: the *model* it learned is worse (its
# 136 scale parameters per image are more to learn from the same data), not merely its encoder.
# Its ELBO-to-IWAE gap is a little smaller than the diagonal model's: for the model it has, its
# posterior is closer to the true one, which is what a more flexible $q$ buys. Judge a posterior
# family by both numbers, on the same images, image by image.
#
# ## 5 · Saving and loading
#
# `save_model` writes a directory with three files: the `ModelConfig` as JSON, the weights as HDF5, and a
# metadata JSON with versions and any metrics we pass. It writes to a temporary directory and renames it
# into place, so an interrupted save never leaves a half-written model. `load_model` rebuilds the model
# from the config (plain JSON, nothing unpickled) and loads the weights, checking that they fit.

# %%
model_dir = Path(tempfile.mkdtemp(prefix="saved_vae_")) / "mnist_vae"
save_model(vae, model_dir, metrics={"test_negative_elbo": elbo["negative_elbo"],
                                    f"iwae_{KS[-1]}": bounds[KS[-1]]["log_likelihood"]},
           training=training.to_dict())
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
    loaded_difference, fresh_difference = (max_difference(saved, compute(m)) for m in (loaded, fresh))
    print(f"{name:<28} {loaded_difference:>14.3g} {fresh_difference:>13.3g}")
    assert loaded_difference <= 1e-6 * np.max(np.abs(saved)) and fresh_difference > 1e-3

# %% [markdown]
# The loaded model's posteriors, decodings and prior samples are identical to the saved one's: same
# weights, same config, and the stateless seed of `sample` makes even the random draws repeat. The
# two evaluations (also seeded) agree to float32 rounding (a difference, if any, in the last digits):
# a sum over thousands of numbers on a multi-threaded CPU is not always added in the same order. The fresh model differs everywhere, so the comparison would have caught a failed load. (What is *not* saved: the
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
#   collapsed is a broken model. KL warm-up (`KLWeightScheduler`, `TrainingConfig(warmup_epochs=n)`)
#   is a remedy for early collapse; where nothing collapses it changes little.
# * A more flexible posterior (`posterior="tril"`) can narrow the ELBO-IWAE gap and still give a worse
#   model; compare families by both bounds, paired over the same images.
# * `save_model` / `load_model` round-trip a model exactly: config as JSON, weights as HDF5, written
#   atomically.
