"""Training steps per second of tfp_vae against hand-written Keras 3 and PyTorch VAEs, in one run.

The model is Burda et al.'s MLP VAE: 784-200-200-50 with tanh on both sides, a diagonal Gaussian
posterior (softplus scale), an N(0, I) prior with the analytic KL, a Bernoulli decoder, Adam
(learning rate 1e-3), batch 100, on dynamically binarized MNIST (the 50 000 training images of
the recipes' split, loaded with tfp_vae's own data loader). Small MLPs like this are bound by
per-step overhead, not arithmetic, so the framework's step loop is what is measured.

Every variant runs in its own subprocess (so thread pools do not interfere), pinned to the same
CPU set (`--cores`, default the cores this process may use, e.g. from `taskset`); PyTorch gets
`torch.set_num_threads(len(cores))`. Each variant trains `--warmup` steps (tracing, XLA
compilation) untimed, then timed windows of `--window` steps until `--steps` (or `--epochs`
x 500) timed steps are done; a window never spans an epoch boundary (the next epoch's first
step only marks the start of its first window), so the per-epoch validation pass and iterator
setup are not counted. Reported: the median steps/s over the windows, and its ratio to tfp_vae
without XLA; also steps per CPU-second of the process (all its threads), which holds up better
than wall time on a shared core but counts a thread pool's spin-waiting when it has several
cores. Variants are interleaved over `--repeats`.

Variants (`--variants`):
  tfp_vae       `tfp_vae.runs.train_run` (in memory), `TrainingConfig(jit_compile=False)`
  tfp_vae_jit   the same with `jit_compile=True` (XLA)
  keras3        hand-written Keras 3 model with a custom `train_step` (`keras.Model.fit`)
  keras3_jit    the same compiled with `jit_compile=True` (not run by default)
  torch         hand-written PyTorch training loop (skipped, with one line, if torch is not
                installed: `pip install -e ".[bench]"`)

`--networks [NAME ...]` measures instead tfp_vae's `train_run` with XLA off and on for each
registered network preset (default options, latent 50; plus `mlp` with Burda's 200-200 tanh
options as `mlp_burda`), to check each network's `jit_compile` default in `tfp_vae.networks`.

Usage:
  taskset -c 1 python benchmarks/bench_steps_per_second.py --steps 1500
  taskset -c 1 python benchmarks/bench_steps_per_second.py --networks --steps 200
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = ("tfp_vae", "tfp_vae_jit", "keras3", "keras3_jit", "torch")
DEFAULT_VARIANTS = ("tfp_vae", "tfp_vae_jit", "keras3", "torch")
REFERENCE = "tfp_vae"
DESCRIPTIONS = {
    "tfp_vae": "tfp_vae train_run (fit), jit_compile=False",
    "tfp_vae_jit": "tfp_vae train_run (fit), jit_compile=True",
    "keras3": "hand-written Keras 3 train_step (fit), jit_compile=False",
    "keras3_jit": "hand-written Keras 3 train_step (fit), jit_compile=True",
    "torch": "hand-written PyTorch loop",
}
BATCH_SIZE = 100
VALIDATION_SIZE = 10000
STEPS_PER_EPOCH = 500  # 50 000 training images / batch 100
HIDDEN_UNITS = (200, 200)
LATENT_DIM = 50
BURDA_OPTIONS = {"hidden_units": list(HIDDEN_UNITS), "activation": "tanh"}
RESULTS = Path(__file__).resolve().parent / "results"


# Timing ------------------------------------------------------------------------------------


class WindowTimer:
    """Steps per second over windows of consecutive steps, after a warm-up.

    Call `epoch_begin()` at the start of every epoch and `step_end()` after every training
    step; `done` turns true once `steps` timed steps are in complete windows.

    Args:
      warmup: Untimed steps at the start (tracing, compilation).
      window: Steps per timed window.
      steps: Timed steps wanted (rounded up to whole windows).
    """

    def __init__(self, warmup: int, window: int, steps: int):
        self.warmup, self.window = warmup, window
        self.windows_wanted = max(1, math.ceil(steps / window))
        self.rates: list[float] = []
        self.cpu_rates: list[float] = []
        self.seconds: list[float] = []
        self.steps = 0
        self._mark: float | None = None
        self._cpu_mark = 0.0
        self._in_window = 0

    @property
    def done(self) -> bool:
        return len(self.rates) >= self.windows_wanted

    def epoch_begin(self) -> None:
        self._mark, self._in_window = None, 0

    def step_end(self) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        self.steps += 1
        if self.steps <= self.warmup:
            if self.steps == self.warmup:
                self._mark, self._cpu_mark, self._in_window = now, cpu, 0
            return
        if self._mark is None:  # the first step of an epoch only marks the window's start
            self._mark, self._cpu_mark, self._in_window = now, cpu, 0
            return
        self._in_window += 1
        if self._in_window == self.window and not self.done:
            self.rates.append(self.window / (now - self._mark))
            self.cpu_rates.append(self.window / max(cpu - self._cpu_mark, 1e-9))
            self.seconds.append(now - self._mark)
            self._mark, self._cpu_mark, self._in_window = now, cpu, 0

    def summary(self) -> dict:
        return {"steps_per_second": statistics.median(self.rates),
                "window_steps_per_second": self.rates,
                "steps_per_cpu_second": statistics.median(self.cpu_rates),
                "window_steps_per_cpu_second": self.cpu_rates, "timed_steps": len(self.rates)
                * self.window, "timed_seconds": sum(self.seconds), "total_steps": self.steps}


def timing_callback(keras, timer: WindowTimer):
    """A callback of `keras` (tf_keras or Keras 3) that feeds `timer` and stops when it is done."""

    class Timing(keras.callbacks.Callback):
        _supports_tf_logs = True  # tf_keras: no conversion of the logs to numpy per step

        def on_epoch_begin(self, epoch, logs=None):
            timer.epoch_begin()

        def on_train_batch_end(self, batch, logs=None):
            timer.step_end()
            if timer.done:
                self.model.stop_training = True

    return Timing()


def _epochs_needed(args) -> int:
    # Each epoch after the warm-up spends one step marking its first window's start.
    per_epoch_windows = (STEPS_PER_EPOCH - 1) // args.window
    timed = math.ceil(args.steps / args.window)
    warm_epochs = args.warmup // STEPS_PER_EPOCH + 1
    return warm_epochs + math.ceil(timed / max(1, per_epoch_windows)) + 1


# Workers (each in its own process) ---------------------------------------------------------


def _data_worker(args) -> dict:
    """Loads the MNIST training split with tfp_vae's loader and saves it for the other workers."""
    import numpy as np

    from tfp_vae.data import load_splits
    from tfp_vae.networks import NETWORKS

    splits = load_splits("mnist", args.data_dir, validation_size=VALIDATION_SIZE,
                         binarization="dynamic")
    path = Path(args.scratch) / "mnist_train.npy"
    np.save(path, splits.x_train.astype("float32"))
    return {"path": str(path), "images": len(splits.x_train),
            "networks": {name: NETWORKS.get(name).jit_compile for name in NETWORKS}}


