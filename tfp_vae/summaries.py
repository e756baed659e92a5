"""TensorBoard logging for a training run: Keras's own callback plus VAE-specific summaries.

`tensorboard_callbacks(log_dir, images)` returns Keras's `TensorBoard` callback (the loss terms
and the KL weight per epoch and, with `update_freq`, per step) and a `VAESummaries` callback
that adds what Keras does not know about a VAE: the number of active latent units every epoch,
and image summaries (inputs above reconstructions; prior samples) every N epochs. View them
with `tensorboard --logdir DIR`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from tfp_vae.backend import keras, tf
from tfp_vae.evaluation import active_units
from tfp_vae.models import VAE

__all__ = ["VAESummaries", "tensorboard_callbacks"]


class VAESummaries(keras.callbacks.Callback):
    """Writes a VAE's active units and image summaries to TensorBoard.

    `epoch_active_units` (measured on `images`) goes to `log_dir/train` at every epoch end,
    beside Keras's own `epoch_loss`, `epoch_reconstruction_loss`, `epoch_kl_loss` and
    `epoch_kl_weight`; images go to `log_dir/images` every
    `image_every` epochs (and at the last epoch): `reconstructions` (the inputs in the top half,
    their reconstructions below) and, for a `VAE`, `prior_samples` (pixel means of p(x|z),
    z ~ p(z), with a fixed seed so successive epochs are comparable).

    Args:
      log_dir: The TensorBoard log directory.
      images: A few held-out images `[n, h, w, c]` in [0, 1] (at most 16 are shown); never the
        test set in a run that selects models.
      image_every: Write images every this many epochs. Default: `1`.
      num_samples: Prior samples per image summary. Default: `16`.

    #### Examples

    ```python
    vae.fit(train, epochs=5, callbacks=[VAESummaries("logs/run1", x_validation[:500])])
    ```
    """

    def __init__(self, log_dir: str | os.PathLike, images: np.ndarray, image_every: int = 1,
                 num_samples: int = 16):
        super().__init__()
        if image_every < 1:
            raise ValueError(f"image_every must be a positive number of epochs, got "
                             f"{image_every}.")
        self.log_dir = os.fspath(log_dir)
        self.images = np.asarray(images, dtype=np.float32)
        self.image_every = int(image_every)
        self.num_samples = int(num_samples)
        self._writers: dict[str, tf.summary.SummaryWriter] = {}

    def _writer(self, name: str) -> tf.summary.SummaryWriter:
        if name not in self._writers:
            self._writers[name] = tf.summary.create_file_writer(
                os.path.join(self.log_dir, name))
        return self._writers[name]

    def on_epoch_end(self, epoch, logs=None):
        model = self.model
        with self._writer("train").as_default(step=epoch):
            counted = active_units(model, self.images)["active_units"]
            tf.summary.scalar("epoch_active_units", counted)
        last = self.params.get("epochs") if self.params else None
        if (epoch + 1) % self.image_every and epoch + 1 != last:
            return
        shown = self.images[:16]
        with self._writer("images").as_default(step=epoch):
            pairs = np.concatenate([shown, np.asarray(model.reconstruct(shown))], axis=1)
            tf.summary.image("reconstructions", pairs, max_outputs=len(shown))
            if isinstance(model, VAE):
                tf.summary.image("prior_samples", np.asarray(model.sample(self.num_samples,
                                                                          seed=0)),
                                 max_outputs=self.num_samples)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


def tensorboard_callbacks(log_dir: str | os.PathLike, images: np.ndarray, image_every: int = 1,
                          update_freq: str | int = "epoch"
                          ) -> Sequence[keras.callbacks.Callback]:
    """Keras's `TensorBoard` callback and `VAESummaries`, writing to one log directory.

    Args:
      log_dir: The TensorBoard log directory (view: `tensorboard --logdir log_dir`).
      images: Held-out images for active units and image summaries (see `VAESummaries`).
      image_every: Write images every this many epochs. Default: `1`.
      update_freq: Keras's `update_freq`: `'epoch'`, `'batch'` or a step count. Default:
        `'epoch'`.

    Returns:
      A list of two callbacks to pass to `fit`.

    #### Examples

    ```python
    vae.fit(train, epochs=5, callbacks=tensorboard_callbacks("logs/run1", x_validation[:500]))
    ```
    """
    return [keras.callbacks.TensorBoard(os.fspath(log_dir), update_freq=update_freq),
            VAESummaries(log_dir, images, image_every=image_every)]
