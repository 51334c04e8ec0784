"""CutMix (data/cutmix.py): boxes of the previous example, labels with them."""

import numpy as np
import tensorflow as tf

from reseg_tf.data import cutmix


def _batch(size=4, height=12, width=20):
  # Example i is filled with the value i in every channel and in its labels.
  values = np.arange(size, dtype=np.uint8)[:, None, None]
  labels = np.broadcast_to(values, (size, height, width)).copy()
  return {"image": tf.constant(np.repeat(labels[..., None], 3, axis=-1)),
          "label": tf.constant(labels), "mask": tf.constant([True] * size)}


class CutMixTest(tf.test.TestCase):

  def test_each_example_receives_one_box_of_the_previous_one_with_its_labels(self):
    batch = _batch()
    areas = []
    for index in range(50):
      out = cutmix.cutmix(batch, tf.constant([3, index], tf.int64), probability=1.0)
      image, label = out["image"].numpy(), out["label"].numpy()
      self.assertAllEqual(image, np.repeat(label[..., None], 3, axis=-1))  # Labels follow.
      self.assertAllEqual(out["mask"], batch["mask"])
      for i in range(4):
        pasted = label[i] != i
        self.assertTrue(set(np.unique(label[i][pasted])) <= {(i - 1) % 4})
        rows, columns = np.nonzero(pasted)
        if rows.size:  # One solid rectangle.
          self.assertEqual(rows.size, (np.ptp(rows) + 1) * (np.ptp(columns) + 1))
        areas.append(pasted.mean())
    # Area a uniform fraction of the image: mean 1/2 (rounding aside), spread.
    self.assertAllClose(np.mean(areas), 0.5, atol=0.06)
    self.assertLess(min(areas), 0.1)
    self.assertGreater(max(areas), 0.8)

  def test_the_probability_decides_how_many_examples_are_mixed(self):
    batch = _batch(size=8)
    mixed = [np.any(cutmix.cutmix(batch, tf.constant([0, i], tf.int64), 0.25)["label"].numpy()
                    != batch["label"].numpy(), axis=(1, 2))
             for i in range(40)]
    # 320 examples, p = 0.25 (a few boxes round to nothing): within 4 sigma.
    self.assertAllClose(np.mean(mixed), 0.25, atol=4 * np.sqrt(0.25 * 0.75 / 320))
    self.assertIs(cutmix.cutmix(batch, tf.constant([0, 0], tf.int64), 0.0), batch)

  def test_the_seed_decides_the_boxes(self):
    batch = _batch()
    first, again, other = (cutmix.cutmix(batch, tf.constant(s, tf.int64), 1.0)["label"]
                           for s in ([1, 2], [1, 2], [1, 3]))
    self.assertAllEqual(first, again)
    self.assertNotAllEqual(first, other)

  def test_a_probability_outside_zero_one_is_refused(self):
    with self.assertRaisesRegex(ValueError, r"in \[0, 1\], got 1.5"):
      cutmix.cutmix(_batch(), tf.constant([0, 0], tf.int64), 1.5)


if __name__ == "__main__":
  tf.test.main()
