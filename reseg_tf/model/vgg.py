"""The VGG-16 front end of ReSeg: conv1_1 .. conv3_3 and two max-pools.

ReSeg (Visin et al. 2016, sec. 3) reads the image through the first layers of
an ImageNet-trained VGG-16 (Simonyan & Zisserman 2015): `conv1_1` .. `conv3_3`
(3x3 convolutions with ReLU) and the two 2x2 max-pools between the blocks, so
the features have stride 4 and 256 channels. Paper and original code agree on
this part: the weights are the Caffe ones and stay frozen. Keras'
`VGG16(include_top=False)` layers `block1_conv1` .. `block3_conv3` hold the
same weights, so this module uses the Keras layer names.

Preprocessing is the "caffe" one: RGB -> BGR, then subtract the ImageNet mean
`[103.939, 116.779, 123.68]` (BGR order) from values in 0..255.

Weights come from `vgg_weights.resolve_weights` (local .h5/.npz files, the
Keras cache, or random initialisation; see `vgg_weights.py`).
"""

from typing import Optional, Union

import numpy as np
import tensorflow as tf
from absl import logging

from reseg_tf.model.vgg_weights import ARCHITECTURE, LAYER_NAMES, resolve_weights

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
STRIDE = 4  # Two 2x2 max-pools.
OUTPUT_CHANNELS = 256


def caffe_preprocess(images: tf.Tensor) -> tf.Tensor:
  """"Caffe" VGG preprocessing, as Keras' `preprocess_input(mode='caffe')`.

  Args:
    images: `[B, H, W, 3]` RGB in 0..255, uint8 or float.

  Returns:
    `[B, H, W, 3]` float32, BGR minus the ImageNet mean.
  """
  x = tf.cast(images, tf.float32)
  x = tf.reverse(x, axis=[-1])  # RGB -> BGR.
  return x - tf.constant(CAFFE_MEAN_BGR, tf.float32)


class Conv3x3(tf.Module):
  """A 3x3 'same' convolution with ReLU: one VGG layer, or a layer of the
  learned stem of ReSeg without VGG (`ReSeg.stem_filters`)."""

  def __init__(self,
               kernel: np.ndarray,
               bias: np.ndarray,
               trainable: bool = False,
               name: Optional[str] = None):
    """Creates the layer.

    Args:
      kernel: `[3, 3, C_in, C_out]` initial kernel.
      bias: `[C_out]` initial bias.
      trainable: whether the optimizer may update the weights.
      name: module name (the Keras layer name, e.g. `block1_conv1`).
    """
    super().__init__(name=name)
    with self.name_scope:
      self.w = tf.Variable(kernel, trainable=trainable, name="w")
      self.b = tf.Variable(bias, trainable=trainable, name="b")

  def __call__(self, x: tf.Tensor) -> tf.Tensor:
    """`[B, H, W, C_in]` -> `[B, H, W, C_out]`, in the dtype of `x`."""
    w = tf.cast(self.w, x.dtype)
    b = tf.cast(self.b, x.dtype)
    return tf.nn.relu(tf.nn.conv2d(x, w, strides=1, padding="SAME") + b)


class VGGFrontEnd(tf.Module):
  """VGG-16 `conv1_1` .. `conv3_3` with both max-pools: stride 4, 256 maps.

  The module reads *preprocessed* images (`caffe_preprocess`), so that a
  caller can pad them with zeros (the mean colour) first, as `ReSeg` does.
  Max-pools are 2x2 'valid' as in Keras: an odd size is floored.
  """

  def __init__(self,
               weights: Optional[str] = "auto",
               trainable: bool = False,
               compute_dtype: Union[str, tf.DType] = tf.float32,
               seed: Optional[int] = None,
               name: Optional[str] = "vgg"):
    """Creates the variables and fills them from `weights`.

    Args:
      weights: `'auto'` (Keras cache if present, else random; the default
        because tests and offline machines have no weights), `'imagenet'`
        (Keras cache, an error if absent), `'random'`/`None`, or a path to an
        `.h5` or `.npz` file. See the module docstring.
      trainable: False (paper and code: VGG is frozen) creates the variables
        with `trainable=False`; True lets the optimizer fine-tune them.
      compute_dtype: dtype of the convolutions (variables stay float32);
        `'bfloat16'` is much faster on CPUs with AMX (oneDNN).
      seed: seed of a random initialisation.
      name: module name.

    Raises:
      FileNotFoundError, ValueError: see `resolve_weights`.
    """
    super().__init__(name=name)
    self.compute_dtype = tf.as_dtype(compute_dtype)
    values, source = resolve_weights(weights, seed)
    log = logging.warning if source.startswith("random") else logging.info
    log("VGG-16 front end (%s): %s.", "trainable" if trainable else "frozen",
        source)
    self.weights_source = source
    with self.name_scope:
      self.convs = [
          Conv3x3(*values[n], trainable=trainable, name=n) for n in LAYER_NAMES
      ]

  def __call__(self, x: tf.Tensor,
               compute_dtype: Optional[tf.DType] = None) -> tf.Tensor:
    """Computes the features.

    Args:
      x: `[B, H, W, 3]` preprocessed images (`caffe_preprocess`).
      compute_dtype: this call's dtype instead of the module's (the
        fixed-size exports compute in float32).

    Returns:
      `[B, H // 4, W // 4, 256]` in that dtype, after conv3_3's ReLU.
    """
    x = tf.cast(x, compute_dtype or self.compute_dtype)
    convs = iter(self.convs)
    for spec in ARCHITECTURE:
      if spec is None:
        x = tf.nn.max_pool2d(x, ksize=2, strides=2, padding="VALID")
      else:
        x = next(convs)(x)
    return x
