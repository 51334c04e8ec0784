"""Direct tests of the train step (reseg_tf/training/train_step.py) and the
optimizer factory: weight decay, gradient clipping, class weights, by
comparing one SGD step (learning rate 1: the update is minus the gradient)
with gradients computed here by hand."""

import keras
import numpy as np
import tensorflow as tf

from reseg_tf.model import reseg
from reseg_tf.training import losses, optimizers, train_step
from tests import fixtures

_TINY = dict(num_classes=3, void_as_class=False, use_vgg=False, renet_units=(4, 4),
             renet_patch_sizes=((2, 2), (1, 1)), upsample_filters=(5,), upsample_size=(2, 2))


def _batch():
  rng = np.random.default_rng(0)
  return {"image": rng.integers(0, 256, (2, 12, 16, 3)).astype(np.uint8),
          "label": rng.choice([0, 1, 2, 255], (2, 12, 16)).astype(np.uint8),
          "mask": np.ones(2, bool)}


def _one_step(options, model_kwargs=None, jit_compile=False):
  """(update applied by the train loop, plain gradient of the data loss, variables before)."""
  tf.random.set_seed(0)
  strategy = tf.distribute.get_strategy()
  model = reseg.ReSeg(**(model_kwargs or _TINY))
  optimizer = keras.optimizers.SGD(learning_rate=1.0)
  optimizer.build(model.trainable_variables)
  before = [v.numpy() for v in model.trainable_variables]
  batch = _batch()
  with tf.GradientTape() as tape:
    logits = model(tf.constant(batch["image"]))
    weights = None if options.class_weights is None else tf.constant(options.class_weights)
    labels = tf.constant(batch["label"])
    per_image, pixels = losses.pixel_cross_entropy(
        logits, labels, weights, hard_pixel_fraction=options.hard_pixel_fraction)
    loss = tf.reduce_sum(per_image) / options.global_batch_size
    # The Lovasz term: its weight times each image's loss, per labelled pixel.
    loss += options.lovasz_weight * tf.reduce_sum(
        pixels * losses.lovasz_softmax(logits, labels)) / options.global_batch_size
  gradients = [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]
  loop = train_step.make_train_loop(strategy, model, optimizer, options, jit_compile=jit_compile)
  loop(iter(tf.data.Dataset.from_tensors(batch).repeat()), tf.constant(1))
  updates = [b - v.numpy() for b, v in zip(before, model.trainable_variables)]
  return updates, gradients, before, [v.name for v in model.trainable_variables]


