# %% [markdown]
# # 5 · Choosing a KL estimator
#
# The KL term of the ELBO can be computed two ways. For a Gaussian posterior and a Gaussian prior there is
# a closed form (`kl_estimator="analytic"`, tutorial 1). Otherwise it is estimated by Monte Carlo from
# samples $z \sim q(z\mid x)$, and `tfp_vae` offers four such estimators (`tfp_vae.KL_ESTIMATORS`):
#
# | name | estimate per sample | idea |
# |---|---|---|
# | `mc` | $\log q(z) - \log p(z)$ | the plain log-ratio (upstream TFP's default) |
# | `mc_entropy` | $-H[q] - \log p(z)$ | exact entropy of $q$, only the cross-entropy sampled |
# | `mc_ratio_cv` | $(r - 1) - \log r$, $r = p(z)/q(z)$ | the log-ratio plus a control variate with mean 0 |
# | `mc_stl` | $\log q(z) - \log p(z)$, gradient through $q$'s parameters stopped | "sticking the landing": same value, lower-variance gradient near $q = p$ |
#
# All four are unbiased; they differ in how noisy their values and gradients are, and in cost.
# `tfp_vae.compare_kl.run_study` measures that: part 1 evaluates every estimator on Gaussian posteriors
# with a known KL (repeated thousands of times, so bias and spread can be measured against the exact
# value and against theory); part 2 trains the same small VAE with each choice. This notebook runs the
# study's **quick mode** through that function, then reads its tables (CSV files) and plots (PNG files).
#
# Unset, the notebook runs `run_study(quick=True)` (the study's own quick mode: latent sizes 2 and 16, up
# to 64 samples, 1000 repetitions, 8 short training runs; about a minute on 2 CPU cores). With
# `TFP_VAE_QUICK=1` (the test suite) it shrinks the estimator grid further and skips the training runs,
# so the cells about part 2 say so instead of showing a table.

# %%
import csv
import math
import os
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import tensorflow as tf
from IPython.display import Image, display

import tfp_vae
from tfp_vae.compare_kl import run_study

QUICK = os.environ.get("TFP_VAE_QUICK") == "1"
OPTIONS = {"quick": True, "seed": 0, "dataset": "fashion_mnist"}
if QUICK:
    OPTIONS.update(latent_dims=[2], sample_counts=[1, 4, 16], repetitions=200,
                   skip_training=True)
OUT = Path(tempfile.mkdtemp(prefix="kl_study_"))
# The study builds one tf.function per estimator and setting; TensorFlow's "retracing" warnings
# about that are harmless.
tf.get_logger().setLevel("ERROR")
print("estimators:", list(tfp_vae.KL_ESTIMATORS))

# %% [markdown]
# ## Running the study
#
# `run_study` writes `report.md`, one CSV per measurement and the PNG plots into the output folder, and
# returns the same rows as Python dicts. We pass `log=None` to silence its progress lines.

# %%
result = run_study(OUT, log=None, **OPTIONS)
print(f"study finished in {result.seconds:.0f} s; files in the report folder:")
for path in sorted(result.output_dir.iterdir()):
    print(f"  {path.name:<22} {path.stat().st_size:>9,} bytes")


# %% [markdown]
# The tables are plain CSV. `csv.DictReader` reads them; a small helper turns numeric fields into floats
# (the files spell booleans `True`/`False` and infinite values `inf`).

# %%
def read_rows(name):
    path = OUT / name
    if not path.exists():
        return []
    rows = []
    with open(path, newline="") as stream:
        for row in csv.DictReader(stream):
            parsed = {}
            for key, value in row.items():
                if value in ("True", "False"):
                    parsed[key] = value == "True"
                else:
                    try:
                        parsed[key] = float(value)
                    except ValueError:
                        parsed[key] = value
            rows.append(parsed)
    return rows


estimators = read_rows("estimators.csv")
grid = [r for r in estimators if r["block"] != "theory_1d"]
print(f"estimators.csv: {len(estimators)} rows ({len(grid)} in the grid, "
      f"{len(estimators) - len(grid)} in the 1-D block); columns include")
print(" ", ", ".join(list(estimators[0])[:24]), "...")

# %% [markdown]
# ## 1 · Does the measurement agree with theory?
#
# For a 1-D Gaussian $q = \mathcal N(\mu, \sigma^2)$ against $\mathcal N(0, 1)$ the variance of every estimator has a
# closed form, so the measured standard deviation of one-sample estimates can be checked against it.
# Four posteriors: close to the prior, moderately away, a narrow one typical of a trained VAE
# ($\sigma = 0.3$), and one wider than the prior.

# %%
theory = [r for r in estimators if r["block"] == "theory_1d" and r["num_samples"] == 1
          and r["estimator"] != "analytic"]
