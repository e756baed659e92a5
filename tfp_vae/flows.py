"""Masked autoregressive flows over the latent space: the flow prior's and the IAF posterior's.

Both are stacks of `tfb.MaskedAutoregressiveFlow` bijectors whose shift and log-scale come from
a `tfb.AutoregressiveNetwork` (MADE), with the latent order reversed between layers so every
dimension gets to condition on every other one:

- the **flow prior** (`p(z)`, Papamakarios et al., 2017) uses the MAF direction: `log_prob` is one
  pass of each network, sampling is `d` passes (only needed to generate images);
- the **inverse autoregressive flow** posterior (Kingma et al., 2016) uses the inverted MAF:
  sampling is one pass (needed at every training step), and `log_prob` at a point the same
  distribution just sampled comes from TFP's bijector cache instead of `d` passes.
"""

from __future__ import annotations

from collections.abc import Sequence

from tfp_vae.backend import tf, tfb

__all__ = ["autoregressive_networks", "masked_autoregressive_bijector"]

# Each layer's log-scale is squashed into (-2, 2): an unbounded MADE output can make exp(log
# scale) overflow in the first steps and turn the loss into NaN.
_MAX_LOG_SCALE = 2.0


def autoregressive_networks(latent_dim: int, num_layers: int,
                            hidden_units: Sequence[int] = (32, 32),
                            name: str = "made") -> list[tfb.AutoregressiveNetwork]:
    """Built MADE networks (`tfb.AutoregressiveNetwork`, shift and log-scale per dimension).

    The networks are built at once, so their weights exist before a model is saved or loaded.

    Args:
      latent_dim: Python `int`, the dimension `d` the flow acts on.
      num_layers: Python `int` >= 1, the number of flow layers (one network each).
      hidden_units: Hidden layer sizes of each network. Default: `(32, 32)`.
      name: Name prefix of the networks. Default: `'made'`.

    Returns:
      A list of `num_layers` built `tfb.AutoregressiveNetwork` layers.

    Raises:
      ValueError: If `num_layers` or a hidden size is not a positive integer.

    #### Examples

    ```python
    mades = autoregressive_networks(2, num_layers=3)
    bijector = masked_autoregressive_bijector(mades)
    ```
    """
    for what, values in (("num_layers", [num_layers]), ("hidden_units", list(hidden_units))):
        if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                                 for v in values):
            raise ValueError(f"A flow's {what} must be positive integers, got {values!r}.")
    networks = []
    for index in range(num_layers):
        network = tfb.AutoregressiveNetwork(
            params=2, event_shape=[latent_dim], hidden_units=list(hidden_units),
            activation="relu", name=f"{name}_{index}")
        network.build((None, latent_dim))
        networks.append(network)
    return networks


def _shift_and_log_scale(network):
    def fn(x):
        shift, log_scale = tf.unstack(network(x), axis=-1)
        return shift, _MAX_LOG_SCALE * tf.math.tanh(log_scale / _MAX_LOG_SCALE)
    return fn


def masked_autoregressive_bijector(networks: Sequence[tfb.AutoregressiveNetwork],
                                   inverse: bool = False) -> tfb.Bijector:
    """A chain of masked autoregressive flows, reversing the order between layers.

    Args:
      networks: MADE networks from `autoregressive_networks`, one per layer.
      inverse: Python `bool`. `False` gives the MAF (fast `log_prob`, for priors); `True` gives
        the inverse autoregressive flow (fast sampling, for posteriors). Default: `False`.

    Returns:
      A `tfb.Bijector` from the base latent to the flowed latent.

    #### Examples

    ```python
    prior = tfd.TransformedDistribution(
        isotropic_gaussian_prior(2), masked_autoregressive_bijector(autoregressive_networks(2, 2)))
    ```
    """
    steps: list[tfb.Bijector] = []
    for index, network in enumerate(networks):
        flow = tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=_shift_and_log_scale(network),
                                            name=f"maf_{index}")
        steps.append(tfb.Invert(flow) if inverse else flow)
        if index < len(networks) - 1:
            steps.append(tfb.Permute(list(range(network.event_shape[-1]))[::-1],
                                     name=f"reverse_{index}"))
    # tfb.Chain applies its list last-to-first: reverse so networks[0] acts first.
    return tfb.Chain(steps[::-1], name="iaf" if inverse else "maf")
