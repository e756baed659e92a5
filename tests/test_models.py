import numpy as np
import pytest

from tfp_vae.backend import keras, tf
from tfp_vae.config import ModelConfig
from tfp_vae.data import make_dataset
from tfp_vae.kl import analytic_kl
from tfp_vae.models import VAE, Autoencoder, build_model
from tfp_vae.training import train_loop


def fresh(config, seed=0):
    keras.utils.set_random_seed(seed)
    return build_model(config)


@pytest.mark.parametrize("posterior", ["diag", "tril"])
def test_every_kl_attachment_gives_the_same_kl(posterior, binary_fashion):
    """The same weights give the same per-example KL through the loss, add-loss and regularizer."""
    x = binary_fashion[1][:64]
    models = {a: fresh(ModelConfig(latent_dim=4, posterior=posterior, kl_attachment=a))
              for a in ["loss", "add_loss", "regularizer"]}
    weights = models["loss"].get_weights()
    for model in models.values():
        model.set_weights(weights)
    true_kl = float(tf.reduce_mean(analytic_kl(models["loss"].encode(x),
                                               models["loss"].prior)))
    for attachment, model in models.items():
        losses = model.compute_losses(x)
        np.testing.assert_allclose(float(losses["kl_loss"]), true_kl, rtol=1e-5,
                                   err_msg=attachment)
        assert len(model.encoder.losses) == (0 if attachment == "loss" else 1)


def test_fit_lowers_the_negative_elbo_on_real_data(binary_fashion):
    x_train, x_test = binary_fashion
    vae = fresh(ModelConfig(network="course", latent_dim=4))
    vae.compile(optimizer=keras.optimizers.Adam(2e-3))
    before = vae.evaluate(x_test, batch_size=256, verbose=0, return_dict=True)
    history = vae.fit(make_dataset(x_train, batch_size=64, seed=0), epochs=3, verbose=0,
                      validation_data=make_dataset(x_test, batch_size=256, shuffle=False))
    after = vae.evaluate(x_test, batch_size=256, verbose=0, return_dict=True)
    assert set(history.history) == {"loss", "reconstruction_loss", "kl_loss", "val_loss",
                                    "val_reconstruction_loss", "val_kl_loss"}
    # An untrained decoder costs ~784 ln 2 = 543 nats; a few epochs must cut that by far.
    assert before["loss"] > 500 and after["loss"] < 0.6 * before["loss"]
    assert history.history["loss"][-1] < history.history["loss"][0]
    np.testing.assert_allclose(after["loss"], after["reconstruction_loss"] + after["kl_loss"],
                               rtol=1e-5)
    assert after["kl_loss"] > 0.5  # the latent code is used


@pytest.mark.parametrize("attachment", ["loss", "regularizer"])
def test_custom_loop_and_fit_reach_the_same_losses(attachment, binary_fashion):
    x_train, x_test = binary_fashion
    config = ModelConfig(network="course", latent_dim=2, kl_attachment=attachment)
    data = make_dataset(x_train, batch_size=128, shuffle=False)
    by_fit = fresh(config)
    by_loop = fresh(config)
    by_loop.set_weights(by_fit.get_weights())
    by_fit.compile(optimizer=keras.optimizers.Adam(2e-3))
    fit_history = by_fit.fit(data, epochs=2, verbose=0).history
    loop_history = train_loop(by_loop, data, epochs=2, optimizer=keras.optimizers.Adam(2e-3))
    for name in ["loss", "reconstruction_loss", "kl_loss"]:
        np.testing.assert_allclose(loop_history[name], fit_history[name], rtol=0.03,
                                   err_msg=name)
    by_loop.compile()  # evaluate() needs a compiled model; the loop used its own optimizer
    fit_eval = by_fit.evaluate(x_test, batch_size=512, verbose=0, return_dict=True)["loss"]
    loop_eval = by_loop.evaluate(x_test, batch_size=512, verbose=0, return_dict=True)["loss"]
    assert abs(fit_eval - loop_eval) < 0.03 * fit_eval


def test_encode_decode_reconstruct_sample(binary_fashion):
    vae = fresh(ModelConfig(latent_dim=3, posterior="tril"))
    x = binary_fashion[1][:5]
    posterior = vae.encode(x)
    assert posterior.event_shape == (3,) and posterior.batch_shape == (5,)
    recon = vae.reconstruct(x).numpy()
    assert recon.shape == x.shape and 0.0 <= recon.min() and recon.max() <= 1.0
    np.testing.assert_allclose(recon, vae.decode(posterior.mean()).mean(), rtol=1e-6)
    np.testing.assert_array_equal(vae.sample(4, seed=1), vae.sample(4, seed=1))
    assert not np.array_equal(vae.sample(4, seed=1), vae.sample(4, seed=2))
    np.testing.assert_array_equal(vae.reconstruct(x, sample_latent=True, seed=3),
                                  vae.reconstruct(x, sample_latent=True, seed=3))


def test_autoencoder_baseline_trains(binary_fashion):
    x_train, x_test = binary_fashion
    ae = fresh(ModelConfig(kind="autoencoder", network="course", latent_dim=4))
    assert isinstance(ae, Autoencoder)
    ae.compile(optimizer=keras.optimizers.Adam(2e-3))
    before = ae.evaluate(x_test, verbose=0, return_dict=True)["loss"]
    ae.fit(x_train, batch_size=64, epochs=3, verbose=0)
    after = ae.evaluate(x_test, verbose=0, return_dict=True)
    assert set(after) == {"loss", "reconstruction_loss"}
    assert after["loss"] < 0.65 * before, (before, after)
    assert ae.encode(x_test[:3]).shape == (3, 4)
    assert ae.reconstruct(x_test[:3]).shape == (3, 28, 28, 1)


def test_vae_rejects_a_non_config():
    with pytest.raises(TypeError, match="config must be a tfp_vae.ModelConfig"):
        VAE({"latent_dim": 2})


def test_mixed_bfloat16_bodies_keep_distributions_in_float32(binary_fashion):
    x = binary_fashion[1][:32]
    config = ModelConfig(network="course", latent_dim=2)
    f32 = fresh(config)
    bf16 = fresh(config.replace(dtype_policy="mixed_bfloat16"))
    bf16.set_weights(f32.get_weights())  # weights stay float32 under the mixed policy
    assert bf16.encoder.layers[0].compute_dtype == "bfloat16"
    posterior = bf16.encode(x)
    assert posterior.dtype == tf.float32 and bf16.decode(posterior.mean()).dtype == tf.float32
    a, b = f32.compute_losses(x), bf16.compute_losses(x)
    assert all(v.dtype == tf.float32 for v in b.values())
    # bfloat16 keeps ~3 significant digits: the losses agree to within 1 %.
    np.testing.assert_allclose(float(b["loss"]), float(a["loss"]), rtol=0.01)
