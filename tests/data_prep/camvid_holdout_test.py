"""CamVid: whole drives held out of train (--camvid_holdout_prefixes)."""

import os

import numpy as np
import tensorflow as tf

from data_prep import statistics
from reseg_tf.data import eval_pipeline
from tests.data_prep import fixtures
from tests.data_prep.build_helpers import read_metadata, run_build

# Frame names as in SegNet's CamVid: <drive>_<frame>.png.
_TRAIN = ["0001TP_006690.png", "0001TP_006720.png", "0006R0_f00930.png",
          "0006R0_f00960.png", "Seq05VD_f00000.png"]
_VAL = ["0016E5_07959.png"]


def _segnet_tree(root):
  """SegNet folders (no lists); returns {name: label after conversion}."""
  rng = np.random.default_rng(8)
  labels = {}
  for split, names in (("train", _TRAIN), ("val", _VAL)):
    for name in names:
      raw = rng.integers(0, 12, size=(6, 9)).astype(np.uint8)
      fixtures.save(os.path.join(root, split, name), fixtures.random_image(rng, 6, 9))
      fixtures.save(os.path.join(root, split + "annot", name), raw)
      labels[name] = np.where(raw == 11, 255, raw).astype(np.uint8)
  return labels


class CamVidHoldoutTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.raw = self.create_tempdir("camvid").full_path
    self.labels = _segnet_tree(self.raw)
    self.out = os.path.join(self.create_tempdir().full_path, "records")

  def _build(self, *extra):
    return run_build("--dataset=camvid", f"--data_dir={self.raw}",
                     f"--output_dir={self.out}", *extra)

  def test_drive_moves_to_holdout_and_weights_use_the_rest(self):
    status, stdout, stderr = self._build("--camvid_holdout_prefixes=0006R0")
    self.assertEqual(status, 0, stderr)
    held = ["0006R0_f00930.png", "0006R0_f00960.png"]
    kept = ["0001TP_006690.png", "0001TP_006720.png", "Seq05VD_f00000.png"]
    self.assertCountEqual(fixtures.read_records(self.out, "train"), kept)
    got = fixtures.read_records(self.out, "holdout")
    self.assertCountEqual(got, held)
    for name in held:
      self.assertAllEqual(got[name][1], self.labels[name])
    self.assertRegex(stdout, r"holdout\s+2\s+2\s")
    metadata = read_metadata(self.out)
    self.assertEqual(list(metadata["splits"]), ["train", "val", "holdout"])
    self.assertEqual(metadata["split"]["holdout"]["prefixes"], ["0006R0"])
    self.assertEqual(metadata["split"]["holdout"]["names"], held)
    # Class statistics of the three remaining train frames only.
    stats = statistics.SplitStats(num_classes=11)
    for name in kept:
      stats.add(6, 9, np.bincount(self.labels[name].ravel(), minlength=256), 0)
    self.assertEqual(metadata["train_class_pixel_counts"], stats.class_pixels.tolist())
    _, weights = statistics.median_frequency_weights(
        stats.class_pixels, stats.pixels_of_images_with_class)
    self.assertAllClose(metadata["median_frequency_weights"], weights)
    # The trainer's validation reader takes it (train.validation_split = 'holdout').
    batches = list(eval_pipeline.make_eval_dataset(self.out, "holdout", 2,
                                                    with_filenames=True))
    self.assertLen(batches, 1)
    self.assertCountEqual([f.decode() for f in batches[0]["filename"].numpy()], held)
    self.assertAllEqual(batches[0]["mask"], [True, True])

  def test_several_prefixes(self):
    status, _, stderr = self._build("--camvid_holdout_prefixes=0006R0,Seq05VD")
    self.assertEqual(status, 0, stderr)
    self.assertCountEqual(fixtures.read_records(self.out, "holdout"),
                          ["0006R0_f00930.png", "0006R0_f00960.png", "Seq05VD_f00000.png"])
    self.assertLen(fixtures.read_records(self.out, "train"), 2)

  def test_unknown_prefix_and_empty_train_are_errors(self):
    status, _, stderr = self._build("--camvid_holdout_prefixes=0016E5")
    self.assertEqual(status, 1)
    self.assertIn(f"{self.raw}: no train frame starts with the holdout prefix "
                  "'0016E5' (train drives: 0001TP, 0006R0, Seq05VD)", stderr)
    status, _, stderr = self._build("--camvid_holdout_prefixes=0001TP,0006R0,Seq05VD")
    self.assertEqual(status, 1)
    self.assertIn("would leave no train frames", stderr)
    self.assertFalse(os.path.exists(self.out))


if __name__ == "__main__":
  tf.test.main()
