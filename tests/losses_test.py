"""Per-pixel cross-entropy and class weights against NumPy."""

import numpy as np
import tensorflow as tf

from reseg_tf.training import losses


def _numpy_cross_entropy(logits, labels):
  shifted = logits - logits.max(-1, keepdims=True)
  log_softmax = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
  return -np.take_along_axis(log_softmax, labels[..., None], -1)[..., 0]


class PixelCrossEntropyTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    rng = np.random.default_rng(0)
    self.logits = rng.normal(size=(2, 3, 4, 3)).astype(np.float32)
    self.labels = rng.choice([0, 1, 2, 255], size=(2, 3, 4)).astype(np.uint8)

  def test_void_is_ignored_and_weights_apply(self):
    weights = np.array([0.5, 2.0, 1.0], np.float32)
    loss, pixels = losses.pixel_cross_entropy(self.logits, self.labels, weights)
    valid = self.labels != 255
    safe = np.where(valid, self.labels, 0)
    per_pixel = _numpy_cross_entropy(self.logits, safe) * weights[safe] * valid
    self.assertAllClose(loss, per_pixel.sum(axis=(1, 2)), rtol=1e-6)
    self.assertAllEqual(pixels, valid.sum(axis=(1, 2)))

  def test_void_as_a_class(self):
    logits = np.concatenate([self.logits, self.logits[..., :1]], -1)  # K + 1.
    loss, pixels = losses.pixel_cross_entropy(logits, self.labels, void_class=3)
    labels = np.where(self.labels == 255, 3, self.labels)
    self.assertAllClose(loss, _numpy_cross_entropy(logits, labels).sum(axis=(1, 2)),
                        rtol=1e-6)
    self.assertAllEqual(pixels, [12, 12])


class ClassWeightsTest(tf.test.TestCase):

  METADATA = {"num_classes": 3, "median_frequency_weights": [0.5, 1.0, 4.0]}

  def test_choices(self):
    self.assertIsNone(losses.class_weights("none", self.METADATA, 3))
    self.assertAllEqual(losses.class_weights("median_frequency", self.METADATA, 3),
                        [0.5, 1.0, 4.0])
    self.assertAllEqual(losses.class_weights("median_frequency", self.METADATA, 4,
                                             void_weight=0.25), [0.5, 1.0, 4.0, 0.25])
    self.assertAllClose(losses.class_weights("sqrt_median_frequency", self.METADATA, 4,
                                             void_weight=0.25),
                        [0.5 ** 0.5, 1.0, 2.0, 0.25])
    self.assertAllEqual(losses.class_weights("explicit", self.METADATA, 3, [1, 2, 3]),
                        [1, 2, 3])

  def test_bad_requests(self):
    with self.assertRaisesRegex(ValueError, "need 3 values"):
      losses.class_weights("explicit", self.METADATA, 3, [1, 2])
    with self.assertRaisesRegex(ValueError, "should be 3 or 4"):
      losses.class_weights("none", self.METADATA, 5)
    with self.assertRaisesRegex(ValueError, "not one of"):
      losses.class_weights("inverse", self.METADATA, 3)


if __name__ == "__main__":
  tf.test.main()
