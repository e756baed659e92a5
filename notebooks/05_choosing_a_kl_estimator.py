# %% [markdown]
# # 5 · Choosing a KL estimator
#
# The KL term of the ELBO can be computed two ways. For a Gaussian posterior and a Gaussian prior there
# is a closed form (`"analytic"`, tutorial 1). Otherwise it is estimated by Monte Carlo from samples
# $z \sim q(z\mid x)$, and `tfp_vae` offers four such estimators (`tfp_vae.KL_ESTIMATORS`):
#
# | name | estimate per sample | idea |
# |---|---|---|
# | `mc` | $\log q(z) - \log p(z)$ | the plain log-ratio (upstream TFP's default) |
# | `mc_entropy` | $-H[q] - \log p(z)$ | exact entropy of $q$, only the cross-entropy sampled |
# | `mc_ratio_cv` | $(r - 1) - \log r$, $r = p(z)/q(z)$ | the log-ratio plus a control variate $r - 1$ with mean 0 |
# | `mc_stl` | $\log q(z) - \log p(z)$, gradient through $q$'s parameters stopped | "sticking the landing": same value, different gradient |
#
# In this tutorial you measure them yourself, on posteriors whose KL is known exactly:
#
# 1. call each estimator many times and measure its **bias** and **spread**;
# 2. see the spread fall as $1/\sqrt S$ with $S$ samples;
# 3. differentiate each estimator and measure the **signal-to-noise ratio** of its gradient;
# 4. plug an estimator into a model (`kl_estimator=` in a `ModelConfig`, `mc_estimator=` in the KL
#    layers) and check that *where* the KL is attached does not change what is trained;
# 5. then read the summary of the full study that ran these measurements over many more settings.
#
# Everything but step 4's two short training runs takes seconds. `TFP_VAE_QUICK=1` uses fewer
# repetitions and a smaller training set. The `assert` lines state what each step should show.

# %%
import csv
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

import tfp_vae
from tfp_vae import tfd
from tfp_vae.config import TrainingConfig
from tfp_vae.runs import train_run

QUICK = os.environ.get("TFP_VAE_QUICK") == "1"
REPETITIONS = 1000 if QUICK else 4000  # independent estimates per measurement
LATENT_DIM = 8
ESTIMATORS = list(tfp_vae.KL_ESTIMATORS)
MONTE_CARLO = [name for name in ESTIMATORS if name != "analytic"]
prior = tfp_vae.isotropic_gaussian_prior(LATENT_DIM)
print("estimators:", ESTIMATORS)

# %% [markdown]
# ## 1 · Bias and spread of the value
#
# Two diagonal Gaussian posteriors in 8 dimensions, every coordinate alike:
#
# * **close** to the prior, $q = \mathcal N(0.1, 0.9^2)$ per coordinate: an untrained encoder, or a
#   latent dimension the model does not use;
# * **far** from it, $q = \mathcal N(1.5, 0.3^2)$: a narrow posterior away from the origin, the usual
#   case in a trained VAE.
#
# Their KL is known exactly: $\tfrac d2(\sigma^2 + \mu^2 - 1 - \log\sigma^2)$. A posterior with batch
# shape `[REPETITIONS]` (the same Gaussian repeated) gives that many independent one-sample estimates
# from one call of each estimator, with a fixed seed.

# %%
SETTINGS = {"close": (0.1, 0.9), "far": (1.5, 0.3)}


def true_kl(mu, sigma):
    return 0.5 * LATENT_DIM * (sigma**2 + mu**2 - 1 - np.log(sigma**2))


def estimates(name, mu, sigma, num_samples=1, seed=0):
    """REPETITIONS independent estimates, and their gradients w.r.t. the posterior's loc and scale."""
    loc = tf.fill([REPETITIONS, LATENT_DIM], float(mu))
    scale = tf.fill([REPETITIONS, LATENT_DIM], float(sigma))
    with tf.GradientTape() as tape:
        tape.watch([loc, scale])
        posterior = tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale)
        values = tfp_vae.get_kl_estimator(name)(posterior, prior, num_samples=num_samples,
                                                seed=seed)
        total = tf.reduce_sum(values)  # each repetition's gradient lands in its own row
    grad_loc, grad_scale = tape.gradient(total, [loc, scale])
    return values.numpy(), grad_loc.numpy(), grad_scale.numpy()


