"""How a ReSeg graph is built: one network, several lowerings.

The variables and the maths are fixed by `reseg.py`, `renet.py`, `cells.py`
and `sweep.py`; a `Lowering` says in which form they run:

* `sweep`, what runs the ReNet recurrences (a `sweep.Recurrence`):
  - `'compiled'`: the C++ op of `kernels/gru_sweep.cc` (`compiled_sweep.py`);
    CPU, GRU, outside XLA;
  - `'fused'`: XLA-compiled loops with a hand-written backward
    (`renet_fused.py`); GRU, static shapes;
  - `'scan'`: autodiff through `tf.scan`, the reference every other form is
    tested against, and the portable form of SavedModels;
  - `'unrolled'`: one Python step per time step, a graph without loops, for
    the fixed-size LiteRT and ONNX exports (static shapes);
  - `'auto'`: `'compiled'` where it is available and the graph is not being
    compiled by XLA and no GPU is visible, else `'fused'`.
  A form that cannot run a case falls back, `compiled` -> `fused` -> `scan`
  (LSTM cores and unknown shapes run `'scan'`).
* `resize`: `'image'` (`tf.image.resize`, antialiased) or `'matrix'` (the
  same linear map as two constant matrices: builtin TFLite ops only).
* `float32`: compute everything in float32 whatever the model's compute
  dtypes (the converters have no bfloat16 kernels).

To add a form of the sweep: write a `sweep.Recurrence` and name it in
`recurrence()` below; every layer, the model and its tests then take it.
"""

import dataclasses

import tensorflow as tf
from absl import logging
from tensorflow.python.ops import control_flow_util  # To detect XLA contexts.

from reseg_tf.model import cells, compiled_sweep, renet_fused, sweep

SWEEPS = ("auto", "compiled", "fused", "scan", "unrolled")
RESIZES = ("image", "matrix")


@dataclasses.dataclass(frozen=True)
class Lowering:
  """The form a `ReSeg` graph takes; see the module docstring."""
  sweep: str = "auto"
  resize: str = "image"
  float32: bool = False

  def __post_init__(self):
    if self.sweep not in SWEEPS:
      raise ValueError(f"sweep must be one of {SWEEPS}, got {self.sweep!r}")
    if self.resize not in RESIZES:
      raise ValueError(f"resize must be one of {RESIZES}, got {self.resize!r}")


IN_PROCESS = Lowering()  # Training, evaluation and in-process prediction.
SAVED_MODEL = Lowering(sweep="scan")  # Builtin TensorFlow ops, any input size.
FIXED_SIZE = Lowering(sweep="unrolled", resize="matrix", float32=True)  # LiteRT, ONNX.


def tf_scan(core: str, gx: tf.Tensor, w_h: tf.Tensor) -> tf.Tensor:
  """The `sweep.Loop` of `tf.scan` with plain autodiff: the reference."""
  states = tf.scan(cells.step_fn(core, w_h), gx,
                   initializer=cells.initial_state(core, gx, w_h))
  return cells.hidden(core, states)


def unrolled(core: str, gx: tf.Tensor, w_h: tf.Tensor) -> tf.Tensor:
  """The `sweep.Loop` with one Python step per time step (static T): a graph
  with no loop, that the TFLite converter turns into builtin ops."""
  step, state, hs = cells.step_fn(core, w_h), cells.initial_state(core, gx, w_h), []
  for gates_x in tf.unstack(gx):
    state = step(state, gates_x)
    hs.append(cells.hidden(core, state))
  return tf.stack(hs)


def in_xla_context() -> bool:
  """Whether the graph being built is compiled by XLA (`jit_compile=True`),
  where the compiled sweep's op has no kernel."""
  graph = tf.compat.v1.get_default_graph()
  return not tf.executing_eagerly() and control_flow_util.GraphOrParentsInXlaContext(graph)


def sweep_form(requested: str, core: str, static_shape: bool) -> str:
  """The form that runs: `requested` or the first fallback that can."""
  form, xla = requested, in_xla_context()
  if form == "auto":
    form = "fused" if xla or tf.config.list_logical_devices("GPU") else "compiled"
  if form == "compiled" and (core != "gru" or xla or not compiled_sweep.available()):
    form = "fused"
  if form == "fused" and (core != "gru" or not static_shape):
    form = "scan"
  if form == "unrolled" and not static_shape:
    raise ValueError("the unrolled sweep needs a static input shape")
  return form


_TIME_MAJOR = {"scan": sweep.time_major(tf_scan), "unrolled": sweep.time_major(unrolled)}


def recurrence(requested: str, core: str, x: tf.Tensor) -> sweep.Recurrence:
  """The recurrence of form `requested` (after fallbacks) for input `x`."""
  form = sweep_form(requested, core, x.shape.is_fully_defined())
  if requested not in ("auto", form):
    logging.log_first_n(logging.INFO, "The %s sweep runs as %s here (core %s, shape %s).",
                        1, requested, form, core, x.shape)
  if form == "compiled":
    return compiled_sweep.recurrence
  if form == "fused":
    return renet_fused.recurrence
  return _TIME_MAJOR[form]
