"""The GRU of ReSeg's sweeps, written once: its gates, its step, the input
projection, shared by the `tf.scan` reference (`renet.py`) and the fused
sweep (`renet_fused.py`), so that both compute the same maths by construction.

The original code's form (docs/model.md, "The GRU"): the reset gate scales
the recurrent candidate term after the matmul, `r * (h @ w_hc)`, not
`(r * h) @ w_hc` as in most libraries:

    r = sigmoid(x w_xr + h w_hr + b_r)
    u = sigmoid(x w_xu + h w_hu + b_u)
    c = tanh(x w_xc + r * (h w_hc) + b_c)
    h' = (1 - u) * h + u * c
"""

from typing import Tuple

import tensorflow as tf

Weights = Tuple[tf.Tensor, tf.Tensor, tf.Tensor]  # (w_x, w_h, b) of one direction.


def gates(gates_x: tf.Tensor, gates_h: tf.Tensor):
  """`(r, u, c, h_c)` from the input and recurrent projections.

  Args:
    gates_x: `[..., 3U]` `x @ w_x + b`, gates in the order (r, u, c).
    gates_h: `[..., 3U]` `h @ w_h`.

  Returns:
    The reset and update gates, the candidate state and `h @ w_hc` (which
    the fused sweep's backward pass needs), each `[..., U]`.
  """
  x_r, x_u, x_c = tf.split(gates_x, 3, axis=-1)
  h_r, h_u, h_c = tf.split(gates_h, 3, axis=-1)
  r = tf.sigmoid(x_r + h_r)
  u = tf.sigmoid(x_u + h_u)
  c = tf.tanh(x_c + r * h_c)
  return r, u, c, h_c


def blend(h: tf.Tensor, u: tf.Tensor, c: tf.Tensor) -> tf.Tensor:
  """The new state `(1 - u) * h + u * c`."""
  return h + u * (c - h)


def step(h: tf.Tensor, gates_x: tf.Tensor, w_h: tf.Tensor) -> tf.Tensor:
  """One GRU step.

  Args:
    h: `[..., N, U]` previous state.
    gates_x: `[..., N, 3U]` input projection `x @ w_x + b` for this step.
    w_h: `[..., U, 3U]` recurrent weights (leading axes broadcast with `h`).

  Returns:
    `[..., N, U]` new state.
  """
  _, u, c, _ = gates(gates_x, tf.matmul(h, w_h))
  return blend(h, u, c)


def project(x: tf.Tensor, w: tf.Tensor, b=None,
            compute_dtype: tf.DType = tf.float32) -> tf.Tensor:
  """`x @ w (+ b)` over the last axis as one 2-D matmul (both cores use it).

  With `compute_dtype=tf.bfloat16` the matmul (and, through the casts, both
  of its gradient matmuls) runs in bfloat16; the bias add and the result keep
  `x.dtype`. Static dimensions of `x` stay static.
  """
  x2 = tf.reshape(x, [-1, x.shape[-1] if x.shape[-1] is not None else tf.shape(x)[-1]])
  if compute_dtype == tf.bfloat16:
    y = tf.cast(tf.matmul(tf.cast(x2, compute_dtype), tf.cast(w, compute_dtype)), x.dtype)
  else:
    y = tf.matmul(x2, w)
  if b is not None:
    y = y + b
  if x.shape.is_fully_defined():
    return tf.reshape(y, x.shape.as_list()[:-1] + [w.shape[-1]])
  return tf.reshape(y, tf.concat([tf.shape(x)[:-1], [-1]], 0))
