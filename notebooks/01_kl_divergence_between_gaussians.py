# %% [markdown]
# # 1 · KL divergence between Gaussians
#
# A variational autoencoder pays, for every image, the Kullback–Leibler divergence between the
# encoder's Gaussian $q(z\mid x)$ and the prior $p(z)$. Before any network appears, this notebook looks
# at that quantity on its own:
#
# 1. the closed form for two Gaussians, checked against `tfd.kl_divergence`;
# 2. a full-covariance `MultivariateNormalTriL`, and what the `FillScaleTriL` bijector does to turn
#    unconstrained numbers into a valid covariance;
# 3. why $\mathrm{KL}(q\,\|\,p) \neq \mathrm{KL}(p\,\|\,q)$;
# 4. what happens when a diagonal $q$ is fitted to a correlated $p$ by minimising $\mathrm{KL}(q\,\|\,p)$ —
#    the situation of every VAE with a diagonal posterior;
# 5. what the same fit does when $p$ has two modes.
#
# No data is needed; everything runs in seconds. The `assert` lines state what each step should show; they fail loudly if it does not.

# %%
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import tfp_vae

tfd, tfb = tfp.distributions, tfp.bijectors
FIT_STEPS = 500
np.set_printoptions(precision=4, suppress=True)


# %% [markdown]
# ## The closed form in one dimension
#
# For $q = \mathcal N(\mu_q, \sigma_q^2)$ and $p = \mathcal N(\mu_p, \sigma_p^2)$
#
# $$\mathrm{KL}(q\,\|\,p) = \mathbb E_q\!\left[\log\frac{q(z)}{p(z)}\right]
#  = \log\frac{\sigma_p}{\sigma_q} + \frac{\sigma_q^2 + (\mu_q-\mu_p)^2}{2\sigma_p^2} - \frac12 .$$
#
# It is zero only when the two are equal, grows with the squared distance of the means measured in
# units of $\sigma_p$, and grows when $\sigma_q$ is either much smaller or much larger than $\sigma_p$.
# TFP registers this formula for every pair of `Normal`s; `tfd.kl_divergence` looks it up.

# %%
def kl_normal(mu_q, sigma_q, mu_p, sigma_p):
    return (np.log(sigma_p / sigma_q)
            + (sigma_q**2 + (mu_q - mu_p) ** 2) / (2 * sigma_p**2) - 0.5)


pairs = [(0.0, 1.0, 0.0, 1.0), (1.0, 1.0, 0.0, 1.0), (0.0, 0.1, 0.0, 1.0),
         (0.0, 3.0, 0.0, 1.0), (2.0, 0.5, -1.0, 2.0)]
print(f"{'q = N(mu, sigma)':>18} {'p = N(mu, sigma)':>18} {'formula':>9} {'tfd':>9}")
for mu_q, s_q, mu_p, s_p in pairs:
    by_tfp = tfd.kl_divergence(tfd.Normal(mu_q, s_q), tfd.Normal(mu_p, s_p))
    print(f"{f'N({mu_q}, {s_q})':>18} {f'N({mu_p}, {s_p})':>18} "
          f"{kl_normal(mu_q, s_q, mu_p, s_p):9.4f} {float(by_tfp):9.4f}")
    assert np.isclose(kl_normal(mu_q, s_q, mu_p, s_p), float(by_tfp), rtol=1e-5, atol=1e-6)


# %% [markdown]
# ## The closed form in $d$ dimensions
#
# For $q = \mathcal N(\mu_q, \Sigma_q)$ and $p = \mathcal N(\mu_p, \Sigma_p)$:
#
# $$\mathrm{KL}(q\,\|\,p) = \tfrac12\Big[\operatorname{tr}(\Sigma_p^{-1}\Sigma_q)
#  + (\mu_p-\mu_q)^\top\Sigma_p^{-1}(\mu_p-\mu_q) - d + \log\frac{\det\Sigma_p}{\det\Sigma_q}\Big].$$
#
# With the VAE prior $p = \mathcal N(0, I)$ it shrinks to
# $\tfrac12\big[\operatorname{tr}\Sigma_q + \mu_q^\top\mu_q - d - \log\det\Sigma_q\big]$,
# which is what `tfp_vae.analytic_kl` returns for an encoder's posterior. We will need the general
# formula as a NumPy function to check TFP below.

