"""ReNet as a Keras 3 layer: `ReNet2D`, written with `keras.ops` only.

The same maths, options and weight layout as `renet.ReNetLayer`
(tested against it to 1e-5, forward and gradients), but a
`keras.layers.Layer`: it goes into `keras.Sequential` and functional models,
trains with `model.fit`, saves to and loads from `.keras` files, and has no
TensorFlow-only code (tested on the TensorFlow and JAX backends).

The recurrence is `keras.ops.scan` with plain autodiff, the counterpart of
`ReNetLayer`'s `implementation='scan'` reference path (about as fast; the
fused GRU of `renet_fused`, about 3x faster on CPU, is TensorFlow-only and is
not used here). On TensorFlow, XLA compiles the forward pass but not its
gradient, so the layer opts out of XLA training steps (`supports_jit`). The
`compute_dtype` option of `ReNetLayer` has no counterpart: the layer computes
in its Keras dtype policy's compute dtype.

Weights: for each sweep (`first_sweep`, `second_sweep`) and direction
(`forward`, `backward`), `w_x [C_in, G*U]`, `w_h [U, G*U]` and `b [G*U]`,
named e.g. `first_sweep_forward_w_x` (Keras forbids `/` in weight names) and
created in that order, so `layer.weights` lists
`first_sweep/forward/{w_x, w_h, b}, first_sweep/backward/..., second_sweep/...`
of `ReNetLayer`. G is 3 for the GRU (gates `r, u, c`) and 4 for the LSTM
(`i, f, c, o`); `C_in` is `ph*pw*C` for the first sweep, `2U` for the second,
and `U` for a backward direction in `stacked` mode (it reads the forward
states).
"""

from typing import Any, Dict, Sequence, Tuple

import keras
from keras import ops

# Gate order inside the fused `[C, G*U]` weights (as in renet.py).
GRU_GATES = ("r", "u", "c")  # reset, update, candidate.
LSTM_GATES = ("i", "f", "c", "o")  # input, forget, cell candidate, output.
_NUM_GATES = {"gru": len(GRU_GATES), "lstm": len(LSTM_GATES)}
# Original code: lasagne.init.Normal(0.1) for every weight (0.1 is the std).
_NORMAL_STDDEV = 0.1
SWEEPS = ("first_sweep", "second_sweep")
DIRECTIONS = ("forward", "backward")
PARTS = ("w_x", "w_h", "b")

_SWEEP_ORDERS = ("horizontal_first", "vertical_first")
_BIDIRECTIONAL_MODES = ("stacked", "independent")
_INITS = ("normal", "orthogonal")


def weight_name(sweep: str, direction: str, part: str) -> str:
  """`'first_sweep', 'forward', 'w_x'` -> `'first_sweep_forward_w_x'`."""
  return f"{sweep}_{direction}_{part}"


# ----------------------------------------------------------------------------
# Maths: the equations of renet.py, in keras.ops.


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


def _gate_orthogonal(num_gates: int):
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


