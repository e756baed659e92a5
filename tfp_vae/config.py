"""`ModelConfig` and `TrainingConfig`: complete, JSON round-trippable descriptions of a model
and of a training run.

The CLI, persistence, recipes and notebooks build models and runs only from these configs, so a
saved pair of configs plus weights is enough to rebuild a model exactly and to resume a run.
Spellings are translated here and nowhere else: `canonical_name` turns the command line's
`fashion-mnist`, `loss-fn`, `multi-worker` into the Python names `fashion_mnist`, `loss`,
`multi_worker`, and `cli_name` goes back.

Every field describes its own command-line flag in its metadata (`tfp-vae train` builds its
flags from them, so a new field gets a flag): `help`, `choices` (also what the config accepts),
`minimum` of an integer (1 unless given; `None` for any), `positive` for a number, and where the
flag is not `--field-name`, `flag` (`None`: no flag), `aliases`, `metavar`, `nargs`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from os import PathLike
from typing import Any

from tfp_vae.data import BINARIZATIONS, DATASETS, canonical_data_source, source_defaults
from tfp_vae.heads import LIKELIHOODS, POSTERIORS
from tfp_vae.kl import KL_ESTIMATORS, MONTE_CARLO_ESTIMATORS
from tfp_vae.losses import GRADIENT_ESTIMATORS, OBJECTIVES
from tfp_vae.networks import NETWORKS, network_options
from tfp_vae.priors import PRIORS, prior_options

__all__ = [
    "DECAYING_SCHEDULES",
    "DTYPE_POLICIES",
    "KL_ATTACHMENTS",
    "LEARNING_RATE_SCHEDULES",
    "MODEL_KINDS",
    "OPTIMIZERS",
    "STRATEGIES",
    "ModelConfig",
    "TrainingConfig",
    "canonical_name",
    "cli_name",
    "fitted_configs",
    "flag_name",
]

KL_ATTACHMENTS = ("loss", "add_loss", "regularizer")
DTYPE_POLICIES = ("float32", "mixed_bfloat16")
MODEL_KINDS = ("vae", "autoencoder")
OPTIMIZERS = ("adam", "adamax", "rmsprop", "sgd")
LEARNING_RATE_SCHEDULES = ("constant", "cosine", "exponential", "burda")
# The schedules that decay to `TrainingConfig.final_learning_rate` over all epochs.
DECAYING_SCHEDULES = ("cosine", "exponential")
STRATEGIES = ("default", "mirrored", "multi_worker")
# Command-line spellings that are not just dashes for underscores.
_CLI_SPELLINGS = {"loss": "loss-fn"}


def canonical_name(name: str) -> str:
    """The Python spelling of a choice typed on the command line (`'loss-fn'` -> `'loss'`)."""
    if not isinstance(name, str):
        return name
    key = name.replace("-", "_")
    return {cli.replace("-", "_"): py for py, cli in _CLI_SPELLINGS.items()}.get(key, key)


def cli_name(name: str) -> str:
    """The command-line spelling of a Python choice (`'fashion_mnist'` -> `'fashion-mnist'`)."""
    return _CLI_SPELLINGS.get(name, name.replace("_", "-"))


def flag_name(name: str) -> str | None:
    """The command-line flag of a config field, e.g. `'num_samples'` -> `'--kl-samples'`.

    Args:
      name: A field of `ModelConfig` or `TrainingConfig`.

    Returns:
      The flag; a `True`-by-default switch is turned off (`'plots'` -> `'--no-plots'`).
      `None` for a field without a flag, or no such field.
    """
    for config in (ModelConfig, TrainingConfig):
        for spec in dataclasses.fields(config):
            if spec.name == name and spec.metadata.get("flag", "") is not None:
                default = "no-" + cli_name(name) if spec.default is True else cli_name(name)
                return "--" + spec.metadata.get("flag", default)
    return None


def _field(default: Any, help: str | Callable[[], str] | None = None, **flag: Any) -> Any:
    """A config field whose metadata describes its command-line flag (see the module doc).

    `help` may be a function returning the text, for lists that a registry extends.
    """
    if isinstance(default, dict):
        return field(default_factory=dict, metadata={"help": help, **flag})
    return field(default=default, metadata={"help": help, **flag})


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"Config values must be finite numbers, got {value}.")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class _JsonConfig:
    """Strict JSON round trip shared by the config dataclasses."""

    def _check_int(self, name: str, minimum: int | None = 1, optional: bool = False) -> None:
        value = getattr(self, name)
        if optional and value is None:
            return
        if not _is_int(value) or (minimum is not None and value < minimum):
            what = {None: "an integer", 0: "an integer >= 0", 1: "a positive integer"}.get(
                minimum, f"an integer >= {minimum}")
            raise ValueError(f"{type(self).__name__}.{name} must be {what}"
                             f"{' or None' if optional else ''}, got {value!r}.")

    def _check_number(self, name: str, positive: bool = False, optional: bool = False) -> None:
        value = getattr(self, name)
        if optional and value is None:
            return
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) \
            and math.isfinite(value) and (value > 0 if positive else value >= 0)
        if not ok:
            raise ValueError(f"{type(self).__name__}.{name} must be a "
                             f"{'positive' if positive else 'non-negative'} number (finite)"
                             f"{' or None' if optional else ''}, got {value!r}.")
        object.__setattr__(self, name, float(value))

    def _check_choice(self, name: str, allowed) -> None:
        value = canonical_name(getattr(self, name))
        if hasattr(allowed, "canonical"):
            try:
                value = allowed.canonical(value)
            except ValueError:
                value = None
        if value is None or value not in tuple(allowed):
            raise ValueError(f"{type(self).__name__}.{name} must be one of "
                             f"{sorted(allowed)}, got {getattr(self, name)!r}.")
        object.__setattr__(self, name, value)

    def _check_fields(self) -> None:
        """Checks every choice, integer, number and flag field by its type and metadata."""
        for spec in dataclasses.fields(self):
            kind, optional = spec.type.split(" | ")[0], spec.type.endswith("| None")
            if "choices" in spec.metadata:
                self._check_choice(spec.name, spec.metadata["choices"])
            elif kind == "int":
                self._check_int(spec.name, spec.metadata.get("minimum", 1), optional)
            elif kind == "float":
                self._check_number(spec.name, spec.metadata.get("positive", False), optional)
            elif kind == "bool":
                value = getattr(self, spec.name)
                if not isinstance(value, bool) and not (optional and value is None):
                    raise ValueError(f"{type(self).__name__}.{spec.name} must be true or false, "
                                     f"got {value!r}.")

    def replace(self, **changes: Any):
        """A copy with some fields changed (validated like a new config)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-compatible dict."""
        return _jsonable(dataclasses.asdict(self))

    def to_json(self, indent: int | None = 2) -> str:
        """The config as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """Builds a config from a dict, rejecting unknown keys.

        Raises:
          ValueError: If `data` has keys that are not config fields, or a value is invalid.
        """
        what = "model" if cls.__name__ == "ModelConfig" else "training"
        if not isinstance(data, dict):
            raise ValueError(f"A {what} config must be a JSON object, got "
                             f"{type(data).__name__}.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown {what} config key(s) {unknown}; known keys are "
                             f"{sorted(known)}.")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str):
        """Builds a config from a JSON string (see `from_dict`).

        Raises:
          ValueError: If the text is not valid JSON or not a valid config.
        """
        what = "model" if cls.__name__ == "ModelConfig" else "training"
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"The {what} config is not valid JSON: {error}.") from None
        return cls.from_dict(data)