# %%
def kl_mvn(mu_q, cov_q, mu_p, cov_p):
    d = len(mu_q)
    precision_p = np.linalg.inv(cov_p)
    diff = mu_p - mu_q
    return 0.5 * (np.trace(precision_p @ cov_q) + diff @ precision_p @ diff - d
                  + np.log(np.linalg.det(cov_p) / np.linalg.det(cov_q)))


# %% [markdown]
# ## From free numbers to a covariance: `FillScaleTriL`, step by step
#
# A network layer outputs unconstrained real numbers, but a covariance matrix must be symmetric and
# positive definite. TFP parameterises a full-covariance Gaussian by a lower-triangular **scale** $L$
# with a positive diagonal, so that $\Sigma = LL^\top$ is positive definite automatically. A
# $d$-dimensional $L$ has $d(d+1)/2$ free entries; `tfb.FillScaleTriL` maps that many real numbers to
# such an $L$. `tfp_vae.MultivariateNormalTriL` (like `tfp.layers.MultivariateNormalTriL`) uses
# it with `diag_shift=1e-5`, so the layer before it needs
# `MultivariateNormalTriL.params_size(d)` $= d + d(d+1)/2$ outputs (mean + scale).

# %%
d = 3
print("params_size(3) =", tfp_vae.MultivariateNormalTriL.params_size(d), "= 3 (mean) + 6 (scale)")
raw = tf.constant([0.3, -1.2, 0.8, 2.0, -0.5, -3.0])  # what a Dense layer might output
print("raw numbers:", raw.numpy())

# %% [markdown]
# **Step 1 — `FillTriangular`** places the $d(d+1)/2$ numbers into a lower-triangular matrix (in TFP's
# own order, which starts from the last row, not row by row). Nothing
# is constrained yet: the diagonal can be negative or zero, and then $LL^\top$ would be singular or
# the sign of $L$ ambiguous.

# %%
filled = tfb.FillTriangular()(raw)
print(filled.numpy())

# %% [markdown]
# **Step 2 — `TransformDiagonal(Softplus)` plus a shift** makes the diagonal strictly positive:
# $L_{ii} = \operatorname{softplus}(\tilde L_{ii}) + 10^{-5}$. Off-diagonal entries stay free, because
# they are what encode correlations. The shift keeps $\log\det\Sigma = 2\sum_i\log L_{ii}$ finite even if
# the softplus underflows.

# %%
softplus_diag = tf.linalg.set_diag(filled, tf.math.softplus(tf.linalg.diag_part(filled)) + 1e-5)
print(softplus_diag.numpy())

# %% [markdown]
# `FillScaleTriL` is exactly these two steps chained, as the check below confirms; and the matrix
# $\Sigma = LL^\top$ it implies is positive definite (all eigenvalues $> 0$) whatever the raw numbers were.

# %%
fill_scale_tril = tfb.FillScaleTriL(diag_bijector=tfb.Softplus(), diag_shift=1e-5)
scale_tril = fill_scale_tril(raw)
print("FillScaleTriL equals the two steps:", np.allclose(scale_tril, softplus_diag))
covariance = (scale_tril @ tf.transpose(scale_tril)).numpy()
print("covariance L L^T:\n", covariance)
print("eigenvalues:", np.linalg.eigvalsh(covariance))
assert np.allclose(scale_tril, softplus_diag) and np.all(np.linalg.eigvalsh(covariance) > 0)

# %% [markdown]
# Being a bijector, it also runs backwards: any valid $L$ has exactly one vector of raw numbers.
# That is what lets an optimiser (or a network) move freely in $\mathbb R^{6}$ while always describing a
# valid Gaussian.

# %%
print("inverse(L) recovers the raw numbers:", fill_scale_tril.inverse(scale_tril).numpy())
assert np.allclose(fill_scale_tril.inverse(scale_tril), raw, atol=1e-5)

# %% [markdown]
# ## A full-covariance Gaussian against a diagonal one
#
# Take a strongly correlated 2-D Gaussian $p$ (a `MultivariateNormalTriL` whose scale comes from
# `FillScaleTriL`) and the diagonal Gaussian $q_{\text{diag}}$ with the *same* means and marginal
# variances, i.e. $p$ with its correlation removed. The KL formula above and `tfd.kl_divergence` agree
# for TriL and Diag Gaussians alike.

# %%
p = tfd.MultivariateNormalTriL(
    loc=[0.0, 0.0], scale_tril=fill_scale_tril(tf.constant([1.0, 1.6, 0.2])))
