import numpy as np
import pytest

from tfp_vae.backend import keras
from tfp_vae.config import ModelConfig
from tfp_vae.data import make_dataset
from tfp_vae.kl import kl_weight_variables
from tfp_vae.models import build_model
from tfp_vae.training import KLWeightScheduler, linear_kl_warmup, train_loop


def test_linear_warmup_values():
    schedule = linear_kl_warmup(4, final_weight=2.0)
    assert [schedule(e) for e in range(6)] == [0.5, 1.0, 1.5, 2.0, 2.0, 2.0]
    assert linear_kl_warmup(0, 3.0)(0) == 3.0
    with pytest.raises(ValueError, match="warmup_epochs must be a non-negative integer"):
        linear_kl_warmup(-1)


def closed_form_kl(model, x):
    """Batch-mean `KL(q(z|x) || N(0, I))` of a diagonal posterior, from its moments in NumPy."""
    posterior = model.encoder(x)
    mean = posterior.mean().numpy().astype(np.float64)
    std = posterior.stddev().numpy().astype(np.float64)
    return float(np.mean(0.5 * np.sum(std**2 + mean**2 - 1 - 2 * np.log(std), axis=-1)))


@pytest.mark.parametrize("attachment", ["loss", "add_loss", "regularizer"])
def test_scheduler_anneals_the_kl_weight_the_training_loss_uses(attachment, binary_fashion):
    x = binary_fashion[0][:256]
    vae = build_model(ModelConfig(network="mlp", network_options={"hidden_units": [32]},
                                  kl_attachment=attachment))
    assert len(kl_weight_variables(vae)) == 1  # the VAE and its KL layer share one variable
    # A zero learning rate keeps the weights, so the KL is the same every epoch and the KL
    # term of each epoch's training loss is exactly that epoch's weight times it.
    vae.compile(optimizer=keras.optimizers.SGD(0.0))
    history = vae.fit(x, batch_size=128, epochs=3, verbose=0, shuffle=False,
                      callbacks=[KLWeightScheduler(linear_kl_warmup(3))]).history
    kl = closed_form_kl(vae, x)
    np.testing.assert_allclose(history["kl_loss"], np.array([1, 2, 3]) / 3 * kl, rtol=1e-5)
    np.testing.assert_allclose(np.subtract(history["loss"], history["reconstruction_loss"]),
                               np.array([1, 2, 3]) / 3 * kl, rtol=1e-3)
    np.testing.assert_allclose(history["kl_weight"], [1 / 3, 2 / 3, 1.0], rtol=1e-6)


def test_scheduler_without_kl_weight_is_a_clear_error():
    model = keras.Sequential([keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    with pytest.raises(ValueError, match="found no KL weight"):
        model.fit(np.zeros((4, 2)), np.zeros((4, 1)), epochs=1, verbose=0,
                  callbacks=[KLWeightScheduler(linear_kl_warmup(2))])


def test_train_loop_with_warmup_and_validation(binary_fashion):
    x_train, x_test = binary_fashion
    vae = build_model(ModelConfig(network="mlp", network_options={"hidden_units": [64]}))
    history = train_loop(vae, make_dataset(x_train[:512], batch_size=128), epochs=2,
                         validation_data=make_dataset(x_test[:256], batch_size=128),
                         kl_schedule=linear_kl_warmup(2))
    assert set(history) == {"loss", "reconstruction_loss", "kl_loss", "val_loss",
                            "val_reconstruction_loss", "val_kl_loss"}
    assert history["loss"][1] < history["loss"][0]
    assert float(vae.kl_weight.numpy()) == 1.0
    # Validation after the last epoch uses its weight (1): val_kl_loss is the plain KL.
    np.testing.assert_allclose(history["val_kl_loss"][-1], closed_form_kl(vae, x_test[:256]),
                               rtol=1e-5)


def test_train_loop_schedule_reaches_the_loss(binary_fashion):
    x = binary_fashion[0][:256]
    vae = build_model(ModelConfig(network="mlp", network_options={"hidden_units": [32]},
                                  kl_attachment="add_loss"))
    history = train_loop(vae, make_dataset(x, batch_size=128, shuffle=False), epochs=2,
                         optimizer=keras.optimizers.SGD(0.0), kl_schedule=linear_kl_warmup(4))
    np.testing.assert_allclose(history["kl_loss"], np.array([0.25, 0.5]) * closed_form_kl(vae, x),
                               rtol=1e-5)
