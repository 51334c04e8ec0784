"""The distributed evaluation step: a confusion matrix summed over replicas.

It is shared by the trainer's validation and the evaluate binary, so that
both score a checkpoint identically.
"""

from typing import Callable, Iterable, Optional

import numpy as np
import tensorflow as tf

from reseg_tf.evaluation import metrics
from reseg_tf.model import test_time_augmentation as tta
from reseg_tf.model.shapes import spatial_size


def default_jit_compile() -> bool:
  """Whether evaluation compiles the model's trainable part with XLA: on GPUs.

  On CPUs the forward pass alone is left to oneDNN and the compiled ReNet
  sweep (or the fused loops, which compile themselves); the trainer times
  its own train step instead (`training/jit_choice.py`).
  """
  return bool(tf.config.list_logical_devices("GPU"))


def make_eval_step(strategy: tf.distribute.Strategy, model, num_classes: int,
                   jit_compile: bool = True,
                   augmentation: tta.TestTimeAugmentation = tta.NONE
                   ) -> Callable[[object], tf.Tensor]:
  """Returns `step(distributed_batch) -> int64 [K, K+1]` confusion matrix.

  The matrix is summed across replicas; padding examples (`mask` False) and
  void pixels do not count. With `augmentation`, each pixel's prediction is
  the most probable output of the views' averaged softmax (a trained void
  class included, which counts as an error as without augmentation).

  Batches of several sizes (images evaluated unpadded) trace the step once
  for the first size and once more for any size (`reduce_retracing`), not
  once per size, unless `jit_compile`: XLA compiles per size anyway, and
  the fused sweeps it runs need static shapes (without them the sweeps
  fall back to `tf.scan`, `model/lowering.py`).
  """
  head = tf.function(model.head, jit_compile=jit_compile, reduce_retracing=not jit_compile)

  def replica_step(batch):
    labels = batch["label"]
    if augmentation.is_identity:
      predictions = tf.argmax(head(model.features(batch["image"]), spatial_size(labels)),
                              axis=-1)
    else:
      predictions = tf.argmax(tta.probabilities(
          lambda views: head(model.features(views), spatial_size(views)), batch["image"],
          model.num_outputs, augmentation), axis=-1)
    return metrics.confusion_matrix(labels, predictions, num_classes,
                                    example_mask=batch["mask"])

  @tf.function(reduce_retracing=not jit_compile)
  def step(batch):
    per_replica = strategy.run(replica_step, args=(batch,))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

  return step


def sum_confusion(step: Callable, dataset: Iterable, num_classes: int,
                  on_batch: Optional[Callable] = None) -> np.ndarray:
  """Sums `step`'s `[K, K+1]` confusion matrices over `dataset` (calling
  `on_batch(batch)` after each batch, e.g. for progress)."""
  confusion = np.zeros((num_classes, num_classes + 1), np.int64)
  for batch in dataset:
    confusion += step(batch).numpy()
    if on_batch is not None:
      on_batch(batch)
  return confusion