cov_p = p.covariance().numpy()
q_diag = tfd.MultivariateNormalDiag(loc=[0.0, 0.0], scale_diag=np.sqrt(np.diag(cov_p)))
cov_q = q_diag.covariance().numpy()
corr = cov_p[0, 1] / np.sqrt(cov_p[0, 0] * cov_p[1, 1])
print("cov_p:\n", cov_p, f"\ncorrelation {corr:.3f}")
print("KL(q_diag || p): formula", kl_mvn(np.zeros(2), cov_q, np.zeros(2), cov_p),
      " tfd", float(tfd.kl_divergence(q_diag, p)))
print("KL(p || q_diag): formula", kl_mvn(np.zeros(2), cov_p, np.zeros(2), cov_q),
      " tfd", float(tfd.kl_divergence(p, q_diag)))
assert np.isclose(kl_mvn(np.zeros(2), cov_q, np.zeros(2), cov_p), tfd.kl_divergence(q_diag, p),
                  rtol=1e-4)
assert np.isclose(kl_mvn(np.zeros(2), cov_p, np.zeros(2), cov_q), tfd.kl_divergence(p, q_diag),
                  rtol=1e-4)

# %% [markdown]
# ## KL is not symmetric
#
# The two numbers above differ: $\mathrm{KL}(q\,\|\,p)$ averages $\log q/p$ **where $q$ puts its mass**,
# $\mathrm{KL}(p\,\|\,q)$ where $p$ does. $q_{\text{diag}}$ spreads mass into the two corners that $p$ considers
# nearly impossible, and $\mathrm{KL}(q\|p)$ punishes exactly that. The plot shows the densities and
# where each direction's integrand $q\log(q/p)$ or $p\log(p/q)$ is large.

# %%
grid = np.linspace(-4.5, 4.5, 181).astype(np.float32)
zx, zy = np.meshgrid(grid, grid)
points = np.stack([zx, zy], axis=-1)
log_p, log_q = p.log_prob(points).numpy(), q_diag.log_prob(points).numpy()


def ellipse(cov, scale=2.0, n=200):
    # The 2-standard-deviation contour of N(0, cov).
    angles = np.linspace(0, 2 * np.pi, n)
    return scale * np.linalg.cholesky(cov) @ np.stack([np.cos(angles), np.sin(angles)])


fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), sharey=True)
panels = [(np.exp(log_p), "density of p (contour) and q_diag (dashed)"),
          (np.exp(log_q) * (log_q - log_p), "integrand of KL(q_diag || p)"),
          (np.exp(log_p) * (log_p - log_q), "integrand of KL(p || q_diag)")]
for ax, (values, title) in zip(axes, panels):
    image = ax.contourf(zx, zy, values, levels=30, cmap="viridis")
    fig.colorbar(image, ax=ax, shrink=0.85)
    ax.plot(*ellipse(cov_p), color="white", lw=1.5, label="p, 2 sd")
    ax.plot(*ellipse(cov_q), color="orange", lw=1.5, ls="--", label="q_diag, 2 sd")
    ax.set_title(title, fontsize=10)
    ax.set_aspect("equal")
    ax.set_xlabel("$z_0$")
axes[0].set_ylabel("$z_1$")
axes[0].legend(loc="lower right", fontsize=8)
plt.tight_layout()
plt.show()


# %% [markdown]
# The middle panel's mass sits in the corners where $q_{\text{diag}}$ has mass and $p$ has almost none:
# $\mathrm{KL}(q\|p)$ is **zero-forcing** — it is large whenever $q$ puts mass where $p$ is small, so a
# $q$ that minimises it is pushed to zero wherever $p$ nearly is. The right panel is comparatively
# flat: $\mathrm{KL}(p\|q)$ is **mass-covering** — it only minds places where $p$ has mass and $q$ has
# little. A VAE minimises $\mathrm{KL}(q(z\mid x)\,\|\,\cdot)$, the zero-forcing direction, so the next
# experiment is the one that matters for VAEs.
#
# ## Fitting a diagonal $q$ to a correlated $p$
#
# We now *learn* a diagonal Gaussian $q$ by gradient descent on $\mathrm{KL}(q\,\|\,p)$, exactly as a
# VAE's encoder does (but without the network). The mean is a plain `tf.Variable`; the standard
# deviations must stay positive, so they are a `tfp.util.TransformedVariable`: the optimiser updates an
# unconstrained variable and the value seen by the distribution is `Softplus` of it.