def _versions(*modules: str) -> dict:
    import importlib

    found = {}
    for name in modules:
        try:
            found[name] = importlib.import_module(name).__version__
        except Exception:  # noqa: BLE001 - a version is informational only
            found[name] = None
    return found


def _tfp_vae_worker(args, timer: WindowTimer) -> dict:
    from tfp_vae.backend import keras
    from tfp_vae.config import ModelConfig, TrainingConfig
    from tfp_vae.runs import train_run

    network = "mlp" if args.network == "mlp_burda" else args.network
    options = BURDA_OPTIONS if args.network == "mlp_burda" else {}
    model = ModelConfig(network=network, network_options=options, latent_dim=LATENT_DIM,
                        likelihood="bernoulli", posterior="diag", kl_attachment="loss",
                        kl_estimator="analytic")
    training = TrainingConfig(data="mnist", data_dir=args.data_dir, binarization="dynamic",
                              validation_size=VALIDATION_SIZE, test_size=100,
                              epochs=_epochs_needed(args), batch_size=BATCH_SIZE,
                              optimizer="adam", learning_rate=1e-3, seed=0,
                              jit_compile=args.worker.endswith("_jit"), plots=False)

    result = train_run(None, model, training, callbacks=[timing_callback(keras, timer)])
    return {"final_loss": result.history[-1]["loss"],
            "versions": _versions("tensorflow", "tf_keras", "tensorflow_probability")}