class TrainStepTest(tf.test.TestCase):

  def test_plain_step_applies_the_gradient_of_the_loss(self):
    updates, gradients, _, _ = _one_step(train_step.LossOptions(global_batch_size=2))
    for update, gradient in zip(updates, gradients):
      self.assertAllClose(update, gradient, atol=1e-6, rtol=1e-4)

  def test_trainable_front_end_at_half_resolution_compiles_and_steps(self):
    # VGG trained (from random weights) at input_scale 0.5: the antialiased
    # resize has no XLA kernel, so it must run outside the compiled part.
    model_kwargs = dict(_TINY, use_vgg=True, vgg_weights="random", vgg_trainable=True,
                        renet_patch_sizes=((1, 1), (1, 1)), upsample_filters=(5, 5),
                        input_scale=0.5)
    # Op determinism, switched on process-wide by other tests' deterministic
    # runs, has no XLA max-pool gradient; this test is about the resize.
    with fixtures.op_determinism(enabled=False):
      updates, gradients, _, names = _one_step(train_step.LossOptions(global_batch_size=2),
                                               model_kwargs, jit_compile=True)
    self.assertTrue(any("vgg" in name for name in names))
    for update, gradient, name in zip(updates, gradients, names):
      self.assertAllClose(update, gradient, atol=1e-5, rtol=1e-3, msg=name)

  def test_weight_decay_adds_twice_decay_times_kernels_only(self):
    decay = 1e-2
    updates, gradients, before, names = _one_step(
        train_step.LossOptions(global_batch_size=2, weight_decay=decay))
    for update, gradient, weight, name in zip(updates, gradients, before, names):
      expected = gradient + (2 * decay * weight if weight.ndim > 1 else 0.0)
      self.assertAllClose(update, expected, atol=1e-6, rtol=1e-4, msg=name)

  def test_clipping_scales_to_the_global_norm(self):
    _, gradients, _, _ = _one_step(train_step.LossOptions(global_batch_size=2))
    norm = np.sqrt(sum(float(np.sum(g * g)) for g in gradients))
    clip = norm / 4
    updates, _, _, _ = _one_step(train_step.LossOptions(global_batch_size=2, clip_norm=clip))
    for update, gradient in zip(updates, gradients):
      self.assertAllClose(update, gradient * clip / norm, atol=1e-6, rtol=1e-4)

  def test_class_weights_reach_the_loss(self):
    weights = np.array([0.5, 2.0, 1.0], np.float32)
    updates, gradients, _, _ = _one_step(
        train_step.LossOptions(global_batch_size=2, class_weights=weights))
    for update, gradient in zip(updates, gradients):
      self.assertAllClose(update, gradient, atol=1e-6, rtol=1e-4)

  def test_lovasz_term_reaches_the_gradient_under_xla(self):
    plain, _, _, _ = _one_step(train_step.LossOptions(global_batch_size=2))
    updates, gradients, _, names = _one_step(
        train_step.LossOptions(global_batch_size=2, lovasz_weight=0.5), jit_compile=True)
    for update, gradient, name in zip(updates, gradients, names):
      self.assertAllClose(update, gradient, atol=1e-5, rtol=1e-3, msg=name)
    self.assertGreater(max(np.max(np.abs(u - p)) for u, p in zip(updates, plain)), 1e-3)

  def test_hard_pixel_mining_reaches_the_gradient_under_xla(self):
    plain, _, _, _ = _one_step(train_step.LossOptions(global_batch_size=2))
    updates, gradients, _, names = _one_step(
        train_step.LossOptions(global_batch_size=2, hard_pixel_fraction=0.25),
        jit_compile=True)
    for update, gradient, name in zip(updates, gradients, names):
      self.assertAllClose(update, gradient, atol=1e-5, rtol=1e-3, msg=name)
    self.assertGreater(max(np.max(np.abs(u - p)) for u, p in zip(updates, plain)), 1e-3)

  def test_dropout_reaches_the_step_under_xla_and_outside(self):
    # The step trains with `training=True`: the update is no longer the
    # gradient of the dropout-free loss (which the rate leaves unchanged).
    plain, _, _, _ = _one_step(train_step.LossOptions(global_batch_size=2))
    for jit_compile in (False, True):
      updates, _, _, names = _one_step(train_step.LossOptions(global_batch_size=2),
                                       dict(_TINY, dropout_rate=0.5), jit_compile=jit_compile)
      for update, name in zip(updates, names):
        self.assertTrue(np.all(np.isfinite(update)), msg=name)
      self.assertGreater(max(np.max(np.abs(u - p)) for u, p in zip(updates, plain)), 1e-3)


class OptimizersTest(tf.test.TestCase):

  def test_paper_adadelta_settings_and_the_others(self):
    adadelta = optimizers.make_optimizer()
    self.assertIsInstance(adadelta, keras.optimizers.Adadelta)
    self.assertAllClose([float(adadelta.learning_rate), adadelta.rho, adadelta.epsilon],
                        [1.0, 0.95, 1e-6])
    self.assertIsInstance(optimizers.make_optimizer("adam", 1e-3), keras.optimizers.Adam)
    adamw = optimizers.make_optimizer("adamw", 1e-3, weight_decay=0.01)
    self.assertIsInstance(adamw, keras.optimizers.AdamW)
    self.assertAllClose(adamw.weight_decay, 0.01)
    with self.assertRaisesRegex(ValueError, "'sgd' is not one of"):
      optimizers.make_optimizer("sgd")


if __name__ == "__main__":
  tf.test.main()
