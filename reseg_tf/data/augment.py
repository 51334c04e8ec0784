"""Joint image/label augmentation: pure functions for tf.data.

The paper trained without augmentation (docs/protocol.md), so every option of
`AugmentOptions` is off by default; these ops are for the other datasets and
for experiments. Every random op has the form

    op(image, label, seed, ...) -> (image, label)

with `image` `[H, W, 3]` (uint8 or float; the dtype is kept), `label` uint8
`[H, W]` and `seed` an int32/int64 `[2]` tensor for the `tf.random.stateless_*`
ops: the same seed gives the same output, eagerly or inside `Dataset.map`, and
image and label always get the same geometric draw. Labels are only ever
resampled with nearest neighbour, and every label pixel that a transform
brings in from outside the image is `IGNORE_LABEL` (255), so no class id
appears that was not there before. Images are resampled bilinearly; pixels
from outside take `image_fill` (0, or a per-channel mean).

The ops live in `geometric.py` and `photometric.py`. `augment` composes
them in a fixed order: affine (scale, rotation, shear:
one matrix, one resampling) -> elastic warp -> crop/pad -> flip ->
photometric. Each op draws from its own seed, folded from the example's seed
with a fixed id, so switching one op on or off does not change the draws of
the others.
"""

import dataclasses
from typing import Optional, Tuple

import tensorflow as tf

from reseg_tf.data import geometric, photometric, pixels

# Fixed ids folded into the example seed, one per op (see `augment`).
_AFFINE, _ELASTIC, _CROP, _FLIP, _PHOTOMETRIC = range(5)


@dataclasses.dataclass(frozen=True)
class AugmentOptions:
  """What `augment` does. The defaults do nothing (the paper used none).

  Attributes:
    crop_size: `(height, width)` every output has; None keeps the input size.
    random_crop: draw the crop/pad offset at random; otherwise centre it.
    crop_focus_classes: class ids that random crops seek out: with
      probability `crop_focus_probability` a crop holds a pixel drawn from
      those classes' pixels (geometric.random_crop_or_pad).
    crop_focus_probability: see `crop_focus_classes`.
    flip: horizontal flip with probability 1/2.
    scale_range: `(min, max)` zoom factor, drawn log-uniformly; > 1 zooms in.
    max_rotation_degrees: rotation drawn uniformly in +-this.
    max_shear_degrees: horizontal shear angle drawn uniformly in +-this.
    elastic_alpha: standard deviation in pixels of the elastic displacement
      at its control points; 0 turns the warp off.
    elastic_spacing: pixels between the control points of the elastic field
      (its smoothness scale).
    brightness: added brightness drawn in +-this, as a fraction of full range.
    contrast: contrast factor drawn in `[1 - contrast, 1 + contrast]`.
    saturation: saturation factor drawn in `[1 - saturation, 1 + saturation]`.
    gamma: gamma drawn log-uniformly in `[exp(-gamma), exp(gamma)]`.
    image_fill: image value (scalar or RGB) where a transform or the padding
      leaves the image, in the image's 0..255 range; e.g. the dataset mean.
  """
  crop_size: Optional[Tuple[int, int]] = None
  random_crop: bool = False
  crop_focus_classes: Tuple[int, ...] = ()
  crop_focus_probability: float = 0.0
  flip: bool = False
  scale_range: Tuple[float, float] = (1.0, 1.0)
  max_rotation_degrees: float = 0.0
  max_shear_degrees: float = 0.0
  elastic_alpha: float = 0.0
  elastic_spacing: int = 16
  brightness: float = 0.0
  contrast: float = 0.0
  saturation: float = 0.0
  gamma: float = 0.0
  image_fill: pixels.Fill = 0.0

  def __post_init__(self):
    # Gin and JSON hand over lists; keep the frozen options hashable.
    for name in ("crop_size", "scale_range", "image_fill", "crop_focus_classes"):
      value = getattr(self, name)
      if isinstance(value, list):
        object.__setattr__(self, name, tuple(value))
    if self.crop_size is not None and (len(self.crop_size) != 2 or
                                       min(self.crop_size) < 1):
      raise ValueError(f"crop_size must be (height, width), got {self.crop_size}")
    low, high = self.scale_range
    if not 0 < low <= high:
      raise ValueError(f"scale_range must be 0 < min <= max, got {self.scale_range}")
    if self.elastic_spacing < 1:
      raise ValueError(f"elastic_spacing must be >= 1, got {self.elastic_spacing}")
    for name in ("max_rotation_degrees", "max_shear_degrees", "elastic_alpha",
                 "brightness", "contrast", "saturation", "gamma"):
      if getattr(self, name) < 0:
        raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
    if not 0 <= self.crop_focus_probability <= 1:
      raise ValueError("crop_focus_probability must be in [0, 1], got "
                       f"{self.crop_focus_probability}")
    if self.crop_focus_probability > 0 and not (self.random_crop and self.crop_focus_classes):
      raise ValueError("crop_focus_probability needs random_crop and crop_focus_classes")
    if self.max_shear_degrees >= 90:
      raise ValueError(f"max_shear_degrees must be < 90, got {self.max_shear_degrees}")

  @property
  def has_affine(self) -> bool:
    return (self.scale_range != (1.0, 1.0) or self.max_rotation_degrees > 0
            or self.max_shear_degrees > 0)

  @property
  def has_photometric(self) -> bool:
    return any(v > 0 for v in (self.brightness, self.contrast, self.saturation,
                               self.gamma))

  @property
  def is_random(self) -> bool:
    """Whether an example can come out differently in two epochs."""
    return (self.random_crop or self.flip or self.has_affine
            or self.elastic_alpha > 0 or self.has_photometric)


def augment(image: tf.Tensor, label: tf.Tensor, seed: tf.Tensor,
            options: AugmentOptions) -> Tuple[tf.Tensor, tf.Tensor]:
  """Applies every op `options` switches on, in the order of the module doc.

  Args:
    image: `[H, W, 3]` image.
    label: uint8 `[H, W]` class ids and 255.
    seed: `[2]` int seed of this example.
    options: which ops, with which ranges.

  Returns:
    `(image, label)`, `[crop_size..., 3]` and `[crop_size...]` when
    `options.crop_size` is set, else the input size.
  """
  with tf.name_scope("augment"):
    image, label = pixels.as_tensors(image, label)
    if options.has_affine:
      image, label = geometric.random_affine(
          image, label, _fold(seed, _AFFINE), options.scale_range,
          options.max_rotation_degrees, options.max_shear_degrees, options.image_fill)
    if options.elastic_alpha > 0:
      image, label = geometric.random_elastic(image, label, _fold(seed, _ELASTIC),
                                    options.elastic_alpha, options.elastic_spacing,
                                    options.image_fill)
    if options.crop_size is not None:
      if options.random_crop:
        image, label = geometric.random_crop_or_pad(
            image, label, _fold(seed, _CROP), options.crop_size, options.image_fill,
            options.crop_focus_classes, options.crop_focus_probability)
      else:
        image, label = geometric.center_crop_or_pad(image, label, options.crop_size,
                                          options.image_fill)
    if options.flip:
      image, label = geometric.random_flip(image, label, _fold(seed, _FLIP))
    if options.has_photometric:
      image, label = photometric.random_photometric(
          image, label, _fold(seed, _PHOTOMETRIC), options.brightness,
          options.contrast, options.saturation, options.gamma)
    return image, label


def _fold(seed, op_id: int) -> tf.Tensor:
  return tf.random.experimental.stateless_fold_in(seed, op_id)