def _keras3_worker(args, timer: WindowTimer) -> dict:
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import keras
    import numpy as np
    import tensorflow as tf

    images = np.load(args.images_file)
    keras.utils.set_random_seed(0)

    def binarize(batch):
        return tf.cast(tf.random.uniform(tf.shape(batch)) < batch, tf.float32)

    options = tf.data.Options()
    options.autotune.enabled = False  # as tfp_vae.data.make_dataset
    data = (tf.data.Dataset.from_tensor_slices(images)
            .shuffle(len(images), seed=0, reshuffle_each_iteration=True)
            .batch(BATCH_SIZE).map(binarize, num_parallel_calls=2).prefetch(2)
            .with_options(options))

    layers = keras.layers
    encoder = keras.Sequential([keras.Input((28, 28, 1)), layers.Flatten()]
                               + [layers.Dense(u, activation="tanh") for u in HIDDEN_UNITS]
                               + [layers.Dense(2 * LATENT_DIM)])
    decoder = keras.Sequential([keras.Input((LATENT_DIM,))]
                               + [layers.Dense(u, activation="tanh") for u in HIDDEN_UNITS]
                               + [layers.Dense(784)])

    class VAE(keras.Model):
        def __init__(self):
            super().__init__()
            self.encoder, self.decoder = encoder, decoder
            self.loss_tracker = keras.metrics.Mean(name="loss")
            self.seed_generator = keras.random.SeedGenerator(0)

        @property
        def metrics(self):
            return [self.loss_tracker]

        def train_step(self, x):
            with tf.GradientTape() as tape:
                mean, raw_scale = tf.split(self.encoder(x, training=True), 2, axis=-1)
                scale = tf.math.softplus(raw_scale) + 1e-5
                noise = keras.random.normal(tf.shape(mean), seed=self.seed_generator)
                logits = self.decoder(mean + scale * noise, training=True)
                labels = tf.reshape(x, [-1, 784])
                reconstruction = tf.reduce_sum(
                    tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits), -1)
                kl = tf.reduce_sum(0.5 * (tf.square(mean) + tf.square(scale) - 1.0)
                                   - tf.math.log(scale), -1)
                loss = tf.reduce_mean(reconstruction + kl)
            grads = tape.gradient(loss, self.trainable_weights)
            self.optimizer.apply_gradients(zip(grads, self.trainable_weights, strict=True))
            self.loss_tracker.update_state(loss)
            return {"loss": self.loss_tracker.result()}

    model = VAE()
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  jit_compile=args.worker.endswith("_jit"))
    history = model.fit(data, epochs=_epochs_needed(args), verbose=0,
                        callbacks=[timing_callback(keras, timer)])
    return {"final_loss": float(history.history["loss"][-1]),
            "versions": {"keras": keras.__version__, "tensorflow": tf.__version__}}


def _torch_worker(args, timer: WindowTimer, cores: int) -> dict:
    import numpy as np
    import torch
    from torch import nn

    torch.set_num_threads(cores)
    torch.set_num_interop_threads(cores)
    torch.manual_seed(0)
    images = torch.from_numpy(np.load(args.images_file).reshape(-1, 784))

    def mlp(sizes):
        modules = []
        for size_in, size_out in zip(sizes[:-1], sizes[1:], strict=True):
            modules += [nn.Linear(size_in, size_out), nn.Tanh()]
        return nn.Sequential(*modules[:-1])

    encoder = mlp([784, *HIDDEN_UNITS, 2 * LATENT_DIM])
    decoder = mlp([LATENT_DIM, *reversed(HIDDEN_UNITS), 784])
    parameters = list(encoder.parameters()) + list(decoder.parameters())
    optimizer = torch.optim.Adam(parameters, lr=1e-3)

    def step(x):
        mean, raw_scale = encoder(x).chunk(2, dim=-1)
        scale = nn.functional.softplus(raw_scale) + 1e-5
        logits = decoder(mean + scale * torch.randn_like(mean))
        reconstruction = nn.functional.binary_cross_entropy_with_logits(
            logits, x, reduction="none").sum(-1)
        kl = (0.5 * (mean.square() + scale.square() - 1.0) - scale.log()).sum(-1)
        loss = (reconstruction + kl).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    loss = torch.tensor(float("nan"))
    for _ in range(_epochs_needed(args)):
        timer.epoch_begin()
        order = torch.randperm(len(images))
        for start in range(0, len(images), BATCH_SIZE):
            loss = step(torch.bernoulli(images[order[start:start + BATCH_SIZE]]))
            timer.step_end()
            if timer.done:
                break
        if timer.done:
            break
    return {"final_loss": float(loss.detach()), "versions": {"torch": torch.__version__},
            "torch_threads": torch.get_num_threads(),
            "torch_interop_threads": torch.get_num_interop_threads()}


