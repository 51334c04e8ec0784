"""Small conversions the augmentation ops share."""

from typing import Sequence, Union

import tensorflow as tf

Fill = Union[float, Sequence[float]]  # An image value: scalar or RGB, 0..255.


def as_tensors(image, label):
  return tf.convert_to_tensor(image), tf.convert_to_tensor(label)


def fill_vector(image_fill: Fill) -> tf.Tensor:
  """`image_fill` as a float32 `[3]`."""
  fill = tf.constant(image_fill, tf.float32)
  return tf.broadcast_to(fill, [3])


def to_float(image):
  return tf.cast(image, tf.float32)


def from_float(x, dtype):
  """Back to `dtype`, rounded and clipped to its range for integer types."""
  if dtype.is_integer:
    x = tf.clip_by_value(tf.round(x), dtype.min, dtype.max)
  return tf.cast(x, dtype)