# %%
def fit_diagonal(kl_direction, steps=FIT_STEPS, seed=0):
    tf.random.set_seed(seed)
    loc = tf.Variable([1.0, -1.0], name="loc")
    scale = tfp.util.TransformedVariable([1.0, 1.0], bijector=tfb.Softplus(), name="scale")
    q = tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale)
    optimizer = tf.optimizers.Adam(0.05)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = kl_direction(q)
        gradients = tape.gradient(loss, q.trainable_variables)
        optimizer.apply_gradients(zip(gradients, q.trainable_variables))
        return loss

    losses = [float(step()) for _ in range(steps)]
    return q, np.array(losses)


q_reverse, losses_reverse = fit_diagonal(lambda q: tfd.kl_divergence(q, p))
print("trainable variables:", [v.name for v in q_reverse.trainable_variables])
print("final KL(q || p):", losses_reverse[-1])

# %% [markdown]
# The optimum has a closed form we can check against: minimising $\mathrm{KL}(q\|p)$ over diagonal
# Gaussians gives $\mu_q = \mu_p$ and $\sigma_{q,i}^2 = 1/(\Sigma_p^{-1})_{ii}$, the *conditional*
# variance of $z_i$ given the other coordinates — not the marginal variance $(\Sigma_p)_{ii}$. For
# contrast we also fit the other direction, $\mathrm{KL}(p\|q)$, whose optimum matches the marginal
# variances (moment matching). (In two dimensions both optima happen to cost the same,
# $-\tfrac12\log(1-\rho^2)$ nats for correlation $\rho$; the *shapes* of the two fits are what differ.)

# %%
q_forward, losses_forward = fit_diagonal(lambda q: tfd.kl_divergence(p, q))
rows = [("p marginal variance  (Sigma_p)_ii", np.diag(cov_p)),
        ("theory for KL(q||p): 1/(Sigma_p^-1)_ii", 1 / np.diag(np.linalg.inv(cov_p))),
        ("fitted q, min KL(q||p)", q_reverse.variance().numpy()),
        ("fitted q, min KL(p||q)", q_forward.variance().numpy())]
for name, variances in rows:
    print(f"{name:>40}: {variances}")
print("fitted means:", q_reverse.mean().numpy(), q_forward.mean().numpy())
print(f"final KL(q||p) = {losses_reverse[-1]:.4f}, final KL(p||q) = {losses_forward[-1]:.4f}, "
      f"-1/2 log(1 - rho^2) = {-0.5 * np.log(1 - corr**2):.4f}")

assert np.allclose(q_reverse.variance(), 1 / np.diag(np.linalg.inv(cov_p)), rtol=0.01)
assert np.allclose(q_forward.variance(), np.diag(cov_p), rtol=0.01)

# %% [markdown]
# The question the last plot answers: **what does a diagonal posterior trained by $\mathrm{KL}(q\|p)$
# get wrong?** Left: both optimisations converge to the same cost. Right: the $\mathrm{KL}(q\|p)$ fit
# matches $p$'s *precision* along each coordinate, $\sigma_{q,i}^2 = 1/\Lambda_{ii}$ with
# $\Lambda = \Sigma_p^{-1}$, not its marginal variance. So it is narrower than $p$ along each coordinate
# axis and, above all, along $p$'s long, correlated axis: it gives up $p$'s diagonal tails, where a
# wider axis-aligned $q$ would put mass in the corners that $p$ forbids. But it is *not* an ellipse
# inside $p$: across the correlation, along $p$'s short axis, it is wider than $p$, and its contour
# crosses outside $p$'s. The $\mathrm{KL}(p\|q)$ fit covers $p$'s marginal spread instead, at the price
# of mass where $p$ has none.

# %%
fig, (ax_loss, ax_fit) = plt.subplots(1, 2, figsize=(13, 4.5),
                                      gridspec_kw={"width_ratios": [1, 1]})
ax_loss.plot(losses_reverse, label="KL(q || p)")
ax_loss.plot(losses_forward, ls="--", label="KL(p || q)")
ax_loss.axhline(-0.5 * np.log(1 - corr**2), color="gray", lw=1, ls=":",
                label="optimum, $-\\frac{1}{2}\\log(1-\\rho^2)$")
ax_loss.set_xlabel("optimisation step")
ax_loss.set_ylabel("KL (nats)")
ax_loss.set_title("training the diagonal q")
ax_loss.legend()

