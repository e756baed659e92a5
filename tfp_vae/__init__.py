"""tfp_vae: variational autoencoders on TensorFlow Probability's probabilistic Keras layers.

The toolkit owns the Keras choice (`tfp_vae.keras` is `tf_keras`, the Keras 2 that TFP needs),
attaches the KL term at the right scale however it is attached, and builds every model from a
JSON-serialisable `ModelConfig`; `train_run` trains one end to end into a `RunDir`.

The names below are imported on first use (PEP 562), so `import tfp_vae.cli` does not load
TensorFlow before the command line has set TensorFlow's log level.
"""

from __future__ import annotations

from tfp_vae.lazy import lazy_exports

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    **dict.fromkeys(["check_tf_keras", "keras", "tfd", "tfpl"], "backend"),
    **dict.fromkeys(["ModelConfig", "TrainingConfig"], "config"),
    **dict.fromkeys(["ImageDataset", "binarize", "load_dataset", "load_splits", "make_dataset"],
                    "data"),
    **dict.fromkeys(["IndependentBernoulli", "IndependentNormal", "InverseAutoregressiveFlow",
                     "MultivariateNormalDiag", "MultivariateNormalTriL", "likelihood_head",
                     "posterior_head"], "heads"),
    **dict.fromkeys(["KL_ESTIMATORS", "KLDivergenceAddLoss", "KLDivergenceRegularizer",
                     "analytic_kl", "get_kl_estimator", "kl_weight_variables", "mc_entropy_kl",
                     "mc_ratio_cv_kl", "mc_stl_kl", "monte_carlo_kl"], "kl"),
    **dict.fromkeys(["ElboTerms", "IwaeTerms", "log_importance_weights", "negative_elbo",
                     "negative_iwae_bound", "reconstruction_nll"], "losses"),
    **dict.fromkeys(["VAE", "Autoencoder", "build_decoder", "build_encoder", "build_model"],
                    "models"),
    **dict.fromkeys(["NETWORKS"], "networks"),
    **dict.fromkeys(["PRIORS", "FlowPrior", "GaussianPrior", "MixturePrior", "Prior",
                     "VampPrior", "isotropic_gaussian_prior", "make_prior"], "priors"),
    **dict.fromkeys(["KLWeightScheduler", "linear_kl_warmup", "train_loop"], "training"),
    **dict.fromkeys(["RunDir"], "rundir"),
    **dict.fromkeys(["load_test_split", "saved_run"], "finished_runs"),
    **dict.fromkeys(["RunResult", "train_run"], "runs"),
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