def worker(args) -> dict:
    """Trains one variant in this process and returns its measurements."""
    import resource

    if args.worker == "data":
        return _data_worker(args)
    cores = len(os.sched_getaffinity(0))
    timer = WindowTimer(args.warmup, args.window, args.steps)
    if args.worker.startswith("tfp_vae"):
        extra = _tfp_vae_worker(args, timer)
    elif args.worker.startswith("keras3"):
        extra = _keras3_worker(args, timer)
    else:
        extra = _torch_worker(args, timer, cores)
    if not timer.rates:
        raise RuntimeError(f"{args.worker} trained {timer.steps} steps without completing a timed "
                           "window; raise --steps or lower --warmup / --window.")
    return {"variant": args.worker, "network": args.network, **timer.summary(), **extra,
            "cores": sorted(os.sched_getaffinity(0)),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


# The table ---------------------------------------------------------------------------------


def build_table(results: list[dict], reference: str = REFERENCE) -> list[dict]:
    """Median steps/s per (variant, network) and its ratio to the reference variant.

    Args:
      results: Worker results, each with `variant`, `network`, `steps_per_second` and
        optionally `steps_per_cpu_second` (one result per repeat; medians of repeats are taken).
      reference: The variant whose rate is 1.00 for the same network. Default: `'tfp_vae'`.

    Returns:
      One row per (variant, network) in first-seen order: `variant`, `network`,
      `steps_per_second` (median over repeats of each repeat's window median), `repeats`,
      `ratio` (`steps_per_second` over the reference's for that network; `None` without one),
      and where the results have them `steps_per_cpu_second` and `cpu_ratio` alike.

    #### Examples

    ```python
    build_table([{"variant": "tfp_vae", "network": "mlp", "steps_per_second": 300.0},
                 {"variant": "torch", "network": "mlp", "steps_per_second": 450.0}])
    # [..., {"variant": "torch", "network": "mlp", "steps_per_second": 450.0, "repeats": 1,
    #        "ratio": 1.5}]
    ```
    """
    keys = list(dict.fromkeys((r["variant"], r["network"]) for r in results))

    def median(key, field):
        values = [r[field] for r in results if (r["variant"], r["network"]) == key and field in r]
        return statistics.median(values) if values else None

    rows = []
    for variant, network in keys:
        row = {"variant": variant, "network": network,
               "repeats": sum((r["variant"], r["network"]) == (variant, network)
                              for r in results)}
        for field, ratio in (("steps_per_second", "ratio"),
                             ("steps_per_cpu_second", "cpu_ratio")):
            rate, base = median((variant, network), field), median((reference, network), field)
            if rate is None and field != "steps_per_second":
                continue
            row[field] = rate
            row[ratio] = rate / base if base else None
        rows.append(row)
    return rows


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def format_table(rows: list[dict], results: list[dict]) -> str:
    """A Markdown table of `build_table` rows, with the spread of the timed windows."""
    lines = ["| variant | steps/s (median) | windows min-max | vs tfp_vae (no jit) | "
             "steps per CPU-s | vs tfp_vae (no jit) |", "|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        windows = [rate for r in results if (r["variant"], r["network"])
                   == (row["variant"], row["network"]) for rate in r["window_steps_per_second"]]
        cpu = row.get("steps_per_cpu_second")
        lines.append(f"| {DESCRIPTIONS.get(row['variant'], row['variant'])} "
                     f"| {row['steps_per_second']:.0f} | {min(windows):.0f}-{max(windows):.0f} "
                     f"| {_ratio(row['ratio'])} | {'—' if cpu is None else f'{cpu:.0f}'} "
                     f"| {_ratio(row.get('cpu_ratio'))} |")
    return "\n".join(lines)


def network_table(rows: list[dict], defaults: dict[str, bool]) -> str:
    """A Markdown table of XLA off/on per network, the faster one and the registry default."""
    lines = ["| network | steps/s jit off | steps/s jit on | on / off | steps per CPU-s off "
             "| on | on / off | registry default |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    by_key = {(row["network"], row["variant"]): row for row in rows}
    for network in dict.fromkeys(row["network"] for row in rows):
        off, on = by_key.get((network, "tfp_vae")), by_key.get((network, "tfp_vae_jit"))
        if off is None or on is None:
            continue
        cells = []
        for field in ("steps_per_second", "steps_per_cpu_second"):
            if off.get(field) is None or on.get(field) is None:
                cells += ["—", "—", "—"]
            else:
                cells += [f"{off[field]:.1f}", f"{on[field]:.1f}",
                          f"{on[field] / off[field]:.2f}x"]
        default = defaults.get("mlp" if network == "mlp_burda" else network)
        lines.append(f"| {network} | {' | '.join(cells)} | "
                     f"{'—' if default is None else ('jit' if default else 'no jit')} |")
    return "\n".join(lines)


# Driver ------------------------------------------------------------------------------------


def parse_cores(text: str | None) -> list[int]:
    """CPU numbers from a taskset-style list (`'1'`, `'0,2'`, `'0-3'`); `None`: this process's.

    Raises:
      ValueError: If `text` is not such a list.
    """
    if text is None:
        return sorted(os.sched_getaffinity(0))
    cores: set[int] = set()
    try:
        for part in text.split(","):
            low, _, high = part.partition("-")
            cores.update(range(int(low), int(high or low) + 1))
    except ValueError:
        raise ValueError(f"--cores must be a list like 1 or 0,2 or 0-3, got {text!r}.") from None
    if not cores:
        raise ValueError(f"--cores named no CPU: {text!r}.")
    missing = sorted(cores - set(range(os.cpu_count() or 1)))
    if missing:
        raise ValueError(f"--cores names CPU(s) {missing} that this machine lacks; it has "
                         f"0-{(os.cpu_count() or 1) - 1}.")
    return sorted(cores)


def _run_worker(command: list[str], cores: list[int]) -> tuple[dict | None, str]:
    done = subprocess.run(command, capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
                          preexec_fn=lambda: os.sched_setaffinity(0, cores))
    if done.returncode != 0:
        return None, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), ""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="Timings are of a shared machine unless you made it quiet; run pinned (taskset).")
    parser.add_argument("--data-dir", default=os.environ.get("TFP_VAE_DATA_DIR"),
                        help="folder with the MNIST IDX files (default: $TFP_VAE_DATA_DIR)")
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--steps", type=int, default=None,
                        help="timed steps per variant after the warm-up (default: 1500)")
    amount.add_argument("--epochs", type=float, default=None,
                        help=f"timed epochs per variant ({STEPS_PER_EPOCH} steps each)")
    parser.add_argument("--warmup", type=int, default=100, help="untimed steps first")
    parser.add_argument("--window", type=int, default=100, help="steps per timed window")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved repeats")
    parser.add_argument("--cores", default=None,
                        help="CPUs to pin every variant to, e.g. 1 or 0-1 (default: the ones "
                             "this process may use)")
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=VARIANTS)
    parser.add_argument("--networks", nargs="*", default=None, metavar="NAME",
                        help="instead: tfp_vae with XLA off and on for these network presets "
                             "(no names: all registered, plus mlp_burda)")
    parser.add_argument("--json", default=None, metavar="PATH",
                        help="write settings and results here (default: benchmarks/results/"
                             "steps_per_second.json, or steps_per_second_networks.json)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--network", default="mlp_burda", help=argparse.SUPPRESS)
    parser.add_argument("--images-file", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    return parser


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.epochs is not None:
        args.steps = max(1, round(args.epochs * STEPS_PER_EPOCH))
    elif args.steps is None:
        args.steps = 1500
    for name in ("steps", "warmup", "window", "repeats"):
        if getattr(args, name) < (0 if name == "warmup" else 1):
            parser.error(f"--{name} must be a positive integer, got {getattr(args, name)}.")
    if args.window >= STEPS_PER_EPOCH:
        parser.error(f"--window must be below the {STEPS_PER_EPOCH} steps of an epoch.")
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    try:
        cores = parse_cores(args.cores)
    except ValueError as error:
        parser.error(str(error))

    base = [sys.executable, str(Path(__file__).resolve()), "--warmup", str(args.warmup),
            "--window", str(args.window), "--steps", str(args.steps)]
    if args.data_dir:
        base += ["--data-dir", args.data_dir]
    with tempfile.TemporaryDirectory() as scratch:
        data, error = _run_worker(base + ["--worker", "data", "--scratch", scratch], cores)
        if data is None:
            print(f"Loading MNIST with tfp_vae failed:\n{error}", file=sys.stderr)
            return 1
        if args.networks is not None:
            names = args.networks or [*data["networks"], "mlp_burda"]
            unknown = sorted(set(names) - set(data["networks"]) - {"mlp_burda"})
            if unknown:
                parser.error(f"Unknown network(s) {unknown}; registered: "
                             f"{sorted(data['networks'])} (and mlp_burda).")
            cases = [(variant, name) for name in names for variant in ("tfp_vae", "tfp_vae_jit")]
        else:
            cases = [(variant, "mlp_burda") for variant in args.variants]
        skipped = {}
        if any(variant == "torch" for variant, _ in cases):
            probe = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True)
            if probe.returncode != 0:
                skipped["torch"] = ("PyTorch is not installed, so the torch variant is skipped "
                                    "(pip install -e \".[bench]\" adds it).")
                print(skipped["torch"], file=sys.stderr)
                cases = [case for case in cases if case[0] != "torch"]
        results = []
        for repeat in range(args.repeats):
            for variant, network in cases:
                command = base + ["--worker", variant, "--network", network,
                                  "--images-file", data["path"]]
                result, error = _run_worker(command, cores)
                if result is None:
                    print(f"{variant} ({network}) failed:\n{error}", file=sys.stderr)
                    return 1
                result["repeat"] = repeat
                results.append(result)
                print(f"repeat {repeat + 1}/{args.repeats} {variant:12s} {network:12s} "
                      f"{result['steps_per_second']:7.1f} steps/s", file=sys.stderr, flush=True)

    rows = build_table(results)
    settings = {"steps": args.steps, "warmup": args.warmup, "window": args.window,
                "repeats": args.repeats, "cores": cores, "batch_size": BATCH_SIZE,
                "latent_dim": LATENT_DIM, "data": "mnist (dynamic binarization, 50 000 train)",
                "command": " ".join([Path(sys.executable).name, *sys.argv]),
                "machine": platform.processor() or platform.machine(),
                "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "load_average": os.getloadavg()}
    print(f"\n784-{HIDDEN_UNITS[0]}-{HIDDEN_UNITS[1]}-{LATENT_DIM} tanh MLP VAE"
          if args.networks is None else "\ntfp_vae train_run per network preset, latent "
          f"{LATENT_DIM}", end=", ")
    print(f"batch {BATCH_SIZE}, {args.warmup} warm-up steps, median steps/s over windows of "
          f"{args.window} steps ({args.steps} timed steps per variant), cores {cores}, "
          f"load average {os.getloadavg()[0]:.1f}\n")
    if args.networks is not None:
        print(network_table(rows, data["networks"]))
    else:
        print(format_table(rows, results))
    for line in skipped.values():
        print(f"\n{line}")
    default = "steps_per_second_networks.json" if args.networks is not None \
        else "steps_per_second.json"
    path = Path(args.json) if args.json else RESULTS / default
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"settings": settings, "table": rows, "skipped": skipped,
                                "registry_jit_defaults": data["networks"], "runs": results},
                               indent=2) + "\n")
    print(f"\nWrote {path}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
