"""The distributed train step (several steps per `tf.function` call).

Per replica, the frozen front-end (VGG) runs first, outside XLA: it needs no
gradient, and on CPUs oneDNN runs its convolutions faster than XLA does
(bf16 included: docs/performance.md). The trainable part (ReNet, upsampling,
classifier), its loss and its gradient run in one XLA-compiled function. The
optimizer is applied outside the compiled function, in replica context: Keras
3 optimizers then all-reduce the gradients themselves. Several steps run per
`tf.function` call (a `tf.range` loop) to keep Python out of the hot path.
Batches from `feature_cache` carry the front end's output as `"features"`.

The loss of each replica is its per-image sums divided by the *global* batch
size (the original code: summed over an image's pixels, averaged over
images), so the all-reduced (summed) gradient equals the single-replica
gradient of the same global batch.
"""

import dataclasses
from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from reseg_tf.model import lowering as lowering_lib
from reseg_tf.model.shapes import spatial_size
from reseg_tf.training import losses


@dataclasses.dataclass(frozen=True)
class LossOptions:
  """What the loss needs besides logits and labels."""
  global_batch_size: int
  class_weights: Optional[np.ndarray] = None  # [num_outputs] or None.
  void_class: Optional[int] = None  # Train void as this class (code).
  weight_decay: float = 0.0  # L2 on kernels: weight_decay * sum(w^2).
  clip_norm: Optional[float] = None  # Global gradient-norm clipping.
  lovasz_weight: float = 0.0  # Adds this times Lovasz-softmax per pixel.
  hard_pixel_fraction: float = 1.0  # Cross-entropy on this share of pixels.


def _regularised(variables):
  """Kernels only, as Lasagne's `regularize_network_params` (no biases)."""
  return [v for v in variables if len(v.shape) > 1]


def has_frozen_front_end(model) -> bool:
  return model.vgg is None or not model.vgg.trainable_variables


def step_inputs(model, batch) -> tuple:
  """One replica's `(inputs, labels)` of the compiled part: the front end's
  features (from the batch when `feature_cache` computed them, else computed
  here, outside XLA, when the front end is frozen) or, for a trainable front
  end, the prepared images (resized and padded here: XLA cannot resize)."""
  if "features" in batch:  # From feature_cache: the front end already ran.
    return batch["features"], batch["label"]
  inputs = model.prepare(batch["image"])
  if has_frozen_front_end(model):
    inputs = tf.stop_gradient(model.front_end(inputs))
  return inputs, batch["label"]


def make_loss_and_gradients(model, options: LossOptions,
                            lowering: lowering_lib.Lowering = lowering_lib.IN_PROCESS
                            ) -> Callable:
  """`fn(inputs, labels) -> (loss, gradients)`: the trainable part of a step
  (what the outer XLA function compiles), inputs from `step_inputs`, the
  model in the form `lowering` gives."""
  variables = list(model.trainable_variables)
  decayed = _regularised(variables)
  frozen_front_end = has_frozen_front_end(model)
  weights = (None if options.class_weights is None
             else tf.constant(options.class_weights, tf.float32))

  def loss_and_gradients(inputs, labels):
    with tf.GradientTape() as tape:
      features = inputs if frozen_front_end else model.front_end(inputs)
      logits = model.head(features, spatial_size(labels), lowering, training=True)
      per_image, pixels = losses.pixel_cross_entropy(
          logits, labels, weights, void_class=options.void_class,
          hard_pixel_fraction=options.hard_pixel_fraction)
      if options.lovasz_weight:
        # Per labelled pixel, as the cross-entropy's sum is, so the weight
        # is relative to the mean cross-entropy of a pixel.
        per_image += options.lovasz_weight * pixels * losses.lovasz_softmax(
            logits, labels, void_class=options.void_class)
      loss = tf.reduce_sum(per_image) / options.global_batch_size
      objective = loss
      if options.weight_decay:
        # Summed over replicas by the optimizer: divide by their number.
        replicas = tf.distribute.get_replica_context().num_replicas_in_sync
        objective += (options.weight_decay / replicas) * tf.add_n(
            [tf.reduce_sum(tf.square(v)) for v in decayed])
    return loss, tape.gradient(objective, variables)

  return loss_and_gradients


def make_train_loop(strategy: tf.distribute.Strategy, model, optimizer,
                    options: LossOptions, jit_compile: bool = True,
                    lowering: lowering_lib.Lowering = lowering_lib.IN_PROCESS
                    ) -> Callable[[object, tf.Tensor], tf.Tensor]:
  """Returns `loop(iterator, num_steps) -> mean loss per image`.

  Args:
    strategy: the strategy whose scope holds `model` and `optimizer`.
    model: a `model.ReSeg`.
    optimizer: a Keras 3 optimizer built for `model.trainable_variables`.
    options: loss and gradient options.
    jit_compile: compile the trainable part with XLA (`training/jit_choice.py`
      decides the trainer's default).
    lowering: the model's form (the default: the compiled sweep on CPUs
      where it loads, the fused one inside XLA).
  """
  variables = list(model.trainable_variables)
  compiled = tf.function(make_loss_and_gradients(model, options, lowering),
                         jit_compile=jit_compile)

  def replica_step(batch):
    loss, gradients = compiled(*step_inputs(model, batch))
    if options.clip_norm:
      # Clip the true global norm: all-reduce first, clip, then hand the
      # optimizer per-replica shares it will sum back (docs/performance.md).
      context = tf.distribute.get_replica_context()
      gradients = context.all_reduce(tf.distribute.ReduceOp.SUM, gradients)
      gradients, _ = tf.clip_by_global_norm(gradients, options.clip_norm)
      gradients = [g / context.num_replicas_in_sync for g in gradients]
    optimizer.apply_gradients(zip(gradients, variables))
    return loss

  @tf.function
  def loop(iterator, num_steps):
    total = tf.constant(0.0)
    for _ in tf.range(num_steps):
      per_replica = strategy.run(replica_step, args=(next(iterator),))
      total += strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
    return total / tf.cast(num_steps, tf.float32)

  return loop