samples = p.sample(800, seed=1).numpy()
ax_fit.scatter(samples[:, 0], samples[:, 1], s=3, alpha=0.3, color="gray", label="samples of p")
ax_fit.plot(*ellipse(cov_p), color="black", lw=2, label="p")
ax_fit.plot(*ellipse(q_reverse.covariance().numpy()), color="C0", lw=2,
            label="q fitted by min KL(q || p)")
ax_fit.plot(*ellipse(q_forward.covariance().numpy()), color="C1", lw=2, ls="--",
            label="q fitted by min KL(p || q)")
ax_fit.set_aspect("equal")
ax_fit.set_xlim(-5, 5)
ax_fit.set_ylim(-5, 5)
ax_fit.set_xlabel("$z_0$")
ax_fit.set_ylabel("$z_1$")
ax_fit.set_title("2-sd contours")
ax_fit.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=9)
plt.tight_layout()
plt.show()

# %% [markdown]
# The same in numbers: the variance of $p$ and of the $\mathrm{KL}(q\|p)$ fit along $p$'s two principal
# axes (the eigenvectors of $\Sigma_p$). If $q$ were inside $p$, $\Sigma_p - \Sigma_q$ would have no
# negative eigenvalue.

# %%
p_variances, p_axes = np.linalg.eigh(cov_p)  # ascending: the short axis first
cov_fit = q_reverse.covariance().numpy()
for name, axis, p_variance in zip(["short", "long"], p_axes.T, p_variances):
    print(f"along p's {name} axis: variance of p {p_variance:.3f}, "
          f"of q fitted by min KL(q||p) {axis @ cov_fit @ axis:.3f}")
print("eigenvalues of Sigma_p - Sigma_q:", np.linalg.eigvalsh(cov_p - cov_fit))
assert p_axes[:, 0] @ cov_fit @ p_axes[:, 0] > p_variances[0]  # wider than p across
assert p_axes[:, 1] @ cov_fit @ p_axes[:, 1] < p_variances[1]  # narrower along
assert np.all(np.diag(cov_fit) < np.diag(cov_p))  # narrower on each coordinate axis

# %% [markdown]
# ## When $p$ has two modes: mode-seeking
#
# With a unimodal $p$, zero-forcing shows as lost variance along the correlation. With two
# well-separated modes it shows as **mode-seeking**: a single Gaussian $q$ cannot cover both without
# putting mass in the empty valley between them, so minimising $\mathrm{KL}(q\|p)$ settles on one mode.
# Take $p = \tfrac12\mathcal N(-2, 0.6^2) + \tfrac12\mathcal N(2, 0.6^2)$ (a `tfd.MixtureSameFamily`).
# There is no closed-form KL between a Gaussian and a mixture, so we minimise a Monte Carlo estimate,
# $\frac1S\sum_s[\log q(z_s) - \log p(z_s)]$ with $z_s = \mu + \sigma\epsilon_s$: the same
# reparameterised samples a VAE uses (tutorial 2), so the gradient flows into $\mu$ and $\sigma$.
# We start from two places.

# %%
mixture = tfd.MixtureSameFamily(tfd.Categorical(probs=[0.5, 0.5]),
                                tfd.Normal(loc=[-2.0, 2.0], scale=[0.6, 0.6]))


def fit_gaussian_to_mixture(start_loc, steps=FIT_STEPS):
    loc = tf.Variable(start_loc)
    scale = tfp.util.TransformedVariable(1.0, bijector=tfb.Softplus())
    q = tfd.Normal(loc, scale)
    optimizer = tf.optimizers.Adam(0.05)

    @tf.function
    def step(seed):
        with tf.GradientTape() as tape:
            z = q.sample(256, seed=seed)  # reparameterised: z = loc + scale * epsilon
            loss = tf.reduce_mean(q.log_prob(z) - mixture.log_prob(z))
        gradients = tape.gradient(loss, q.trainable_variables)
        optimizer.apply_gradients(zip(gradients, q.trainable_variables))

    for index in range(steps):
        step(tf.constant([index, 0]))
    return q


def kl_to_mixture(q, num_samples=100_000):
    # KL(q || mixture) by Monte Carlo, with its standard error.
    z = q.sample(num_samples, seed=(1, 2))
    log_ratio = q.log_prob(z) - mixture.log_prob(z)
    return float(tf.reduce_mean(log_ratio)), float(tf.math.reduce_std(log_ratio)) / num_samples**0.5


