"""Weizmann Horse and Oxford Flowers 17 conversion from tiny fixtures."""

import os

import numpy as np
import tensorflow as tf
from PIL import Image

from tests.data_prep import fixtures
from tests.data_prep.build_helpers import read_metadata, run_build


def _all_records(out):
  got = {}
  for split in ("train", "val", "test"):
    got.update(fixtures.read_records(out, split))
  return got


class HorseTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.raw = self.create_tempdir("horse").full_path
    fixtures.horse(self.raw, num_images=6)

  def _build(self, *extra):
    out = os.path.join(self.create_tempdir().full_path, "records")
    status, _, stderr = run_build("--dataset=horse", f"--data_dir={self.raw}",
                                  f"--output_dir={out}", *extra)
    self.assertEqual(status, 0, stderr)
    return out

  def test_images_are_resized_to_the_mask_and_masks_thresholded(self):
    out = self._build()
    got = _all_records(out)
    self.assertLen(got, 6)
    for name, (image, label) in got.items():
      mask = np.asarray(Image.open(os.path.join(self.raw, "figure_ground", name)))
      source = Image.open(os.path.join(self.raw, "rgb", name)).convert("RGB")
      resized = np.asarray(source.resize((14, 10), Image.BILINEAR))
      self.assertEqual(image.shape, (10, 14, 3))
      self.assertAllEqual(image, resized)  # Re-encoded losslessly as PNG.
      self.assertAllEqual(label, (mask >= 128).astype(np.uint8))
      self.assertEqual(label[0, 0], 1)
      self.assertEqual(label[9, 0], 0)

  def test_split_is_seeded_recorded_and_reproducible(self):
    metadata = read_metadata(self._build())
    self.assertEqual({s: v["num_examples"] for s, v in metadata["splits"].items()},
                     {"train": 4, "val": 1, "test": 1})
    split = metadata["split"]
    self.assertEqual((split["method"], split["seed"]), ("seeded_random", 0))
    self.assertEqual(split["fractions"], {"train": 0.6, "val": 0.2, "test": 0.2})
    self.assertEqual(read_metadata(self._build())["split"]["names"], split["names"])
    other = read_metadata(self._build("--split_seed=1"))["split"]["names"]
    self.assertNotEqual(other, split["names"])
    halves = read_metadata(self._build("--split_fractions=0.5,0.5,0"))
    self.assertEqual(halves["splits"]["train"]["num_examples"], 3)
    self.assertIn("test", halves["absent_splits"])

  def test_bad_fractions_are_a_usage_error(self):
    with self.assertRaisesRegex(Exception, "sum to 1"):
      run_build("--dataset=horse", f"--data_dir={self.raw}", "--split_fractions=0.5,0.2",
                f"--output_dir={self.create_tempdir().full_path}/out")


class FlowersTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.raw = self.create_tempdir("flowers").full_path
    self.out = os.path.join(self.create_tempdir().full_path, "records")

  def _build(self, *extra):
    status, _, stderr = run_build("--dataset=flowers", f"--data_dir={self.raw}",
                                  f"--output_dir={self.out}", *extra)
    self.assertEqual(status, 0, stderr)
    return read_metadata(self.out)

  def test_official_files_drive_the_labelled_set_and_split(self):
    expected = fixtures.flowers(
        self.raw, ids=(1, 2, 3, 4, 5, 6, 1269, 1270), imlist=True,
        datasplits={"trn1": [1, 2, 3, 1269, 99], "val1": [4, 1270],
                    "tst1": [5, 6], "trn2": [6], "val2": [5], "tst2": [4]})
    # image 0007 has a jpg but no trimap: unlabelled, not an error.
    fixtures.save(os.path.join(self.raw, "jpg", "image_0007.jpg"),
                  np.zeros((4, 4, 3), np.uint8))
    metadata = self._build()
    self.assertEqual(metadata["split"]["ids"], {"train": [1, 2, 3], "val": [4], "test": [5, 6]})
    self.assertEqual(metadata["split"]["excluded_ids"], [1269, 1270])
    self.assertEqual(metadata["split"]["labelled_from"], "trimaps/imlist.mat")
    got = _all_records(self.out)
    self.assertCountEqual(got, [f"image_{i:04d}.jpg" for i in range(1, 7)])
    for name, (image, label) in got.items():
      self.assertEqual(image.shape, (8, 10, 3))  # Resized to the trimap.
      self.assertAllEqual(label, expected[name])  # Index 38 -> 1, rest 0.

  def test_keeping_1269_and_other_foreground_index(self):
    expected = fixtures.flowers(self.raw, ids=(1, 2, 1269, 1270), foreground=1)
    metadata = self._build("--flowers_exclude_ids=", "--flowers_foreground_index=1")
    self.assertEqual(metadata["split"]["labelled_from"], "PNGs present in trimaps/")
    self.assertEqual(metadata["split"]["method"], "seeded_random")
    got = _all_records(self.out)
    self.assertCountEqual(got, expected)
    for name, (_, label) in got.items():
      self.assertAllEqual(label, expected[name])

  def test_second_official_split(self):
    fixtures.flowers(self.raw, ids=(4, 5, 6), datasplits={
        "trn1": [4], "val1": [5], "tst1": [6], "trn2": [6], "val2": [5], "tst2": [4]})
    metadata = self._build("--flowers_datasplit=2")
    self.assertEqual(metadata["split"]["ids"], {"train": [6], "val": [5], "test": [4]})


if __name__ == "__main__":
  tf.test.main()
