"""ReNet layer: two bidirectional recurrent sweeps over a patch grid.

Implements the ReNet layer of ReSeg (Visin et al. 2016, arXiv:1511.07053,
sec. 3.1), itself from ReNet (Visin et al. 2015, arXiv:1505.00393).

The input map is cut into non-overlapping patches; a bidirectional RNN sweeps
every row (or column) of patches, and a second bidirectional RNN sweeps the
other axis of the result. Where the paper and the authors' Theano code differ,
both behaviours are offered (docs/model.md, "Where the paper and the original
code differ, and what we do"); the defaults follow the code, which produced
the published CamVid numbers:

| switch               | paper                  | original code (default)         |
|----------------------|------------------------|---------------------------------|
| `sweep_order`        | `vertical_first`       | `horizontal_first`              |
| `bidirectional_mode` | `independent`: both    | `stacked`: the backward RNN     |
|                      | directions read x      | reads the forward hidden states |
| `init`               | `orthogonal` (w_h)     | `normal`: N(0, 0.1), zero bias  |

Efficient form: the input projection `x @ w_x` for every step (and both
directions when they read the same input) is one large matmul outside the
loop; only `h @ w_h` stays inside the `tf.scan`, whose batch holds every row
(or column) of the map. The GRU has a hand-written fused backward pass in
`renet_fused.py`; `implementation='scan'` keeps plain autodiff through
`tf.scan` (the reference path, and the only one for the LSTM).
"""

from typing import Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from reseg_tf.model import gru, renet_fused, shapes

# Gate order inside the fused `[C, G*U]` weights.
GRU_GATES = ("r", "u", "c")  # reset, update, candidate.
LSTM_GATES = ("i", "f", "c", "o")  # input, forget, cell candidate, output.
# Original code: lasagne.init.Normal(0.1) for every weight (0.1 is the std).
_NORMAL_STDDEV = 0.1

Weights = gru.Weights
IMPLEMENTATIONS = ("fused", "scan", "unrolled")


def _recurrent_init(init: str, units: int, num_gates: int) -> tf.Tensor:
  """Recurrent weights `[U, G*U]`: N(0, 0.1), or one orthogonal block a gate."""
  if init == "normal":
    return tf.random.normal([units, num_gates * units], stddev=_NORMAL_STDDEV)
  if init == "orthogonal":
    blocks = []
    for _ in range(num_gates):
      q, r = tf.linalg.qr(tf.random.normal([units, units]))
      # Sign fix makes Q Haar-distributed (Mezzadri 2007).
      blocks.append(q * tf.sign(tf.linalg.diag_part(r))[tf.newaxis, :])
    return tf.concat(blocks, axis=1)
  raise ValueError(f"init must be 'normal' or 'orthogonal', got {init!r}.")


