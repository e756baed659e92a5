import numpy as np
import pytest

from tfp_vae.backend import tf
from tfp_vae.config import ModelConfig
from tfp_vae.models import build_model


@pytest.mark.parametrize("network,shape,options", [
    ("conv", (28, 28, 1), {}),
    ("conv", (32, 32, 3), {"filters": [64, 128]}),
    ("conv", (16, 24, 1), {}),
    ("course", (28, 28, 1), {}),
    ("course", (29, 29, 2), {}),
    ("course", (20, 36, 1), {}),
    ("mlp", (17, 23, 2), {"hidden_units": [64]}),
])
@pytest.mark.parametrize("likelihood", ["bernoulli", "normal"])
def test_vae_shapes_for_any_supported_input(network, shape, options, likelihood):
    config = ModelConfig(input_shape=shape, latent_dim=3, network=network,
                         network_options=options, likelihood=likelihood)
    vae = build_model(config)
    x = tf.random.stateless_uniform((4, *shape), seed=(1, 2))
    posterior = vae.encode(x)
    assert posterior.batch_shape == (4,) and posterior.event_shape == (3,)
    likelihood_dist = vae.decode(posterior.sample())
    assert likelihood_dist.batch_shape == (4,) and likelihood_dist.event_shape == shape
    assert vae.reconstruct(x).shape == (4, *shape)
    assert vae.sample(2, seed=0).shape == (2, *shape)
    losses = vae.compute_losses(x)
    assert np.isfinite(float(losses["loss"]))


def test_seed_conv_layer_sizes():
    vae = build_model(ModelConfig(network_options={"filters": [64, 128]}))
    convs = [layer for layer in vae.encoder.layers if "conv2d" in layer.name]
    assert [c.filters for c in convs] == [64, 128] and all(c.strides == (2, 2) for c in convs)
    assert vae.decoder.layers[0].units == 7 * 7 * 128


def test_course_net_matches_the_tfp_course_layout():
    vae = build_model(ModelConfig(network="course"))
    shapes = [layer.output_shape for layer in vae.decoder.layers[:5]]
    assert shapes == [(None, 64), (None, 128), (None, 4, 4, 8), (None, 12, 12, 8),
                      (None, 28, 28, 8)]


@pytest.mark.parametrize("network,shape,message", [
    ("conv", (30, 30, 1), "multiples of 4"),
    ("course", (10, 10, 1), "cannot rebuild a 10x10 image"),
])
def test_unsupported_shapes_are_clear_errors(network, shape, message):
    with pytest.raises(ValueError, match=message):
        build_model(ModelConfig(network=network, input_shape=shape))
