"""One worker of a two-worker MultiWorkerMirroredStrategy run on localhost; prints JSON.

Both workers train the same VAE with plain SGD (Adam is invariant to the gradient's scale, so it
would hide a gradient-scaling mistake) on the same data, each on its half of every global batch.
Worker 0 then trains an identical copy on one device, the reference the test compares with.

Usage: python multi_worker.py PORT0 PORT1 INDEX
"""

import json
import os
import sys

port0, port1, index = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.environ["TF_CONFIG"] = json.dumps({
    "cluster": {"worker": [f"localhost:{port0}", f"localhost:{port1}"]},
    "task": {"type": "worker", "index": index},
})

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

strategy = tf.distribute.MultiWorkerMirroredStrategy()  # before any other TensorFlow op

from tfp_vae import ModelConfig, build_model, keras, load_dataset, make_dataset  # noqa: E402

data = load_dataset("fashion_mnist")
x = (np.random.default_rng(0).random((1024, 28, 28, 1)) < data.x_train[:1024]).astype("float32")
options = tf.data.Options()
options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
config = ModelConfig(network="tfp_course", latent_dim=2)

keras.utils.set_random_seed(0)
single = build_model(config)
with strategy.scope():
    model = build_model(config)
    model.set_weights(single.get_weights())
    model.compile(optimizer=keras.optimizers.SGD(2e-4))
dataset = make_dataset(x, batch_size=128, shuffle=False)
result = {"replicas": strategy.num_replicas_in_sync,
          "history": model.fit(dataset.with_options(options), epochs=2, verbose=0).history}
if index == 0:
    single.compile(optimizer=keras.optimizers.SGD(2e-4))
    result["single_history"] = single.fit(dataset, epochs=2, verbose=0).history
print(json.dumps(result))