def lstm_step(state: Tuple[tf.Tensor, tf.Tensor], gates_x: tf.Tensor,
              w_h: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
  """One LSTM step (no peepholes), gate order (i, f, c, o).

  Args:
    state: `(h, c)`, each `[..., N, U]`.
    gates_x: `[..., N, 4U]` input projection `x @ w_x + b` for this step.
    w_h: `[..., U, 4U]` recurrent weights.

  Returns:
    The new `(h, c)`.
  """
  h, cell = state
  gates = gates_x + tf.matmul(h, w_h)  # [..., N, 4U]
  i, f, c, o = tf.split(gates, 4, axis=-1)
  cell = tf.sigmoid(f) * cell + tf.sigmoid(i) * tf.tanh(c)
  return tf.sigmoid(o) * tf.tanh(cell), cell


class GRUCore(tf.Module):
  """GRU weights of one direction: `w_x [C, 3U]`, `w_h [U, 3U]`, `b [3U]`.

  One bias per gate, as in the original code (3 * (C*U + U*U + U) parameters);
  gates fused in the order (r, u, c). The step functions take the weights as
  arguments (see `weights`) so that loops compiled by XLA can differentiate
  them.
  """

  num_gates = 3

  def __init__(self, input_size: int, units: int, init: str = "normal",
               name: Optional[str] = None):
    super().__init__(name=name)
    self.input_size = input_size
    self.units = units
    g = self.num_gates * units
    with self.name_scope:
      self.w_x = tf.Variable(
          tf.random.normal([input_size, g], stddev=_NORMAL_STDDEV),
          name="w_x")  # [C, G*U]
      self.w_h = tf.Variable(_recurrent_init(init, units, self.num_gates),
                             name="w_h")  # [U, G*U]
      self.b = tf.Variable(tf.zeros([g]), name="b")  # [G*U]

  @property
  def weights(self) -> Weights:
    return self.w_x, self.w_h, self.b


class LSTMCore(GRUCore):
  """LSTM weights of one direction: `w_x [C, 4U]`, `w_h [U, 4U]`, `b [4U]`.

  Gate order (i, f, c, o); no peepholes; one bias per gate.
  """

  num_gates = 4


_CORES = {"gru": GRUCore, "lstm": LSTMCore}


def run_recurrence(core: str, gates_x: tf.Tensor, w_h: tf.Tensor,
                   unroll: bool = False) -> tf.Tensor:
  """Runs GRU or LSTM steps over axis 0 from a zero state.

  Args:
    core: `'gru'` or `'lstm'`.
    gates_x: `[T, D, N, G*U]` input projections (bias included), in
      processing order, for D directions.
    w_h: `[D, U, G*U]` recurrent weights, one per direction.
    unroll: one Python step per time step (T static) instead of a `tf.scan`:
      a graph without loops, for LiteRT export (`model/unrolled.py`).

  Returns:
    `[T, D, N, U]` hidden states.
  """
  shape = tf.shape(gates_x)
  h0 = tf.zeros([shape[1], shape[2], w_h.shape[-2]], gates_x.dtype)
  if core == "gru":
    step, state = (lambda h, g: gru.step(h, g, w_h)), h0
  else:
    step, state = (lambda s, g: lstm_step(s, g, w_h)), (h0, h0)
  if not unroll:
    hs = tf.scan(step, gates_x, initializer=state)
    return hs if core == "gru" else hs[0]
  hs = []
  for g in tf.unstack(gates_x):  # Needs a static T.
    state = step(state, g)
    hs.append(state if core == "gru" else state[0])
  return tf.stack(hs)


def scan_sweep(x: tf.Tensor, axis: int, forward: Weights, backward: Weights,
               core: str = "gru", backward_reads_forward: bool = True,
               compute_dtype: tf.DType = tf.float32, unroll: bool = False) -> tf.Tensor:
  """Bidirectional sweep along `axis` with autodiff through `tf.scan`.

  The reference implementation: transposes to time-major, with the lines of
  the other spatial axis folded into the batch.

  Args:
    x: `[B, H, W, C]`.
    axis: 1 (down the columns) or 2 (along the rows).
    forward: `(w_x, w_h, b)` of the forward direction.
    backward: `(w_x, w_h, b)` of the backward direction.
    core: `'gru'` or `'lstm'`.
    backward_reads_forward: the original code's `stacked` mode.
    compute_dtype: dtype of the input-projection matmuls.
    unroll: unroll the recurrences (`run_recurrence`; static shapes).

  Returns:
    `[B, H, W, 2U]`: forward and backward states, both in input order.
  """
  perm = [2, 0, 1, 3] if axis == 2 else [1, 0, 2, 3]
  xt = tf.transpose(x, perm)  # [T, B, L, C], L = lines.
  shape = tf.shape(xt)
  xt = tf.reshape(xt, [shape[0], shape[1] * shape[2], x.shape[-1]])  # [T, N, C]
  (wx_f, wh_f, b_f), (wx_b, wh_b, b_b) = forward, backward
  if backward_reads_forward:
    gx = gru.project(xt, wx_f, b_f, compute_dtype)  # [T, N, G]
    h_fw = run_recurrence(core, gx[:, None], wh_f[None], unroll)[:, 0]  # [T, N, U]
    gx = gru.project(tf.reverse(h_fw, [0]), wx_b, b_b, compute_dtype)
    h_bw = run_recurrence(core, gx[:, None], wh_b[None], unroll)[:, 0]
  else:
    # One projection for both directions: [C, 2G].
    gx = gru.project(xt, tf.concat([wx_f, wx_b], 1), tf.concat([b_f, b_b], 0),
                      compute_dtype)  # [T, N, 2G]
    gx_fw, gx_bw = tf.split(gx, 2, axis=-1)
    gx = tf.stack([gx_fw, tf.reverse(gx_bw, [0])], axis=1)  # [T, 2, N, G]
    hs = run_recurrence(core, gx, tf.stack([wh_f, wh_b]), unroll)  # [T, 2, N, U]
    h_fw, h_bw = hs[:, 0], hs[:, 1]
  out = tf.concat([h_fw, tf.reverse(h_bw, [0])], axis=-1)  # [T, N, 2U]
  out = tf.reshape(out, [shape[0], shape[1], shape[2], 2 * wh_f.shape[0]])
  return tf.transpose(out, perm if axis == 1 else [1, 2, 0, 3])


class BidirectionalSweep(tf.Module):
  """A bidirectional RNN over one spatial axis, every line independently.

  `independent` (paper): both directions read the input and advance in one
  loop over a leading direction axis. `stacked` (original code): the backward
  RNN reads the forward RNN's hidden states, so its `w_x` is `[U, G*U]`. In
  both, the output is `concat(forward, backward)` with the backward states
  flipped back into the input's order.
  """

  def __init__(self, input_size: int, units: int, core: str = "gru",
               bidirectional_mode: str = "stacked", init: str = "normal",
               compute_dtype: tf.DType = tf.float32,
               name: Optional[str] = None):
    super().__init__(name=name)
    if core not in _CORES:
      raise ValueError(f"core must be one of {sorted(_CORES)}, got {core!r}.")
    if bidirectional_mode not in ("independent", "stacked"):
      raise ValueError("bidirectional_mode must be 'independent' or 'stacked',"
                       f" got {bidirectional_mode!r}.")
    self.core = core
    self.units = units
    self.backward_reads_forward = bidirectional_mode == "stacked"
    self.compute_dtype = tf.as_dtype(compute_dtype)
    backward_input = units if self.backward_reads_forward else input_size
    with self.name_scope:
      self.forward = _CORES[core](input_size, units, init, name="forward")
      self.backward = _CORES[core](backward_input, units, init,
                                   name="backward")

  def __call__(self, x: tf.Tensor, axis: int,
               implementation: str = "fused") -> tf.Tensor:
    """Sweeps `x` along `axis` (1: down the columns, 2: along the rows).

    Args:
      x: `[B, H, W, C]` float32.
      axis: the spatial axis to recur over.
      implementation: `'fused'` (GRU with a static input shape: one
        custom-gradient loop per direction group, see `renet_fused`),
        `'scan'` (autodiff through `tf.scan`; used for the LSTM and for
        inputs of unknown shape, e.g. an export signature with batch None)
        or `'unrolled'` (the scan's maths with the loops unrolled and the
        projections in float32, for fixed-size LiteRT/ONNX export:
        `model/unrolled.py`; static shape required).

    Returns:
      `[B, H, W, 2U]` float32.
    """
    if implementation not in IMPLEMENTATIONS:
      raise ValueError(f"Unknown implementation {implementation!r}.")
    args = (x, axis, self.forward.weights, self.backward.weights)
    if implementation == "unrolled":
      if not x.shape.is_fully_defined():
        raise ValueError(f"the unrolled sweep needs a static shape, got {x.shape}")
      return scan_sweep(*args, self.core, self.backward_reads_forward, tf.float32,
                        unroll=True)
    if (implementation == "fused" and self.core == "gru" and
        x.shape.is_fully_defined()):
      return renet_fused.gru_sweep(*args, self.backward_reads_forward,
                                   self.compute_dtype)
    return scan_sweep(*args, self.core, self.backward_reads_forward,
                      self.compute_dtype)


def extract_patches(x: tf.Tensor, patch_size: Sequence[int]) -> tf.Tensor:
  """`[B, H, W, C]` -> `[B, ceil(H/ph), ceil(W/pw), ph*pw*C]`.

  Zero-pads the bottom and right edges when the map is not divisible; each
  patch is flattened in the order (ph, pw, C).
  """
  ph, pw = patch_size
  if (ph, pw) == (1, 1):
    return x
  h, w = shapes.spatial_size(x)  # Static where known (export signatures: not).
  c = x.shape[3]
  hp, wp = -(-h // ph), -(-w // pw)  # Ceiling division, static or not.
  x = tf.pad(x, [[0, 0], [0, hp * ph - h], [0, wp * pw - w], [0, 0]])
  x = tf.reshape(x, [-1, hp, ph, wp, pw, c])
  x = tf.transpose(x, [0, 1, 3, 2, 4, 5])  # [B, H', W', ph, pw, C]
  return tf.reshape(x, [-1, hp, wp, ph * pw * c])


class ReNetLayer(tf.Module):
  """ReNet layer: patches, then two bidirectional sweeps (ReSeg sec. 3.1).

  Each sweep has its own weights. With patch size 1x1, GRU cores and the
  original code's `stacked` mode, a layer reading C channels has
  `3 * (C*U + 2*U*U + U) + 3 * (2*U*U + U) + 6 * (3*U*U + U)` parameters
  (forward and backward of sweep 1, then of sweep 2, whose input is 2U).

  Attributes:
    output_channels: `2 * units`.
    first_sweep, second_sweep: the two `BidirectionalSweep`s.
    implementation: `'fused'` (default; custom-gradient GRU loop), `'scan'`
      (plain autodiff through `tf.scan`, the reference) or `'unrolled'`
      (fixed-size export). LSTM layers run `'fused'` as `'scan'`. Read at
      trace time.
  """

  def __init__(self, input_channels: int, units: int,
               patch_size: Sequence[int] = (1, 1), core: str = "gru",
               sweep_order: str = "horizontal_first",
               bidirectional_mode: str = "stacked", init: str = "normal",
               compute_dtype: tf.DType = tf.float32,
               name: Optional[str] = None):
    """Creates the layer's variables.

    Args:
      input_channels: C of the `[B, H, W, C]` input.
      units: U, hidden units per direction.
      patch_size: (ph, pw) of the non-overlapping patches.
      core: `'gru'` (original code's GRU) or `'lstm'`.
      sweep_order: `'horizontal_first'` (original code: along W with rows in
        the batch, then along H) or `'vertical_first'` (the paper's sec. 3.1).
      bidirectional_mode: `'stacked'` (original code) or `'independent'`.
      init: `'normal'` (original code) or `'orthogonal'` recurrent weights.
      compute_dtype: dtype of the large input-projection matmuls and their
        gradients (`tf.bfloat16` to use bf16 units); the recurrence and all
        variables stay float32.
      name: module name.
    """
    super().__init__(name=name)
    if sweep_order not in ("horizontal_first", "vertical_first"):
      raise ValueError("sweep_order must be 'horizontal_first' or "
                       f"'vertical_first', got {sweep_order!r}.")
    self.patch_size = tuple(patch_size)
    self.units = units
    self.output_channels = 2 * units
    self.sweep_order = sweep_order
    self.implementation = "fused"
    patch_channels = int(np.prod(self.patch_size)) * input_channels
    with self.name_scope:
      self.first_sweep = BidirectionalSweep(
          patch_channels, units, core, bidirectional_mode, init, compute_dtype,
          name="first_sweep")
      self.second_sweep = BidirectionalSweep(
          2 * units, units, core, bidirectional_mode, init, compute_dtype,
          name="second_sweep")

  def __call__(self, x: tf.Tensor, implementation: Optional[str] = None) -> tf.Tensor:
    """`[B, H, W, C]` -> `[B, ceil(H/ph), ceil(W/pw), 2U]`, float32
    (`implementation`: this call's, instead of `self.implementation`)."""
    implementation = implementation or self.implementation
    x = extract_patches(x, self.patch_size)  # [B, H', W', ph*pw*C]
    first, second = (2, 1) if self.sweep_order == "horizontal_first" else (1, 2)
    x = self.first_sweep(x, first, implementation)  # [B, H', W', 2U]
    return self.second_sweep(x, second, implementation)
