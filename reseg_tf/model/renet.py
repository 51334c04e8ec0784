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

The modules here hold the weights; the maths is written once in `cells.py`
(the GRU and LSTM steps) and `sweep.py` (patches and the bidirectional
sweep), and the form the loops take is chosen per call by a sweep form of
`lowering.py` (`'auto'`, `'compiled'`, `'fused'`, `'scan'`, `'unrolled'`).
"""

from typing import Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from reseg_tf.model import cells, lowering, sweep

Weights = Tuple[tf.Variable, tf.Variable, tf.Variable]  # (w_x, w_h, b) of one direction.


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
          tf.random.normal([input_size, g], stddev=cells.NORMAL_STDDEV),
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


def _recurrent_init(init: str, units: int, num_gates: int) -> tf.Tensor:
  """Recurrent weights `[U, G*U]`: N(0, 0.1), or one orthogonal block a gate."""
  if init == "normal":
    return tf.random.normal([units, num_gates * units], stddev=cells.NORMAL_STDDEV)
  if init == "orthogonal":
    # One draw a block, in order: a seed gives the same weights as it always did.
    draws = [tf.random.normal([units, units]) for _ in range(num_gates)]
    return cells.orthogonal_blocks(tf.stack(draws))
  raise ValueError(f"init must be 'normal' or 'orthogonal', got {init!r}.")


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

  def __call__(self, x: tf.Tensor, axis: int, form: str = "auto") -> tf.Tensor:
    """Sweeps `x` along `axis` (1: down the columns, 2: along the rows).

    Args:
      x: `[B, H, W, C]` float32.
      axis: the spatial axis to recur over.
      form: the sweep form, one of `lowering.SWEEPS`. The `'unrolled'`
        (export) form computes its projections in float32.

    Returns:
      `[B, H, W, 2U]` float32.
    """
    recurrence = lowering.recurrence(form, self.core, x)
    compute_dtype = tf.float32 if form == "unrolled" else self.compute_dtype
    return sweep.bidirectional(x, axis, self.forward.weights, self.backward.weights,
                               self.core, self.backward_reads_forward, recurrence,
                               compute_dtype)


class ReNetLayer(tf.Module):
  """ReNet layer: patches, then two bidirectional sweeps (ReSeg sec. 3.1).

  Each sweep has its own weights. With patch size 1x1, GRU cores and the
  original code's `stacked` mode, a layer reading C channels has
  `3 * (C*U + 2*U*U + U) + 3 * (2*U*U + U) + 6 * (3*U*U + U)` parameters
  (forward and backward of sweep 1, then of sweep 2, whose input is 2U).

  Attributes:
    output_channels: `2 * units`.
    first_sweep, second_sweep: the two `BidirectionalSweep`s.
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
    patch_channels = int(np.prod(self.patch_size)) * input_channels
    with self.name_scope:
      self.first_sweep = BidirectionalSweep(
          patch_channels, units, core, bidirectional_mode, init, compute_dtype,
          name="first_sweep")
      self.second_sweep = BidirectionalSweep(
          2 * units, units, core, bidirectional_mode, init, compute_dtype,
          name="second_sweep")

  def __call__(self, x: tf.Tensor, form: str = "auto") -> tf.Tensor:
    """`[B, H, W, C]` -> `[B, ceil(H/ph), ceil(W/pw), 2U]`, float32, with the
    sweeps in `form` (one of `lowering.SWEEPS`)."""
    x = sweep.extract_patches(x, self.patch_size)  # [B, H', W', ph*pw*C]
    first, second = (2, 1) if self.sweep_order == "horizontal_first" else (1, 2)
    x = self.first_sweep(x, first, form)  # [B, H', W', 2U]
    return self.second_sweep(x, second, form)