print(f"{'mu':>4} {'sigma':>5} {'KL':>7}  " + "  ".join(f"{n:>22}" for n in
      ["mc", "mc_entropy", "mc_ratio_cv", "mc_stl"]))
print(f"{'':>19}" + "  ".join(f"{'std theory / measured':>22}" for _ in range(4)))
by_case = defaultdict(dict)
for r in theory:
    by_case[(r["mu"], r["sigma"], r["true_kl"])][r["estimator"]] = r
for (mu, sigma, kl), cells in by_case.items():
    parts = []
    for name in ["mc", "mc_entropy", "mc_ratio_cv", "mc_stl"]:
        r = cells[name]
        theory_std = "inf" if math.isinf(r["theory_std"]) else f"{r['theory_std']:.3f}"
        parts.append(f"{theory_std:>10} / {r['std']:<9.3f}")
    print(f"{mu:>4g} {sigma:>5g} {kl:>7.3f}  " + "  ".join(f"{p:>22}" for p in parts))

# %% [markdown]
# Where the theory is finite the measured spreads match it to within about 10 % — the size of their own
# sampling error, since these estimates are heavy-tailed (the per-cell `std_se` column has it). The
# exceptions are all `mc_ratio_cv`, and they are the trap in it: its variance is **infinite** whenever
# the posterior variance is below half the prior's ($\sigma^2 < 1/2$, the row with $\sigma = 0.3$), which a
# trained VAE's posteriors almost always are, and even where it is finite its fourth moment is infinite
# for $\sigma^2 < 3/4$ (the row with $\sigma = 0.8$), so a measured std far below theory is what one should
# expect there. A finite run still prints a finite "std" — it measures nothing, and the study marks
# such cells rather than trusting them.
#
# ## 2 · Bias
#
# Every Monte Carlo estimator is unbiased in theory. The study reports each cell's bias in standard
# errors (`bias_z`); with hundreds of cells, a few beyond ±2 are expected by chance, but none should be
# far out — except where the variance is infinite.

# %%
print(f"{'estimator':<12} {'cells':>6} {'max |bias|/SE, finite var':>27} {'infinite-var cells':>19} "
      f"{'their median bias/SE':>21}")
for name in tfp_vae.KL_ESTIMATORS:
    if name == "analytic":
        continue
    rows = [r for r in estimators if r["estimator"] == name]
    finite = [abs(r["bias_z"]) for r in rows if r["variance_finite"]]
    infinite = [r["bias_z"] for r in rows if not r["variance_finite"]]
    median_inf = f"{np.median(infinite):.1f}" if infinite else "-"
    print(f"{name:<12} {len(rows):>6} {max(finite):>27.2f} {len(infinite):>19} {median_inf:>21}")
analytic = [r for r in grid if r["estimator"] == "analytic"]
print(f"\nanalytic: largest relative error against the closed form "
      f"{max(abs(r['rel_bias']) for r in analytic):.1e}, std {max(r['std'] for r in analytic):g}")

# %% [markdown]
# `mc`, `mc_entropy` and `mc_stl` show no bias beyond what chance allows. `mc_ratio_cv` is unbiased
# too where its variance is finite, but in the infinite-variance cells its average sits many standard
# errors *below* the truth: $\mathbb E[p/q] = 1$ is carried by rare, enormous ratios that a run of finite
# length almost never draws. Unbiased in theory, biased in every practical run.
#
# ## 3 · How noisy is the value?
#
# The noise that matters is relative to the KL itself. The plot shows the standard deviation divided by
# the true KL for every estimator, posterior type and distance from the prior, against the number of
# samples $S$ (colour: distance from the prior; solid: the smallest latent size, dashed: the next;
# grey: the $1/\sqrt S$ slope every unbiased average follows; hollow markers: infinite variance).

# %%
display(Image(filename=str(OUT / "relative_std.png"), width=900))


# %%
def median_over(rows, key, **match):
    values = [r[key] for r in rows if all(r[k] == v for k, v in match.items())]
    return float(np.median(values)) if values else math.nan


print("relative std (std / KL) of one-sample estimates, median over latent sizes and posteriors")
print(f"{'distance':<10} {'KL (median)':>11} " + " ".join(f"{n:>12}" for n in
      ["mc", "mc_entropy", "mc_ratio_cv", "mc_stl"]))
for distance in ["close", "moderate", "far"]:
    kl = median_over(grid, "true_kl", distance=distance, estimator="mc", num_samples=1)
    values = [median_over(grid, "rel_std", distance=distance, estimator=n, num_samples=1)
              for n in ["mc", "mc_entropy", "mc_ratio_cv", "mc_stl"]]
    print(f"{distance:<10} {kl:>11.3f} " + " ".join(f"{v:>12.3g}" for v in values))

