"""The maths of `ReNet2D` in `keras.ops`: GRU and LSTM steps, the scanned
sweep, patch extraction and the per-gate orthogonal initialiser.

Written once for every Keras backend; the equations are those of
`reseg_tf/model/gru.py` and `renet.py` (the reset gate scales `h @ w_hc`
after the matmul, as the original code does).
"""

from typing import Any, Sequence, Tuple

import keras
from keras import ops

# Original code: lasagne.init.Normal(0.1) for every weight (0.1 is the std).
NORMAL_STDDEV = 0.1


def gru_step(h, gates_x, w_h):
  """One GRU step in the original code's form (reset applied to `h @ w_hc`).

  r = sigmoid(x w_xr + h w_hr + b_r); u = sigmoid(x w_xu + h w_hu + b_u);
  c = tanh(x w_xc + r * (h w_hc) + b_c); h' = (1 - u) * h + u * c.

  Args:
    h: `[D, N, U]` previous state.
    gates_x: `[D, N, 3U]` input projection `x @ w_x + b` for this step.
    w_h: `[D, U, 3U]` recurrent weights, one per direction.

  Returns:
    `[D, N, U]` new state.
  """
  gates_h = ops.matmul(h, w_h)  # [D, N, 3U]
  x_r, x_u, x_c = ops.split(gates_x, 3, axis=-1)
  h_r, h_u, h_c = ops.split(gates_h, 3, axis=-1)
  r = ops.sigmoid(x_r + h_r)
  u = ops.sigmoid(x_u + h_u)
  c = ops.tanh(x_c + r * h_c)
  return h + u * (c - h)


def lstm_step(state, gates_x, w_h):
  """One LSTM step (no peepholes), gate order (i, f, c, o).

  Args:
    state: `(h, c)`, each `[D, N, U]`.
    gates_x: `[D, N, 4U]` input projection `x @ w_x + b` for this step.
    w_h: `[D, U, 4U]` recurrent weights.

  Returns:
    The new `(h, c)`.
  """
  h, cell = state
  gates = gates_x + ops.matmul(h, w_h)  # [D, N, 4U]
  i, f, c, o = ops.split(gates, 4, axis=-1)
  cell = ops.sigmoid(f) * cell + ops.sigmoid(i) * ops.tanh(c)
  return ops.sigmoid(o) * ops.tanh(cell), cell


def run_recurrence(core: str, gates_x, w_h, reverse: bool = False):
  """Runs GRU or LSTM steps over axis 0 from a zero state with `ops.scan`.

  Args:
    core: `'gru'` or `'lstm'`.
    gates_x: `[T, D, N, G*U]` input projections (bias included) for D
      directions.
    w_h: `[D, U, G*U]` recurrent weights, one per direction.
    reverse: process time from the last step to the first; the states are
      still returned in input order (`ops.scan`'s `reverse`).

  Returns:
    `[T, D, N, U]` hidden states.
  """
  units = w_h.shape[-2]
  # zeros_like of a slice: works with unknown batch or spatial sizes.
  h0 = ops.zeros_like(gates_x[0, :, :, :units])  # [D, N, U]
  if core == "gru":

    def gru_fn(h, g):
      h = gru_step(h, g, w_h)
      return h, h

    _, hs = ops.scan(gru_fn, h0, gates_x, reverse=reverse)
    return hs

  def lstm_fn(state, g):
    state = lstm_step(state, g, w_h)
    # The TensorFlow backend's scan needs outputs shaped like the carry.
    return state, state

  _, (hs, _) = ops.scan(lstm_fn, (h0, h0), gates_x, reverse=reverse)
  return hs


