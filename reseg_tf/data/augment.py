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

`augment` composes the ops in a fixed order: affine (scale, rotation, shear:
one matrix, one resampling) -> elastic warp -> crop/pad -> flip ->
photometric. Each op draws from its own seed, folded from the example's seed
with a fixed id, so switching one op on or off does not change the draws of
the others.
"""

import dataclasses
import math
from typing import Optional, Sequence, Tuple, Union

import tensorflow as tf

from reseg_tf.data.records import IGNORE_LABEL

Fill = Union[float, Sequence[float]]

_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 grey, as tf.image.rgb_to_grayscale.
# Fixed ids folded into the example seed, one per op (see `augment`).
_AFFINE, _ELASTIC, _CROP, _FLIP, _PHOTOMETRIC = range(5)


@dataclasses.dataclass(frozen=True)
class AugmentOptions:
  """What `augment` does. The defaults do nothing (the paper used none).

  Attributes:
    crop_size: `(height, width)` every output has; None keeps the input size.
    random_crop: draw the crop/pad offset at random; otherwise centre it.
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
  image_fill: Fill = 0.0

  def __post_init__(self):
    # Gin and JSON hand over lists; keep the frozen options hashable.
    for name in ("crop_size", "scale_range", "image_fill"):
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
    image, label = _tensors(image, label)
    if options.has_affine:
      image, label = random_affine(
          image, label, _fold(seed, _AFFINE), options.scale_range,
          options.max_rotation_degrees, options.max_shear_degrees, options.image_fill)
    if options.elastic_alpha > 0:
      image, label = random_elastic(image, label, _fold(seed, _ELASTIC),
                                    options.elastic_alpha, options.elastic_spacing,
                                    options.image_fill)
    if options.crop_size is not None:
      if options.random_crop:
        image, label = random_crop_or_pad(image, label, _fold(seed, _CROP),
                                          options.crop_size, options.image_fill)
      else:
        image, label = center_crop_or_pad(image, label, options.crop_size,
                                          options.image_fill)
    if options.flip:
      image, label = random_flip(image, label, _fold(seed, _FLIP))
    if options.has_photometric:
      image, label = random_photometric(
          image, label, _fold(seed, _PHOTOMETRIC), options.brightness,
          options.contrast, options.saturation, options.gamma)
    return image, label


# ---------------------------------------------------------------- crop / pad


def random_crop_or_pad(image, label, seed, size: Sequence[int], image_fill: Fill = 0.0):
  """Crops (where the image is larger) or pads (where smaller) to `size`.

  Each axis is handled on its own, at a uniformly random offset: a crop
  window anywhere inside the image, or the image anywhere inside the padded
  canvas. Padding is `image_fill` in the image and 255 in the label.
  """
  with tf.name_scope("random_crop_or_pad"):
    image, label = _tensors(image, label)
    slack = _slack(image, size)  # [2]: |input - target| per axis.
    draws = tf.random.stateless_uniform([2], seed)
    offsets = tf.minimum(tf.cast(tf.floor(draws * tf.cast(slack + 1, tf.float32)),
                                 tf.int32), slack)
    return _crop_or_pad(image, label, size, offsets, image_fill)


