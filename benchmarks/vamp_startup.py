"""The VampPrior's collapsed start: per-epoch validation negative ELBO, KL and posterior scale.

Trains a VAE on binarized MNIST (batch 100, fresh binarization every epoch, Adam 1e-3) and after
every epoch prints, on held-out images and at KL weight 1: the negative ELBO, the KL, the mean
posterior scale and the spread of the posterior means across images (how much the codes differ).
A collapsed model has KL ≈ 0 and a negative ELBO near 206-208 nats (the decoder ignores z); on the
way there the posterior scale grows past 1 while the means' spread shrinks.

    python benchmarks/vamp_startup.py                       # Burda's tanh MLP, VampPrior: collapses
    python benchmarks/vamp_startup.py --warmup-epochs 100   # first-epoch KL weight 0.01: trains
    python benchmarks/vamp_startup.py --network-options '{}'  # the default ReLU MLP: trains
    python benchmarks/vamp_startup.py --pseudo-inputs data --components 500
    python benchmarks/vamp_startup.py --prior gaussian      # the reference

Measured (2 cores, 10 000 training and 2 000 validation images, latent 50), validation negative
ELBO per epoch: tanh MLP at full weight 208.0 for all 10 epochs (KL 0.0, scale 1.9 -> 2.5); the
same with --warmup-epochs 5, 10 or 30, --components 500 with --pseudo-inputs near-black, and
--pseudo-inputs data; --warmup-epochs 100: 209.0, 208.3, 208.6, 203.8, 195.0, 189.2, 187.3, 181.0;
--network-options '{}': 196.3, 165.2, 149.7, 140.1, 134.3; --prior gaussian: 214.0, 204.1, 198.5,
192.0, 185.3.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from tfp_vae.backend import keras
from tfp_vae.config import ModelConfig
from tfp_vae.data import load_splits
from tfp_vae.models import VAE
from tfp_vae.training import linear_kl_warmup

BURDA_MLP = {"hidden_units": [200, 200], "activation": "tanh"}


def initial_pseudo_inputs(kind: str, shape, x_train: np.ndarray, rng: np.random.Generator
                          ) -> np.ndarray | None:
    """Pseudo-input images in [0.02, 0.98], or `None` for the prior's own initialisation."""
    if kind == "default":
        return None
    if kind == "data":  # random training images (grey levels)
        images = x_train[rng.choice(len(x_train), shape[0], replace=False)]
    elif kind == "near-black":  # N(0.05, 0.01) per pixel, like Tomczak & Welling's code
        images = rng.normal(0.05, 0.01, shape)
    else:  # "uniform"
        images = rng.random(shape)
    return np.clip(images, 0.02, 0.98)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prior", default="vamp")
    parser.add_argument("--network-options", default=json.dumps(BURDA_MLP),
                        help="JSON options of the mlp network")
    parser.add_argument("--latent-dim", type=int, default=50)
    parser.add_argument("--components", type=int, default=50)
    parser.add_argument("--pseudo-inputs", default="default",
                        choices=["default", "data", "near-black", "uniform"])
    parser.add_argument("--warmup-epochs", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train-size", type=int, default=10_000)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    splits = load_splits("mnist", args.data_dir, validation_size=2000,
                         train_size=args.train_size, test_size=10, seed=0)
    config = ModelConfig(network="mlp", network_options=json.loads(args.network_options),
                         latent_dim=args.latent_dim, prior=args.prior,
                         kl_estimator="analytic" if args.prior == "gaussian" else "mc",
                         prior_options={"num_components": args.components}
                         if args.prior in ("vamp", "mixture") else {})
    keras.utils.set_random_seed(0)
    vae = VAE(config)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    x_validation = splits.x_validation
    vae(x_validation[:2])
    rng = np.random.default_rng(0)
    if args.prior == "vamp":
        raw = vae.prior_layer.raw_pseudo_inputs
        images = initial_pseudo_inputs(args.pseudo_inputs, raw.shape, splits.x_train, rng)
        if images is not None:
            raw.assign(np.log(images / (1 - images)).astype(np.float32))
    schedule = linear_kl_warmup(args.warmup_epochs)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        x_train = (rng.random(splits.x_train.shape) < splits.x_train).astype(np.float32)
        vae.kl_weight.assign(schedule(epoch))
        vae.fit(x_train, batch_size=100, epochs=1, verbose=0, shuffle=True)
        vae.kl_weight.assign(1.0)
        result = vae.evaluate(x_validation, batch_size=500, verbose=0, return_dict=True)
        posterior = vae.encode(x_validation[:500])
        print(f"epoch {epoch + 1}  KL weight {schedule(epoch):.2f}  validation -ELBO "
              f"{result['loss']:.1f}  KL {result['kl_loss']:.1f}  posterior scale "
              f"{float(np.mean(posterior.stddev())):.2f}  spread of means "
              f"{float(np.std(posterior.mean(), axis=0).mean()):.3f}  "
              f"{time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