@dataclass(frozen=True)
class ModelConfig(_JsonConfig):
    """Everything needed to build a tfp_vae model.

    Attributes:
      kind: `'vae'` or `'autoencoder'` (deterministic baseline). Default: `'vae'`.
      input_shape: Shape of one image `(height, width, channels)`. Default: `(28, 28, 1)`.
      latent_dim: Latent dimension. Default: `2`.
      network: Body name in `tfp_vae.networks.NETWORKS`. Default: `'conv'`.
      network_options: Keyword options of the body, e.g. `{'filters': [64, 128]}`.
        Default: `{}`.
      posterior: `'diag'` or `'tril'`. Default: `'diag'`.
      posterior_flow: Layers of an inverse autoregressive flow after the posterior head; `0`
        means none. A flow posterior needs a Monte Carlo KL estimator that uses only its
        `log_prob` (`'mc'` or `'mc_ratio_cv'`). Default: `0`.
      prior: Name in `tfp_vae.priors.PRIORS`: `'gaussian'` (`N(0, I)`), or the learnable
        `'mixture'`, `'vamp'` and `'flow'`, which need a Monte Carlo KL estimator.
        Default: `'gaussian'`.
      prior_options: Keyword options of the prior, e.g. `{'num_components': 10}` (see
        `tfp_vae.priors.prior_options`). Default: `{}`.
      likelihood: `'bernoulli'`, `'normal'` or `'continuous_bernoulli'`. Default: `'bernoulli'`.
      kl_attachment: Where the KL enters the loss: `'loss'` (the loss function), `'add_loss'`
        (a `KLDivergenceAddLoss` layer) or `'regularizer'` (a `KLDivergenceRegularizer`).
        Default: `'loss'`.
      kl_estimator: Name in `tfp_vae.kl.KL_ESTIMATORS`. Default: `'analytic'`.
      num_samples: Posterior samples per example for the ELBO (and Monte Carlo KL), and the
        importance samples `k` of the IWAE bound. Default: `1`.
      objective: What training minimises: `'elbo'` (the negative ELBO) or `'iwae'` (the negative
        IWAE bound with `num_samples` importance samples; needs `kl_attachment='loss'`).
        Default: `'elbo'`.
      gradient_estimator: The IWAE bound's encoder gradient: `'reparameterized'` or
        `'doubly_reparameterized'` (DReG; needs `objective='iwae'` and no posterior flow).
        Default: `'reparameterized'`.
      beta: Initial KL weight. Default: `1.0`.
      dtype_policy: Keras dtype policy of the network bodies: `'float32'` or
        `'mixed_bfloat16'` (bfloat16 compute, float32 weights); distribution heads and losses
        always run in float32. Default: `'float32'`.

    Raises:
      ValueError: On construction, if any field is invalid; the message names the field.

    #### Examples

    ```python
    config = ModelConfig(latent_dim=16, posterior="tril", kl_attachment="regularizer")
    assert ModelConfig.from_json(config.to_json()) == config
    ```
    """

    kind: str = _field("vae", flag="model", choices=MODEL_KINDS)
    input_shape: tuple[int, ...] = _field((28, 28, 1), flag=None)
    latent_dim: int = 2
    network: str = _field("conv", choices=NETWORKS)
    network_options: dict[str, Any] = _field({}, flag=None)
    posterior: str = _field("diag", choices=POSTERIORS)
    posterior_flow: int = _field(0, "layers of an inverse autoregressive flow after the posterior "
                                 "(0: none; needs --kl-estimator mc or mc-ratio-cv)", minimum=0)
    prior: str = _field("gaussian", "gaussian is N(0, I); the learnable mixture, vamp and flow "
                        "priors need a Monte Carlo --kl-estimator", choices=PRIORS)
    prior_options: dict[str, Any] = _field({}, flag=None)
    likelihood: str = _field("bernoulli", choices=LIKELIHOODS)
    kl_attachment: str = _field("loss", choices=KL_ATTACHMENTS)
    kl_estimator: str = _field("analytic", choices=KL_ESTIMATORS)
    num_samples: int = _field(1, "posterior samples per example (Monte Carlo KL and "
                              "reconstruction; the k of --objective iwae)", flag="kl-samples")
    objective: str = _field("elbo", "what training minimises: the negative ELBO or the negative "
                            "IWAE bound with k = --kl-samples (the ELBO is still reported)",
                            choices=OBJECTIVES)
    gradient_estimator: str = _field("reparameterized", "the IWAE bound's encoder gradient "
                                     "(doubly-reparameterized: DReG)", choices=GRADIENT_ESTIMATORS)
    beta: float = 1.0
    dtype_policy: str = _field("float32", "network compute precision; distributions and losses "
                               "stay float32", choices=DTYPE_POLICIES)

    def __post_init__(self):
        if not isinstance(self.input_shape, (tuple, list)) or not all(
                _is_int(d) and d >= 1 for d in self.input_shape) or len(self.input_shape) != 3:
            raise ValueError("ModelConfig.input_shape must be (height, width, channels) of "
                             f"positive integers, got {self.input_shape!r}.")
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        for name in ("network_options", "prior_options"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"ModelConfig.{name} must be a dict, got "
                                 f"{type(getattr(self, name)).__name__}.")
            object.__setattr__(self, name, _jsonable(dict(getattr(self, name))))
        self._check_fields()
        for options, owner, allowed_options in (
                ("network_options", f"{self.network!r} network", network_options(self.network)),
                ("prior_options", f"{self.prior!r} prior", prior_options(self.prior))):
            unknown = sorted(set(getattr(self, options)) - set(allowed_options))
            if unknown:
                raise ValueError(f"ModelConfig.{options} has unknown key(s) {unknown} for the "
                                 f"{owner}; it takes {sorted(allowed_options)}.")
        self._check_combinations()

    def _check_combinations(self) -> None:
        monte_carlo = ", ".join(repr(name) for name in MONTE_CARLO_ESTIMATORS)
        if self.prior != "gaussian" and self.kl_estimator == "analytic":
            raise ValueError(f"ModelConfig.kl_estimator='analytic' has no closed form against "
                             f"the {self.prior!r} prior; choose a Monte Carlo estimator "
                             f"({monte_carlo}).")
        if self.posterior_flow and self.kl_estimator not in ("mc", "mc_ratio_cv"):
            raise ValueError(f"ModelConfig.kl_estimator={self.kl_estimator!r} needs a Gaussian "
                             "posterior (a closed-form KL or entropy, or tensor parameters); with "
                             "posterior_flow > 0 choose 'mc' or 'mc_ratio_cv'.")
        if self.objective == "iwae" and self.kl_attachment != "loss":
            raise ValueError("ModelConfig.objective='iwae' puts log p(z) - log q(z|x) inside the "
                             "bound, so it needs kl_attachment='loss', got "
                             f"{self.kl_attachment!r}.")
        if self.gradient_estimator == "doubly_reparameterized" and (
                self.objective != "iwae" or self.posterior_flow):
            raise ValueError("ModelConfig.gradient_estimator='doubly_reparameterized' is a "
                             "gradient of the IWAE bound for a Gaussian posterior; set "
                             "objective='iwae' and posterior_flow=0.")