# %% [markdown]
# Three things to read off:
#
# * **Close to the prior the value is almost pure noise.** The KL is a few hundredths of a nat, but one
#   sample varies by far more: relative standard deviations from about 2 (`mc_ratio_cv`) through about 7
#   (`mc`, `mc_stl`) to over 40 (`mc_entropy`). That is the situation of an untrained VAE and of every
#   collapsed latent dimension.
# * **No estimator wins everywhere.** `mc_entropy` is the worst near the prior (its sampled cross-entropy
#   does not cancel) and among the best far from it (the exact entropy removes the part of the noise that
#   grows as $q$ narrows); `mc_ratio_cv` looks best near the prior, where its control variate cancels most
#   of the noise, and has infinite variance far from it.
# * **More samples help only as $1/\sqrt S$**: the lines run parallel to the grey slope, so a tenfold
#   reduction of the noise costs a hundred times the samples.
#
# ## 4 · How noisy is the gradient?
#
# Training does not use the KL's value but its gradient with respect to the posterior's parameters. The
# study reports the gradient's signal-to-noise ratio, $\lVert \mathbb E g \rVert / \sqrt{\sum \mathrm{Var}\, g}$, for the
# `loc` and the scale parameters (above 1: the sign of a step is mostly right).

# %%
display(Image(filename=str(OUT / "gradient_snr.png"), width=800))

# %%
d_large = int(max(r["latent_dim"] for r in grid))
print(f"gradient SNR with S=1, latent size {d_large}, median over posterior types")
print(f"{'':<10} " + " ".join(f"{n:>11}" for n in ["mc", "mc_entropy", "mc_ratio_cv", "mc_stl"]))
for parameter in ["loc", "scale"]:
    for distance in ["close", "moderate", "far"]:
        values = [median_over(grid, f"grad_{parameter}_snr", distance=distance, estimator=n,
                              num_samples=1, latent_dim=d_large)
                  for n in ["mc", "mc_entropy", "mc_ratio_cv", "mc_stl"]]
        print(f"{parameter + ' ' + distance:<14} " + " ".join(f"{v:>11.3g}" for v in values))

# %% [markdown]
# `mc_stl` ("sticking the landing") has the best gradients close to the prior: dropping the score-function
# term removes a noise source whose mean is zero, and as $q \to p$ its gradient's variance goes to 0. Far from
# the prior it is the worst of the four, because the term it drops is no longer small. `mc_ratio_cv`'s
# gradients are the noisiest at a moderate distance. The analytic KL's gradient is exact (SNR ∞)
# everywhere.
#
# ## 5 · Cost

# %%
largest_s = int(max(r["num_samples"] for r in grid))
for kind in ["diag", "tril"]:
    d = int(max(r["latent_dim"] for r in grid if r["posterior"] == kind))
    analytic_cost = median_over(grid, "median_us_per_posterior", posterior=kind, latent_dim=d,
                                estimator="analytic")
    line = f"{kind}, d={d}: analytic {analytic_cost:.1f} µs per posterior (value + gradient); "
    line += ", ".join(
        f"mc S={s} {median_over(grid, 'median_us_per_posterior', posterior=kind, latent_dim=d, estimator='mc', num_samples=s):.1f} µs"
        for s in (1, largest_s))
    print(line)

# %% [markdown]
# Per posterior, every estimator costs microseconds — nothing next to the encoder and decoder, which
# take milliseconds per image. (Timings this small are noisy on a shared machine; the study's own
# finding below quotes a single setting's timing, so its numbers can differ from these medians.) The
# choice is about noise, not speed.
#
# ## 6 · End to end: does it change the trained model?
#
# Part 2 trains the same small VAE (the `course` network, Fashion-MNIST, a few epochs) with the KL
# computed each way and attached each way, then evaluates all of them with the same yardstick: the test
# negative ELBO with the analytic KL, the IWAE bound, active units. The baseline is trained twice with
# different seeds: that difference is the noise floor against which every other difference must be read.

# %%
training = read_rows("training.csv")
if not training:
    print("part 2 was skipped (TFP_VAE_QUICK=1): no training runs to show.")
