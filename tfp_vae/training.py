"""Training helpers: a custom `tf.function` loop and the KL-weight schedule callback."""

from __future__ import annotations

from collections.abc import Callable

from tfp_vae.backend import keras, tf
from tfp_vae.kl import kl_weight_variables

__all__ = ["KLWeightScheduler", "linear_kl_warmup", "train_loop"]


def linear_kl_warmup(warmup_epochs: int, final_weight: float = 1.0) -> Callable[[int], float]:
    """A KL-weight schedule rising linearly to `final_weight` over `warmup_epochs` epochs.

    Epoch `e` (0-based) gets `final_weight * min(1, (e + 1) / warmup_epochs)`, so the first
    epoch already has a non-zero KL and epoch `warmup_epochs - 1` reaches `final_weight`.

    Args:
      warmup_epochs: Python `int` >= 0; `0` means no warm-up.
      final_weight: Python `float`, the weight after warm-up (β). Default: `1.0`.

    Returns:
      A function `epoch -> weight`.

    Raises:
      ValueError: If `warmup_epochs` is negative.

    #### Examples

    ```python
    vae.fit(data, epochs=10, callbacks=[KLWeightScheduler(linear_kl_warmup(5))])
    ```
    """
    if not isinstance(warmup_epochs, int) or warmup_epochs < 0:
        raise ValueError(f"warmup_epochs must be a non-negative integer, got {warmup_epochs!r}.")

    def schedule(epoch: int) -> float:
        if warmup_epochs == 0:
            return float(final_weight)
        return float(final_weight) * min(1.0, (epoch + 1) / warmup_epochs)

    return schedule


class KLWeightScheduler(keras.callbacks.Callback):
    """Sets the KL weight at the start of every epoch, without rebuilding the model.

    The weight lives in `tf.Variable`s (a `VAE`'s `kl_weight`, and the `weight` of every
    tfp_vae `KLDivergenceAddLoss` / `KLDivergenceRegularizer` in the model), so compiled
    training functions see the new value.

    Args:
      schedule: Function `epoch -> weight` (e.g. `linear_kl_warmup(5)`).
      variables: The variables to set; `None` finds them in the model (`kl_weight_variables`).
        Default: `None`.

    Raises:
      ValueError: At the start of training, if the model has no KL weight to schedule.
    """

    def __init__(self, schedule: Callable[[int], float],
                 variables: list[tf.Variable] | None = None):
        super().__init__()
        self.schedule = schedule
        self.variables = variables

    def on_epoch_begin(self, epoch, logs=None):
        variables = self.variables or kl_weight_variables(self.model)
        if not variables:
            raise ValueError("KLWeightScheduler found no KL weight in the model; attach the KL "
                             "with tfp_vae's KLDivergenceAddLoss/KLDivergenceRegularizer or "
                             "pass `variables=`.")
        weight = float(self.schedule(epoch))
        for variable in variables:
            variable.assign(weight)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            variables = self.variables or kl_weight_variables(self.model)
            logs["kl_weight"] = float(variables[0].numpy())


def train_loop(model: keras.Model, dataset: tf.data.Dataset, epochs: int = 1,
               optimizer: keras.optimizers.Optimizer | None = None,
               validation_data: tf.data.Dataset | None = None,
               kl_schedule: Callable[[int], float] | None = None) -> dict[str, list[float]]:
    """Trains a tfp_vae model with a hand-written `tf.function` + `GradientTape` loop.

    The loop minimises the same `model.compute_losses` as `model.fit`, so both reach the same
    losses; it exists for readers who want to see every step, and for custom research loops.

    Args:
      model: A tfp_vae `VAE` or `Autoencoder`.
      dataset: Batched `tf.data.Dataset` of images or `(image, label)` pairs.
      epochs: Python `int`. Default: `1`.
      optimizer: A tf_keras optimizer. Default: `None` (Adam, learning rate 1e-3).
      validation_data: Optional batched dataset evaluated after each epoch. Default: `None`.
      kl_schedule: Optional function `epoch -> KL weight`. Default: `None`.

    Returns:
      History: a dict from metric name (`loss`, ..., and `val_loss`, ...) to per-epoch means.

    #### Examples

    ```python
    history = train_loop(vae, make_dataset(x_train), epochs=3)
    history["loss"][-1]
    ```
    """
    optimizer = optimizer or keras.optimizers.Adam(1e-3)

    def features(batch):
        return batch[0] if isinstance(batch, tuple) else batch

    @tf.function
    def train_step(x):
        with tf.GradientTape() as tape:
            losses = model.compute_losses(x, training=True)
        gradients = tape.gradient(losses["loss"], model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return losses

    @tf.function
    def eval_step(x):
        return model.compute_losses(x, training=False)

    def run_epoch(data, step, prefix):
        # Mean of batch means, as the `keras.metrics.Mean` trackers of `model.fit` compute it.
        totals, batches = {}, 0
        for batch in data:
            for name, value in step(features(batch)).items():
                totals[name] = totals.get(name, 0.0) + float(value)
            batches += 1
        return {prefix + name: total / batches for name, total in totals.items()}

    history: dict[str, list[float]] = {}
    for epoch in range(epochs):
        if kl_schedule is not None:
            for variable in kl_weight_variables(model):
                variable.assign(float(kl_schedule(epoch)))
        logs = run_epoch(dataset, train_step, "")
        if validation_data is not None:
            logs.update(run_epoch(validation_data, eval_step, "val_"))
        for name, value in logs.items():
            history.setdefault(name, []).append(value)
    return history
