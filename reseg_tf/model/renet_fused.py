"""The fused GRU recurrence: XLA-compiled loops with a hand-written backward.

A recurrence of `model/sweep.py` (the `'fused'` form): the same maths as the
`tf.scan` reference (the gates come from `cells.py`, and the result is tested
against it), for GRU cores and static shapes, on any device XLA compiles
for. Autodiff through `tf.scan` stores every intermediate of every step and
runs many small per-step ops; here:

* one `tf.custom_gradient` covers the recurrence of a direction group (both
  directions in `independent` mode, one in `stacked` mode): the forward loop
  adds the bias, writes the hidden states and keeps the gates
  `(r, u, c, h @ w_hc)`; the backward loop runs in reverse time, does
  `dgates @ w_h^T` and the gate derivatives, and accumulates `dw_h` and `db`;
* the loops (and only the loops) are compiled by XLA; they read and write
  time slices of `[B, H, W, ...]` buffers in place, so no big tensor is ever
  transposed or reversed. Weights enter as arguments, never as captured
  variables (XLA cannot differentiate a captured `tf.Variable` here).

docs/performance.md gives what each choice measured.
"""

import functools
from typing import Sequence, Tuple

import tensorflow as tf

# XLA's in-place slice ops; the public `tf.raw_ops` does not export them.
from tensorflow.compiler.tf2xla.python import xla

from reseg_tf.model import cells, sweep


class _Slicer:
  """Reads and writes time slices `[N, width]` of a `[B, H, W, D*width]`."""

  def __init__(self, shape: Sequence[int], axis: int):
    self.axis = axis
    self.steps = shape[axis]
    self.lines = shape[0] * shape[3 - axis]  # N: lines folded into the batch.
    self.shape = list(shape[:3])  # [B, H, W]

  def _start_size(self, t, channel, width):
    start = [0, 0, 0, channel]
    start[self.axis] = t
    size = self.shape + [width]
    size[self.axis] = 1
    return start, size

  def read(self, buf, t, channel, width):
    start, size = self._start_size(t, channel, width)
    return tf.reshape(xla.dynamic_slice(buf, start, size), [self.lines, width])

  def write(self, buf, value, t, channel):
    width = value.shape[-1]
    start, size = self._start_size(t, channel, width)
    return xla.dynamic_update_slice(buf, tf.reshape(value, size), start)


def _time_index(p, steps, reverse):
  return steps - 1 - p if reverse else p


