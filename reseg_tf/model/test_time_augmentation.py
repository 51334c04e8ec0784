"""Test-time augmentation: class probabilities averaged over several views.

Each view is the batch mirrored left-right or not, and resized by a scale
factor; the model's softmax of each view is brought back to the images'
frame (unmirrored, resized back with bilinear interpolation) and the views'
probabilities are averaged. Scales above 1 give thin structures (poles,
signs) more cells of the recurrent grid; the mirror removes the left/right
bias of a finite training set. Both are common practice for segmentation
benchmarks and cost one forward pass per view.

The softmax runs over every output of the model and the average keeps the
real classes (`K`), as `serving.segmenter.postprocess` does for one view:
void is never predicted.
"""

import dataclasses
from typing import Callable, Sequence

import tensorflow as tf

from reseg_tf.model import shapes


@dataclasses.dataclass(frozen=True)
class TestTimeAugmentation:
  """The views to average.

  Attributes:
    scales: resize factors of the images (1.0: as given); each view's
      height and width are the images' times the factor, rounded, at least 1.
    flip: also each scale mirrored left-right.
  """
  __test__ = False  # Not a pytest test class, whatever its name says.

  scales: Sequence[float] = (1.0,)
  flip: bool = False

  def __post_init__(self):
    object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))
    if not self.scales or any(s <= 0 for s in self.scales):
      raise ValueError(f"scales must be positive numbers, got {self.scales}")

  @property
  def num_views(self) -> int:
    return len(self.scales) * (2 if self.flip else 1)

  @property
  def is_identity(self) -> bool:
    """One view, the images as given: the model's own output."""
    return self.scales == (1.0,) and not self.flip

  def file_tag(self) -> str:
    """What a default file name adds for these views: "" for the model's own
    output, else e.g. "-tta-0.75_1_1.25-flip", so that scoring the same
    checkpoint with other views never overwrites a report."""
    if self.is_identity:
      return ""
    return "-tta-" + "_".join(f"{s:g}" for s in self.scales) + ("-flip" if self.flip else "")

  def describe(self) -> str:
    """E.g. "scales 0.75, 1, 1.25 and their mirror images (6 views)"."""
    scales = ", ".join(f"{s:g}" for s in self.scales)
    return (f"scales {scales}" + (" and their mirror images" if self.flip else "")
            + f" ({self.num_views} view{'s' if self.num_views > 1 else ''})")


NONE = TestTimeAugmentation()


def real_class_probabilities(logits: tf.Tensor, num_classes: int) -> tf.Tensor:
  """float32 `[..., K]`: the softmax over every output, then the real classes."""
  return tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)[..., :num_classes]


def probabilities(logits_fn: Callable[[tf.Tensor], tf.Tensor], images: tf.Tensor,
                  num_classes: int, augmentation: TestTimeAugmentation = NONE) -> tf.Tensor:
  """Real-class probabilities of `images`, averaged over `augmentation`'s views.

  Args:
    logits_fn: images `[B, h, w, 3]` (float32, 0..255) -> logits
      `[B, h, w, K or K + 1]` at the images' size, e.g. a `ReSeg` call.
    images: `[B, H, W, 3]` RGB 0..255, uint8 or float.
    num_classes: `K`, the real classes.
    augmentation: the views.

  Returns:
    float32 `[B, H, W, K]`.
  """
  images = tf.cast(images, tf.float32)
  if augmentation.is_identity:
    return real_class_probabilities(logits_fn(images), num_classes)
  size = shapes.spatial_size(images)
  total = 0.0
  for scale in augmentation.scales:
    view_size = size if scale == 1.0 else tf.maximum(
        1, tf.cast(tf.round(tf.cast(size, tf.float32) * scale), tf.int32))
    scaled = images if scale == 1.0 else tf.image.resize(images, view_size)
    for mirrored in ((False, True) if augmentation.flip else (False,)):
      view = tf.reverse(scaled, axis=[2]) if mirrored else scaled
      p = real_class_probabilities(logits_fn(view), num_classes)
      if mirrored:
        p = tf.reverse(p, axis=[2])
      total += p if scale == 1.0 else tf.image.resize(p, size)
  return total / augmentation.num_views


def parse_scales(text: str) -> tuple:
  """"0.75,1,1.25" -> (0.75, 1.0, 1.25), for the binaries' flags.

  Raises:
    ValueError: not a comma-separated list of positive numbers.
  """
  try:
    scales = tuple(float(part) for part in text.split(",") if part.strip())
  except ValueError:
    raise ValueError(f"expected comma-separated positive numbers such as "
                     f"0.75,1,1.25, got {text!r}") from None
  return TestTimeAugmentation(scales=scales).scales
