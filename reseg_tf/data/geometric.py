"""Geometric joint augmentations: crop/pad, flip, affine and elastic warps.

Each op has the form `op(image, label, seed, ...) -> (image, label)` (see
`augment.py` for the conventions): image and label get the same geometric
draw, labels are resampled nearest-neighbour, and label pixels brought in
from outside the image are 255 (ignored); images are resampled bilinearly
and take `image_fill` outside.
"""

import math
from typing import Sequence, Tuple

import tensorflow as tf

from reseg_tf.data import pixels
from reseg_tf.data.records import IGNORE_LABEL


def random_crop_or_pad(image, label, seed, size: Sequence[int], image_fill: pixels.Fill = 0.0,
                       focus_classes: Sequence[int] = (), focus_probability: float = 0.0):
  """Crops (where the image is larger) or pads (where smaller) to `size`.

  Each axis is handled on its own, at a uniformly random offset: a crop
  window anywhere inside the image, or the image anywhere inside the padded
  canvas. Padding is `image_fill` in the image and 255 in the label.

  With `focus_classes`, a crop is, with probability `focus_probability`,
  centred on nothing in particular but made to contain one pixel drawn
  uniformly from the pixels of those classes (when the image has any): along
  each cropped axis the window's offset is drawn uniformly among the
  offsets whose window holds that pixel. Rare, thin classes (poles, signs)
  then appear in many more crops than their share of the pixels gives.
  """
  with tf.name_scope("random_crop_or_pad"):
    image, label = pixels.as_tensors(image, label)
    slack = _slack(image, size)  # [2]: |input - target| per axis.
    draws = tf.random.stateless_uniform([2], seed)
    offsets = uniform_offset(draws, slack)
    if focus_classes and focus_probability > 0:
      offsets = _focused_offsets(label, seed, size, slack, draws, offsets,
                                 focus_classes, focus_probability)
    return _crop_or_pad(image, label, size, offsets, image_fill)


def uniform_offset(draws, largest):
  """Per entry, the integer offset in `[0, largest]` that a uniform draw in
  [0, 1) picks (crop windows here, CutMix's boxes in `cutmix.py`)."""
  return tf.minimum(tf.cast(tf.floor(draws * tf.cast(largest + 1, tf.float32)), tf.int32),
                    largest)


def _focused_offsets(label, seed, size, slack, draws, offsets, focus_classes,
                     focus_probability):
  """`random_crop_or_pad`'s offsets, moved (with `focus_probability`, when
  the label has pixels of `focus_classes`) so that the crop holds one of
  those pixels, drawn uniformly. `draws` place the window among the
  offsets that hold it; padded axes keep `offsets`."""
  is_focus = tf.reduce_any(tf.cast(label, tf.int32)[..., None]
                           == tf.constant(focus_classes, tf.int32), axis=-1)
  positions = tf.cast(tf.where(is_focus), tf.int32)  # [N, 2]
  count = tf.shape(positions)[0]
  use = tf.logical_and(
      tf.random.stateless_uniform([], tf.random.experimental.stateless_fold_in(seed, 1))
      < focus_probability, count > 0)
  index = tf.random.stateless_uniform(
      [], tf.random.experimental.stateless_fold_in(seed, 2), 0, tf.maximum(count, 1), tf.int32)
  # A dummy position after the real ones keeps the gather in range when
  # there are none (the crop is not moved then).
  pixel = tf.gather(tf.concat([positions, [[0, 0]]], 0), index)
  # Windows [o, o + size) that hold the pixel: o in [pixel - size + 1, pixel],
  # within the image's [0, slack].
  low = tf.maximum(pixel - tf.constant(size, tf.int32) + 1, 0)
  high = tf.minimum(pixel, slack)
  focused = low + uniform_offset(draws, high - low)
  cropped = tf.shape(label) >= tf.constant(size, tf.int32)
  return tf.where(tf.logical_and(use, cropped), focused, offsets)


