"""Per-pixel cross-entropy and class weights (docs/protocol.md).

The loss functions return per-image sums and leave the reduction to the
caller, which divides by a *global* normaliser (the global batch size, or the
global count of labelled pixels) so that summing gradients over replicas
gives exactly the single-replica gradient.
"""

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from reseg_tf.data.records import IGNORE_LABEL

CLASS_WEIGHTINGS = ("none", "median_frequency", "sqrt_median_frequency", "explicit")


def pixel_cross_entropy(logits: tf.Tensor, labels: tf.Tensor,
                        class_weights: Optional[tf.Tensor] = None,
                        void_class: Optional[int] = None,
                        ignore_label: int = IGNORE_LABEL
                        ) -> tuple[tf.Tensor, tf.Tensor]:
  """Weighted softmax cross-entropy summed over each image's pixels.

  Args:
    logits: float `[B, H, W, C]`.
    labels: integer `[B, H, W]`: class ids, or `ignore_label` for void.
    class_weights: optional float `[C]`, one weight per output class.
    void_class: when set, void pixels are trained as this class (the original
      CamVid code's 12th class) instead of being ignored.
    ignore_label: the void value in `labels`.

  Returns:
    `(loss, pixels)`: float32 `[B]` per-image sums of the weighted loss, and
    float32 `[B]` counts of the pixels that entered it.
  """
  labels = tf.cast(labels, tf.int32)
  is_void = labels == ignore_label
  if void_class is not None:
    labels = tf.where(is_void, void_class, labels)
    valid = tf.ones_like(is_void)
  else:
    valid = ~is_void
  safe_labels = tf.where(valid, labels, 0)  # Any id: masked out below.
  logits = tf.cast(logits, tf.float32)  # Loss in fp32 even for bf16 models.
  per_pixel = tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=safe_labels, logits=logits)
  weight = tf.cast(valid, tf.float32)
  if class_weights is not None:
    weight *= tf.gather(tf.cast(class_weights, tf.float32), safe_labels)
  loss = tf.reduce_sum(per_pixel * weight, axis=[1, 2])
  pixels = tf.reduce_sum(tf.cast(valid, tf.float32), axis=[1, 2])
  return loss, pixels


def class_weights(weighting: str, metadata: dict, num_outputs: int,
                  explicit: Optional[Sequence[float]] = None,
                  void_weight: float = 1.0) -> Optional[np.ndarray]:
  """The class weights a config asks for.

  Args:
    weighting: "none", "median_frequency" (from metadata.json, as in the
      paper's "ReSeg + Class Balance"), "sqrt_median_frequency" (their square
      roots: a softer balance, which over-predicts rare classes less) or
      "explicit".
    metadata: the dataset's metadata.json contents.
    num_outputs: classes the model predicts: K, or K + 1 with void as a class.
    explicit: the weights for "explicit", K or K + 1 values.
    void_weight: weight of the void class when it is trained as a class and
      the weights come from metadata (which has none for void).

  Returns:
    float32 `[num_outputs]`, or None for "none".
  """
  num_classes = metadata["num_classes"]
  if num_outputs not in (num_classes, num_classes + 1):
    raise ValueError(f"num_outputs {num_outputs} should be {num_classes} "
                     f"or {num_classes + 1} (void as a class)")
  if weighting == "none":
    return None
  if weighting in ("median_frequency", "sqrt_median_frequency"):
    if "median_frequency_weights" not in metadata:
      raise ValueError("metadata.json has no median_frequency_weights: "
                       "rebuild the records with a train split")
    weights = list(metadata["median_frequency_weights"])
    if weighting == "sqrt_median_frequency":
      weights = list(np.sqrt(weights))
    weights += [void_weight] * (num_outputs - num_classes)
  elif weighting == "explicit":
    weights = list(explicit or ())
    if len(weights) != num_outputs:
      raise ValueError(f"explicit class weights need {num_outputs} values, "
                       f"got {len(weights)}")
  else:
    raise ValueError(f"class weighting {weighting!r} is not one of {CLASS_WEIGHTINGS}")
  return np.asarray(weights, np.float32)
