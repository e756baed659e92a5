"""Trains one VAE on two logical CPU devices (MirroredStrategy) and on one device; prints JSON.

Run as a subprocess: logical devices must be configured before TensorFlow initialises.
Usage: python mirrored_vs_single.py KL_ATTACHMENT
"""

import json
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import numpy as np  # noqa: E402

from tfp_vae import ModelConfig, build_model, keras, load_dataset, make_dataset  # noqa: E402

data = load_dataset("fashion_mnist")
x = (np.random.default_rng(0).random((1024, 28, 28, 1)) < data.x_train[:1024]).astype("float32")
config = ModelConfig(network="course", latent_dim=2, kl_attachment=sys.argv[1])

keras.utils.set_random_seed(0)
single = build_model(config)
weights = single.get_weights()
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    mirrored = build_model(config)
    mirrored.set_weights(weights)
    mirrored.compile(optimizer=keras.optimizers.SGD(2e-4))
single.compile(optimizer=keras.optimizers.SGD(2e-4))

result = {"replicas": strategy.num_replicas_in_sync}
for name, model in [("single", single), ("mirrored", mirrored)]:
    result[name + "_initial"] = model.evaluate(make_dataset(x, batch_size=128, shuffle=False),
                                               verbose=0, return_dict=True)
    history = model.fit(make_dataset(x, batch_size=128, shuffle=False), epochs=3, verbose=0)
    result[name + "_history"] = history.history
print(json.dumps(result))