# ----------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="reseg_tf")
class ReNet2D(keras.layers.Layer):
  """ReNet layer: patches, then two bidirectional sweeps (ReSeg sec. 3.1).

  `[B, H, W, C]` -> `[B, ceil(H/ph), ceil(W/pw), 2U]`; H and W may be
  unknown. The options are those of `renet.ReNetLayer` (whose docstring
  compares the paper with the original code); the input channels come from
  the first call instead of an argument.

  Args:
    units: U, hidden units per direction.
    patch_size: (ph, pw) of the non-overlapping patches.
    core: `'gru'` (original code's GRU, reset gate applied after the
      recurrent matmul) or `'lstm'`.
    sweep_order: `'horizontal_first'` (original code: along W with rows in
      the batch, then along H) or `'vertical_first'` (the paper's sec. 3.1).
    bidirectional_mode: `'stacked'` (original code: the backward RNN reads
      the forward states) or `'independent'` (paper: both read the input).
    init: `'normal'` (original code: N(0, 0.1) weights) or `'orthogonal'`
      (one orthogonal block a gate in `w_h`); biases start at zero. Use
      `keras.utils.set_random_seed` for a reproducible init.
    **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).
  """

  def __init__(self, units: int, patch_size: Sequence[int] = (1, 1),
               core: str = "gru", sweep_order: str = "horizontal_first",
               bidirectional_mode: str = "stacked", init: str = "normal",
               **kwargs):
    super().__init__(**kwargs)
    if core not in _NUM_GATES:
      raise ValueError(
          f"core must be one of {sorted(_NUM_GATES)}, got {core!r}.")
    if sweep_order not in _SWEEP_ORDERS:
      raise ValueError("sweep_order must be 'horizontal_first' or "
                       f"'vertical_first', got {sweep_order!r}.")
    if bidirectional_mode not in _BIDIRECTIONAL_MODES:
      raise ValueError("bidirectional_mode must be 'independent' or 'stacked',"
                       f" got {bidirectional_mode!r}.")
    if init not in _INITS:
      raise ValueError(f"init must be 'normal' or 'orthogonal', got {init!r}.")
    patch_size = tuple(int(p) for p in patch_size)
    if len(patch_size) != 2 or min(patch_size) < 1:
      raise ValueError(f"patch_size must be two positive ints, got "
                       f"{patch_size!r}.")
    self.units = int(units)
    self.patch_size = patch_size
    self.core = core
    self.sweep_order = sweep_order
    self.bidirectional_mode = bidirectional_mode
    self.init = init
    self.input_spec = keras.layers.InputSpec(ndim=4)
    # On TensorFlow, `ops.scan` is a while loop without `maximum_iterations`,
    # whose gradient XLA cannot compile ("requires a fixed tensor list
    # size"); `model.fit` turns XLA on by default on GPUs, so opt out there.
    # The forward pass compiles; JAX compiles both.
    self.supports_jit = keras.backend.backend() != "tensorflow"

  @property
  def backward_reads_forward(self) -> bool:
    return self.bidirectional_mode == "stacked"

  def build(self, input_shape):
    channels = input_shape[-1]
    if channels is None:
      raise ValueError("ReNet2D needs a known number of input channels, got "
                       f"input shape {input_shape}.")
    self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: channels})
    gates = _NUM_GATES[self.core] * self.units
    first_input = self.patch_size[0] * self.patch_size[1] * channels
    for sweep_name, input_size in zip(SWEEPS, (first_input, 2 * self.units)):
      backward_input = (self.units if self.backward_reads_forward
                        else input_size)
      for direction, size in zip(DIRECTIONS, (input_size, backward_input)):
        if self.init == "orthogonal":
          recurrent_init = _gate_orthogonal(_NUM_GATES[self.core])
        else:
          recurrent_init = keras.initializers.RandomNormal(
              stddev=_NORMAL_STDDEV)
        # Fresh initialiser objects: each draws its own seed.
        shapes_inits = (
            ((size, gates),
             keras.initializers.RandomNormal(stddev=_NORMAL_STDDEV)),
            ((self.units, gates), recurrent_init),
            ((gates,), "zeros"))
        for part, (shape, initializer) in zip(PARTS, shapes_inits):
          name = weight_name(sweep_name, direction, part)
          setattr(self, name, self.add_weight(
              shape=shape, initializer=initializer, name=name))

  def sweep_weights(self, sweep_name: str):
    """`((w_x, w_h, b) forward, (w_x, w_h, b) backward)` of a sweep."""
    return tuple(
        tuple(getattr(self, weight_name(sweep_name, direction, part))
              for part in PARTS)
        for direction in DIRECTIONS)

  def call(self, inputs):
    x = extract_patches(inputs, self.patch_size)  # [B, H', W', ph*pw*C]
    axes = (2, 1) if self.sweep_order == "horizontal_first" else (1, 2)
    for sweep_name, axis in zip(SWEEPS, axes):
      # Backend values, not Keras variables: TensorFlow's `ops.stack` fails
      # on Keras variables (and `ops.convert_to_tensor` returns them as is).
      weights = [[w.value for w in direction]
                 for direction in self.sweep_weights(sweep_name)]
      x = sweep(x, axis, *weights, self.core,
                self.backward_reads_forward)  # [B, H', W', 2U]
    return x

  def compute_output_shape(self, input_shape):
    batch, h, w, _ = input_shape
    ph, pw = self.patch_size
    def ceil(n, p):
      return None if n is None else -(-n // p)
    return (batch, ceil(h, ph), ceil(w, pw), 2 * self.units)

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update(units=self.units, patch_size=list(self.patch_size),
                  core=self.core, sweep_order=self.sweep_order,
                  bidirectional_mode=self.bidirectional_mode, init=self.init)
    return config

  @classmethod
  def from_renet_layer(cls, renet_layer, **kwargs) -> "ReNet2D":
    """A built `ReNet2D` with the options and weights of a `ReNetLayer`.

    Args:
      renet_layer: a `reseg_tf.renet.ReNetLayer`.
      **kwargs: more `keras.layers.Layer` arguments (`name`, ...).

    Returns:
      The new layer; `init` is left at its default, as `ReNetLayer` does not
      keep it (it only matters before the weights are copied).
    """
    layer = cls(**renet_layer_options(renet_layer), **kwargs)
    set_weights_from_renet_layer(layer, renet_layer)
    return layer


def renet_layer_options(renet_layer) -> Dict[str, Any]:
  """The `ReNet2D` arguments that give a `ReNetLayer`'s function."""
  first = renet_layer.first_sweep
  return dict(
      units=renet_layer.units, patch_size=tuple(renet_layer.patch_size),
      core=first.core, sweep_order=renet_layer.sweep_order,
      bidirectional_mode="stacked" if first.backward_reads_forward
      else "independent")


def set_weights_from_renet_layer(keras_layer: ReNet2D, renet_layer) -> None:
  """Copies the weights of a `renet.ReNetLayer` into a `ReNet2D`.

  Builds `keras_layer` first if needed. Only reads `renet_layer`'s
  attributes (no import of `renet`). Its `compute_dtype` is not carried
  over: `ReNet2D` computes in its dtype policy's compute dtype.

  Args:
    keras_layer: the destination; its options must be those of
      `renet_layer` (see `renet_layer_options`).
    renet_layer: the source `ReNetLayer`.

  Raises:
    ValueError: the options or the input channels differ.
  """
  want = renet_layer_options(renet_layer)
  mismatched = {k: (getattr(keras_layer, k), v) for k, v in want.items()
                if getattr(keras_layer, k) != v}
  if mismatched:
    raise ValueError("ReNet2D and ReNetLayer options differ "
                     f"(ReNet2D, ReNetLayer): {mismatched}.")
  patch_channels = renet_layer.first_sweep.forward.w_x.shape[0]
  channels = patch_channels // (want["patch_size"][0] * want["patch_size"][1])
  if not keras_layer.built:
    keras_layer.build((None, None, None, channels))
  for sweep_name in SWEEPS:
    renet_sweep = getattr(renet_layer, sweep_name)
    for direction in DIRECTIONS:
      core = getattr(renet_sweep, direction)
      for part in PARTS:
        source = getattr(core, part)
        target = getattr(keras_layer, weight_name(sweep_name, direction, part))
        if tuple(target.shape) != tuple(source.shape):
          raise ValueError(
              f"{target.path} has shape {tuple(target.shape)} but the "
              f"ReNetLayer weight {source.name} has {tuple(source.shape)} "
              "(different input channels?).")
        target.assign(source.numpy())
