"""IWAE evaluation throughput against the decoder's raw forward pass, in one process.

Both are measured in decoded latent codes per second at the same decoder batch (`--chunk`
codes per call): the raw forward pass decodes random codes to pixel probabilities; the IWAE
estimate (`tfp_vae.evaluation.iwae_log_likelihood`) also encodes, samples, evaluates
`log p(x|z) + log p(z) - log q(z|x)` and combines chunks with log-sum-exp. Timings are medians of
`--repeats` runs after one warm-up run, alternating the two.

Usage:
  python benchmarks/bench_iwae.py --data-dir ../shared/data --images 200 --samples 1000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("TFP_VAE_DATA_DIR"))
    parser.add_argument("--network", default="conv")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--samples", type=int, default=1000, help="IWAE k")
    parser.add_argument("--chunk", type=int, default=4096, help="codes decoded per call")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import numpy as np

    from tfp_vae import ModelConfig, build_model, load_dataset
    from tfp_vae.backend import tf
    from tfp_vae.evaluation import iwae_log_likelihood

    data = load_dataset("fashion_mnist", args.data_dir)
    images = (np.random.default_rng(0).random(data.x_test[: args.images].shape)
              < data.x_test[: args.images]).astype(np.float32)
    model = build_model(ModelConfig(network=args.network))
    codes = tf.random.stateless_normal((args.chunk, model.config.latent_dim), seed=(1, 2))
    calls = -(-args.images * args.samples // args.chunk)

    @tf.function
    def forward(z):
        return tf.convert_to_tensor(model.decoder(z))

    def run_forward():
        for _ in range(calls):
            result = forward(codes)
        result.numpy()

    def run_iwae():
        iwae_log_likelihood(model, images, num_samples=args.samples,
                            batch_size=args.images, max_decoded=args.chunk)

    timings = {"decoder forward": [], "IWAE": []}
    run_forward()
    run_iwae()
    for _ in range(args.repeats):
        for name, run in (("decoder forward", run_forward), ("IWAE", run_iwae)):
            start = time.perf_counter()
            run()
            timings[name].append(time.perf_counter() - start)

    decoded = {"decoder forward": calls * args.chunk, "IWAE": args.images * args.samples}
    print(f"{args.network} decoder, {args.chunk} codes per call, IWAE k={args.samples} on "
          f"{args.images} images; median of {args.repeats}\n")
    print("| run | codes decoded | median s | codes/s |")
    print("|---|---:|---:|---:|")
    rates = {}
    for name, times in timings.items():
        seconds = statistics.median(times)
        rates[name] = decoded[name] / seconds
        print(f"| {name} | {decoded[name]} | {seconds:.2f} | {rates[name]:.0f} |")
    print(f"\nIWAE throughput / decoder forward throughput: "
          f"{rates['IWAE'] / rates['decoder forward']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
