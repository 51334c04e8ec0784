"""Smoke test on the real datasets in ../shared/data (a few examples each)."""

import os

import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized

from tests.data_prep import fixtures
from tests.data_prep.build_helpers import read_metadata, run_build

_SHARED_DATA = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    os.pardir, "shared", "data")

_CASES = (
    # name, dataset, folder, extra flags, splits, classes, image size (H, W)
    ("camvid", "camvid", "camvid", (), ("train", "val"), 11, (360, 480)),
    ("horse", "horse", "weizmann_horse", (), ("train", "val", "test"), 2, None),
    ("flowers", "flowers", "flowers17", ("--flowers_foreground_index=1",),
     ("train", "val", "test"), 2, (256, 256)),
)


@pytest.mark.real_data
class RealDataTest(parameterized.TestCase, tf.test.TestCase):

  @parameterized.named_parameters(*_CASES)
  def test_a_few_real_examples_convert(self, dataset, folder, extra, splits,
                                       num_classes, size):
    data_dir = os.path.join(_SHARED_DATA, folder)
    if not os.path.isdir(data_dir):
      self.skipTest(f"real data not present at {os.path.abspath(data_dir)}")
    out = os.path.join(self.create_tempdir().full_path, dataset)
    status, stdout, stderr = run_build(f"--dataset={dataset}", f"--data_dir={data_dir}",
                                       f"--output_dir={out}", "--limit=3", *extra)
    self.assertEqual(status, 0, stderr)
    metadata = read_metadata(out)
    self.assertEqual(tuple(metadata["splits"]), splits)
    self.assertEqual(metadata["num_classes"], num_classes)
    for split in splits:
      self.assertEqual(metadata["splits"][split]["num_examples"], 3)
      for image, label in fixtures.read_records(out, split).values():
        self.assertEqual(image.shape[:2], label.shape)
        if size:
          self.assertEqual(image.shape[:2], size)
        values = set(np.unique(label))
        self.assertLessEqual(values, set(range(num_classes)) | {255})
        self.assertGreater(len(values), 1)  # Real maps are never one class.


if __name__ == "__main__":
  tf.test.main()
