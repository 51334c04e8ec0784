"""Test-time augmentation: averaged views against hand-computed references."""

import numpy as np
import tensorflow as tf

import reseg_tf
from reseg_tf.model import test_time_augmentation as tta


def _column_logits(images):
  """Two logits per pixel: [column index, 0]; depends on where a pixel is."""
  shape = tf.shape(images)
  columns = tf.cast(tf.range(shape[2]), tf.float32)
  first = tf.broadcast_to(columns[None, None, :], shape[:3])
  return tf.stack([first, tf.zeros_like(first)], axis=-1)


def _softmax(logits):
  e = np.exp(logits - logits.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


class TestTimeAugmentationTest(tf.test.TestCase):

  def test_no_augmentation_is_the_softmax_of_the_real_classes(self):
    logits = np.random.default_rng(0).normal(size=(2, 3, 4, 3)).astype(np.float32)
    got = tta.probabilities(lambda _: tf.constant(logits), tf.zeros([2, 3, 4, 3]), 2)
    self.assertAllClose(got, _softmax(logits)[..., :2], atol=1e-6)

  def test_the_mirror_view_is_mirrored_back_and_averaged(self):
    images = tf.zeros([1, 2, 5, 3])
    got = tta.probabilities(_column_logits, images, 2, tta.TestTimeAugmentation(flip=True))
    columns = np.arange(5, dtype=np.float32)
    direct = _softmax(np.stack([columns, np.zeros(5)], -1))
    mirrored = _softmax(np.stack([columns[::-1], np.zeros(5)], -1))
    expected = np.broadcast_to((direct + mirrored) / 2, (1, 2, 5, 2))
    self.assertAllClose(got, expected, atol=1e-6)

  def test_scaled_views_have_rounded_sizes_and_come_back_to_the_images_size(self):
    sizes = []

    def constant_colour_model(images):
      sizes.append(tuple(int(d) for d in images.shape[1:3]))
      return tf.stack([images[..., 0] / 100.0, images[..., 1] / 100.0], axis=-1)

    images = tf.fill([1, 5, 7, 3], 120.0)
    augmentation = tta.TestTimeAugmentation(scales=(0.5, 1, 1.5), flip=True)
    got = tta.probabilities(constant_colour_model, images, 2, augmentation)
    # round(2.5) = 2 and round(7.5) = 8: tf.round rounds half to even.
    self.assertEqual(sizes, [(2, 4), (2, 4), (5, 7), (5, 7), (8, 10), (8, 10)])
    # A model of the pixel's colour, on one colour: every view agrees.
    self.assertAllClose(got, np.full((1, 5, 7, 2), 0.5), atol=1e-6)
    self.assertEqual(augmentation.num_views, 6)
    self.assertEqual(augmentation.describe(),
                     "scales 0.5, 1, 1.5 and their mirror images (6 views)")

  def test_scales_are_parsed_and_checked(self):
    self.assertEqual(tta.parse_scales("0.75, 1,1.25"), (0.75, 1.0, 1.25))
    for bad in ("", "a,1", "0,1", "-1"):
      with self.assertRaises(ValueError):
        tta.parse_scales(bad)

  def test_a_published_model_with_mirror_and_scales(self):
    rng = np.random.default_rng(1)
    y, x = np.mgrid[:48, :64]
    image = np.clip(80 + 120 * np.exp(-(((y - 28) / 10) ** 2 + ((x - 24) / 14) ** 2))[..., None]
                    + rng.normal(0, 6, (48, 64, 3)), 0, 255).astype(np.uint8)
    plain = reseg_tf.load_model("horse_no_vgg").segment(image)
    augmented = reseg_tf.load_model(
        "horse_no_vgg", augmentation=reseg_tf.TestTimeAugmentation(scales=(1, 1.5), flip=True)
    ).segment(image)
    self.assertAllClose(augmented.probabilities.sum(-1), np.ones((48, 64)), atol=1e-5)
    self.assertAllEqual(augmented.classes, augmented.probabilities.argmax(-1))
    difference = np.abs(augmented.probabilities - plain.probabilities).max()
    self.assertGreater(difference, 1e-3)  # The views were used...
    self.assertGreater(np.mean(augmented.classes == plain.classes), 0.8)  # ...sensibly.


if __name__ == "__main__":
  tf.test.main()
