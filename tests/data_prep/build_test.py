"""data_prep.build: bad input, atomic output, synthetic data (the binary as
a user runs it: tests/binaries_output_test.py)."""

import hashlib
import os

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from data_prep import statistics, synthetic
from tests.data_prep import fixtures
from tests.data_prep.build_helpers import read_metadata, run_build


def _truncate(path):
  with open(path, "rb") as f:
    data = f.read()
  with open(path, "wb") as f:
    f.write(data[:len(data) // 2])


def _garbage(path):
  with open(path, "wb") as f:
    f.write(b"this is not an image")


# Each case breaks a valid SegNet tree and names the file the error must cite.
_BREAKAGES = {
    "image_without_label": lambda raw: (
        os.remove(os.path.join(raw, "trainannot", "0001TP_000001.png")),
        os.remove(os.path.join(raw, "train.txt")),
        os.path.join(raw, "train", "0001TP_000001.png"))[-1],
    "label_without_image": lambda raw: (
        os.remove(os.path.join(raw, "val", "0001TP_000000.png")),
        os.path.join(raw, "valannot", "0001TP_000000.png"))[-1],
    "listed_file_missing": lambda raw: (
        os.remove(os.path.join(raw, "train", "0001TP_000002.png")),
        os.path.join(raw, "train", "0001TP_000002.png"))[-1],
    "size_mismatch": lambda raw: (
        fixtures.save(os.path.join(raw, "valannot", "0001TP_000001.png"),
                      np.zeros((5, 5), np.uint8)),
        os.path.join(raw, "valannot", "0001TP_000001.png"))[-1],
    "label_out_of_range": lambda raw: (
        fixtures.save(os.path.join(raw, "trainannot", "0001TP_000000.png"),
                      np.full((12, 16), 12, np.uint8)),
        os.path.join(raw, "trainannot", "0001TP_000000.png"))[-1],
    "undecodable_image": lambda raw: (
        _garbage(os.path.join(raw, "val", "0001TP_000000.png")),
        os.path.join(raw, "val", "0001TP_000000.png"))[-1],
    "truncated_label": lambda raw: (
        _truncate(os.path.join(raw, "trainannot", "0001TP_000001.png")),
        os.path.join(raw, "trainannot", "0001TP_000001.png"))[-1],
    "empty_file": lambda raw: (
        open(os.path.join(raw, "train", "0001TP_000000.png"), "wb").close(),
        os.path.join(raw, "train", "0001TP_000000.png"))[-1],
}
_MESSAGES = {
    "image_without_label": "has no label",
    "label_without_image": "has no image",
    "listed_file_missing": "listed in .*train.txt line 3 but missing",
    "size_mismatch": "label is 5x5 .* image is 12x16",
    "label_out_of_range": r"outside 0..11: \[12\]",
    "undecodable_image": "cannot decode image",
    "truncated_label": "cannot decode image",
    "empty_file": "file is empty",
}


class BadInputTest(parameterized.TestCase, tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.raw = self.create_tempdir("camvid").full_path
    fixtures.camvid_segnet(self.raw, sizes=(3, 2, 0))
    self.out = os.path.join(self.create_tempdir().full_path, "records")
    os.makedirs(self.out)
    with open(os.path.join(self.out, "previous_build.txt"), "w") as f:
      f.write("keep me")

  def _assert_output_untouched(self):
    self.assertEqual(os.listdir(self.out), ["previous_build.txt"])
    parent = os.path.dirname(self.out)
    self.assertEqual(os.listdir(parent), ["records"])  # No partial folder.

  @parameterized.named_parameters(*[(name, name) for name in _BREAKAGES])
  def test_bad_input_names_the_file_and_leaves_output_untouched(self, case):
    path = _BREAKAGES[case](self.raw)
    status, _, stderr = run_build("--dataset=camvid", f"--data_dir={self.raw}",
                                  f"--output_dir={self.out}", "--overwrite")
    self.assertEqual(status, 1)
    self.assertIn(path, stderr)
    self.assertRegex(stderr, _MESSAGES[case])
    self._assert_output_untouched()

  def test_skip_bad_skips_and_lists_the_bad_examples(self):
    bad = _BREAKAGES["truncated_label"](self.raw)
    unpaired = _BREAKAGES["label_without_image"](self.raw)
    status, stdout, stderr = run_build(
        "--dataset=camvid", f"--data_dir={self.raw}", f"--output_dir={self.out}",
        "--overwrite", "--skip_bad")
    self.assertEqual(status, 0, stderr)
    metadata = read_metadata(self.out)
    self.assertEqual(metadata["splits"]["train"]["num_examples"], 2)  # 3 - 1 bad.
    self.assertEqual(metadata["splits"]["val"]["num_examples"], 1)  # 2 - 1 unpaired.
    self.assertCountEqual([s["path"] for s in metadata["skipped"]], [bad, unpaired])
    self.assertIn(bad, stdout)
    self.assertIn("unpaired files skipped: 1", stdout)
    self.assertNotIn("previous_build.txt", os.listdir(self.out))  # Replaced.

  def test_missing_and_empty_folders(self):
    status, _, stderr = run_build("--dataset=camvid", "--data_dir=/no/such/dir",
                                  f"--output_dir={self.out}", "--overwrite")
    self.assertEqual(status, 1)
    self.assertIn("/no/such/dir", stderr)
    empty = self.create_tempdir("empty").full_path
    os.makedirs(os.path.join(empty, "train"))
    os.makedirs(os.path.join(empty, "trainannot"))
    status, _, stderr = run_build("--dataset=camvid", f"--data_dir={empty}",
                                  f"--output_dir={self.out}", "--overwrite")
    self.assertEqual(status, 1)
    self.assertIn(os.path.join(empty, "train"), stderr)
    self.assertIn("no PNG images", stderr)
    status, _, stderr = run_build("--dataset=horse", f"--data_dir={empty}",
                                  f"--output_dir={self.out}", "--overwrite")
    self.assertIn(os.path.join(empty, "rgb"), stderr)
    self._assert_output_untouched()

  def test_existing_output_needs_overwrite(self):
    status, _, stderr = run_build("--dataset=camvid", f"--data_dir={self.raw}",
                                  f"--output_dir={self.out}")
    self.assertEqual(status, 1)
    self.assertIn(self.out, stderr)
    self.assertIn("--overwrite", stderr)
    self._assert_output_untouched()


class SyntheticTest(tf.test.TestCase):

  def test_generation_is_deterministic_and_uses_every_class(self):
    image, label = synthetic.generate(0, 5, 32, 48)
    again, label_again = synthetic.generate(0, 5, 32, 48)
    self.assertAllEqual(image, again)
    self.assertAllEqual(label, label_again)
    self.assertNotAllEqual(synthetic.generate(1, 5, 32, 48)[0], image)
    labels = np.stack([synthetic.generate(0, i, 32, 48)[1] for i in range(20)])
    self.assertEqual(set(np.unique(labels)), {0, 1, 2, 3, 255})

  def test_colour_alone_separates_the_classes(self):
    # Learnable: each class's mean colour is far from the others'.
    pixels = {c: [] for c in range(4)}
    for i in range(20):
      image, label = synthetic.generate(0, i, 32, 48)
      for c in pixels:
        pixels[c].append(image[label == c].astype(float))
    means = np.array([np.concatenate(pixels[c]).mean(0) for c in range(4)])
    distances = np.linalg.norm(means[:, None] - means[None], axis=-1)
    self.assertGreater(distances[np.triu_indices(4, 1)].min(), 60)

  def test_two_builds_write_identical_shards(self):
    digests = []
    for _ in range(2):
      out = os.path.join(self.create_tempdir().full_path, "records")
      status, stdout, stderr = run_build(
          "--dataset=synthetic", f"--output_dir={out}",
          "--synthetic_split_sizes=6,3,0", "--synthetic_image_size=20,24",
          "--num_shards=2")
      self.assertEqual(status, 0, stderr)
      digests.append({n: hashlib.md5(open(os.path.join(out, n), "rb").read()).hexdigest()
                      for n in os.listdir(out)})
    self.assertEqual(digests[0], digests[1])
    self.assertIn("test: not written (size 0 requested)", stdout)
    got = fixtures.read_records(out, "train")
    self.assertLen(got, 6)
    image, label = got["train_00004.png"]
    expected_image, expected_label = synthetic.generate(0, 4, 20, 24)
    self.assertAllEqual(image, expected_image)
    self.assertAllEqual(label, expected_label)


class MedianFrequencyTest(tf.test.TestCase):

  def test_weights_against_hand_computation(self):
    # Two 10-pixel images: A = 6 px class 0 + 4 px class 1; B = 10 px class 0.
    # Class 2 never appears. freq(0) = 16/20, freq(1) = 4/10,
    # median(0.8, 0.4) = 0.6 -> w = 0.75, 1.5; absent class -> 0.
    stats = statistics.SplitStats(num_classes=3)
    counts_a, counts_b = np.zeros(256, np.int64), np.zeros(256, np.int64)
    counts_a[[0, 1]] = [6, 4]
    counts_b[0] = 10
    stats.add(2, 5, counts_a, 100)
    stats.add(2, 5, counts_b, 100)
    freq, weights = statistics.median_frequency_weights(
        stats.class_pixels, stats.pixels_of_images_with_class)
    self.assertAllClose(freq, [0.8, 0.4, 0.0])
    self.assertAllClose(weights, [0.75, 1.5, 0.0])

  def test_void_pixels_do_not_count_as_image_pixels(self):
    stats = statistics.SplitStats(num_classes=2)
    counts = np.zeros(256, np.int64)
    counts[[0, 1, 255]] = [2, 2, 6]
    stats.add(2, 5, counts, 10)
    self.assertAllEqual(stats.pixels_of_images_with_class, [4, 4])
    self.assertEqual(stats.void_pixels, 6)


if __name__ == "__main__":
  tf.test.main()
