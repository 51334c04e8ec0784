"""Training curves read back from TensorBoard logs and drawn to a PNG."""

import os

import numpy as np
import tensorflow as tf
from PIL import Image

from reseg_tf import plot_curves
from reseg_tf.evaluation import summaries


class PlotCurvesTest(tf.test.TestCase):

  def _log(self, folder, points):
    writer = tf.summary.create_file_writer(folder)
    for step, miou in points:
      summaries.write_metrics(writer, step, {
          "global_accuracy": 0.9, "class_average_accuracy": 0.8, "mean_iou": miou,
          "per_class_iou": [miou, np.nan], "per_class_accuracy": [0.8, np.nan]},
          ["background", "horse"])
    writer.close()

  def test_reads_the_validation_scalars_by_step(self):
    folder = self.create_tempdir().full_path
    self._log(folder, [(40, 0.5), (80, 0.625)])
    self._log(folder, [(80, 0.75), (120, 0.875)])  # A resumed run logs step 80 again.
    self.assertEqual(plot_curves.read_scalars(folder, "metrics/mean_iou"),
                     [(40, 0.5), (80, 0.75), (120, 0.875)])
    self.assertEqual(plot_curves.read_scalars(folder, "metrics/nope"), [])

  def test_writes_a_png(self):
    output = os.path.join(self.create_tempdir().full_path, "docs", "curves.png")
    plot_curves.plot({"a": [(1, 0.5), (2, 0.6)], "b": [(1, 0.4), (3, 0.7)]},
                     "mean_iou", output)
    with Image.open(output) as image:
      self.assertEqual(image.size, (640, 360))
      pixels = np.asarray(image.convert("RGB"))
    self.assertGreater(len(np.unique(pixels.reshape(-1, 3), axis=0)), 10)


if __name__ == "__main__":
  tf.test.main()
