"""One worker of a two-worker MultiWorkerMirroredStrategy run on localhost; prints JSON.

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
dataset = make_dataset(x, batch_size=128, shuffle=False).with_options(options)

keras.utils.set_random_seed(0)
with strategy.scope():
    model = build_model(ModelConfig(network="course", latent_dim=2))
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
history = model.fit(dataset, epochs=2, verbose=0).history
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "history": history}))