moment_matched = tfd.Normal(0.0, float(np.sqrt(mixture.variance())))  # the min KL(p || q) fit
fits = {"start at 1.0": fit_gaussian_to_mixture(1.0),
        "start at 0.5": fit_gaussian_to_mixture(0.5),
        "min KL(p||q): moment matching": moment_matched}
for name, q in fits.items():
    kl, error = kl_to_mixture(q)
    print(f"{name:>30}: q = N({float(q.mean()):+.3f}, {float(q.stddev()):.3f}^2), "
          f"KL(q || p) = {kl:.4f} ± {error:.4f}")
print(f"log 2 = {np.log(2):.4f}")
kl_mode, _ = kl_to_mixture(fits["start at 1.0"])
assert abs(float(fits["start at 1.0"].mean()) - 2.0) < 0.05
assert abs(float(fits["start at 1.0"].stddev()) - 0.6) < 0.05
assert abs(kl_mode - np.log(2)) < 0.01 and kl_mode < kl_to_mixture(moment_matched)[0]

# %% [markdown]
# Started at 1.0, $q$ locks onto the right-hand mode and matches it; its KL is almost exactly
# $\log 2$, the price of ignoring the other half of $p$'s mass. The moment-matched Gaussian, the
# $\mathrm{KL}(p\|q)$ optimum, straddles the valley and pays more. Started at 0.5, the fit stops at a
# broad compromise between the modes: a *local* optimum, worse than the single mode. Which mode (or
# compromise) $\mathrm{KL}(q\|p)$ finds depends on where the optimisation starts.

# %%
z_line = np.linspace(-5, 5, 400, dtype=np.float32)
fig, ax = plt.subplots(figsize=(8, 3.6))
ax.fill_between(z_line, mixture.prob(z_line), color="gray", alpha=0.3, label="p (two modes)")
for (name, q), style in zip(fits.items(), ["-", ":", "--"]):
    ax.plot(z_line, q.prob(z_line), ls=style, lw=2, label=name)
ax.set_xlabel("z")
ax.set_ylabel("density")
ax.legend(fontsize=9)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## What this means for a VAE
#
# * A VAE's encoder outputs $q(z\mid x)$ and its training minimises $\mathrm{KL}(q\,\|\,p(z\mid x))$
#   (tutorial 6: the gap between the ELBO and $\log p(x)$), the zero-forcing direction. A *diagonal*
#   posterior then matches the true posterior's conditional variances: it under-estimates the
#   spread along directions in which the true posterior is correlated, and it picks one mode of a
#   multimodal one. A `MultivariateNormalTriL` posterior (tutorials 3 and 6) can represent the
#   correlation, at the cost of $d(d+1)/2$ scale parameters per example instead of $d$.
# * The positivity trick is the same in both places: the optimiser (or the encoder network) produces
#   unconstrained numbers and a bijector (`Softplus`, `FillScaleTriL`) turns them into valid scales.
# * Against the $\mathcal N(0, I)$ prior the KL has a closed form for both Diag and TriL posteriors;
#   `tfp_vae.isotropic_gaussian_prior` writes the prior as a `MultivariateNormalDiag` so that
#   `tfd.kl_divergence` finds it for either:

# %%
prior = tfp_vae.isotropic_gaussian_prior(2)
print("KL(p || N(0, I)) analytic:", float(tfp_vae.analytic_kl(p, prior)),
      " formula:", kl_mvn(np.zeros(2), cov_p, np.zeros(2), np.eye(2)))
z = p.sample(10_000, seed=(0, 0))
log_ratio = p.log_prob(z) - prior.log_prob(z)  # what tfp_vae.monte_carlo_kl averages
print(f"Monte Carlo, 10,000 samples: {float(tfp_vae.monte_carlo_kl(p, prior, 10_000, seed=0)):.4f}"
      f" ± {float(tf.math.reduce_std(log_ratio)) / 100:.4f}")
assert np.isclose(float(tfp_vae.analytic_kl(p, prior)),
                  kl_mvn(np.zeros(2), cov_p, np.zeros(2), np.eye(2)), rtol=1e-5)
assert abs(float(tfp_vae.monte_carlo_kl(p, prior, 10_000, seed=0))
           - float(tfp_vae.analytic_kl(p, prior))) < 4.5 * float(tf.math.reduce_std(log_ratio)) / 100

# %% [markdown]
# Next: [tutorial 2](02_from_autoencoder_to_vae.ipynb) puts this KL into a model.
