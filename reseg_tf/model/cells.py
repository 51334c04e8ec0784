"""The recurrent cells of ReSeg's sweeps, written once in `keras.ops`: the GRU
and LSTM steps, the input projection and the recurrent initialisers.

Every form of the sweep uses these functions (`model/sweep.py`,
`model/lowering.py`, the XLA loop of `renet_fused.py`), and so do
`renet.ReNetLayer` and the Keras layer `ReNet2D`, on any Keras backend. The
compiled sweep (`kernels/gru_sweep.cc`) writes the same GRU in C++ and is
tested against them.

The GRU is the original code's (docs/model.md, "The GRU"): the reset gate
scales the recurrent candidate term after the matmul, `r * (h @ w_hc)`, as
Keras' `GRUCell(reset_after=True)` (its default) and PyTorch's `nn.GRU` do:

    r = sigmoid(x w_xr + h w_hr + b_r)
    u = sigmoid(x w_xu + h w_hu + b_u)
    c = tanh(x w_xc + r * (h w_hc) + b_c)
    h' = (1 - u) * h + u * c

Keras' update gate is `1 - u` (its `z` is our `-u` before the sigmoid).
The LSTM has no peepholes; its gates are `(i, f, c, o)`. Gates are fused
along the last axis of `w_x [C, G*U]`, `w_h [U, G*U]` and `b [G*U]`.
"""

import keras
from keras import ops

GATES = {"gru": ("r", "u", "c"),  # reset, update, candidate.
         "lstm": ("i", "f", "c", "o")}  # input, forget, cell candidate, output.
# Original code: lasagne.init.Normal(0.1) for every weight (0.1 is the std).
NORMAL_STDDEV = 0.1


def num_gates(core: str) -> int:
  """3 for `'gru'`, 4 for `'lstm'`; a ValueError for anything else."""
  if core not in GATES:
    raise ValueError(f"core must be one of {sorted(GATES)}, got {core!r}.")
  return len(GATES[core])


def gru_gates(gates_x, gates_h):
  """`(r, u, c, h_c)` from the input and recurrent projections.

  Args:
    gates_x: `[..., 3U]` `x @ w_x + b`, gates in the order (r, u, c).
    gates_h: `[..., 3U]` `h @ w_h`.

  Returns:
    The reset and update gates, the candidate state and `h @ w_hc` (which
    the hand-written backward passes need), each `[..., U]`.
  """
  x_r, x_u, x_c = ops.split(gates_x, 3, axis=-1)
  h_r, h_u, h_c = ops.split(gates_h, 3, axis=-1)
  r = ops.sigmoid(x_r + h_r)
  u = ops.sigmoid(x_u + h_u)
  c = ops.tanh(x_c + r * h_c)
  return r, u, c, h_c


def blend(h, u, c):
  """The new GRU state `(1 - u) * h + u * c`."""
  return h + u * (c - h)


def gru_step(h, gates_x, w_h):
  """One GRU step: `h [..., N, U]`, `gates_x [..., N, 3U]` (bias included),
  `w_h [..., U, 3U]` (leading axes broadcast with `h`) -> the new state."""
  _, u, c, _ = gru_gates(gates_x, ops.matmul(h, w_h))
  return blend(h, u, c)


def lstm_step(state, gates_x, w_h):
  """One LSTM step: `state = (h, cell)`, each `[..., N, U]`; `gates_x
  [..., N, 4U]` (bias included); `w_h [..., U, 4U]` -> the new `(h, cell)`."""
  h, cell = state
  i, f, c, o = ops.split(gates_x + ops.matmul(h, w_h), 4, axis=-1)
  cell = ops.sigmoid(f) * cell + ops.sigmoid(i) * ops.tanh(c)
  return ops.sigmoid(o) * ops.tanh(cell), cell


def initial_state(core: str, gx, w_h):
  """The zero state of `core` for the time-major projections `gx [T, ..., N,
  G*U]` and `w_h [..., U, G*U]`: `h` for the GRU, `(h, cell)` for the LSTM
  (zeros like a slice of `gx`, so unknown sizes work)."""
  h0 = ops.zeros_like(gx[0, ..., :w_h.shape[-2]])
  return h0 if core == "gru" else (h0, h0)


def step_fn(core: str, w_h):
  """`step(state, gates_x) -> state` of `core` with recurrent weights `w_h`."""
  if core == "gru":
    return lambda h, gates_x: gru_step(h, gates_x, w_h)
  return lambda state, gates_x: lstm_step(state, gates_x, w_h)


def hidden(core: str, state):
  """The hidden state `h` of a state of `core` (or of states stacked over time)."""
  return state if core == "gru" else state[0]


def project(x, w, compute_dtype=None):
  """`x @ w` over the last axis, as one 2-D matmul (both cores use it).

  With `compute_dtype` (e.g. `'bfloat16'`) the matmul runs in that dtype,
  and so do both of its gradient matmuls, through the casts; the result is
  in that dtype too (the recurrences that compute in float32 cast it; the
  compiled sweep reads bfloat16 as it is). Static dimensions of `x` stay
  static.
  """
  x2 = ops.reshape(x, (-1, x.shape[-1]))
  dtype = ops.dtype(x)
  if compute_dtype is not None and keras.backend.standardize_dtype(compute_dtype) != dtype:
    y = ops.matmul(ops.cast(x2, compute_dtype), ops.cast(w, compute_dtype))
  else:
    y = ops.matmul(x2, w)
  leading = tuple(x.shape[:-1])
  if None in leading:
    leading = tuple(ops.shape(x)[:-1])
  return ops.reshape(y, leading + (w.shape[-1],))


def orthogonal_blocks(draws):
  """`[U, G*U]` recurrent weights: one Haar-orthogonal `[U, U]` block a gate.

  Args:
    draws: `[G, U, U]` independent N(0, 1) values (the caller's random
      source: TensorFlow's for `ReNetLayer`, Keras' seeded one for `ReNet2D`).

  An orthogonal initialiser applied to the whole `[U, G*U]` would make its
  rows orthonormal instead, which is not the per-gate init of the paper.
  """
  blocks = []
  for g in range(draws.shape[0]):
    q, r = ops.qr(draws[g])
    # The sign fix makes Q Haar-distributed (Mezzadri 2007).
    blocks.append(q * ops.sign(ops.diagonal(r))[None, :])
  return ops.concatenate(blocks, axis=1)