@functools.cache
def _recurrence_fn(axis: int, reverse: Tuple[bool, ...]):
  """The custom-gradient recurrence of directions `reverse` along `axis`.

  Returns a function
  `(gx [B, H, W, D*3U], w_h [D, U, 3U], b [D, 1, 3U]) -> hs [B, H, W, D*U]`
  where `gx = x @ w_x` without bias; direction d reads and writes channel
  block d, in reverse time if `reverse[d]`.
  """
  num_dir = len(reverse)

  @tf.function(jit_compile=True)
  def forward_loop(gx, w_h, b):
    units = w_h.shape[1]
    s = _Slicer(gx.shape, axis)
    hs = tf.zeros(gx.shape[:3].as_list() + [num_dir * units], gx.dtype)
    # Gates by processing step: private to the backward pass, so time-major.
    saved = tf.zeros([s.steps, num_dir, s.lines, 4 * units], gx.dtype)

    def body(p, h, hs, saved):
      ts = [_time_index(p, s.steps, r) for r in reverse]
      g = tf.stack([s.read(gx, t, d * 3 * units, 3 * units)
                    for d, t in enumerate(ts)]) + b  # [D, N, 3U]
      r, u, c, h_c = cells.gru_gates(g, tf.matmul(h, w_h))  # Each [D, N, U].
      h = cells.blend(h, u, c)
      keep = tf.concat([r, u, c, h_c], axis=-1)  # [D, N, 4U]
      saved = xla.dynamic_update_slice(saved, keep[None], [p, 0, 0, 0])
      for d, t in enumerate(ts):
        hs = s.write(hs, h[d], t, d * units)
      return p + 1, h, hs, saved

    h0 = tf.zeros([num_dir, s.lines, units], gx.dtype)
    _, _, hs, saved = tf.while_loop(
        lambda p, *_: p < s.steps, body, (0, h0, hs, saved))
    return hs, saved

  @tf.function(jit_compile=True)
  def backward_loop(dhs, hs, saved, w_h):
    units = w_h.shape[1]
    s = _Slicer(hs.shape, axis)
    dgx = tf.zeros(hs.shape[:3].as_list() + [num_dir * 3 * units], hs.dtype)

    def body(p, dh, dw_h, db, dgx):
      ts = [_time_index(p, s.steps, r) for r in reverse]
      # h at the previous processing step (zero at p = 0).
      ts_prev = [_time_index(tf.maximum(p - 1, 0), s.steps, r) for r in reverse]
      first = tf.cast(p > 0, hs.dtype)
      h_prev = first * tf.stack([s.read(hs, t, d * units, units)
                                 for d, t in enumerate(ts_prev)])  # [D, N, U]
      dh = dh + tf.stack([s.read(dhs, t, d * units, units)
                          for d, t in enumerate(ts)])  # [D, N, U]
      keep = saved[p]  # [D, N, 4U]
      r, u, c, h_c = tf.split(keep, 4, axis=-1)
      d_c = dh * u * (1 - c * c)  # Through tanh.
      d_r = d_c * h_c * r * (1 - r)
      d_u = dh * (c - h_prev) * u * (1 - u)
      d_gx = tf.concat([d_r, d_u, d_c], axis=-1)  # [D, N, 3U]
      d_gh = tf.concat([d_r, d_u, d_c * r], axis=-1)
      dh = dh * (1 - u) + tf.matmul(d_gh, w_h, transpose_b=True)
      dw_h += tf.matmul(h_prev, d_gh, transpose_a=True)  # [D, U, 3U]
      db += tf.reduce_sum(d_gx, axis=1)  # [D, 3U]
      for d, t in enumerate(ts):
        dgx = s.write(dgx, d_gx[d], t, d * 3 * units)
      return p - 1, dh, dw_h, db, dgx

    dh0 = tf.zeros([num_dir, s.lines, units], hs.dtype)
    _, _, dw_h, db, dgx = tf.while_loop(
        lambda p, *_: p >= 0, body,
        (s.steps - 1, dh0, tf.zeros_like(w_h),
         tf.zeros([num_dir, 3 * units], hs.dtype), dgx))
    return dgx, dw_h, db[:, None, :]

  @tf.custom_gradient
  def recurrence(gx, w_h, b):
    # The loops have no autodiff gradient; keep tapes away from them.
    hs, saved = forward_loop(*[tf.stop_gradient(a) for a in (gx, w_h, b)])

    def grad(dhs):
      return backward_loop(tf.stop_gradient(dhs), hs, saved,
                           tf.stop_gradient(w_h))  # (dgx, dw_h, db)

    return hs, grad

  return recurrence


def recurrence(core: str, gx: tf.Tensor, w_h: tf.Tensor, b: tf.Tensor, axis: int,
               reverse: Sequence[bool], compute_dtype=None) -> tf.Tensor:
  """The fused recurrence (see `sweep.py` for the arguments): GRU only,
  static shapes; the loops run in float32 whatever `compute_dtype`."""
  del compute_dtype
  gx = sweep.widened(gx)
  if core != "gru" or not gx.shape.is_fully_defined():
    raise ValueError(f"the fused sweep needs a GRU and a static shape, got {core!r}, {gx.shape}")
  return _recurrence_fn(axis, tuple(bool(r) for r in reverse))(gx, w_h, b[:, None, :])
