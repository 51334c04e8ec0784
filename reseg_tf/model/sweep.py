"""The ReNet sweep, written once in `keras.ops`: patch extraction and the
bidirectional sweep over one spatial axis, with the recurrence passed in.

A bidirectional sweep runs one RNN per line (row or column) of a
`[B, H, W, C]` map, in both directions. In the original code's `stacked`
mode the backward RNN reads the forward RNN's states; in the paper's
`independent` mode both read the input and advance together. Either way the
input projection `x @ w_x` of every step is one large matmul outside the
loop, and only `h @ w_h` and the gates stay inside.

What runs the loop is a *recurrence*, one argument:

    recurrence(core, gx, w_h, b, axis, reverse, compute_dtype) -> hs

with `gx [B, H, W, D*G*U]` the projections of D directions (no bias) in
the projections' dtype (`compute_dtype`, or `x`'s; a recurrence whose
loops run in float32 widens them with `widened`),
`w_h [D, U, G*U]`, `b [D, G*U]`, `reverse` a tuple of D bools (run that
direction from the last step to the first) and `hs [B, H, W, D*U]` the
states in input order. `time_major(loop)` makes one from any loop over a
time-major `[T, D, N, G*U]` tensor (`keras_scan` here; `tf.scan` and a Python
unroll in `lowering.py`), and `renet_fused.py` and `compiled_sweep.py`
implement it directly on the map. `lowering.py` chooses among them.
"""

from typing import Callable, Sequence

from keras import ops

from reseg_tf.model import cells

Recurrence = Callable  # (core, gx, w_h, b, axis, reverse, compute_dtype) -> hs
Loop = Callable  # (core, gx [T, D, N, G*U] with bias, w_h [D, U, G*U]) -> [T, D, N, U]


def bidirectional(x, axis: int, forward, backward, core: str, stacked: bool,
                  recurrence: Recurrence, compute_dtype=None):
  """Bidirectional sweep of `x` along `axis`, every line independently.

  Args:
    x: `[B, H, W, C]`.
    axis: 1 (down the columns) or 2 (along the rows).
    forward: `(w_x [C, G*U], w_h [U, G*U], b [G*U])` of the forward RNN.
    backward: the backward RNN's weights (`w_x` is `[U, G*U]` when
      `stacked`).
    core: `'gru'` or `'lstm'`.
    stacked: the original code's mode (the backward RNN reads the forward
      states); False is the paper's `independent` mode.
    recurrence: what runs the loops (see the module docstring).
    compute_dtype: dtype of the input-projection matmuls and of what they
      hand the recurrence (None: `x`'s).

  Returns:
    `[B, H, W, 2U]`: forward and backward states, both in input order.
  """
  (wx_f, wh_f, b_f), (wx_b, wh_b, b_b) = forward, backward

  def run(gx, w_h, b, reverse):
    return recurrence(core, gx, w_h, b, axis, reverse, compute_dtype)

  if stacked:
    h_fw = run(cells.project(x, wx_f, compute_dtype), wh_f[None], b_f[None], (False,))
    h_bw = run(cells.project(h_fw, wx_b, compute_dtype), wh_b[None], b_b[None], (True,))
    return ops.concatenate([h_fw, h_bw], axis=-1)
  # One projection [C, 2G] for both directions, and one loop advancing both.
  gx = cells.project(x, ops.concatenate([wx_f, wx_b], axis=1), compute_dtype)
  return run(gx, ops.stack([wh_f, wh_b]), ops.stack([b_f, b_b]), (False, True))


def time_major(loop: Loop) -> Recurrence:
  """A recurrence that runs `loop` on time-major tensors.

  The map is transposed so that time leads and the lines of the other
  spatial axis fold into the batch; reversed directions are flipped in time
  before the loop and back after it.
  """

  def recurrence(core, gx, w_h, b, axis, reverse: Sequence[bool], compute_dtype=None):
    del compute_dtype
    gx = widened(gx)
    perm = (2, 0, 1, 3) if axis == 2 else (1, 0, 2, 3)
    xt = ops.transpose(gx, perm)  # [T, B, L, D*G], L = lines.
    steps, batch, lines = _dims(xt, 3)
    num_dir, gates = len(reverse), w_h.shape[-1]
    xt = ops.reshape(xt, (steps, -1, num_dir, gates)) + b  # [T, N, D, G]
    xt = ops.stack([_flip_if(xt[:, :, d], r) for d, r in enumerate(reverse)],
                   axis=1)  # [T, D, N, G], in processing order.
    hs = loop(core, xt, w_h)  # [T, D, N, U]
    hs = ops.concatenate([_flip_if(hs[:, d], r) for d, r in enumerate(reverse)],
                         axis=-1)  # [T, N, D*U], in input order.
    hs = ops.reshape(hs, (steps, batch, lines, hs.shape[-1]))
    return ops.transpose(hs, perm if axis == 1 else (1, 2, 0, 3))

  return recurrence


def widened(gx):
  """`gx` in float32 if it came in a narrower float (the loops never run in
  bfloat16 or float16), else as it is."""
  if ops.dtype(gx) in ("bfloat16", "float16"):
    return ops.cast(gx, "float32")
  return gx


def keras_scan(core: str, gx, w_h):
  """The `Loop` of `ops.scan` with plain autodiff: any Keras backend."""
  step = cells.step_fn(core, w_h)

  def scan_fn(state, gates_x):
    state = step(state, gates_x)
    return state, state  # TensorFlow's scan wants outputs shaped like the carry.

  return cells.hidden(core, ops.scan(scan_fn, cells.initial_state(core, gx, w_h), gx)[1])


def extract_patches(x, patch_size: Sequence[int]):
  """`[B, H, W, C]` -> `[B, ceil(H/ph), ceil(W/pw), ph*pw*C]`.

  Zero-pads the bottom and right edges when the map is not divisible; each
  patch is flattened in the order (ph, pw, C).
  """
  ph, pw = patch_size
  if (ph, pw) == (1, 1):
    return x
  _, h, w = _dims(x, 3)  # Python ints where static, scalar tensors otherwise.
  c = x.shape[3]
  hp, wp = -(-h // ph), -(-w // pw)  # Ceiling division, static or not.
  x = ops.pad(x, ((0, 0), (0, hp * ph - h), (0, wp * pw - w), (0, 0)))
  x = ops.reshape(x, (-1, hp, ph, wp, pw, c))
  x = ops.transpose(x, (0, 1, 3, 2, 4, 5))  # [B, H', W', ph, pw, C]
  return ops.reshape(x, (-1, hp, wp, ph * pw * c))


def _dims(x, count: int):
  """The first `count` sizes of `x`: ints where static, scalar tensors where
  not (TensorFlow with an unknown batch, height or width)."""
  return tuple(ops.shape(x)[:count])


def _flip_if(x, flip: bool):
  return ops.flip(x, axis=0) if flip else x
