"""The final IWAE number's cost: the previous `iwae_log_likelihood` against today's, in one run.

The protocol's final number is `iwae_log_likelihood(model, x_test, num_samples=5000)` on the
10 000 MNIST test images of a Burda et al. MLP VAE (784-200-200-50, tanh, Bernoulli decoder):
50 M decoder passes. This times, on the first `--images` test images (binarized once with seed
0), interleaved over `--repeats` after one warm-up call each (tracing, XLA compilation):

- `previous`: the implementation before the fast path (kept below, as it was): one compiled call
  per chunk of `max_decoded // batch` samples that re-runs the encoder, evaluates TFP's
  `log_prob` on tiled images, and one log-sum-exp over the concatenated chunks;
- `current`: `tfp_vae.evaluation.iwae_log_likelihood` (encoder once per batch, a compiled loop
  over chunks with a running log-sum-exp, fused XLA Bernoulli log-likelihood), at each
  `--max-decoded`.

Reported: median wall and CPU seconds (this process, all threads), decoded codes per wall
second, the wall time extrapolated to 10 000 images, ratios against `previous`, and, for
`current` at the previous chunking (same seeds, same samples), the largest per-image difference
from `previous` (float32 round-off). The machine's load average is printed before and after:
on a shared machine, quote the ratios.

Usage:
  python benchmarks/bench_iwae_eval.py --data-dir ../shared/data --images 500 --samples 5000
  python benchmarks/bench_iwae_eval.py --model recipes/models/NAME   # a saved tfp_vae model
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import time

PROTOCOL_IMAGES = 10_000
_PREVIOUS_FUNCTIONS: dict = {}


def previous_iwae_log_likelihood(model, images, num_samples, batch_size, max_decoded, seed):
    """Per-image `L_k` as `tfp_vae.evaluation.iwae_log_likelihood` computed it before the fast
    path (commit 694f1d8): the same samples (`fold_in(seed, batch, chunk)`), TFP's `log_prob`.
    """
    import numpy as np

    from tfp_vae.backend import tf
    from tfp_vae.losses import log_importance_weights
    from tfp_vae.seeds import fold_in

    if model not in _PREVIOUS_FUNCTIONS:
        def iwae_log_weights(x, chunk, seed):
            posterior = model.encoder(x)
            z = posterior.sample(chunk, seed=seed)
            return log_importance_weights(x, posterior, model.decoder, model.prior, z)[0]

        _PREVIOUS_FUNCTIONS[model] = tf.function(iwae_log_weights, reduce_retracing=True)
    log_weights = _PREVIOUS_FUNCTIONS[model]
    per_image = []
    for index, start in enumerate(range(0, len(images), batch_size)):
        x = tf.constant(images[start:start + batch_size])
        chunk = max(1, min(num_samples, max_decoded // int(x.shape[0])))
        weights, drawn, chunk_index = [], 0, 0
        while drawn < num_samples:
            size = min(chunk, num_samples - drawn)
            weights.append(log_weights(x, size, fold_in(seed, index, chunk_index)))
            drawn += size
            chunk_index += 1
        log_w = tf.concat(weights, axis=0)
        per_image.append((tf.reduce_logsumexp(log_w, axis=0) - math.log(num_samples)).numpy())
    return np.concatenate(per_image)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("TFP_VAE_DATA_DIR"))
    parser.add_argument("--model", help="a saved tfp_vae model directory; default: a fresh "
                        "Burda MLP VAE (weights do not change the cost)")
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--samples", type=int, default=5000, help="IWAE k")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--previous-max-decoded", type=int, default=4096,
                        help="the previous code's (and today's) default chunking")
    parser.add_argument("--max-decoded", type=int, nargs="+", default=[4096],
                        help="chunkings to time the current code at")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import numpy as np

    from tfp_vae import ModelConfig, build_model, keras, load_dataset
    from tfp_vae.evaluation import iwae_log_likelihood
    from tfp_vae.io import load_model

    images = load_dataset("mnist", args.data_dir).x_test[: args.images]
    images = (np.random.default_rng(0).random(images.shape) < images).astype(np.float32)
    if args.model:
        model = load_model(args.model)
    else:
        keras.utils.set_random_seed(0)
        model = build_model(ModelConfig(network="mlp", latent_dim=50, network_options={
            "hidden_units": [200, 200], "activation": "tanh"}))
        model(images[:1])
    common = {"num_samples": args.samples, "batch_size": args.batch_size, "seed": 0}

    def current(max_decoded):
        def run(x):
            return iwae_log_likelihood(model, x, max_decoded=max_decoded, return_per_image=True,
                                       **common)["per_image"]
        return run

    variants = {"previous": lambda x: previous_iwae_log_likelihood(
        model, x, max_decoded=args.previous_max_decoded, **common)}
    for max_decoded in args.max_decoded:
        variants[f"current, max_decoded={max_decoded}"] = current(max_decoded)

    print(f"load average before: {os.getloadavg()}", flush=True)
    for run in variants.values():
        run(images[: args.batch_size])                        # tracing and XLA compilation
    walls = {name: [] for name in variants}
    cpus = {name: [] for name in variants}
    values = {}
    for repeat in range(args.repeats):
        for name, run in variants.items():
            wall, cpu = time.perf_counter(), time.process_time()
            values[name] = run(images)
            walls[name].append(time.perf_counter() - wall)
            cpus[name].append(time.process_time() - cpu)
            print(f"  repeat {repeat}: {name}: {walls[name][-1]:.1f} s wall, "
                  f"{cpus[name][-1]:.1f} s CPU", flush=True)
    print(f"load average after: {os.getloadavg()}; peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB\n")

    codes = args.images * args.samples
    base_wall = statistics.median(walls["previous"])
    base_cpu = statistics.median(cpus["previous"])
    print(f"IWAE k={args.samples} on {args.images} MNIST test images (batch {args.batch_size}), "
          f"median of {args.repeats}; 10 000-image time extrapolated from the wall time\n")
    print("| implementation | wall s | CPU s | codes/s (wall) | 10 000 images | "
          "speed-up (wall) | speed-up (CPU) | max abs diff vs previous |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in variants:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        same_samples = name == "previous" or name.endswith(f"={args.previous_max_decoded}")
        difference = (f"{np.abs(values[name] - values['previous']).max():.1e}"
                      if same_samples else "(other samples)")
        print(f"| {name} | {wall:.1f} | {cpu:.1f} | {codes / wall:,.0f} | "
              f"{wall * PROTOCOL_IMAGES / args.images / 60:.1f} min | {base_wall / wall:.2f}x | "
              f"{base_cpu / cpu:.2f}x | {difference} |")
    for name in variants:
        print(f"{name}: mean L_k {values[name].mean():.4f} nats")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
