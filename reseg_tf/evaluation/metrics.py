"""The paper's segmentation metrics, from a confusion matrix (docs/protocol.md).

The confusion matrix is accumulated batch by batch (and summed across
replicas) with `confusion_matrix`, a TensorFlow function; every score is
derived from the summed matrix at the end by `scores`, in NumPy. Trainer and
evaluator share both, so their numbers cannot disagree.

Rows are ground-truth classes 0..K-1; void pixels (the ignore value) are left
out. Columns are predicted classes 0..K-1 plus one last column for
predictions that are none of the K classes: a model that trains void as an
extra class (the original CamVid code) may predict it, and such a pixel is
an error for its true class, as in the original evaluation.
"""

import numpy as np
import tensorflow as tf

from reseg_tf.data.records import IGNORE_LABEL

# The summary scores of `scores`, with the names tables and plots give them
# (foreground_iou only for two-class problems).
SUMMARY_METRICS = {
    "global_accuracy": "global accuracy",
    "class_average_accuracy": "class-average accuracy",
    "mean_iou": "mean IoU",
    "foreground_iou": "foreground IoU",
}


def confusion_matrix(labels: tf.Tensor, predictions: tf.Tensor, num_classes: int,
                     example_mask: tf.Tensor = None,
                     ignore_label: int = IGNORE_LABEL) -> tf.Tensor:
  """Counts (true class, predicted class) pixel pairs.

  Args:
    labels: integer `[B, H, W]`, class ids 0..K-1 or `ignore_label`.
    predictions: integer `[B, H, W]`; values >= K count as "none of the K".
    num_classes: K, the number of real classes.
    example_mask: optional bool `[B]`; False marks padding examples.
    ignore_label: ground-truth value left out (void).

  Returns:
    int64 `[K, K + 1]` counts.
  """
  labels = tf.cast(labels, tf.int64)
  predictions = tf.minimum(tf.cast(predictions, tf.int64), num_classes)
  valid = labels != ignore_label
  if example_mask is not None:
    valid &= tf.reshape(tf.cast(example_mask, tf.bool), [-1, 1, 1])
  # A ground-truth value outside 0..K-1 that is not void is a data bug:
  # fail loudly rather than miscount.
  checked = tf.debugging.assert_less(
      tf.boolean_mask(labels, valid), tf.constant(num_classes, tf.int64),
      message="label values must be < num_classes or the ignore value")
  with tf.control_dependencies([checked]):
    pair_ids = tf.boolean_mask(labels * (num_classes + 1) + predictions, valid)
  counts = tf.math.bincount(pair_ids, minlength=num_classes * (num_classes + 1),
                            maxlength=num_classes * (num_classes + 1),
                            dtype=tf.int64)
  return tf.reshape(counts, [num_classes, num_classes + 1])


def scores(confusion: np.ndarray, class_names=None) -> dict:
  """Every metric of the paper from a `[K, K + 1]` (or `[K, K]`) matrix.

  Classes absent from the ground truth have no accuracy and are left out of
  the class average; a class with an empty union (never true, never
  predicted) has no IoU and is left out of the mean IoU.

  Returns:
    dict with `global_accuracy`, `class_average_accuracy`, `mean_iou`,
    `per_class_accuracy` and `per_class_iou` (lists, NaN where undefined),
    `foreground_iou` for two-class problems (class 1's IoU, the paper's
    "IoU" on Horse and Flowers), and `num_pixels`.
  """
  confusion = np.asarray(confusion, np.float64)
  num_classes = confusion.shape[0]
  true_positives = np.diag(confusion[:, :num_classes])
  ground_truth = confusion.sum(axis=1)
  predicted = confusion[:, :num_classes].sum(axis=0)
  union = ground_truth + predicted - true_positives
  total = confusion.sum()
  with np.errstate(invalid="ignore", divide="ignore"):
    per_class_accuracy = np.where(ground_truth > 0, true_positives / ground_truth, np.nan)
    per_class_iou = np.where(union > 0, true_positives / union, np.nan)
  result = {
      "global_accuracy": float(true_positives.sum() / total) if total else float("nan"),
      "class_average_accuracy": _nanmean(per_class_accuracy),
      "mean_iou": _nanmean(per_class_iou),
      "per_class_accuracy": per_class_accuracy.tolist(),
      "per_class_iou": per_class_iou.tolist(),
      "num_pixels": int(total),
  }
  if num_classes == 2:
    result["foreground_iou"] = float(per_class_iou[1])
  if class_names is not None:
    result["class_names"] = list(class_names)
  return result


def _nanmean(values: np.ndarray) -> float:
  defined = values[~np.isnan(values)]
  return float(defined.mean()) if defined.size else float("nan")
