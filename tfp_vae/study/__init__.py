"""The KL-estimator study: what analytic versus Monte Carlo KL costs and buys, with numbers.

`run_study` measures every estimator of `tfp_vae.kl.KL_ESTIMATORS` in three parts and writes a
report folder (`report.md`, one CSV per measurement, PNG plots):

1. **Estimator level** (no training): Gaussian posteriors against `N(0, I)` over latent sizes,
   distances from the prior, posterior types and sample counts — bias, spread, gradient SNR and
   cost, next to the closed forms.
2. **End to end**: the same VAE trained with every KL choice (estimator, sample count, and
   attachment: loss function, add-loss layer, activity regularizer) from the same initial
   weights and the same batches.
3. **Learnable priors** (no training): every Monte Carlo estimator against fixed mixture and
   flow priors (`tfp_vae.priors`), where no closed form exists — bias against a 10⁶-sample
   reference, spread, gradient SNR and cost.

| module | owns |
|---|---|
| `theory` | closed forms: true KL, its gradient, each estimator's variance |
| `estimators` | part 1, the estimator measurements |
| `training` | part 2, end-to-end training through `tfp_vae.runs.train_run` |
| `learnable_priors` | part 3, Monte Carlo KL against mixture and flow priors |
| `rows` | the typed rows (`EstimatorRow`, `TrainingRow`, `CurveRow`, `LearnablePriorRow`), CSV |
| `report` | findings and markdown tables of `report.md` |
| `plots` | the PNG figures |
| `runner` | `run_study`, its settings, and the one argument parser |

#### Examples

```python
from tfp_vae.study import run_study
result = run_study("kl_study", quick=True, seed=0)
print(result.report_path.read_text()[:500])
```

From the shell: `tfp-vae compare-kl --quick --out kl_study` (or `python -m tfp_vae.study`).
"""

from tfp_vae.lazy import lazy_exports

# Public name -> the module that defines it; imported on first use (PEP 562), so that
# `python -m tfp_vae.study` can set TensorFlow's log level before TensorFlow is imported.
_EXPORTS = {
    **dict.fromkeys(["CurveRow", "EstimatorRow", "LearnablePriorRow", "TrainingRow", "read_rows",
                     "write_rows"], "rows"),
    **dict.fromkeys(["KLStudyResult", "StudySettings", "configure_parser", "main",
                     "run_from_args", "run_study"], "runner"),
    **dict.fromkeys(["GaussianKLTheory", "gaussian_estimator_variances"], "theory"),
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