results = {(d, n): estimates(n, *SETTINGS[d]) for d in SETTINGS for n in ESTIMATORS}
for distance, (mu, sigma) in SETTINGS.items():
    truth = true_kl(mu, sigma)
    print(f"{distance}: q = N({mu}, {sigma}^2) per coordinate, exact KL {truth:.4f} nats")
    print(f"  {'estimator':<12} {'mean ± s.e.':>18} {'bias / s.e.':>12} {'std':>8} {'std / KL':>9}")
    for name in ESTIMATORS:
        values = results[distance, name][0]
        se = values.std(ddof=1) / np.sqrt(len(values))
        exact = values.std() < 1e-6 * truth  # float32 rounding only
        z_score = f"{'exact':>12}" if exact else f"{(values.mean() - truth) / se:12.2f}"
        print(f"  {name:<12} {values.mean():9.4f} ± {se:<6.4f} {z_score} {values.std():8.4f} "
              f"{values.std() / truth:9.3f}")

# %% [markdown]
# Reading the tables:
#
# * `analytic` is exact, with zero spread.
# * `mc`, `mc_entropy` and `mc_stl` are unbiased: their means sit within a few standard errors of
#   the truth. `mc` and `mc_stl` print the same numbers, because their *values* are the same (up to
#   float rounding); they differ only in their gradients (section 3).
# * **Close to the prior the value is mostly noise**: the KL is about 0.12 nats, and one sample
#   varies by several times that. `mc_ratio_cv`'s control variate cancels much of the noise here;
#   `mc_entropy`, whose sampled cross-entropy no longer cancels against anything, is the noisiest.
# * **Far from the prior** the ranking flips: `mc_entropy` has the smallest spread (its exact entropy
#   removes the noise that grows as $q$ narrows), and `mc_ratio_cv` is **off by about one nat**, many
#   standard errors. That is not bad luck. With $\sigma^2 < \tfrac12$ the ratio $r = p/q$ has infinite
#   variance: $\mathbb E[r] = 1$ is carried by astronomically rare, huge values that no finite run
#   draws, so almost every draw has $r \approx 0$ and the estimate is $\approx \text{mc} - 1$. Its
#   printed standard error describes the draws we got, not the estimator.

# %%
for distance in SETTINGS:
    truth = true_kl(*SETTINGS[distance])
    assert np.allclose(results[distance, "analytic"][0], truth, rtol=1e-5)
    for name in ["mc", "mc_entropy", "mc_stl"]:
        values = results[distance, name][0]
        assert abs(values.mean() - truth) < 4.5 * values.std(ddof=1) / np.sqrt(len(values)), name
    assert np.allclose(results[distance, "mc"][0], results[distance, "mc_stl"][0], rtol=1e-5,
                       atol=1e-4)
far = {name: results["far", name][0] for name in MONTE_CARLO}
close = {name: results["close", name][0] for name in MONTE_CARLO}
assert far["mc_entropy"].std() < far["mc"].std() and close["mc_entropy"].std() > close["mc"].std()
assert close["mc_ratio_cv"].std() < close["mc"].std()
assert far["mc_ratio_cv"].mean() < true_kl(*SETTINGS["far"]) - 0.5

# %% [markdown]
# ## 2 · More samples: spread falls as $1/\sqrt S$
#
# Averaging $S$ independent samples divides the variance by $S$. For `mc` on the far posterior, the
# standard deviation times $\sqrt S$ should stay constant; each is measured from its own
# repetitions, so it carries a sampling error of its own (printed as a relative standard error).

# %%
sample_counts = [1, 4, 16, 64]
scaled = {}
for num_samples in sample_counts:
    values = estimates("mc", *SETTINGS["far"], num_samples=num_samples, seed=1)[0]
    centred = values - values.mean()
    relative_se = np.sqrt(np.mean(centred**4) / np.mean(centred**2) ** 2 - 1) / (
        2 * np.sqrt(len(values)))
    scaled[num_samples] = (values.std() * np.sqrt(num_samples), relative_se)
    print(f"S = {num_samples:>3}: std {values.std():.4f}, std x sqrt(S) = "
          f"{scaled[num_samples][0]:.4f} (± {relative_se:.1%})")
first, first_se = scaled[1]
for value, relative_se in scaled.values():
    assert abs(np.log(value / first)) < 4.5 * np.hypot(relative_se, first_se)

# %% [markdown]
# A tenfold reduction of the noise costs a hundred times the samples (each one a `log_prob` of the
# posterior and the prior per image). That is why a closed form, when there is one, wins.
#
# ## 3 · The gradient and its signal-to-noise ratio
#
# Training uses the gradient of the KL with respect to the posterior's parameters, not its value.
# `estimates` also returned, for every repetition, the gradient with respect to the 8 means and the
# 8 standard deviations. Its signal-to-noise ratio,
# $\mathrm{SNR} = \lVert \mathbb E\,g \rVert / \sqrt{\textstyle\sum_i \mathrm{Var}\,g_i}$, says how
# reliable one step's direction is (above 1: mostly signal). The exact gradient is
# $\partial\mathrm{KL}/\partial\mu_i = \mu$ and $\partial\mathrm{KL}/\partial\sigma_i = \sigma - 1/\sigma$.

