r"""The ReNet recurrence per time step: the compiled sweep against its GEMM and I/O floors.

COMMAND:
  python benchmarks/sweep_kernel.py                # ~1 min
  python benchmarks/sweep_kernel.py --repeats=3 --output=/tmp/k.json
  python benchmarks/sweep_kernel.py --quick     # smoke run: a tiny shape, seconds

At the CamVid shape (batch 5, a 90x120 map, U = 100; one direction, as in
the original code's stacked mode), for each sweep axis (along the rows: 120
steps of 450 lines; down the columns: 90 steps of 600 lines) and dtype, it
times the recurrence alone (the input projections are not part of it):

* the compiled sweep's forward op and its gradient op (in bf16 reading
  bfloat16 `gx` and writing bfloat16 `dgx`, as in training), with the ops' own
  phase timers on (`timing=True`): microseconds per time step, per thread,
  in the GEMMs (`h @ w_h` forward, `dgates @ w_h^T` backward), in the
  gate passes (the gate arithmetic and the state I/O: reading `gx`, `saved`,
  `hs` and `dhs`, writing `hs`, `saved` and `dgx`) and in `dw_h`'s outer
  products (a GEMM too: `h_prev^T @ dgates`), and in all (wall time);
* the floor: the three GEMMs' time per step, so `total / floor` says how
  far from its GEMMs the recurrence runs;
* the state I/O floor: the bytes a time step must move between memory and
  the op (the map-sized tensors: `gx`, `hs` and `saved` forward; `saved`,
  `hs`, `dhs` and `dgx` backward; `state_io_bytes`) at the memory bandwidth
  measured in the same run by a TensorFlow op that reads and writes a 256 MB
  tensor (`x * 2`, on --threads threads: the same kind of stores as the op's).
  At the CamVid shape these tensors are 20-90 MB each, far beyond the caches,
  so no kernel can run a step in less than this; `total / (GEMM + I/O)` says
  how far the recurrence runs from the two floors taken one after the other;
* the forward op as inference runs it (`keep_gates=False`: no gates kept for
  a backward pass), beside the training forward;
* the fused XLA sweep (`renet_fused`) forward + backward in the same run, as
  the baseline it replaces.

Wall times are medians of --repeats calls; the phase times are those of the
median call. Writes JSON to --output.
"""

import os
import statistics
import time

import bench_output
import numpy as np
import tensorflow as tf
from absl import app, flags

from reseg_tf.common import machine
from reseg_tf.model import compiled_sweep, renet_fused

_REPEATS = flags.DEFINE_integer("repeats", 7, "Timed calls per case (default 7).")
_THREADS = flags.DEFINE_integer("threads", 2, "TensorFlow intra-op threads (default 2).")
_OUTPUT = flags.DEFINE_string("output", "benchmarks/results/sweep_kernel.json",
                              "Where to write the JSON results.")
_DTYPES = flags.DEFINE_list("dtypes", ["float32", "bfloat16"],
                            "Recurrent GEMM dtypes (default float32,bfloat16).")
_FUSED = flags.DEFINE_bool("fused", True, "Also time the fused XLA sweep (default true).")
_QUICK = flags.DEFINE_bool("quick", False, "Smoke run: batch 1, a 6x8 map, U = 8, "
                           "2 repeats (default false).")

CAMVID = dict(batch=5, height=90, width=120, units=100)
QUICK = dict(batch=1, height=6, width=8, units=8)


