"""CamVid conversion: SegNet and Cambridge layouts, built from tiny fixtures."""

import os

import numpy as np
import tensorflow as tf

from data_prep import camvid
from tests.data_prep import fixtures
from tests.data_prep.build_helpers import read_metadata, run_build


class CamVidSegNetTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.raw = self.create_tempdir("camvid").full_path
    self.out = os.path.join(self.create_tempdir().full_path, "records")

  def _build(self, *extra):
    status, stdout, stderr = run_build("--dataset=camvid", f"--data_dir={self.raw}",
                                       f"--output_dir={self.out}", *extra)
    self.assertEqual(status, 0, stderr)
    return stdout

  def test_records_hold_the_source_pixels_and_mapped_labels(self):
    expected = fixtures.camvid_segnet(self.raw, with_lists=True, sizes=(3, 2, 0))
    stdout = self._build("--num_shards=2")
    for split in ("train", "val"):
      got = fixtures.read_records(self.out, split)
      self.assertCountEqual(got, expected[split])
      for name, (image, label) in expected[split].items():
        self.assertAllEqual(got[name][0], image)  # PNG stored untouched.
        self.assertAllEqual(got[name][1], label)  # 11 -> 255, 0..10 kept.
    self.assertCountEqual(os.listdir(self.out), [
        "metadata.json", "train-00000-of-00002.tfrecord",
        "train-00001-of-00002.tfrecord", "val-00000-of-00002.tfrecord",
        "val-00001-of-00002.tfrecord"])
    self.assertIn("test: not written (no test/ folder", stdout)
    metadata = read_metadata(self.out)
    self.assertEqual(metadata["num_classes"], 11)
    self.assertEqual(metadata["ignore_label"], 255)
    self.assertEqual(metadata["class_names"][0], "Sky")
    self.assertEqual(metadata["splits"]["train"]["num_examples"], 3)
    self.assertEqual(metadata["splits"]["val"]["num_examples"], 2)
    self.assertIn("test", metadata["absent_splits"])
    self.assertEqual(metadata["splits"]["train"]["image_size"]["height"]["max"], 12)
    # Pixel counts on train, hand-counted from the expected label maps.
    counts = [0] * 11
    for _, label in expected["train"].values():
      for c in range(11):
        counts[c] += int((label == c).sum())
    self.assertEqual(metadata["train_class_pixel_counts"], counts)
    self.assertEqual(len(metadata["median_frequency_weights"]), 11)

  def test_shards_are_capped_by_the_number_of_examples(self):
    fixtures.camvid_segnet(self.raw, sizes=(3, 1, 1))
    self._build("--num_shards=8")
    names = sorted(os.listdir(self.out))
    self.assertIn("train-00002-of-00003.tfrecord", names)
    self.assertIn("test-00000-of-00001.tfrecord", names)
    self.assertNotIn("train-00003-of-00003.tfrecord", names)

  def test_pairs_by_file_name_without_lists(self):
    expected = fixtures.camvid_segnet(self.raw, with_lists=False, sizes=(2, 1, 1))
    self._build()
    got = fixtures.read_records(self.out, "test")
    self.assertCountEqual(got, expected["test"])


class CamVidCambridgeTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.raw = self.create_tempdir("cambridge").full_path
    self.out = os.path.join(self.create_tempdir().full_path, "records")

  def test_colour_labels_map_to_the_eleven_classes(self):
    expected = fixtures.camvid_cambridge(
        self.raw, num_frames=4,
        lists={"train": ["0016E5_00000", "0016E5_00001"], "val": ["0016E5_00002"],
               "test": ["0016E5_00003"]})
    status, _, stderr = run_build("--dataset=camvid", f"--data_dir={self.raw}",
                                  f"--output_dir={self.out}")  # Layout detected.
    self.assertEqual(status, 0, stderr)
    got = {}
    for split in ("train", "val", "test"):
      got.update(fixtures.read_records(self.out, split))
    self.assertCountEqual(got, expected)
    for name, (image, label) in expected.items():
      self.assertAllEqual(got[name][0], image)
      self.assertAllEqual(got[name][1], label)
      self.assertEqual(got[name][1][0, 0], 255)  # Animal -> void.
      self.assertEqual(got[name][1][0, 1], 255)  # Unknown colour -> void.
    metadata = read_metadata(self.out)
    self.assertEqual(metadata["source"]["layout"], "cambridge")
    self.assertEqual(metadata["split"]["method"], "lists")
    self.assertEqual(metadata["splits"]["train"]["num_examples"], 2)

  def test_mapping_follows_reseg_md(self):
    fixtures.camvid_cambridge(self.raw, num_frames=0)
    codes, ids = camvid.colour_lookup(camvid.read_label_colors(
        os.path.join(self.raw, camvid.CAMBRIDGE_COLORS_FILE)))
    rgb = np.array([[[64, 192, 0], [0, 0, 64], [192, 128, 64], [192, 64, 128],
                     [128, 128, 128], [64, 128, 192]]], np.uint8)
    # Wall -> Building, TrafficCone -> SignSymbol, Child -> Pedestrian,
    # Train -> void, Sky -> Sky, SUVPickupTruck -> Car.
    self.assertAllEqual(camvid.map_colours(rgb, codes, ids), [[1, 6, 9, 255, 0, 8]])

  def test_seeded_split_without_lists(self):
    fixtures.camvid_cambridge(self.raw, num_frames=10)
    status, _, stderr = run_build("--dataset=camvid", f"--data_dir={self.raw}",
                                  f"--output_dir={self.out}", "--split_seed=3")
    self.assertEqual(status, 0, stderr)
    metadata = read_metadata(self.out)
    self.assertEqual(metadata["split"]["method"], "seeded_random")
    self.assertEqual(metadata["split"]["seed"], 3)
    self.assertEqual({s: v["num_examples"] for s, v in metadata["splits"].items()},
                     {"train": 6, "val": 2, "test": 2})
    self.assertEqual(sorted(sum(metadata["split"]["names"].values(), [])),
                     [f"0016E5_{i:05d}" for i in range(10)])


if __name__ == "__main__":
  tf.test.main()