else:
    baseline, repeat = training[0], training[-1]
    floor = abs(repeat["test_negative_elbo"] - baseline["test_negative_elbo"])
    print(f"{'run':<34} {'test -ELBO':>16} {'Δ vs base':>10} {'IWAE NLL':>9} {'KL':>6} "
          f"{'active':>7} {'s/epoch':>8}")
    for r in training:
        delta = r["test_negative_elbo"] - baseline["test_negative_elbo"]
        print(f"{r['run']:<34} {r['test_negative_elbo']:>9.2f} ± {r['test_negative_elbo_se']:<4.2f} "
              f"{delta:>+10.2f} {r['test_iwae_nll']:>9.2f} {r['test_kl']:>6.2f} "
              f"{int(r['active_units']):>3d}/{int(r['latent_dim'])} {r['seconds_per_epoch']:>8.1f}")
    print(f"\nnoise floor (baseline vs the same run with seed+1): {floor:.2f} nats")

# %%
if (OUT / "training_curves.png").exists():
    display(Image(filename=str(OUT / "training_curves.png"), width=950))
else:
    print("no training curves (part 2 skipped)")

# %% [markdown]
# Before reading the differences, look at the curves: after two short epochs (32 optimiser steps on 1024
# images) every run is still falling by tens of nats per epoch, far from the roughly 270 nats a trained
# model reaches (tutorial 4). A run that is a fraction of an epoch ahead is many nats better. The add-loss
# and regularizer runs agree to every digit: they add the same term with the same random stream.
#
# **Is one repeat enough to measure the noise floor?** The table's floor comes from a single pair of seeds.
# Here the baseline and the add-loss attachment — the same objective, the analytic KL — are retrained
# with four seeds each, with the quick mode's settings (the `course` network, 2-D latent, 1024 binarized
# Fashion-MNIST images, batches of 64, 2 epochs, the same evaluation):

# %%
if not training:
    print("skipped with TFP_VAE_QUICK=1 (no training runs)")
else:
    from tfp_vae import keras
    from tfp_vae.evaluation import evaluate_elbo

    fashion = tfp_vae.load_dataset("fashion_mnist")
    rng = np.random.default_rng(0)  # the study's binarization for seed 0
    x_train, x_small_test = fashion.x_train[:1024], fashion.x_test[:256]
    x_train = (rng.random(x_train.shape, dtype=np.float32) < x_train).astype(np.float32)
    x_small_test = (rng.random(x_small_test.shape, dtype=np.float32) < x_small_test).astype(
        np.float32)
    repeats = defaultdict(list)
    for attachment in ["loss", "add_loss"]:
        for seed in range(4):
            keras.utils.set_random_seed(seed)
            model = tfp_vae.build_model(tfp_vae.ModelConfig(latent_dim=2, network="course",
                                                            kl_attachment=attachment))
            tfp_vae.train_loop(model, tfp_vae.make_dataset(x_train, batch_size=64, seed=seed),
                               epochs=2, optimizer=keras.optimizers.Adam(1e-3))
            repeats[attachment].append(evaluate_elbo(model, x_small_test, batch_size=256,
                                                     num_samples=4, seed=0)["negative_elbo"])
    for attachment, values in repeats.items():
        values = np.array(values)
        print(f"kl_attachment={attachment!r:<11} test -ELBO by seed: {np.round(values, 1)}  "
              f"mean {values.mean():.1f}, sd {values.std(ddof=1):.1f}")

# %% [markdown]
# The seed-to-seed spread is several times the single-pair floor, and the two attachments' ranges overlap:
# in runs this short, the differences in the table — between attachments, and between the analytic and
# the Monte Carlo KL — are within what changing the seed does, and are not evidence that one choice
# trains better. (The study's automatic findings below compare against the one-pair floor, so they can
# call such differences significant; read them with this in mind.) Tutorial 3 showed, on a longer run,
# that the attachments train the same objective. The full study (`run_study(quick=False)`, or
# `tfp-vae compare-kl`) trains longer and on more data, where a systematic difference has a chance to rise
# above the noise.
#
# ## The study's own findings
#
# `run_study` also condenses its measurements into sentences (the top of `report.md`):

# %%
for finding in result.findings:
    print("•", finding)

# %% [markdown]
# ## Summary
#
# * **Gaussian posterior, Gaussian prior: use `kl_estimator="analytic"`.** It is exact, has zero variance
#   and an exact gradient, and costs no more than one Monte Carlo sample.
# * When there is no closed form (other priors or posteriors), every Monte Carlo estimator is unbiased,
#   but their noise differs by orders of magnitude depending on how far $q$ is from $p$; near the prior the
#   one-sample KL is mostly noise.
# * `mc_stl` gives the cleanest gradients near the prior; `mc_entropy` the cleanest values far from it;
#   `mc_ratio_cv` has infinite variance for any posterior narrower than $1/\sqrt 2$ of the prior — avoid it
#   for trained VAEs.
# * Judge end-to-end differences against a seed-to-seed noise floor measured with several seeds: in the
#   quick mode's short runs, one repeat underestimates it several times over, and the differences between
#   estimators and attachments fall within it.
