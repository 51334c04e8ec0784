"""ReNet as a Keras 3 layer: `ReNet2D`, written with `keras.ops` only.

The same maths, options and weight layout as `renet.ReNetLayer`
(tested against it to 1e-5, forward and gradients), but a
`keras.layers.Layer`: it goes into `keras.Sequential` and functional models,
trains with `model.fit`, saves to and loads from `.keras` files, and has no
TensorFlow-only code (tested on the TensorFlow and JAX backends).

The layer holds the weights; the maths is `reseg_tf/model/cells.py`'s and
`sweep.py`'s, the same functions `ReNetLayer` calls. Its loop is
`keras.ops.scan` with plain autodiff (`sweep.keras_scan`), the counterpart of
`ReNetLayer`'s `'scan'` reference form; the compiled and fused forms are
TensorFlow-only and are not used here. On TensorFlow, XLA compiles the forward pass but not its
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

from typing import Any, Dict, Sequence

import keras
from keras import ops

from reseg_tf.model import cells, sweep

_RECURRENCE = sweep.time_major(sweep.keras_scan)
SWEEPS = ("first_sweep", "second_sweep")
DIRECTIONS = ("forward", "backward")
PARTS = ("w_x", "w_h", "b")

_SWEEP_ORDERS = ("horizontal_first", "vertical_first")
_BIDIRECTIONAL_MODES = ("stacked", "independent")
_INITS = ("normal", "orthogonal")


def weight_name(sweep_name: str, direction: str, part: str) -> str:
  """`'first_sweep', 'forward', 'w_x'` -> `'first_sweep_forward_w_x'`."""
  return f"{sweep_name}_{direction}_{part}"


def gate_orthogonal(num_gates: int):
  """Keras initialiser of `[U, G*U]`: `cells.orthogonal_blocks` of draws from
  Keras' random source (`keras.utils.set_random_seed` makes it repeatable)."""

  def initializer(shape, dtype=None):
    units = shape[0]
    draws = keras.random.normal((num_gates, units, units))
    return ops.cast(cells.orthogonal_blocks(draws), dtype or "float32")

  return initializer


# ----------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="reseg_tf")
class ReNet2D(keras.layers.Layer):
  """ReNet layer: patches, then two bidirectional sweeps (ReSeg sec. 3.1).

  `[B, H, W, C]` -> `[B, ceil(H/ph), ceil(W/pw), 2U]`; H and W may be
  unknown. Sizes that are not multiples of the patch are zero-padded at the
  bottom and right to the next multiple first, so the last row and column
  of patches see zeros there (a head that upsamples by the patch size
  returns the padded size: crop it to the input's). The options are those
  of `renet.ReNetLayer` (whose docstring compares the paper with the
  original code); the input channels come from the first call instead of
  an argument.

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
               **kwargs: Any):
    super().__init__(**kwargs)
    cells.num_gates(core)  # Raises on an unknown core.
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
    gates = cells.num_gates(self.core) * self.units
    first_input = self.patch_size[0] * self.patch_size[1] * channels
    for sweep_name, input_size in zip(SWEEPS, (first_input, 2 * self.units)):
      backward_input = (self.units if self.backward_reads_forward
                        else input_size)
      for direction, size in zip(DIRECTIONS, (input_size, backward_input)):
        if self.init == "orthogonal":
          recurrent_init = gate_orthogonal(cells.num_gates(self.core))
        else:
          recurrent_init = keras.initializers.RandomNormal(
              stddev=cells.NORMAL_STDDEV)
        # Fresh initialiser objects: each draws its own seed.
        shapes_inits = (
            ((size, gates),
             keras.initializers.RandomNormal(stddev=cells.NORMAL_STDDEV)),
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
    x = sweep.extract_patches(inputs, self.patch_size)  # [B, H', W', ph*pw*C]
    axes = (2, 1) if self.sweep_order == "horizontal_first" else (1, 2)
    for sweep_name, axis in zip(SWEEPS, axes):
      # Backend values, not Keras variables: TensorFlow's `ops.stack` fails
      # on Keras variables (and `ops.convert_to_tensor` returns them as is).
      weights = [[w.value for w in direction]
                 for direction in self.sweep_weights(sweep_name)]
      x = sweep.bidirectional(x, axis, *weights, self.core, self.backward_reads_forward,
                              _RECURRENCE)  # [B, H', W', 2U]
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
  def from_renet_layer(cls, renet_layer: Any, **kwargs: Any) -> "ReNet2D":
    """A built `ReNet2D` with the options and weights of a `ReNetLayer`.

    Args:
      renet_layer: a `reseg_tf.model.renet.ReNetLayer`.
      **kwargs: more `keras.layers.Layer` arguments (`name`, ...).

    Returns:
      The new layer; `init` is left at its default, as `ReNetLayer` does
        not keep it (it only matters before the weights are copied).
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


def set_weights_from_renet_layer(keras_layer: ReNet2D, renet_layer: Any) -> None:
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
