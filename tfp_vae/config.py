"""`ModelConfig`: a complete, JSON round-trippable description of a tfp_vae model.

The CLI, persistence and notebooks build models only from a config, so a saved config plus
weights is enough to rebuild a model exactly.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from tfp_vae.heads import LIKELIHOODS, POSTERIORS
from tfp_vae.kl import KL_ESTIMATORS
from tfp_vae.networks import NETWORKS

__all__ = ["DTYPE_POLICIES", "KL_ATTACHMENTS", "MODEL_KINDS", "ModelConfig"]

KL_ATTACHMENTS = ("loss", "add_loss", "regularizer")
DTYPE_POLICIES = ("float32", "mixed_bfloat16")
MODEL_KINDS = ("vae", "autoencoder")


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build a tfp_vae model.

    Attributes:
      kind: `'vae'` or `'autoencoder'` (deterministic baseline). Default: `'vae'`.
      input_shape: Shape of one image `(height, width, channels)`. Default: `(28, 28, 1)`.
      latent_dim: Latent dimension. Default: `2`.
      network: Body name in `tfp_vae.networks.NETWORKS`. Default: `'conv'`.
      network_options: Keyword options of the body, e.g. `{'filters': [64, 128]}`.
        Default: `{}`.
      posterior: `'diag'` or `'tril'`. Default: `'diag'`.
      likelihood: `'bernoulli'` or `'normal'`. Default: `'bernoulli'`.
      kl_attachment: Where the KL enters the loss: `'loss'` (the loss function), `'add_loss'`
        (a `KLDivergenceAddLoss` layer) or `'regularizer'` (a `KLDivergenceRegularizer`).
        Default: `'loss'`.
      kl_estimator: Name in `tfp_vae.kl.KL_ESTIMATORS`. Default: `'analytic'`.
      num_samples: Posterior samples per example for the ELBO (and Monte Carlo KL). Default: `1`.
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

    kind: str = "vae"
    input_shape: tuple[int, ...] = (28, 28, 1)
    latent_dim: int = 2
    network: str = "conv"
    network_options: dict[str, Any] = field(default_factory=dict)
    posterior: str = "diag"
    likelihood: str = "bernoulli"
    kl_attachment: str = "loss"
    kl_estimator: str = "analytic"
    num_samples: int = 1
    beta: float = 1.0
    dtype_policy: str = "float32"

    def __post_init__(self):
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        object.__setattr__(self, "network_options", _jsonable(dict(self.network_options)))
        registries = {"network": NETWORKS, "posterior": POSTERIORS, "likelihood": LIKELIHOODS,
                      "kl_estimator": KL_ESTIMATORS}
        for name, registry in registries.items():
            try:
                object.__setattr__(self, name, registry.canonical(getattr(self, name)))
            except ValueError:
                raise ValueError(f"ModelConfig.{name} must be one of {sorted(registry)}, got "
                                 f"{getattr(self, name)!r}.") from None
        choices = {"kind": MODEL_KINDS, "kl_attachment": KL_ATTACHMENTS,
                   "dtype_policy": DTYPE_POLICIES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"ModelConfig.{name} must be one of {sorted(allowed)}, "
                                 f"got {getattr(self, name)!r}.")
        for name in ("latent_dim", "num_samples"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive integer, got {value!r}.")
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise ValueError("ModelConfig.input_shape must be (height, width, channels), got "
                             f"{self.input_shape}.")
        if not isinstance(self.beta, (int, float)) or self.beta < 0:
            raise ValueError(f"ModelConfig.beta must be a non-negative number, got {self.beta!r}.")
        object.__setattr__(self, "beta", float(self.beta))

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed (validated like a new config)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-compatible dict."""
        return _jsonable(dataclasses.asdict(self))

    def to_json(self, indent: int | None = 2) -> str:
        """The config as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Builds a config from a dict, rejecting unknown keys.

        Raises:
          ValueError: If `data` has keys that are not config fields, or a value is invalid.
        """
        if not isinstance(data, dict):
            raise ValueError(f"A model config must be a JSON object, got {type(data).__name__}.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown model config key(s) {unknown}; known keys are "
                             f"{sorted(known)}.")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        """Builds a config from a JSON string (see `from_dict`).

        Raises:
          ValueError: If the text is not valid JSON or not a valid config.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"The model config is not valid JSON: {error}.") from None
        return cls.from_dict(data)