# %%
def snr(gradients):
    noise = np.sqrt(gradients.var(axis=0).sum())
    return np.inf if noise == 0 else np.linalg.norm(gradients.mean(axis=0)) / noise


print(f"{'':<8} {'':<12} {'mean dKL/dmu':>13} {'mean dKL/dsigma':>16} {'SNR mu':>8} {'SNR sigma':>10}")
for distance, (mu, sigma) in SETTINGS.items():
    print(f"{distance:<8} {'exact':<12} {mu:13.3f} {sigma - 1 / sigma:16.3f}")
    for name in ESTIMATORS:
        _, grad_loc, grad_scale = results[distance, name]
        print(f"{'':<8} {name:<12} {grad_loc.mean():13.3f} {grad_scale.mean():16.3f} "
              f"{snr(grad_loc):8.3g} {snr(grad_scale):10.3g}")

# %% [markdown]
# * The analytic gradient is exact: its only variance is float32 rounding, so its SNR is infinite
#   or, where rounding leaves a trace, in the tens of thousands.
# * `mc` and `mc_entropy` have the *same* gradient: at a reparameterised sample $z = \mu + \sigma\epsilon$
#   of a Gaussian, $\log q(z) = -H[q] - \tfrac12\lVert\epsilon\rVert^2 + \text{const}$, and the middle term
#   does not depend on the parameters; so their gradients agree draw by draw (and so do their SNRs),
#   although their values do not.
# * **`mc_stl` has the best gradient close to the prior** and the worst far from it. It drops the
#   score-function term $\nabla_\theta \log q_\theta(z)$, whose mean is zero: near $q = p$ that term
#   is most of the noise (at $q = p$ the STL gradient is exactly 0). Far from the prior the score
#   term is correlated with the path derivative and cancels part of its noise; dropping it removes
#   that cancellation.
# * The mean gradients of `mc`, `mc_entropy` and `mc_stl` match the exact ones within their noise
#   (checked below): unbiased. Far from the prior `mc_ratio_cv`'s gradient is `mc`'s, because its
#   control variate $r - 1$ is stuck at about $-1$ and contributes no gradient.

# %%
for distance, (mu, sigma) in SETTINGS.items():
    for name in ["mc", "mc_entropy", "mc_stl"]:
        _, grad_loc, grad_scale = results[distance, name]
        for gradients, exact in [(grad_loc, mu), (grad_scale, sigma - 1 / sigma)]:
            error = gradients.mean(axis=0) - exact
            assert np.all(np.abs(error) < 4.5 * gradients.std(axis=0) / np.sqrt(REPETITIONS))
assert snr(results["close", "mc_stl"][1]) > snr(results["close", "mc"][1])
assert snr(results["far", "mc_stl"][1]) < snr(results["far", "mc"][1])

# %% [markdown]
# ## 4 · Using an estimator in a model
#
# The estimator is one setting, wherever the KL enters the loss:
#
# * in a model built from a config, `ModelConfig(kl_estimator="mc_entropy", num_samples=4)`;
# * in the KL layers of tutorial 3, `KLDivergenceAddLoss(prior, mc_estimator="mc_entropy")` or
#   `KLDivergenceRegularizer(prior, mc_estimator=...)` (with `use_exact_kl=False`); their
#   `test_points_fn` chooses the samples, e.g. `lambda q: q.sample(4)`.
#
# The layer adds the batch mean of the estimator's values, so on the far posterior it adds what
# section 1 measured:

# %%
far_posterior = tfd.MultivariateNormalDiag(loc=tf.fill([256, LATENT_DIM], 1.5),
                                           scale_diag=tf.fill([256, LATENT_DIM], 0.3))
for name in MONTE_CARLO:
    layer = tfp_vae.KLDivergenceAddLoss(prior, mc_estimator=name,
                                        test_points_fn=lambda q: q.sample(4, seed=(0, 5)))
    layer(far_posterior)
    print(f"KLDivergenceAddLoss(mc_estimator={name!r:<14}): {float(layer.losses[0]):8.4f} "
          f"(exact {true_kl(1.5, 0.3):.4f})")
config = tfp_vae.ModelConfig(latent_dim=LATENT_DIM, kl_estimator="mc_entropy", num_samples=4)
print(config.to_json(indent=None))

# %% [markdown]
# **Does it matter where the KL enters?** The same estimator can be computed in the loss function
# (`kl_attachment="loss"`, tutorial 2), an add-loss layer or an activity regularizer (tutorial 3).
# Tutorial 3 trained the two layers from the same start and got the same model; here the loss
# function joins them. `train_run` trains a small model (the `tfp_course` network, a 2-D latent
# space, binarized Fashion-MNIST) once per attachment, each from the same initial weights
# (`initial_weights`) and the same seed, so the batches and posterior samples are the same.
# In-memory runs (`run_dir=None`) write nothing.

