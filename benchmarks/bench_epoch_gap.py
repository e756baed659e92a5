"""Idle time between epochs: tf.data autotuning on (TF's default) vs off (`make_dataset`).

Keras `fit` makes a fresh iterator over a finite dataset every epoch and deletes the old one. With
autotuning on, the iterator's destructor waits for tf.data's model thread, which sleeps between
optimisation rounds with a period that doubles up to tens of seconds; the wait is idle time
(0 % CPU) between epochs, and it grows with the epoch's length. `tfp_vae.data.make_dataset`
turns autotuning off. This benchmark iterates the training pipeline of 50 000 MNIST-sized images
at a steady consumer pace (a sleep per batch stands in for the train step) and times, per epoch,
the iterator's creation, the epoch and the deletion, for both settings side by side.

    python benchmarks/bench_epoch_gap.py --epochs 4 --step-seconds 0.04

Measured (2026-12-03, 2 cores, a training run on the other core): see the README's Performance
section.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from tfp_vae.backend import tf
from tfp_vae.data import make_dataset


def epoch_times(autotune: bool, images: np.ndarray, epochs: int, step_seconds: float
                ) -> list[tuple[float, float]]:
    """(epoch seconds, idle seconds between epochs) for each epoch."""
    dataset = make_dataset(images, batch_size=100, binarization="dynamic", seed=0)
    options = tf.data.Options()
    options.autotune.enabled = autotune
    dataset = dataset.with_options(options)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        iterator = iter(dataset)
        for _ in iterator:
            time.sleep(step_seconds)
        end = time.perf_counter()
        del iterator
        times.append((end - start, time.perf_counter() - end))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--images", type=int, default=50000)
    parser.add_argument("--step-seconds", type=float, default=0.04)
    args = parser.parse_args()
    images = np.random.default_rng(0).random((args.images, 28, 28, 1), dtype=np.float32)
    rows = {name: epoch_times(name == "autotune on (TF default)", images, args.epochs,
                              args.step_seconds)
            for name in ("autotune on (TF default)", "autotune off (make_dataset)")}
    header = "idle s between epochs (median, max)"
    print(f"{'pipeline':30s} {'epoch s (median)':>17s} {header:>36s}")
    medians = {}
    for name, times in rows.items():
        idle = [gap for _, gap in times]
        medians[name] = statistics.median(idle)
        print(f"{name:30s} {statistics.median(t for t, _ in times):17.1f} "
              f"{medians[name]:25.2f}, {max(idle):.2f}")
    on, off = medians.values()
    print(f"idle time saved per epoch: {on - off:.2f} s (median)")


if __name__ == "__main__":
    main()
