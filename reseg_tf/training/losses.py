"""Per-pixel cross-entropy (optionally over each image's hardest pixels),
the Lovasz-softmax loss and class weights (docs/protocol.md).

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


def _labelled(labels: tf.Tensor, void_class: Optional[int], ignore_label: int
              ) -> tuple[tf.Tensor, tf.Tensor]:
  """`(class ids, valid)`: void pixels become `void_class` when it is set,
  else they are marked not valid (and given id 0, to be masked out)."""
  labels = tf.cast(labels, tf.int32)
  is_void = labels == ignore_label
  if void_class is not None:
    return tf.where(is_void, void_class, labels), tf.ones_like(is_void)
  return tf.where(is_void, 0, labels), ~is_void


def check_hard_pixel_fraction(fraction: float, name: str = "hard_pixel_fraction"):
  """Raises ValueError naming `name` unless `fraction` is in (0, 1]."""
  if not 0.0 < fraction <= 1.0:
    raise ValueError(f"{name} must be in (0, 1], got {fraction}")


def hardest_pixels(per_pixel: tf.Tensor, valid: tf.Tensor, fraction: float
                   ) -> tf.Tensor:
  """Boolean `[B, H, W]`: in each image, the `fraction` of its valid pixels
  with the largest `per_pixel` loss (at least one; ties at the cut are all
  kept). The choice carries no gradient.

  A sort and a gather rather than `tf.math.top_k`, whose count must be a
  constant under XLA: here it depends on each image's labelled pixels.
  """
  per_pixel = tf.stop_gradient(per_pixel)
  flat = tf.reshape(tf.where(valid, per_pixel, -1.0), [tf.shape(per_pixel)[0], -1])
  ranked = tf.sort(flat, axis=-1, direction="DESCENDING")
  count = tf.reduce_sum(tf.cast(valid, tf.float32), axis=[1, 2])
  kept = tf.maximum(tf.cast(tf.math.ceil(fraction * count), tf.int32), 1)
  cut = tf.gather(ranked, kept - 1, batch_dims=1)  # [B]: the smallest kept loss.
  return valid & (per_pixel >= cut[:, None, None])


def pixel_cross_entropy(logits: tf.Tensor, labels: tf.Tensor,
                        class_weights: Optional[tf.Tensor] = None,
                        void_class: Optional[int] = None,
                        ignore_label: int = IGNORE_LABEL,
                        hard_pixel_fraction: float = 1.0
                        ) -> tuple[tf.Tensor, tf.Tensor]:
  """Weighted softmax cross-entropy summed over each image's pixels.

  Args:
    logits: float `[B, H, W, C]`.
    labels: integer `[B, H, W]`: class ids, or `ignore_label` for void.
    class_weights: optional float `[C]`, one weight per output class.
    void_class: when set, void pixels are trained as this class (the original
      CamVid code's 12th class) instead of being ignored.
    ignore_label: the void value in `labels`.
    hard_pixel_fraction: below 1, hard-pixel mining (DeepLab's
      `top_k_percent_pixels`): only this fraction of each image's labelled
      pixels, those with the largest unweighted cross-entropy, enter the
      sum, which is divided by the fraction so that the loss keeps the
      scale of a sum over all labelled pixels.

  Returns:
    `(loss, pixels)`: float32 `[B]` per-image sums of the weighted loss, and
    float32 `[B]` counts of the labelled pixels (all of them, mined or not).
  """
  check_hard_pixel_fraction(hard_pixel_fraction)
  safe_labels, valid = _labelled(labels, void_class, ignore_label)
  logits = tf.cast(logits, tf.float32)  # Loss in fp32 even for bf16 models.
  per_pixel = tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=safe_labels, logits=logits)
  pixels = tf.reduce_sum(tf.cast(valid, tf.float32), axis=[1, 2])
  if hard_pixel_fraction < 1.0:
    valid = hardest_pixels(per_pixel, valid, hard_pixel_fraction)
  weight = tf.cast(valid, tf.float32)
  if class_weights is not None:
    weight *= tf.gather(tf.cast(class_weights, tf.float32), safe_labels)
  loss = tf.reduce_sum(per_pixel * weight, axis=[1, 2]) / hard_pixel_fraction
  return loss, pixels


def lovasz_softmax(logits: tf.Tensor, labels: tf.Tensor,
                   void_class: Optional[int] = None,
                   ignore_label: int = IGNORE_LABEL) -> tf.Tensor:
  """The Lovasz-softmax loss of each image (Berman et al., CVPR 2018).

  A convex surrogate of `1 - IoU` that is exact on hard predictions: for
  each class present in the image, the pixels' errors `|[label == c] - p_c|`
  sorted in decreasing order, weighted by the increments of the Jaccard loss
  of the growing set of the worst pixels; averaged over those classes. It
  optimises the measure the datasets are scored with (IoU) directly, which
  cross-entropy, a per-pixel measure, does not.

  Args:
    logits: float `[B, H, W, C]`.
    labels: integer `[B, H, W]`: class ids, or `ignore_label` for void.
    void_class: as `pixel_cross_entropy`.
    ignore_label: the void value in `labels`.

  Returns:
    float32 `[B]`, each in [0, 1]; 0 for an image without labelled pixels.
  """
  labels, valid = _labelled(labels, void_class, ignore_label)
  num_classes = logits.shape[-1]
  probabilities = tf.nn.softmax(tf.cast(logits, tf.float32))
  valid = tf.cast(valid, tf.float32)[..., None]
  truth = tf.one_hot(labels, num_classes) * valid
  errors = tf.abs(truth - probabilities) * valid  # Void: 0, sorted last.
  batch = tf.shape(logits)[0]

  def by_class(x):  # [B, H, W, C] -> [B, C, H * W].
    return tf.transpose(tf.reshape(x, [batch, -1, num_classes]), [0, 2, 1])

  errors, truth, valid = by_class(errors), by_class(truth), by_class(
      tf.broadcast_to(valid, tf.shape(truth)))
  order = tf.argsort(errors, axis=-1, direction="DESCENDING", stable=True)
  errors, truth, valid = (tf.gather(x, order, batch_dims=2) for x in (errors, truth, valid))
  # Jaccard loss of the k worst pixels (k = 1..N): 1 - |truth without them|
  # / |truth with the wrong ones among them|. Its increments weight the
  # errors; they depend only on the order, so no gradient flows through them.
  truth_total = tf.reduce_sum(truth, -1, keepdims=True)
  intersection = truth_total - tf.cumsum(truth, -1)
  union = truth_total + tf.cumsum((1.0 - truth) * valid, -1)
  jaccard = 1.0 - tf.math.divide_no_nan(intersection, union)
  increments = tf.concat([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], -1)
  per_class = tf.reduce_sum(errors * tf.stop_gradient(increments), -1)  # [B, C]
  present = tf.cast(truth_total[..., 0] > 0, tf.float32)
  return tf.math.divide_no_nan(tf.reduce_sum(per_class * present, -1),
                               tf.reduce_sum(present, -1))


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
