"""Per-pixel cross-entropy, Lovasz-softmax and class weights against NumPy."""

import numpy as np
import tensorflow as tf

from reseg_tf.training import losses, options


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


class HardPixelMiningTest(tf.test.TestCase):
  """`hard_pixel_fraction`: the cross-entropy over each image's hardest
  labelled pixels, against a NumPy ranking of the pixels."""

  def setUp(self):
    super().setUp()
    rng = np.random.default_rng(1)
    self.logits = rng.normal(size=(3, 6, 5, 4)).astype(np.float32)
    self.labels = rng.choice([0, 1, 2, 3, 255], size=(3, 6, 5)).astype(np.uint8)
    self.labels[2] = 255  # An image without labelled pixels.
    self.weights = np.array([0.5, 2.0, 1.0, 3.0], np.float32)

  def _numpy_mined(self, fraction):
    valid = self.labels != 255
    safe = np.where(valid, self.labels, 0)
    per_pixel = _numpy_cross_entropy(self.logits, safe)
    expected = []
    for b in range(len(self.labels)):
      losses_of_image = per_pixel[b][valid[b]]
      kept = int(np.ceil(fraction * losses_of_image.size))
      hardest = np.argsort(-losses_of_image)[:kept]  # Unweighted ranking.
      weights = self.weights[safe[b][valid[b]]]
      expected.append((losses_of_image * weights)[hardest].sum() / fraction)
    return np.array(expected), valid.sum(axis=(1, 2))

  def test_the_hardest_fraction_of_each_image(self):
    for fraction in (0.1, 0.25, 0.5):
      loss, pixels = losses.pixel_cross_entropy(
          self.logits, self.labels, self.weights, hard_pixel_fraction=fraction)
      expected, labelled = self._numpy_mined(fraction)
      self.assertAllClose(loss, expected, rtol=1e-5)
      self.assertAllEqual(pixels, labelled)  # All labelled pixels, mined or not.

  def test_under_xla_as_eagerly(self):
    mined = tf.function(lambda logits, labels: losses.pixel_cross_entropy(
        logits, labels, self.weights, hard_pixel_fraction=0.3), jit_compile=True)
    self.assertAllClose(mined(self.logits, self.labels)[0],
                        self._numpy_mined(0.3)[0], rtol=1e-5)

  def test_fraction_one_is_the_plain_loss(self):
    self.assertAllClose(
        losses.pixel_cross_entropy(self.logits, self.labels, self.weights,
                                   hard_pixel_fraction=1.0),
        losses.pixel_cross_entropy(self.logits, self.labels, self.weights))

  def test_easy_pixels_get_no_gradient(self):
    logits = tf.Variable(self.logits)
    with tf.GradientTape() as tape:
      loss, _ = losses.pixel_cross_entropy(logits, self.labels,
                                           hard_pixel_fraction=0.25)
    moved = np.abs(tape.gradient(loss, logits).numpy()).sum(-1) > 0
    valid = self.labels != 255
    per_pixel = _numpy_cross_entropy(self.logits, np.where(valid, self.labels, 0))
    self.assertAllEqual(moved, losses.hardest_pixels(per_pixel, valid, 0.25))
    self.assertAllEqual(moved.sum(axis=(1, 2)), [6, 6, 0])  # ceil(0.25 * 23 or 24).

  def test_bad_fraction(self):
    for fraction in (0.0, 1.5):
      with self.assertRaisesRegex(ValueError, "hard_pixel_fraction"):
        losses.pixel_cross_entropy(self.logits, self.labels,
                                   hard_pixel_fraction=fraction)
      with self.assertRaisesRegex(ValueError, "Optimisation.hard_pixel_fraction"):
        options.Optimisation(hard_pixel_fraction=fraction)


def _numpy_lovasz(probabilities, labels, valid):
  """The Lovasz extension from its definition, one set at a time: the
  errors sorted in decreasing order, each weighted by how much the Jaccard
  loss |M| / |truth | M| of the set M of the pixels wrongly treated (the
  misses among the truth and the false alarms) grows when it joins M."""
  losses_of_classes = []
  probabilities, labels = probabilities[valid], labels[valid]
  for c in range(probabilities.shape[-1]):
    truth = labels == c
    if not truth.any():
      continue
    errors = np.abs(truth - probabilities[:, c])
    order = np.argsort(-errors, kind="stable")
    loss, previous, wrong = 0.0, 0.0, set()
    for i in order:
      wrong.add(i)
      jaccard = len(wrong) / len(set(np.flatnonzero(truth)) | wrong)
      loss += errors[i] * (jaccard - previous)
      previous = jaccard
    losses_of_classes.append(loss)
  return np.mean(losses_of_classes) if losses_of_classes else 0.0


def _softmax(logits):
  e = np.exp(logits - logits.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


class LovaszSoftmaxTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    rng = np.random.default_rng(1)
    self.logits = rng.normal(size=(3, 5, 6, 4)).astype(np.float32) * 2
    self.labels = rng.choice([0, 1, 2, 255], size=(3, 5, 6)).astype(np.uint8)
    self.labels[2] = 255  # An image without labelled pixels.

  def test_equals_the_extension_from_its_definition(self):
    loss = losses.lovasz_softmax(self.logits, self.labels)
    probabilities = _softmax(self.logits.astype(np.float64))
    expected = [_numpy_lovasz(p, y, y != 255) for p, y in zip(probabilities, self.labels)]
    self.assertAllClose(loss, expected, rtol=1e-5, atol=1e-6)
    self.assertEqual(float(loss[2]), 0.0)

  def test_void_as_a_class(self):
    loss = losses.lovasz_softmax(self.logits, self.labels, void_class=3)
    labels = np.where(self.labels == 255, 3, self.labels)
    probabilities = _softmax(self.logits.astype(np.float64))
    expected = [_numpy_lovasz(p, y, np.ones_like(y, bool)) for p, y in zip(probabilities, labels)]
    self.assertAllClose(loss, expected, rtol=1e-5, atol=1e-6)

  def test_is_one_minus_iou_on_hard_predictions(self):
    # Saturated logits: probabilities 0 or 1, where the extension is tight.
    predicted = np.argmax(self.logits, -1)
    hard = np.where(np.arange(4) == predicted[..., None], 50.0, -50.0).astype(np.float32)
    loss = losses.lovasz_softmax(hard, self.labels)
    for image in range(2):
      valid = self.labels[image] != 255
      label, guess = self.labels[image][valid], predicted[image][valid]
      ious = [np.sum((label == c) & (guess == c)) / np.sum((label == c) | (guess == c))
              for c in range(4) if np.any(label == c)]
      self.assertAllClose(loss[image], 1 - np.mean(ious), atol=1e-6)

  def test_gradient_lowers_the_loss(self):
    logits = tf.Variable(self.logits[:2])
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(losses.lovasz_softmax(logits, self.labels[:2]))
    gradient = tape.gradient(loss, logits)
    # Void pixels get no gradient; a small step against it lowers the loss
    # by |gradient|^2 per unit step (the order of the errors does not change).
    self.assertAllEqual(tf.reduce_sum(tf.abs(gradient), -1).numpy()[self.labels[:2] == 255],
                        np.zeros(np.sum(self.labels[:2] == 255)))
    step = 1e-3
    stepped = losses.lovasz_softmax(logits - step * gradient, self.labels[:2])
    self.assertAllClose((float(loss) - float(tf.reduce_sum(stepped))) / step,
                        float(tf.reduce_sum(gradient ** 2)), rtol=0.05)


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
