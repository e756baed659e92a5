"""Training throughput of tfp_vae against a plain Keras 3 VAE, side by side in one run.

Every variant trains the same architecture on the same Fashion-MNIST images (dynamic
binarization, batch 128, latent 2) for a few epochs in its own subprocess, so peak memory
(max RSS) is per variant; variants are interleaved over repeats so machine noise hits them
alike. The first epoch (tracing) is excluded from timings. Reported: median images/s and seconds
per epoch, median peak RSS, final training loss (nats/image), and ratios against the plain
Keras 3 reference of the same network.

Variants (`--variants`):
  keras3        hand-written Keras 3 VAE: Sampling layer, custom train_step, analytic KL
  tfpl_naive    tf_keras + tfp.layers: MultivariateNormalTriL + KLDivergenceRegularizer, fit
  tfp_vae       tfp_vae.VAE defaults (Diag posterior, analytic KL in the loss)
  tfp_vae_bf16  tfp_vae.VAE with dtype_policy='mixed_bfloat16'
  pipeline      the input pipeline alone (model replaced by a no-op)
Each runs with the seed conv net; `--small` adds the TFP-course net for keras3 and tfp_vae.

Usage:
  python benchmarks/bench_training.py --data-dir ../shared/data --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

VARIANTS = ("keras3", "tfpl_naive", "tfp_vae", "tfp_vae_bf16", "pipeline")


def _dataset(args):
    from tfp_vae import load_dataset, make_dataset

    data = load_dataset("fashion_mnist", args.data_dir)
    return make_dataset(data.x_train[: args.images], batch_size=128, binarization="dynamic",
                        seed=0, drop_remainder=True)


def _keras3_model(network):
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import tensorflow as tf
    from keras import layers, ops

    class Sampling(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seed_generator = keras.random.SeedGenerator(0)

        def call(self, inputs):
            mean, log_var = inputs
            noise = keras.random.normal(ops.shape(mean), seed=self.seed_generator)
            return mean + ops.exp(0.5 * log_var) * noise

    inputs = keras.Input((28, 28, 1))
    if network == "conv":
        h = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(inputs)
        h = layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(h)
        h = layers.Dense(16, activation="relu")(layers.Flatten()(h))
    else:
        h = layers.Conv2D(8, 5, strides=2, activation="tanh")(inputs)
        h = layers.Conv2D(8, 5, strides=2, activation="tanh")(h)
        h = layers.Dense(64, activation="tanh")(layers.Flatten()(h))
    mean, log_var = layers.Dense(2)(h), layers.Dense(2)(h)
    encoder = keras.Model(inputs, [mean, log_var, Sampling()([mean, log_var])])
    latent = keras.Input((2,))
    if network == "conv":
        h = layers.Reshape((7, 7, 64))(layers.Dense(7 * 7 * 64, activation="relu")(latent))
        h = layers.Conv2DTranspose(64, 3, strides=2, padding="same", activation="relu")(h)
        h = layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu")(h)
        logits = layers.Conv2DTranspose(1, 3, padding="same")(h)
    else:
        h = layers.Dense(128, activation="tanh")(layers.Dense(64, activation="tanh")(latent))
        h = layers.Reshape((4, 4, 8))(h)
        h = layers.Conv2DTranspose(8, 5, strides=2, output_padding=1, activation="tanh")(h)
        h = layers.Conv2DTranspose(8, 5, strides=2, output_padding=1, activation="tanh")(h)
        logits = layers.Conv2D(1, 3, padding="same")(h)
    decoder = keras.Model(latent, logits)

    class VAE(keras.Model):
        def __init__(self):
            super().__init__()
            self.encoder, self.decoder = encoder, decoder
            self.loss_tracker = keras.metrics.Mean(name="loss")

        @property
        def metrics(self):
            return [self.loss_tracker]

        def train_step(self, x):
            with tf.GradientTape() as tape:
                mean, log_var, z = self.encoder(x, training=True)
                logits = self.decoder(z, training=True)
                reconstruction = tf.reduce_mean(tf.reduce_sum(
                    tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits),
                    axis=(1, 2, 3)))
                kl = tf.reduce_mean(tf.reduce_sum(
                    -0.5 * (1 + log_var - tf.square(mean) - tf.exp(log_var)), axis=1))
                loss = reconstruction + kl
            grads = tape.gradient(loss, self.trainable_weights)
            self.optimizer.apply_gradients(zip(grads, self.trainable_weights, strict=True))
            self.loss_tracker.update_state(loss)
            return {"loss": self.loss_tracker.result()}

    model = VAE()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model, keras


def _tfpl_naive_model():
    import tensorflow as tf
    import tensorflow_probability as tfp
    import tf_keras as tfk

    tfd, tfpl = tfp.distributions, tfp.layers
    prior = tfd.Independent(tfd.Normal(loc=tf.zeros(2), scale=1.0), reinterpreted_batch_ndims=1)
    encoder = tfk.Sequential([
        tfk.layers.InputLayer(input_shape=(28, 28, 1)),
        tfk.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
        tfk.layers.Conv2D(64, 3, strides=2, padding="same", activation="relu"),
        tfk.layers.Flatten(),
        tfk.layers.Dense(16, activation="relu"),
        tfk.layers.Dense(tfpl.MultivariateNormalTriL.params_size(2)),
        tfpl.MultivariateNormalTriL(2, activity_regularizer=tfpl.KLDivergenceRegularizer(prior)),
    ])
    decoder = tfk.Sequential([
        tfk.layers.InputLayer(input_shape=(2,)),
        tfk.layers.Dense(7 * 7 * 64, activation="relu"),
        tfk.layers.Reshape((7, 7, 64)),
        tfk.layers.Conv2DTranspose(64, 3, strides=2, padding="same", activation="relu"),
        tfk.layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu"),
        tfk.layers.Conv2DTranspose(1, 3, padding="same"),
        tfk.layers.Flatten(),
        tfpl.IndependentBernoulli((28, 28, 1), tfd.Bernoulli.logits),
    ])
    model = tfk.Model(encoder.inputs, decoder(encoder.outputs[0]))
    model.compile(optimizer=tfk.optimizers.Adam(1e-3), loss=lambda x, rv: -rv.log_prob(x))
    return model


def _tfp_vae_model(network, dtype_policy):
    from tfp_vae import ModelConfig, build_model, keras

    model = build_model(ModelConfig(network=network, dtype_policy=dtype_policy))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


class _EpochTimer:
    def __init__(self):
        self.times, self._start = [], None

    def on_epoch_begin(self, *_):
        self._start = time.perf_counter()

    def on_epoch_end(self, *_):
        self.times.append(time.perf_counter() - self._start)


def _callback(timer, keras_module):
    class Callback(keras_module.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            timer.on_epoch_begin()

        def on_epoch_end(self, epoch, logs=None):
            timer.on_epoch_end()

    return Callback()


def worker(args) -> dict:
    """Trains one variant in this process and returns its measurements."""
    import resource

    dataset = _dataset(args)
    timer = _EpochTimer()
    variant, network = args.worker, args.network
    if variant == "pipeline":
        for _ in range(args.epochs):
            timer.on_epoch_begin()
            for _batch in dataset:
                pass
            timer.on_epoch_end()
        loss = float("nan")
    else:
        if variant == "keras3":
            model, keras_module = _keras3_model(network)
        elif variant == "tfpl_naive":
            import tf_keras as keras_module

            model = _tfpl_naive_model()
            dataset = dataset.map(lambda x: (x, x))
        else:
            import tf_keras as keras_module

            model = _tfp_vae_model(network, "mixed_bfloat16" if variant.endswith("bf16")
                                   else "float32")
        history = model.fit(dataset, epochs=args.epochs, verbose=0,
                            callbacks=[_callback(timer, keras_module)])
        loss = float(history.history["loss"][-1])
    steady = timer.times[1:] or timer.times
    seconds = statistics.median(steady)
    return {"variant": variant, "network": network, "seconds_per_epoch": seconds,
            "images_per_second": args.images // 128 * 128 / seconds, "final_loss": loss,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("TFP_VAE_DATA_DIR"))
    parser.add_argument("--images", type=int, default=15360, help="training images per epoch")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per run (first excluded)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--small", action="store_true", help="add the TFP-course net case")
    parser.add_argument("--json", default=None, help="write all runs to this JSON file")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--network", default="conv", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0

    cases = [(v, "conv") for v in args.variants]
    if args.small:
        cases += [("keras3", "course"), ("tfp_vae", "course")]
    runs = []
    for repeat in range(args.repeats):
        for variant, network in cases:
            command = [sys.executable, __file__, "--worker", variant, "--network", network,
                       "--images", str(args.images), "--epochs", str(args.epochs)]
            if args.data_dir:
                command += ["--data-dir", args.data_dir]
            done = subprocess.run(command, capture_output=True, text=True,
                                  env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
            if done.returncode != 0:
                print(done.stderr[-2000:], file=sys.stderr)
                return 1
            result = json.loads(done.stdout.strip().splitlines()[-1])
            result["repeat"] = repeat
            runs.append(result)
            print(f"repeat {repeat + 1}/{args.repeats} {variant:13s} {network:6s} "
                  f"{result['images_per_second']:8.0f} img/s", file=sys.stderr, flush=True)
    if args.json:
        with open(args.json, "w") as stream:
            json.dump(runs, stream, indent=2)

    def median(variant, network, key):
        return statistics.median(r[key] for r in runs
                                 if r["variant"] == variant and r["network"] == network)

    print(f"\n{args.images // 128 * 128} images/epoch, batch 128, latent 2, {args.epochs} epochs "
          f"(first excluded), median of {args.repeats} interleaved repeats\n")
    print("| variant | network | images/s | s/epoch | peak RSS (MiB) | final loss | "
          "throughput vs keras3 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for variant, network in cases:
        ips = median(variant, network, "images_per_second")
        reference = ("keras3", network) in cases and variant != "pipeline"
        ratio = f"{ips / median('keras3', network, 'images_per_second'):.2f}x" \
            if reference else "—"
        if variant == "pipeline" and ("keras3", "conv") in cases:
            ratio = f"{ips / median('keras3', 'conv', 'images_per_second'):.1f}x (pipeline alone)"
        loss = median(variant, network, "final_loss")
        seconds = median(variant, network, "seconds_per_epoch")
        print(f"| {variant} | {network} | {ips:.0f} | {seconds:.2f}"
              f" | {median(variant, network, 'peak_rss_mib'):.0f} | "
              f"{'—' if loss != loss else f'{loss:.2f}'} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
