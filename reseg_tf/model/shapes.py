"""Sizes that stay static where the graph knows them.

Training and evaluation build graphs of known image sizes (XLA and the fused
sweep need static shapes); the exported SavedModel takes any size, so the
same code must also work when a dimension is only known at run time.
"""

import tensorflow as tf


def size(x: tf.Tensor, axis: int):
  """`x.shape[axis]` when static, else the dynamic size."""
  return x.shape[axis] if x.shape[axis] is not None else tf.shape(x)[axis]


def spatial_size(x: tf.Tensor) -> tuple:
  """`(H, W)` of a `[B, H, W, ...]` tensor, static where known."""
  return (size(x, 1), size(x, 2))