def _timed(fn, repeats):
  """(median seconds, result of the median call) of `fn()` after one warm-up.

  `fn` must return something small (the op's phase times, or nothing): a
  call's large outputs are freed before the next call, as in training, where
  the allocator hands the same pages back. Keeping every call's outputs
  alive made each call fault in ~100 MB of fresh pages, which the gate
  passes paid for (the first case measured: 3x its cost in a train step).
  """
  fn()
  runs = []
  for _ in range(repeats):
    start = time.perf_counter()
    result = fn()
    runs.append((time.perf_counter() - start, result))
  runs.sort(key=lambda run: run[0])
  return runs[len(runs) // 2]


def _phase_seconds(outputs):
  """Waits for the op (eager: it has run) and keeps only its phase times."""
  return outputs[-1].numpy()


def _wait(result):
  """Waits for every output of `result` without copying it into numpy."""
  for tensor in tf.nest.flatten(result):
    bench_output.one_value(tensor)


def state_io_bytes(lines: int, units: int, dtype: str) -> int:
  """Bytes one time step of one direction moves through memory, forward and
  backward: per line, `gx` read and `dgx` written (3U values each, 2 bytes in
  bf16, else 4), and in float32 the state `hs` written and read back (as
  h_prev), the output gradient `dhs` read (U values each) and `saved` (the
  four gate rows, 4U) written and read back."""
  gate_bytes = 2 if dtype == "bfloat16" else 4
  return lines * units * (2 * 3 * gate_bytes + 3 * 4 + 2 * 4 * 4)


def memory_bandwidth(repeats: int, megabytes: int = 256) -> float:
  """Bytes per second read plus written by `x * 2` over a `megabytes` float32
  tensor (median of `repeats` calls after a warm-up), on TensorFlow's
  intra-op threads."""
  x = tf.ones([megabytes << 18])
  double = tf.function(lambda x: x * 2.0, autograph=False)
  seconds, _ = _timed(lambda: bench_output.one_value(double(x)), repeats)
  return 2 * x.shape[0] * 4 / seconds


def measure(ops, axis: int, dtype: str, repeats: int, threads: int, shape: dict,
            bandwidth: float) -> dict:
  batch, height, width, units = (shape[k] for k in ("batch", "height", "width", "units"))
  rng = np.random.default_rng(0)
  gx = tf.constant(rng.normal(size=[batch, height, width, 3 * units]).astype(np.float32))
  w_h = tf.constant(rng.normal(0, 0.1, [1, units, 3 * units]).astype(np.float32))
  b = tf.zeros([1, 3 * units])
  dhs = tf.constant(rng.normal(size=[batch, height, width, units]).astype(np.float32))
  attrs = dict(axis=axis, reverse=[False], bf16=dtype == "bfloat16", timing=True)
  steps = width if axis == 2 else height
  # In bf16 the projections hand the op bfloat16 gx and take bfloat16 dgx, as in training.
  gx_in = tf.cast(gx, tf.bfloat16) if dtype == "bfloat16" else gx
  hs, saved, _ = ops.reseg_gru_sweep(gx_in, w_h, b, **attrs)

  forward_s, forward = _timed(
      lambda: _phase_seconds(ops.reseg_gru_sweep(gx_in, w_h, b, **attrs)), repeats)
  inference_s, _ = _timed(
      lambda: _phase_seconds(ops.reseg_gru_sweep(gx_in, w_h, b, keep_gates=False, **attrs)),
      repeats)
  backward_s, backward = _timed(
      lambda: _phase_seconds(
          ops.reseg_gru_sweep_grad(dhs, hs, saved, w_h, T=gx_in.dtype, **attrs)),
      repeats)

  def per_step(seconds, per_thread=False):
    return 1e6 * seconds / steps / (threads if per_thread else 1)

  fwd_gemm, fwd_gates, _ = (per_step(float(s), True) for s in forward)
  bwd_gemm, bwd_gates, bwd_dw = (per_step(float(s), True) for s in backward)
  row = dict(axis=axis, dtype=dtype, steps=steps, lines=batch * (height if axis == 2 else width),
             forward_us=per_step(forward_s), forward_gemm_us=fwd_gemm,
             forward_gates_io_us=fwd_gates, inference_forward_us=per_step(inference_s),
             backward_us=per_step(backward_s), backward_gemm_us=bwd_gemm,
             backward_gates_io_us=bwd_gates, dw_h_us=bwd_dw)
  row["floor_us"] = fwd_gemm + bwd_gemm + bwd_dw
  row["total_us"] = row["forward_us"] + row["backward_us"]
  row["total_over_floor"] = row["total_us"] / row["floor_us"]
  row["state_io_bytes"] = state_io_bytes(row["lines"], units, dtype)
  row["io_floor_us"] = 1e6 * row["state_io_bytes"] / bandwidth
  row["total_over_gemm_and_io"] = row["total_us"] / (row["floor_us"] + row["io_floor_us"])
  if _FUSED.value:
    recurrence = renet_fused._recurrence_fn(axis, (False,))  # noqa: SLF001

    @tf.function
    def fused(gx):
      with tf.GradientTape() as tape:
        tape.watch([gx, w_h])  # Constants: unwatched, w_h would get no gradient.
        out = recurrence(gx, w_h, b[:, None])
      return tape.gradient(out, [gx, w_h], output_gradients=dhs)

    fused_s, _ = _timed(lambda: _wait(fused(gx)), repeats)
    row["fused_xla_us"] = per_step(fused_s)
    row["fused_over_compiled"] = row["fused_xla_us"] / row["total_us"]
  return row


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  tf.config.threading.set_intra_op_parallelism_threads(_THREADS.value)
  ops = compiled_sweep.load()
  if ops is None:
    raise SystemExit("the compiled sweep is not available here (see the log above)")
  shape = QUICK if _QUICK.value else CAMVID
  repeats = 2 if _QUICK.value else _REPEATS.value
  print(f"CPU: {machine.cpu_model()}; {_THREADS.value} threads; load average "
        f"{os.getloadavg()[0]:.2f}", flush=True)
  bandwidth = memory_bandwidth(repeats, megabytes=16 if _QUICK.value else 256)
  print(f"memory bandwidth (x * 2, read + written): {bandwidth / 1e9:.1f} GB/s",
        flush=True)
  header = (f"{'axis':>4} {'dtype':>8} | {'fwd':>6} {'gemm':>6} {'gates':>6} | {'bwd':>6} "
            f"{'gemm':>6} {'gates':>6} | {'dw_h':>5} | {'total':>6} {'floor':>6} {'ratio':>5}"
            f" | {'I/O':>5} {'ratio':>5} | {'infer':>5} | {'XLA fused':>9}")
  print("microseconds per time step: fwd, bwd and total wall; gemm, gates (with the state "
        "I/O) and dw_h per thread; floor = the three GEMMs; I/O = the state I/O floor, "
        "its ratio = total / (floor + I/O); infer = the forward op keeping no gates")
  print(header)
  rows = []
  for axis in (2, 1):
    for dtype in _DTYPES.value:
      row = measure(ops, axis, dtype, repeats, _THREADS.value, shape, bandwidth)
      rows.append(row)
      print(f"{axis:>4} {dtype:>8} | {row['forward_us']:6.0f} {row['forward_gemm_us']:6.0f} "
            f"{row['forward_gates_io_us']:6.0f} | {row['backward_us']:6.0f} "
            f"{row['backward_gemm_us']:6.0f} {row['backward_gates_io_us']:6.0f} | "
            f"{row['dw_h_us']:5.0f} | {row['total_us']:6.0f} {row['floor_us']:6.0f} "
            f"{row['total_over_floor']:5.2f} | {row['io_floor_us']:5.0f} "
            f"{row['total_over_gemm_and_io']:5.2f} | {row['inference_forward_us']:5.0f} | "
            f"{row.get('fused_xla_us', float('nan')):9.0f}",
            flush=True)
  print(f"total/floor: median {statistics.median(r['total_over_floor'] for r in rows):.2f}; "
        "fused XLA / compiled: " + ", ".join(
            f"{r['fused_over_compiled']:.2f}" for r in rows if "fused_over_compiled" in r))
  bench_output.write_json(_OUTPUT.value, dict(
      cpu=machine.cpu_model(), cpu_flags=sorted(machine.cpu_flags() & {
          "avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}),
      threads=_THREADS.value, load_average=os.getloadavg(), repeats=repeats, shape=shape,
      memory_bandwidth_bytes_per_s=bandwidth, rows=rows))


if __name__ == "__main__":
  app.run(main)