def center_crop_or_pad(image, label, size: Sequence[int], image_fill: pixels.Fill = 0.0):
  """Deterministic `random_crop_or_pad`: the window or image centred."""
  with tf.name_scope("center_crop_or_pad"):
    image, label = pixels.as_tensors(image, label)
    return _crop_or_pad(image, label, size, _slack(image, size) // 2, image_fill)


def _slack(image, size):
  shape = tf.shape(image)[:2]
  return tf.abs(shape - tf.constant(size, tf.int32))


def pad_with_fill(image: tf.Tensor, label: tf.Tensor, paddings: tf.Tensor,
                  image_fill: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
  """Pads `[H, W, 3]` / `[H, W]` by `paddings` (`[2, 2]`, before/after per
  axis): the image with the colour `image_fill` (`[3]`, the image's dtype),
  the label with 255, which losses and metrics ignore."""
  inside = tf.pad(tf.ones(tf.shape(label), tf.bool), paddings)
  image = tf.where(inside[..., None],
                   tf.pad(image, tf.concat([paddings, [[0, 0]]], 0)), image_fill)
  return image, tf.pad(label, paddings, constant_values=IGNORE_LABEL)


def _crop_or_pad(image, label, size, offsets, image_fill):
  """Pads then crops so that `offsets` places the window/image on each axis."""
  shape = tf.shape(image)[:2]
  target = tf.constant(size, tf.int32)
  pad = tf.maximum(target - shape, 0)
  pad_before = tf.where(pad > 0, offsets, 0)
  crop_start = tf.where(pad > 0, 0, offsets)
  paddings = tf.stack([pad_before, pad - pad_before], axis=1)  # [2, 2]
  fill = tf.cast(pixels.fill_vector(image_fill), image.dtype)
  image, label = tf.cond(tf.reduce_any(pad > 0),
                         lambda: pad_with_fill(image, label, paddings, fill),
                         lambda: (image, label))
  image = tf.slice(image, tf.concat([crop_start, [0]], 0), tf.concat([target, [3]], 0))
  label = tf.slice(label, crop_start, target)
  image.set_shape([size[0], size[1], 3])
  label.set_shape([size[0], size[1]])
  return image, label


# ---------------------------------------------------------------------- flip


def random_flip(image, label, seed):
  """Mirrors image and label left-right together with probability 1/2."""
  with tf.name_scope("random_flip"):
    image, label = pixels.as_tensors(image, label)
    do_flip = tf.random.stateless_uniform([], seed) < 0.5
    return tf.cond(do_flip,
                   lambda: (tf.reverse(image, [1]), tf.reverse(label, [1])),
                   lambda: (tf.identity(image), tf.identity(label)))


# -------------------------------------------------------------------- affine


def random_affine(image, label, seed, scale_range: Sequence[float] = (1.0, 1.0),
                  max_rotation_degrees: float = 0.0, max_shear_degrees: float = 0.0,
                  image_fill: pixels.Fill = 0.0):
  """Random zoom, rotation and shear as one matrix, about the image centre.

  The output keeps the input size. With zoom-in (scale > 1) the zoom centre
  is drawn so that the unrotated view stays inside the image, so every part
  of the image can be seen; with zoom-out it is the image centre.
  """
  with tf.name_scope("random_affine"):
    image, label = pixels.as_tensors(image, label)
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


def projective_transform(image, label, transform, image_fill: pixels.Fill = 0.0):
  """Resamples image (bilinear) and label (nearest, fill 255) with one map.

  Args:
    image: `[H, W, 3]`.
    label: uint8 `[H, W]`.
    transform: float `[8]` output->input map (see `affine_transform`).
    image_fill: value where the map leaves the image.
  """
  image, label = pixels.as_tensors(image, label)
  shape = tf.shape(image)[:2]
  transforms = tf.reshape(tf.cast(transform, tf.float32), [1, 8])
  # The op fills with one scalar: shift the image so the fill becomes 0.
  fill = pixels.fill_vector(image_fill)
  moved = tf.raw_ops.ImageProjectiveTransformV3(
      images=(pixels.to_float(image) - fill)[None], transforms=transforms,
      output_shape=shape, fill_value=0.0, interpolation="BILINEAR")[0] + fill
  new_label = tf.raw_ops.ImageProjectiveTransformV3(
      images=label[None, :, :, None], transforms=transforms, output_shape=shape,
      fill_value=float(IGNORE_LABEL), interpolation="NEAREST")[0, :, :, 0]
  moved = pixels.from_float(moved, image.dtype)
  moved.set_shape(image.shape)
  new_label.set_shape(label.shape)
  return moved, new_label


# ------------------------------------------------------------------- elastic


def random_elastic(image, label, seed, alpha: float, spacing: int = 16,
                   image_fill: pixels.Fill = 0.0):
  """Elastic warp by a smooth random displacement field (Simard et al. 2003).

  The displacement is normal noise of standard deviation `alpha` pixels on a
  grid with one control point every `spacing` pixels, upsampled bicubically
  to the image: smooth at the `spacing` scale, like Simard's Gaussian-filtered
  noise, but cheap. Both maps are resampled by `sample` at the displaced
  positions.
  """
  with tf.name_scope("random_elastic"):
    image, label = pixels.as_tensors(image, label)
    shape = tf.shape(image)[:2]
    grid = shape // spacing + 2
    coarse = tf.random.stateless_normal(tf.concat([grid, [2]], 0), seed) * alpha
    field = tf.image.resize(coarse[None], shape, method="bicubic")[0]  # [H, W, 2]
    ys, xs = tf.meshgrid(tf.range(shape[0]), tf.range(shape[1]), indexing="ij")
    ys = tf.cast(ys, tf.float32) + field[..., 0]
    xs = tf.cast(xs, tf.float32) + field[..., 1]
    return sample(image, label, ys, xs, image_fill)


def sample(image, label, ys, xs, image_fill: pixels.Fill = 0.0):
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
  image, label = pixels.as_tensors(image, label)
  ys, xs = tf.cast(ys, tf.float32), tf.cast(xs, tf.float32)
  # A one-pixel frame of fill around both maps; positions are clamped into
  # the frame, so everything outside reads the fill without a mask.
  fill = pixels.fill_vector(image_fill)
  values = tf.pad(pixels.to_float(image) - fill, [[1, 1], [1, 1], [0, 0]])
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
  new_image = pixels.from_float((1 - wy) * top + wy * bottom + fill, image.dtype)
  # Nearest: round half up (tf.round rounds half to even).
  new_label = tf.gather(label, flat_index(tf.cast(tf.floor(ys + 0.5), tf.int32),
                                          tf.cast(tf.floor(xs + 0.5), tf.int32)))
  new_image.set_shape(ys.shape.concatenate([3]))
  new_label.set_shape(ys.shape)
  return new_image, new_label