@dataclass(frozen=True)
class TrainingConfig(_JsonConfig):
    """Everything about how a model is trained, evaluated and logged in a run.

    Together with a `ModelConfig` it describes a run completely: `tfp_vae.runs.train_run` needs
    nothing else, and `run.json` holds exactly these two configs, so `--resume` reads only them.

    Attributes:
      data: A built-in dataset name (`'mnist'`, `'fashion_mnist'`; dashes accepted), or the
        path of your own images: a folder of PNG/JPEG files (class sub-folders become labels) or
        a `.npy` / `.npz` file (see `tfp_vae.image_files`). Default: `'fashion_mnist'`.
      image_size: `(height, width)` to resize a folder's images to; `None` keeps their size.
        Default: `None`.
      data_dir: Folder with the built-in datasets' IDX files; `None` uses `$TFP_VAE_DATA_DIR`,
        else the Keras download. Default: `None`.
      binarization: Training images `'dynamic'` (resampled every epoch), `'fixed'` (drawn once
        from `seed`) or `'none'` (grey levels). Validation and test images are binarized once
        with seeds derived from `seed` unless `'none'`. Default: `'dynamic'`.
      epochs: Total epochs of the run. Default: `2`.
      batch_size: Global batch size. Default: `128`.
      optimizer: `'adam'`, `'adamax'`, `'rmsprop'` or `'sgd'`. Default: `'adam'`.
      learning_rate: Initial learning rate. Default: `1e-3`.
      learning_rate_schedule: `'constant'`, `'cosine'` or `'exponential'` decay from
        `learning_rate` to `final_learning_rate` over all `epochs`, or `'burda'`: Burda et
        al. (2016)'s steps, `3**i` epochs at `learning_rate * 10**(-i / 7)` for i = 0, ..., 7
        (3280 epochs; later epochs stay at the last rate, and a shorter run stops partway).
        Default: `'constant'`.
      final_learning_rate: The learning rate at the end of a `'cosine'` or `'exponential'`
        schedule: required for those two, `None` for the others. Default: `None`.
      seed: Seed of initialisation, shuffling, binarization and evaluation. Default: `0`.
      init_from: Start from the weights of this saved model (a finished run directory or a
        model directory) instead of a fresh initialisation; its network, latent size,
        posterior, prior and likelihood must match, while the objective, number of samples
        and KL estimator may differ (fine-tuning). The optimizer starts afresh. `None` starts
        from `seed`'s initialisation. Default: `None`.
      train_size: Use only the first N training images (after the validation split); `None`
        uses all. Default: `None`.
      validation_size: Hold out the last N images of the training set for validation, early
        stopping and model selection (the test set is never used for a choice). Default: `0`.
      test_size: Evaluate on the first N test images only; `None` uses all. Default: `None`.
      warmup_epochs: Epochs of linear KL warm-up to `ModelConfig.beta`. Epochs before the
        weight reaches `beta` never win model selection (their validation loss is β-weighted,
        so lower than the negative ELBO), and early stopping counts from the end of the
        warm-up. Default: `0`.
      strategy: `tf.distribute` strategy: `'default'`, `'mirrored'` or `'multi_worker'`.
        Default: `'default'`.
      jit_compile: Compile training steps with XLA; `None` picks per network (what measured
        faster on CPU), and never for a TriL posterior, which XLA cannot compile.
        Default: `None`.
      early_stopping_patience: Stop after this many epochs without a better validation loss
        (counted from the end of a KL warm-up); `None` never stops early. Needs
        `validation_size > 0`. Default: `None`.
      select_best: With a validation split, finish with the weights of the epoch with the best
        validation loss among the epochs after any KL warm-up (model selection) rather than
        the last epoch's. Default: `True`.
      tensorboard_dir: Write TensorBoard logs here (loss terms, KL weight, active units, image
        summaries; view with `tensorboard --logdir DIR`); `None` writes none. Default: `None`.
      tensorboard_image_every: Write TensorBoard image summaries (reconstructions, prior
        samples) every this many epochs, and at the last. Default: `1`.
      iwae_samples: Importance samples for the final test IWAE log-likelihood; `0` skips it.
        Default: `0`.
      plots: Write the run's PNG plots at the end. Default: `True`.

    Raises:
      ValueError: On construction, if any field is invalid; the message names the field.

    #### Examples

    ```python
    training = TrainingConfig(data="mnist", epochs=30, batch_size=100, validation_size=10000)
    assert TrainingConfig.from_json(training.to_json()) == training
    ```
    """

    data: str = _field("fashion_mnist", lambda: (
        f"a built-in dataset ({', '.join(cli_name(n) for n in DATASETS)}) or your own images: a "
        "folder of PNG/JPEG files (class sub-folders become labels) or a .npy / .npz file; own "
        "images get a fitting likelihood unless --likelihood is given"),
        metavar="SOURCE", aliases=("--dataset",))
    image_size: tuple[int, int] | None = _field(None, "resize a folder's images", nargs=2,
                                                metavar=("HEIGHT", "WIDTH"))
    data_dir: str | None = _field(None, "folder with the gzipped IDX files (none: "
                                  "$TFP_VAE_DATA_DIR, else the Keras download)", metavar="DIR")
    binarization: str = _field("dynamic", "training images: dynamic (resampled each epoch), "
                               "fixed (seeded) or none (grey levels); validation and test images "
                               "are binarized once, with the seed, unless none",
                               choices=BINARIZATIONS)
    epochs: int = _field(2, "total epochs (with --resume: train until this many are done)")
    batch_size: int = _field(128, "the global batch")
    optimizer: str = _field("adam", choices=OPTIMIZERS)
    learning_rate: float = _field(1e-3, positive=True)
    learning_rate_schedule: str = _field("constant", "constant; cosine or exponential decay to "
                                         "--final-learning-rate over all epochs; burda: 3^i "
                                         "epochs at the rate times 10^(-i/7), i = 0..7",
                                         choices=LEARNING_RATE_SCHEDULES)
    final_learning_rate: float | None = _field(None, "where a cosine/exponential schedule ends",
                                               positive=True)
    seed: int = _field(0, minimum=None)
    init_from: str | None = _field(None, "start from the weights of a saved model (a finished "
                                   "run or model directory) of the same architecture, e.g. to "
                                   "fine-tune with another objective", metavar="DIR")
    train_size: int | None = _field(None, "use only the first N training images (quick runs)")
    validation_size: int = _field(0, "hold out the last N training images for validation, "
                                  "early stopping and model selection", minimum=0)
    test_size: int | None = _field(None, "evaluate on the first N test images only (quick runs)")
    warmup_epochs: int = _field(0, "epochs of linear KL warm-up to --beta", minimum=0)
    strategy: str = _field("default", "tf.distribute strategy: default (one device), mirrored "
                           "(all local devices), multi-worker (MultiWorkerMirroredStrategy, from "
                           "TF_CONFIG)", choices=STRATEGIES)
    jit_compile: bool | None = _field(None, flag=None)
    early_stopping_patience: int | None = _field(None, "stop after N epochs without a better "
                                                 "validation loss")
    select_best: bool = _field(True, flag=None)
    tensorboard_dir: str | None = _field(None, "write TensorBoard logs to DIR (view: tensorboard "
                                         "--logdir DIR)", flag="tensorboard", metavar="DIR")
    tensorboard_image_every: int = _field(1, "TensorBoard image summaries every N epochs",
                                          metavar="N")
    iwae_samples: int = _field(0, "importance samples for the final test IWAE log-likelihood (0 "
                               "skips it)", minimum=0)
    plots: bool = _field(True, "skip the PNG plots")

    def __post_init__(self):
        object.__setattr__(self, "data", canonical_data_source(self.data))
        if self.image_size is not None:
            if not isinstance(self.image_size, (tuple, list)) or len(self.image_size) != 2 or \
                    not all(_is_int(d) and d >= 1 for d in self.image_size):
                raise ValueError("TrainingConfig.image_size must be (height, width) of positive "
                                 f"integers or None, got {self.image_size!r}.")
            object.__setattr__(self, "image_size", tuple(int(d) for d in self.image_size))
        for name in ("data_dir", "tensorboard_dir", "init_from"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (str, PathLike)) or not str(value)):
                raise ValueError(f"TrainingConfig.{name} must be a path or None, got {value!r}.")
            if value is not None:
                object.__setattr__(self, name, str(value))
        self._check_fields()
        decaying = self.learning_rate_schedule in DECAYING_SCHEDULES
        if decaying != (self.final_learning_rate is not None):
            raise ValueError("TrainingConfig.final_learning_rate must be set exactly when "
                             "learning_rate_schedule is 'cosine' or 'exponential', got "
                             f"{self.final_learning_rate!r} with "
                             f"{self.learning_rate_schedule!r}.")
        if self.early_stopping_patience is not None and self.validation_size == 0:
            raise ValueError("TrainingConfig.early_stopping_patience needs a validation split; "
                             "set validation_size > 0.")


def fitted_configs(model: dict[str, Any] | None = None, training: dict[str, Any] | None = None
                   ) -> tuple[ModelConfig, TrainingConfig]:
    """Configs from the fields given, with those left open fitted to the data source.

    Your own images set the input shape, and grey levels get the `'normal'` likelihood without
    binarization (see `tfp_vae.data.source_defaults`); a field given is never changed.

    Args:
      model: `ModelConfig` fields by name. Default: `None` (all defaults).
      training: `TrainingConfig` fields by name. Default: `None` (all defaults).

    Returns:
      `(model_config, training_config)`.

    Raises:
      ValueError, FileNotFoundError: On invalid fields, or data that cannot be read.

    #### Examples

    ```python
    model, training = fitted_configs({"latent_dim": 16}, {"data": "photos/", "epochs": 10})
    ```
    """
    model, training = dict(model or {}), dict(training or {})
    config = TrainingConfig(**training)
    fitting = source_defaults(config.data, config.data_dir, config.image_size)
    binarization = fitting.pop("binarization", None)
    if binarization and "binarization" not in training:
        config = config.replace(binarization=binarization)
    return ModelConfig(**{**fitting, **model}), config
