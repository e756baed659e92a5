"""Where the time of one tfp_vae training step goes, by compiled sub-steps of the same model.

Each row is one `tf.function` timed over `--steps` calls on the same batch (median of
`--repeats`), so differences between rows attribute the time: encoder forward, decoder forward,
the whole loss (both passes + ELBO), the loss with its gradient, and the full step with the
Adam update. A second table times the forward call of each layer with weights (Conv2D,
Conv2DTranspose, Dense) of the encoder and decoder on its own input, the activation that reaches
it in the forward pass, the same way.

Usage:
  python benchmarks/profile_step.py --batch-size 128 --dtype-policy float32
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time


def _call(layer, inputs):
    return layer(inputs)


def layer_calls(model, x, z):
    """`{row name: function}` calling one encoder or decoder layer with weights on its input.

    Partials, not lambdas: TensorFlow counts the traces of all `tf.function`s of one code object
    together and would warn of retracing after five layers.
    """
    calls = {}
    for part, inputs in (("encoder", x), ("decoder", z)):
        activation = inputs
        for layer in getattr(model, part).layers[:-1]:  # the last is the distribution head
            layer_input, activation = activation, layer(activation)
            if layer.weights:
                shape = "x".join(str(d) for d in activation.shape[1:])
                calls[f"{part} {type(layer).__name__} {layer.name} -> {shape}"] = (
                    functools.partial(_call, layer, layer_input))
    return calls


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--network", default="conv")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--dtype-policy", default="float32")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    from tfp_vae import ModelConfig, build_model, keras
    from tfp_vae.backend import tf

    model = build_model(ModelConfig(network=args.network, dtype_policy=args.dtype_policy))
    optimizer = keras.optimizers.Adam(1e-3)
    x = tf.cast(tf.random.stateless_uniform((args.batch_size, 28, 28, 1), seed=(1, 2)) < 0.3,
                tf.float32)
    z = tf.random.stateless_normal((args.batch_size, model.config.latent_dim), seed=(3, 4))

    def gradients():
        with tf.GradientTape() as tape:
            loss = model.compute_losses(x, training=True)["loss"]
        return tape.gradient(loss, model.trainable_variables)

    def step():
        optimizer.apply_gradients(zip(gradients(), model.trainable_variables, strict=True))

    parts = {
        "encoder forward (posterior params + sample)":
            lambda: tf.convert_to_tensor(model.encoder(x, training=True)),
        "decoder forward (logits)": lambda: tf.convert_to_tensor(model.decoder(z)),
        "loss (encoder + decoder + ELBO)": lambda: model.compute_losses(x, training=True),
        "loss + gradient": gradients,
        "full step (+ Adam update)": step,
    }
    layers = layer_calls(model, x, z)
    compiled = {name: tf.function(fn) for name, fn in {**parts, **layers}.items()}
    for fn in compiled.values():
        fn()
    times = {name: [] for name in compiled}
    for _ in range(args.repeats):
        for name, fn in compiled.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                result = fn()
            tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, result)
            times[name].append((time.perf_counter() - start) / args.steps * 1e3)

    full = statistics.median(times["full step (+ Adam update)"])
    print(f"{args.network} net, batch {args.batch_size}, {args.dtype_policy}; median ms per call "
          f"over {args.repeats}x{args.steps} calls\n")
    for title, names in (("part", parts), ("layer (forward)", layers)):
        print(f"| {title} | ms | share of full step |")
        print("|---|---:|---:|")
        for name in names:
            ms = statistics.median(times[name])
            print(f"| {name} | {ms:.2f} | {ms / full:.0%} |")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