# %%
training = TrainingConfig(data="fashion_mnist", train_size=1024 if QUICK else 8192, test_size=500,
                          epochs=2 if QUICK else 3, batch_size=64, seed=0, plots=False)
model_config = tfp_vae.ModelConfig(latent_dim=2, network="tfp_course")
tfp_vae.keras.utils.set_random_seed(0)  # the shared initial weights, reproducibly
start = tfp_vae.build_model(model_config).get_weights()
runs = {attachment: train_run(None, model_config.replace(kl_attachment=attachment), training,
                              initial_weights=start)
        for attachment in ["loss", "add_loss", "regularizer"]}
for attachment, run in runs.items():
    losses = [round(row["loss"], 4) for row in run.history]
    print(f"{attachment:<12} training loss per epoch {losses}, test negative ELBO "
          f"{run.metrics['test_negative_elbo']:.4f}")
reference = runs["loss"].metrics["test_negative_elbo"]
gap = max(abs(run.metrics["test_negative_elbo"] - reference) for run in runs.values())
print(f"largest difference in test negative ELBO: {gap:.2g} nats")
assert gap < 1e-3 * reference

# %% [markdown]
# The three attachments train the same model, up to floating-point rounding: the choice between
# them is about convenience (a plain `compile`/`fit` with the layers, a custom loss without), not
# about the result. Comparing them from *different* starts would show differences of the size of
# the seed-to-seed noise, which says nothing about the attachment.
#
# ## 5 · The full study
#
# `tfp_vae.study.run_study` (or `tfp-vae compare-kl`) runs the measurements of sections 1–3 over
# several latent sizes, diagonal and full-covariance posteriors, three distances from the prior and
# many sample counts, with the closed-form variance of each estimator next to the measured one, and
# trains the same VAE with every KL choice. Its full run is committed in
# `benchmarks/results/kl_study/`; the top of its `report.md` gives its settings and its findings:

# %%
STUDY = Path("..") / "benchmarks" / "results" / "kl_study"
report = (STUDY / "report.md").read_text()
findings = report.split("## Findings")[1].split("\n## ")[0].strip()
print(report.split("\n## ")[0].strip(), "\n")
print(findings.split("\n- End to end")[0])  # the estimator-level findings

# %% [markdown]
# Its end-to-end part trained the same VAE with every KL choice; `training.csv` has one row per run
# (`posterior/attachment/estimator/S=samples`), with the test negative ELBO and its standard error
# over the test images. The `seed+1` row repeats the first run with another seed: how far a run moves
# when only the random seed changes.

# %%
with open(STUDY / "training.csv", newline="") as stream:
    rows = {row["run"]: float(row["test_negative_elbo"]) for row in csv.DictReader(stream)}
for run_name, value in rows.items():
    print(f"{run_name:<34} {value:8.2f}")
baseline = next(iter(rows))
print(f"\nspread over all runs {max(rows.values()) - min(rows.values()):.2f} nats; the same run "
      f"with seed+1 moved {abs(rows[baseline + '/seed+1'] - rows[baseline]):.2f} nats")

# %% [markdown]
# The standard error over test images (`test_negative_elbo_se`) is the wrong yardstick for these
# differences: every run is evaluated on the same images, so what matters is how much a run changes
# when nothing but the seed changes. Read each difference against the `seed+1` row — one pair of
# seeds, so itself only a rough measure of that noise. The study starts every run from the same
# initial weights and feeds it the same batches, so the add-loss and regularizer rows equal their
# loss-function twins to the last digit (the report's last findings: the largest final-weight
# difference is 0): the attachment does not change the model, as section 4 found. The diagonal and
# full-covariance (`tril`) rows differ by several nats, far more than the seed row; the estimator
# rows differ by up to about a nat, which one pair of seeds cannot fully tell from seed noise.

# %% [markdown]
# ## Summary
#
# * **Gaussian posterior, Gaussian prior: use `kl_estimator="analytic"`.** It is exact, has zero
#   variance and an exact gradient, and costs no more than one Monte Carlo sample.
# * Without a closed form (other priors or posteriors), the Monte Carlo estimators are unbiased
#   where their variance is finite, but their noise differs by orders of magnitude depending on how
#   far $q$ is from $p$; near the prior the one-sample KL is mostly noise. More samples help only as
#   $1/\sqrt S$.
# * `mc_stl` gives the cleanest gradients near the prior; `mc_entropy` the cleanest values far from
#   it; `mc_ratio_cv` has infinite variance for any posterior with a variance below half the
#   prior's, and then in practice lands about one nat below the truth: avoid it for trained VAEs.
# * The estimator is `ModelConfig(kl_estimator=...)` or the layers' `mc_estimator=`; the attachment
#   (loss function, add-loss layer, regularizer) does not change the trained model.