def sweep(x, axis: int, forward: Tuple[Any, Any, Any],
          backward: Tuple[Any, Any, Any], core: str = "gru",
          backward_reads_forward: bool = True):
  """Bidirectional sweep along `axis`, every line independently.

  Like `renet.scan_sweep`: time-major, with the lines of the other spatial
  axis folded into the batch, and the input projection of every step as one
  matmul outside the loop.

  Args:
    x: `[B, H, W, C]`.
    axis: 1 (down the columns) or 2 (along the rows).
    forward: `(w_x, w_h, b)` of the forward direction.
    backward: `(w_x, w_h, b)` of the backward direction.
    core: `'gru'` or `'lstm'`.
    backward_reads_forward: the original code's `stacked` mode.

  Returns:
    `[B, H, W, 2U]`: forward and backward states, both in input order.
  """
  perm = (2, 0, 1, 3) if axis == 2 else (1, 0, 2, 3)
  xt = ops.transpose(x, perm)  # [T, B, L, C], L = lines.
  steps, batch, lines = ops.shape(xt)[:3]
  xt = ops.reshape(xt, (steps, -1, x.shape[-1]))  # [T, N, C]
  (wx_f, wh_f, b_f), (wx_b, wh_b, b_b) = forward, backward
  if backward_reads_forward:
    gx = ops.matmul(xt, wx_f) + b_f  # [T, N, G]
    h_fw = run_recurrence(core, gx[:, None], ops.expand_dims(wh_f, 0))[:, 0]
    gx = ops.matmul(h_fw, wx_b) + b_b
    # reverse=True reads and writes the time axis backwards: no flips.
    h_bw = run_recurrence(core, gx[:, None], ops.expand_dims(wh_b, 0),
                          reverse=True)[:, 0]
  else:
    # One projection for both directions, [C, 2G], and one loop advancing
    # both (the backward one on the flipped sequence): half the loop steps.
    gx = (ops.matmul(xt, ops.concatenate([wx_f, wx_b], axis=1)) +
          ops.concatenate([b_f, b_b], axis=0))  # [T, N, 2G]
    gx_fw, gx_bw = ops.split(gx, 2, axis=-1)
    gx = ops.stack([gx_fw, ops.flip(gx_bw, axis=0)], axis=1)  # [T, 2, N, G]
    hs = run_recurrence(core, gx, ops.stack([wh_f, wh_b]))  # [T, 2, N, U]
    h_fw, h_bw = hs[:, 0], ops.flip(hs[:, 1], axis=0)
  out = ops.concatenate([h_fw, h_bw], axis=-1)  # [T, N, 2U]
  out = ops.reshape(out, (steps, batch, lines, out.shape[-1]))
  return ops.transpose(out, perm if axis == 1 else (1, 2, 0, 3))


def extract_patches(x, patch_size: Sequence[int]):
  """`[B, H, W, C]` -> `[B, ceil(H/ph), ceil(W/pw), ph*pw*C]`.

  Zero-pads the bottom and right edges when the map is not divisible; each
  patch is flattened in the order (ph, pw, C), as `renet.extract_patches`.
  """
  ph, pw = patch_size
  if (ph, pw) == (1, 1):
    return x
  # Python ints where the size is static, scalar tensors otherwise (the
  # TensorFlow backend with an unknown height or width).
  _, h, w, c = ops.shape(x)
  hp, wp = -(-h // ph), -(-w // pw)  # Ceiling division, static or not.
  x = ops.pad(x, ((0, 0), (0, hp * ph - h), (0, wp * pw - w), (0, 0)))
  x = ops.reshape(x, (-1, hp, ph, wp, pw, c))
  x = ops.transpose(x, (0, 1, 3, 2, 4, 5))  # [B, H', W', ph, pw, C]
  return ops.reshape(x, (-1, hp, wp, ph * pw * c))


def gate_orthogonal(num_gates: int):
  """Initialiser of `[U, G*U]`: one Haar-orthogonal `[U, U]` block a gate.

  `keras.initializers.Orthogonal` on the whole `[U, G*U]` would make its
  rows orthonormal instead, which is not `renet`'s per-gate init.
  """

  def initializer(shape, dtype=None):
    units = shape[0]
    # A fresh initialiser per block: an unseeded Keras initialiser draws its
    # seed once and repeats its values on every call.
    return ops.concatenate(
        [keras.initializers.Orthogonal()((units, units), dtype=dtype)
         for _ in range(num_gates)], axis=1)

  return initializer
