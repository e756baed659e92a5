"""Mixed precision: bfloat16 bodies, float32 distribution parameters, for every network preset.

Under `dtype_policy="mixed_bfloat16"` the hidden layers compute in bfloat16 (the speed-up) while
every layer from the one that emits the distribution parameters on computes in float32: a
log-likelihood summed over 784 pixels needs more than bfloat16's 3 significant digits.
"""

import numpy as np
import pytest

from tfp_vae import ModelConfig, build_model
from tfp_vae.backend import tf
from tfp_vae.networks import NETWORKS

PRESETS = sorted(name for name in NETWORKS
                 if NETWORKS[name].encoder.__module__ == "tfp_vae.networks")


def split_at_parameter_layer(layers, index):
    """Layers before the one at `index` (the body) and from it on (parameters, distribution)."""
    return layers[:index], layers[index:]


def last_weighted_index(layers):
    return max(i for i, layer in enumerate(layers) if layer.weights)


def assert_dtypes(body, parameters, where):
    assert any(layer.weights for layer in body), f"{where}: the body has no weighted layer"
    for layer in body:
        assert layer.compute_dtype == "bfloat16", f"{where} body layer {layer.name}"
        assert layer.output.dtype == tf.bfloat16, f"{where} body layer {layer.name} output"
    for layer in parameters:
        assert layer.compute_dtype == "float32", f"{where} parameter layer {layer.name}"
    assert parameters[0].output.dtype == tf.float32, f"{where} {parameters[0].name} output"


def test_presets_are_the_registered_networks():
    assert set(PRESETS) == {"conv", "conv_64_128", "tfp_course", "mlp"}


# Each preset once, the two likelihood heads alternating (one parameter or two per pixel).
@pytest.mark.parametrize(("network", "likelihood"),
                         [(name, ("bernoulli", "normal")[i % 2]) for i, name in enumerate(PRESETS)])
def test_bodies_compute_in_bfloat16_and_distribution_parameters_in_float32(network, likelihood):
    options = {"hidden_units": [16, 8]} if network == "mlp" else {}
    model = build_model(ModelConfig(network=network, latent_dim=3, likelihood=likelihood,
                                    posterior="tril", network_options=options,
                                    dtype_policy="mixed_bfloat16"))
    encoder = model.encoder.layers
    params_index = [layer.name for layer in encoder].index("posterior_params")
    assert params_index == last_weighted_index(encoder)
    assert_dtypes(*split_at_parameter_layer(encoder, params_index), f"{network} encoder")
    # The decoder's parameters come from its last weighted layer: the body's final conv for the
    # conv presets, the likelihood head's Dense for the MLP.
    decoder = model.decoder.layers
    assert_dtypes(*split_at_parameter_layer(decoder, last_weighted_index(decoder)),
                  f"{network} decoder")

    x = np.random.default_rng(0).integers(0, 2, (4, 28, 28, 1)).astype(np.float32)
    posterior = model.encode(x)
    likelihood_distribution = model.decode(posterior.mean())
    assert posterior.dtype == tf.float32 and likelihood_distribution.dtype == tf.float32
    assert all(value.dtype == tf.float32 for value in model.compute_losses(x).values())
    # Weights stay float32 (the optimizer updates them in full precision).
    assert {w.dtype for w in model.weights} == {tf.float32}
