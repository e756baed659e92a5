"""tfp_vae: variational autoencoders on TensorFlow Probability's probabilistic Keras layers.

The toolkit owns the Keras choice (`tfp_vae.keras` is `tf_keras`, the Keras 2 that TFP needs),
attaches the KL term at the right scale however it is attached, and builds every model from a
JSON-serialisable `ModelConfig`.
"""

from tfp_vae.backend import check_tf_keras, keras, tfd, tfpl
from tfp_vae.config import ModelConfig
from tfp_vae.data import ImageDataset, load_dataset, make_dataset
from tfp_vae.heads import (
    IndependentBernoulli,
    IndependentNormal,
    MultivariateNormalDiag,
    MultivariateNormalTriL,
    likelihood_head,
    posterior_head,
)
from tfp_vae.kl import (
    KL_ESTIMATORS,
    KLDivergenceAddLoss,
    KLDivergenceRegularizer,
    analytic_kl,
    get_kl_estimator,
    kl_weight_variables,
    mc_entropy_kl,
    mc_ratio_cv_kl,
    mc_stl_kl,
    monte_carlo_kl,
)
from tfp_vae.losses import ElboTerms, negative_elbo, reconstruction_nll
from tfp_vae.models import VAE, Autoencoder, build_decoder, build_encoder, build_model
from tfp_vae.networks import NETWORKS
from tfp_vae.priors import isotropic_gaussian_prior
from tfp_vae.training import KLWeightScheduler, linear_kl_warmup, train_loop

__version__ = "0.1.0"

__all__ = [
    "KL_ESTIMATORS",
    "NETWORKS",
    "VAE",
    "Autoencoder",
    "ElboTerms",
    "ImageDataset",
    "IndependentBernoulli",
    "IndependentNormal",
    "KLDivergenceAddLoss",
    "KLDivergenceRegularizer",
    "KLWeightScheduler",
    "ModelConfig",
    "MultivariateNormalDiag",
    "MultivariateNormalTriL",
    "analytic_kl",
    "build_decoder",
    "build_encoder",
    "build_model",
    "check_tf_keras",
    "get_kl_estimator",
    "isotropic_gaussian_prior",
    "keras",
    "kl_weight_variables",
    "likelihood_head",
    "linear_kl_warmup",
    "load_dataset",
    "make_dataset",
    "mc_entropy_kl",
    "mc_ratio_cv_kl",
    "mc_stl_kl",
    "monte_carlo_kl",
    "negative_elbo",
    "posterior_head",
    "reconstruction_nll",
    "tfd",
    "tfpl",
    "train_loop",
]
