"""Metrics against hand-computed confusion matrices."""

import numpy as np
import tensorflow as tf

from reseg_tf.evaluation import metrics


class ConfusionMatrixTest(tf.test.TestCase):

  def test_hand_counted_matrix_and_scores(self):
    labels = tf.constant([[[0, 1, 255], [2, 1, 0]]])
    predictions = tf.constant([[[0, 2, 1], [2, 1, 1]]])
    confusion = metrics.confusion_matrix(labels, predictions, num_classes=3)
    # The void pixel (255 -> 1) is left out; rows are the true classes.
    self.assertAllEqual(confusion, [[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0]])
    s = metrics.scores(confusion.numpy())
    self.assertAlmostEqual(s["global_accuracy"], 3 / 5)
    self.assertAllClose(s["per_class_accuracy"], [1 / 2, 1 / 2, 1.0])
    self.assertAlmostEqual(s["class_average_accuracy"], 2 / 3)
    # IoU = TP / (TP + FP + FN): class 1 has TP 1, FP 1 (a 0), FN 1 (-> 2).
    self.assertAllClose(s["per_class_iou"], [1 / 2, 1 / 3, 1 / 2])
    self.assertAlmostEqual(s["mean_iou"], 4 / 9)
    self.assertEqual(s["num_pixels"], 5)
    self.assertNotIn("foreground_iou", s)

  def test_absent_classes_are_left_out_of_the_means(self):
    # Class 2: never true, predicted once (IoU 0, no accuracy).
    # Class 3: never true, never predicted (no IoU, no accuracy).
    labels = tf.constant([[[0, 0, 1, 1]]])
    predictions = tf.constant([[[0, 2, 1, 1]]])
    s = metrics.scores(metrics.confusion_matrix(labels, predictions, 4).numpy())
    self.assertTrue(np.isnan(s["per_class_accuracy"][2]))
    self.assertTrue(np.isnan(s["per_class_accuracy"][3]))
    self.assertAlmostEqual(s["class_average_accuracy"], (1 / 2 + 1) / 2)
    self.assertAllClose(s["per_class_iou"][:3], [1 / 2, 1.0, 0.0])
    self.assertTrue(np.isnan(s["per_class_iou"][3]))
    self.assertAlmostEqual(s["mean_iou"], (1 / 2 + 1 + 0) / 3)

  def test_predicted_void_is_an_error_and_padding_examples_do_not_count(self):
    labels = tf.constant([[[1, 0]], [[1, 1]]])
    predictions = tf.constant([[[2, 0]], [[1, 1]]])  # 2 = void, with K = 2.
    confusion = metrics.confusion_matrix(labels, predictions, 2,
                                         example_mask=tf.constant([True, False]))
    self.assertAllEqual(confusion, [[1, 0, 0], [0, 0, 1]])
    s = metrics.scores(confusion.numpy())
    self.assertAlmostEqual(s["global_accuracy"], 0.5)
    self.assertAlmostEqual(s["foreground_iou"], 0.0)  # Class 1 never found.
    self.assertAlmostEqual(s["per_class_iou"][0], 1.0)

  def test_binary_foreground_iou(self):
    labels = tf.constant([[[1, 1, 0, 0, 255]]])
    predictions = tf.constant([[[1, 0, 1, 0, 1]]])
    s = metrics.scores(metrics.confusion_matrix(labels, predictions, 2).numpy())
    self.assertAlmostEqual(s["foreground_iou"], 1 / 3)
    self.assertAlmostEqual(s["global_accuracy"], 2 / 4)

  def test_works_inside_tf_function_and_sums_over_batches(self):
    rng = np.random.default_rng(0)
    labels = rng.choice([0, 1, 2, 255], size=(4, 5, 6))
    predictions = rng.integers(0, 3, size=(4, 5, 6))
    compiled = tf.function(metrics.confusion_matrix, reduce_retracing=True)
    total = sum(compiled(labels[i:i + 2], predictions[i:i + 2], 3) for i in (0, 2))
    expected = np.zeros((3, 4), np.int64)
    for t, p in zip(labels.ravel(), predictions.ravel()):
      if t != 255:
        expected[t, p] += 1
    self.assertAllEqual(total, expected)

  def test_out_of_range_labels_fail_loudly(self):
    with self.assertRaises(tf.errors.InvalidArgumentError):
      metrics.confusion_matrix(tf.constant([[[5]]]), tf.constant([[[0]]]), 3)


if __name__ == "__main__":
  tf.test.main()
