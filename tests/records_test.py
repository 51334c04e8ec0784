"""Tests of the shared TFRecord format (reseg_tf/records.py)."""

import io

import numpy as np
import tensorflow as tf
from PIL import Image

from reseg_tf.data import records


def _encode(array, fmt):
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format=fmt)
  return buffer.getvalue()


class RecordsTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    rng = np.random.default_rng(0)
    self.image = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    self.label = rng.choice([0, 1, 2, 255], size=(5, 7)).astype(np.uint8)

  def _serialized(self, fmt="PNG"):
    return records.make_example(
        _encode(self.image, fmt), "png" if fmt == "PNG" else "jpeg", 5, 7,
        "a.png", _encode(self.label, "PNG")).SerializeToString()

  def test_keys_are_those_of_the_tf_segmentation_ecosystem(self):
    # The keys Model Garden's TfExampleDecoder and DeepLab's build_data use.
    self.assertCountEqual(records.FEATURE_SPEC, [
        "image/encoded", "image/format", "image/height", "image/width",
        "image/filename", "image/segmentation/class/encoded",
        "image/segmentation/class/format"])
    example = tf.train.Example.FromString(self._serialized())
    self.assertCountEqual(example.features.feature, records.FEATURE_SPEC)
    self.assertEqual(example.features.feature["image/format"].bytes_list.value, [b"png"])

  def test_png_round_trip_is_exact_eagerly_and_in_tf_data(self):
    decoded = records.decode_example(tf.constant(self._serialized()))
    self.assertAllEqual(decoded["image"], self.image)
    self.assertAllEqual(decoded["label"], self.label)
    self.assertEqual(decoded["filename"].numpy(), b"a.png")
    dataset = tf.data.Dataset.from_tensors(self._serialized()).map(records.decode_example)
    batch = next(iter(dataset))
    self.assertAllEqual(batch["image"], self.image)
    self.assertAllEqual(batch["label"], self.label)
    self.assertEqual(dataset.element_spec["image"].shape.as_list(), [None, None, 3])
    self.assertEqual(dataset.element_spec["label"].shape.as_list(), [None, None])

  def test_jpeg_images_decode(self):
    decoded = records.decode_example(tf.constant(self._serialized("JPEG")))
    self.assertEqual(decoded["image"].shape, (5, 7, 3))
    self.assertAllEqual(decoded["label"], self.label)

  def test_unknown_image_format_is_refused(self):
    with self.assertRaisesRegex(ValueError, "png' or 'jpeg"):
      records.make_example(b"", "bmp", 1, 1, "x", b"")

  def test_shard_names(self):
    self.assertEqual(records.shard_filename("train", 3, 12),
                     "train-00003-of-00012.tfrecord")
    self.assertTrue(tf.io.gfile.glob(records.shard_pattern("/nonexistent", "train")) == [])

  def test_missing_metadata_says_how_to_build_it(self):
    with self.assertRaisesRegex(FileNotFoundError, "data_prep.build"):
      records.load_metadata(self.get_temp_dir() + "/nothing")


if __name__ == "__main__":
  tf.test.main()
