"""Photometric augmentation: brightness, contrast, saturation, gamma (image only)."""

import tensorflow as tf

from reseg_tf.data import pixels

_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 grey, as tf.image.rgb_to_grayscale.


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
    image, label = pixels.as_tensors(image, label)
    draws = tf.random.stateless_uniform([4], seed, minval=-1.0, maxval=1.0)
    x = pixels.to_float(image) / 255.0
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
    new_image = pixels.from_float(x * 255.0, image.dtype)
    new_image.set_shape(image.shape)
    return new_image, label