def center_crop_or_pad(image, label, size: Sequence[int], image_fill: Fill = 0.0):
  """Deterministic `random_crop_or_pad`: the window or image centred."""
  with tf.name_scope("center_crop_or_pad"):
    image, label = _tensors(image, label)
    return _crop_or_pad(image, label, size, _slack(image, size) // 2, image_fill)


def _slack(image, size):
  shape = tf.shape(image)[:2]
  return tf.abs(shape - tf.constant(size, tf.int32))


def _crop_or_pad(image, label, size, offsets, image_fill):
  """Pads then crops so that `offsets` places the window/image on each axis."""
  shape = tf.shape(image)[:2]
  target = tf.constant(size, tf.int32)
  pad = tf.maximum(target - shape, 0)
  pad_before = tf.where(pad > 0, offsets, 0)
  crop_start = tf.where(pad > 0, 0, offsets)
  paddings = tf.stack([pad_before, pad - pad_before], axis=1)  # [2, 2]
  fill = tf.cast(_fill_vector(image_fill), image.dtype)

  def padded():
    inside = tf.pad(tf.ones(shape, tf.bool), paddings)
    return (tf.where(inside[..., None],
                     tf.pad(image, tf.concat([paddings, [[0, 0]]], 0)), fill),
            tf.pad(label, paddings, constant_values=IGNORE_LABEL))

  image, label = tf.cond(tf.reduce_any(pad > 0), padded, lambda: (image, label))
  image = tf.slice(image, tf.concat([crop_start, [0]], 0), tf.concat([target, [3]], 0))
  label = tf.slice(label, crop_start, target)
  image.set_shape([size[0], size[1], 3])
  label.set_shape([size[0], size[1]])
  return image, label


# ---------------------------------------------------------------------- flip


def random_flip(image, label, seed):
  """Mirrors image and label left-right together with probability 1/2."""
  with tf.name_scope("random_flip"):
    image, label = _tensors(image, label)
    do_flip = tf.random.stateless_uniform([], seed) < 0.5
    return tf.cond(do_flip,
                   lambda: (tf.reverse(image, [1]), tf.reverse(label, [1])),
                   lambda: (tf.identity(image), tf.identity(label)))


# -------------------------------------------------------------------- affine


def random_affine(image, label, seed, scale_range: Sequence[float] = (1.0, 1.0),
                  max_rotation_degrees: float = 0.0, max_shear_degrees: float = 0.0,
                  image_fill: Fill = 0.0):
  """Random zoom, rotation and shear as one matrix, about the image centre.

  The output keeps the input size. With zoom-in (scale > 1) the zoom centre
  is drawn so that the unrotated view stays inside the image, so every part
  of the image can be seen; with zoom-out it is the image centre.
  """
  with tf.name_scope("random_affine"):
    image, label = _tensors(image, label)
    draws = tf.random.stateless_uniform([5], seed, minval=-1.0, maxval=1.0)
    low, high = (math.log(s) for s in scale_range)
    scale = tf.exp(low + (draws[0] + 1) / 2 * (high - low))
    angle = draws[1] * max_rotation_degrees * math.pi / 180
    shear = draws[2] * max_shear_degrees * math.pi / 180
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    # Input-space shift of the zoom centre, (y, x): 0 unless zooming in.
    shift = draws[3:5] * tf.maximum(1 - 1 / scale, 0.0) * (shape - 1) / 2
    transform = affine_transform(shape, scale, angle, shear, shift)
    return projective_transform(image, label, transform, image_fill)


def affine_transform(shape, scale, angle, shear, shift=(0.0, 0.0)) -> tf.Tensor:
  """The `[8]` output->input map of `ImageProjectiveTransformV3`.

  Content is sheared (x += tan(shear) * y), rotated by `angle` and scaled by
  `scale` about the image centre, then moved by `-shift` (so that output
  centre samples input centre + shift). Pixel centres are at integers, as in
  the op.

  Args:
    shape: float `[2]` `(H, W)`.
    scale, angle, shear: float scalars (angles in radians).
    shift: float `[2]` `(dy, dx)` in input pixels.
  """
  cos, sin, tan = tf.cos(angle), tf.sin(angle), tf.tan(shear)
  # Forward content map A = scale * R(angle) @ [[1, tan], [0, 1]] in (x, y).
  a = scale * tf.stack([[cos, cos * tan - sin], [sin, sin * tan + cos]])
  # Its inverse in closed form; det(A) = scale^2.
  inv = tf.stack([[a[1, 1], -a[0, 1]], [-a[1, 0], a[0, 0]]]) / scale**2
  center = (shape[::-1] - 1) / 2  # (cx, cy)
  source = center + tf.convert_to_tensor(shift, tf.float32)[::-1]
  offset = source - tf.linalg.matvec(inv, center)
  return tf.stack([inv[0, 0], inv[0, 1], offset[0],
                   inv[1, 0], inv[1, 1], offset[1], 0.0, 0.0])


def projective_transform(image, label, transform, image_fill: Fill = 0.0):
  """Resamples image (bilinear) and label (nearest, fill 255) with one map.

  Args:
    image: `[H, W, 3]`.
    label: uint8 `[H, W]`.
    transform: float `[8]` output->input map (see `affine_transform`).
    image_fill: value where the map leaves the image.
  """
  image, label = _tensors(image, label)
  shape = tf.shape(image)[:2]
  transforms = tf.reshape(tf.cast(transform, tf.float32), [1, 8])
  # The op fills with one scalar: shift the image so the fill becomes 0.
  fill = _fill_vector(image_fill)
  moved = tf.raw_ops.ImageProjectiveTransformV3(
      images=(_to_float(image) - fill)[None], transforms=transforms,
      output_shape=shape, fill_value=0.0, interpolation="BILINEAR")[0] + fill
  new_label = tf.raw_ops.ImageProjectiveTransformV3(
      images=label[None, :, :, None], transforms=transforms, output_shape=shape,
      fill_value=float(IGNORE_LABEL), interpolation="NEAREST")[0, :, :, 0]
  moved = _from_float(moved, image.dtype)
  moved.set_shape(image.shape)
  new_label.set_shape(label.shape)
  return moved, new_label


# ------------------------------------------------------------------- elastic


def random_elastic(image, label, seed, alpha: float, spacing: int = 16,
                   image_fill: Fill = 0.0):
  """Elastic warp by a smooth random displacement field (Simard et al. 2003).

  The displacement is normal noise of standard deviation `alpha` pixels on a
  grid with one control point every `spacing` pixels, upsampled bicubically
  to the image: smooth at the `spacing` scale, like Simard's Gaussian-filtered
  noise, but cheap. Both maps are resampled by `sample` at the displaced
  positions.
  """
  with tf.name_scope("random_elastic"):
    image, label = _tensors(image, label)
    shape = tf.shape(image)[:2]
    grid = shape // spacing + 2
    coarse = tf.random.stateless_normal(tf.concat([grid, [2]], 0), seed) * alpha
    field = tf.image.resize(coarse[None], shape, method="bicubic")[0]  # [H, W, 2]
    ys, xs = tf.meshgrid(tf.range(shape[0]), tf.range(shape[1]), indexing="ij")
    ys = tf.cast(ys, tf.float32) + field[..., 0]
    xs = tf.cast(xs, tf.float32) + field[..., 1]
    return sample(image, label, ys, xs, image_fill)


def sample(image, label, ys, xs, image_fill: Fill = 0.0):
  """Reads image (bilinear) and label (nearest) at float positions.

  A gather-based sampler for maps `ImageProjectiveTransformV3` cannot
  express. Positions are in pixels, pixel centres at integers; image pixels
  outside the image read `image_fill`, labels outside read 255 (as the op's
  CONSTANT mode).

  Args:
    image: `[H, W, 3]`.
    label: uint8 `[H, W]`.
    ys, xs: float `[H', W']` row and column to read for each output pixel.
    image_fill: image value outside.

  Returns:
    `(image [H', W', 3], label [H', W'])`.
  """
  image, label = _tensors(image, label)
  ys, xs = tf.cast(ys, tf.float32), tf.cast(xs, tf.float32)
  # A one-pixel frame of fill around both maps; positions are clamped into
  # the frame, so everything outside reads the fill without a mask.
  fill = _fill_vector(image_fill)
  values = tf.pad(_to_float(image) - fill, [[1, 1], [1, 1], [0, 0]])
  label = tf.pad(label, [[1, 1], [1, 1]], constant_values=IGNORE_LABEL)
  height, width = tf.shape(values)[0], tf.shape(values)[1]  # H + 2, W + 2.
  values = tf.reshape(values, [-1, 3])
  label = tf.reshape(label, [-1])

  def flat_index(rows, cols):  # Rows/cols of the unpadded map, int32.
    rows = tf.clip_by_value(rows + 1, 0, height - 1)
    cols = tf.clip_by_value(cols + 1, 0, width - 1)
    return rows * width + cols

  ys = tf.clip_by_value(ys, -1.0, tf.cast(height - 2, tf.float32))
  xs = tf.clip_by_value(xs, -1.0, tf.cast(width - 2, tf.float32))
  y0, x0 = tf.floor(ys), tf.floor(xs)
  wy, wx = (ys - y0)[..., None], (xs - x0)[..., None]
  y0, x0 = tf.cast(y0, tf.int32), tf.cast(x0, tf.int32)
  top = ((1 - wx) * tf.gather(values, flat_index(y0, x0))
         + wx * tf.gather(values, flat_index(y0, x0 + 1)))
  bottom = ((1 - wx) * tf.gather(values, flat_index(y0 + 1, x0))
            + wx * tf.gather(values, flat_index(y0 + 1, x0 + 1)))
  new_image = _from_float((1 - wy) * top + wy * bottom + fill, image.dtype)
  # Nearest: round half up (tf.round rounds half to even).
  new_label = tf.gather(label, flat_index(tf.cast(tf.floor(ys + 0.5), tf.int32),
                                          tf.cast(tf.floor(xs + 0.5), tf.int32)))
  new_image.set_shape(ys.shape.concatenate([3]))
  new_label.set_shape(ys.shape)
  return new_image, new_label


# --------------------------------------------------------------- photometric


def random_photometric(image, label, seed, brightness: float = 0.0,
                       contrast: float = 0.0, saturation: float = 0.0,
                       gamma: float = 0.0):
  """Brightness, contrast, saturation, then gamma jitter; the label is untouched.

  Args:
    image: `[H, W, 3]` in 0..255.
    label: returned as is.
    seed: `[2]` int seed.
    brightness: add a value drawn in +-`brightness` (fraction of 255).
    contrast: scale the distance to the mean by [1 - contrast, 1 + contrast].
    saturation: scale the colour's distance to its grey by
      [1 - saturation, 1 + saturation] (cheaper than an HSV round trip).
    gamma: raise to a power drawn log-uniformly in [exp(-gamma), exp(gamma)].
  """
  with tf.name_scope("random_photometric"):
    image, label = _tensors(image, label)
    draws = tf.random.stateless_uniform([4], seed, minval=-1.0, maxval=1.0)
    x = _to_float(image) / 255.0
    if brightness:
      x = tf.image.adjust_brightness(x, draws[0] * brightness)
    if contrast:
      x = tf.image.adjust_contrast(x, 1 + draws[1] * contrast)
    if saturation:  # A blend with the grey image, as PIL's ImageEnhance.Color.
      grey = tf.reduce_sum(x * _LUMA, axis=-1, keepdims=True)
      x = grey + (1 + draws[2] * saturation) * (x - grey)
    x = tf.clip_by_value(x, 0.0, 1.0)
    if gamma:
      x = tf.pow(x, tf.exp(draws[3] * gamma))
    new_image = _from_float(x * 255.0, image.dtype)
    new_image.set_shape(image.shape)
    return new_image, label


# ------------------------------------------------------------------- helpers


def _tensors(image, label):
  return tf.convert_to_tensor(image), tf.convert_to_tensor(label)


def _fold(seed, op_id: int) -> tf.Tensor:
  return tf.random.experimental.stateless_fold_in(seed, op_id)


def _fill_vector(image_fill: Fill) -> tf.Tensor:
  fill = tf.constant(image_fill, tf.float32)
  return tf.broadcast_to(fill, [3])


def _to_float(image):
  return tf.cast(image, tf.float32)


def _from_float(x, dtype):
  if dtype.is_integer:
    x = tf.clip_by_value(tf.round(x), dtype.min, dtype.max)
  return tf.cast(x, dtype)
