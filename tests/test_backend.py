import keras as keras3  # Keras 3, installed with TensorFlow >= 2.16
import pytest

import tfp_vae
from tfp_vae.backend import check_tf_keras, is_keras3_object, keras, tf


def test_tfp_vae_exports_tf_keras():
    assert tfp_vae.keras is keras
    assert keras.__name__ == "tf_keras"
    assert isinstance(tfp_vae.MultivariateNormalDiag(2), keras.layers.Layer)


@pytest.mark.parametrize("make", [
    lambda: keras3.layers.Dense(3),
    lambda: keras3.Sequential([keras3.layers.Dense(3)]),
    lambda: keras3.Input((4,)),
])
def test_keras3_objects_are_detected(make):
    assert is_keras3_object(make())


def test_tf_keras_and_tensors_are_not_keras3():
    assert not is_keras3_object(keras.layers.Dense(3))
    assert not is_keras3_object(keras.Input((4,)))
    assert not is_keras3_object(tf.zeros(3))


def test_check_tf_keras_message_says_what_and_how():
    with pytest.raises(TypeError, match=r"`encoder body` is a Keras 3 object .*tfp_vae.keras"):
        check_tf_keras([keras.layers.Flatten(), keras3.layers.Dense(3)], "encoder body")


def test_vae_builder_rejects_keras3_body():
    config = tfp_vae.ModelConfig(network="mlp")
    with pytest.raises(TypeError, match="Keras 3 object.*tf_keras"):
        tfp_vae.VAE(config, encoder_body=[keras3.layers.Flatten(), keras3.layers.Dense(8)])


def test_kl_layer_rejects_keras3_tensor():
    layer = tfp_vae.KLDivergenceAddLoss(tfp_vae.isotropic_gaussian_prior(2))
    with pytest.raises(TypeError, match="Keras 3 object"):
        layer(keras3.Input((4,)))


def test_encode_rejects_keras3_tensor():
    vae = tfp_vae.build_model(tfp_vae.ModelConfig(network="mlp"))
    with pytest.raises(TypeError, match="`x` is a Keras 3 object"):
        vae.encode(keras3.Input((28, 28, 1)))
