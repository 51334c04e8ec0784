"""data_prep.extract: records back to PNG files, pixel for pixel."""

import os
import subprocess
import sys

import numpy as np
import tensorflow as tf
from PIL import Image

from data_prep import split_files, synthetic, writer
from reseg_tf.data import input_pipeline, records

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class ExtractTest(tf.test.TestCase):

  def test_round_trip_in_file_order_and_the_binary(self):
    root = self.create_tempdir().full_path
    records_dir = os.path.join(root, "records")
    writer.write_dataset(synthetic.plan(0, (4, 2, 3), (24, 32)), records_dir,
                         num_shards=2, log=lambda _: None)
    output = os.path.join(root, "out")
    stems = split_files.write_split_files(records_dir, "test", output, limit=2)
    self.assertLen(stems, 2)
    examples = tf.data.TFRecordDataset(input_pipeline.shard_files(records_dir, "test"))
    for stem, serialized in zip(stems, examples):
      example = records.decode_example(serialized)
      self.assertAllEqual(np.asarray(Image.open(os.path.join(output, f"{stem}.png"))),
                          example["image"])
      self.assertAllEqual(np.asarray(Image.open(os.path.join(output, "labels", f"{stem}.png"))),
                          example["label"])
    process = subprocess.run(
        [sys.executable, "-m", "data_prep.extract", f"--records_dir={records_dir}"],
        cwd=_ROOT, capture_output=True, text=True, check=False)
    self.assertEqual(process.returncode, 0, process.stderr)
    default = os.path.join(records_dir, "extracted", "test")
    self.assertIn(default, process.stdout)
    self.assertLen([f for f in os.listdir(default) if f.endswith(".png")], 3)


if __name__ == "__main__":
  tf.test.main()
