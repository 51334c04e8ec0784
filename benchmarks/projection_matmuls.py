r"""The ReNet input projections' matmuls, alone, against the FLOP floor.

  python benchmarks/projection_matmuls.py                 # CamVid shapes, ~1 min
  python benchmarks/projection_matmuls.py --height=24 --width=32 --loops=1   # smoke run

Each sweep of a ReNet layer projects its input `[B*H*W, K]` onto the three
GRU gates of U units with one large matmul outside the recurrence
(`model/sweep.py`); in training its gradient adds the input's (`dX`, except
for the first layer, whose input the frozen VGG does not need) and the
weights' (`dW`). In the VGG configuration (`gin/model/camvid.gin`: 90x120
maps from 360x480 frames, batch 5, U = 100, two layers, the `stacked` mode)
K is 256 for the first sweep's forward RNN, 200 for the other forward RNNs
and U = 100 for every backward RNN, which reads its forward RNN's states.
For each K, in --dtype, the forward product, `dX` and `dW` are timed as
oneDNN runs them (`tf.matmul` in a `tf.function`), in the same round-robin
rounds as the FLOP floor's probes (`flop_floor.probe_runners`), and printed
as GFLOP/s and as a fraction of the floor. The fraction says how far a
hand-written GEMM could take them. Writes JSON to --output.
"""

import bench_output
import flop_floor
import tensorflow as tf
from absl import app, flags

_HEIGHT = flags.DEFINE_integer("height", 90, "Map height, after VGG's stride 4 (default 90).")
_WIDTH = flags.DEFINE_integer("width", 120, "Map width (default 120).")
_BATCH = flags.DEFINE_integer("batch", 5, "Batch size (default 5).")
_UNITS = flags.DEFINE_integer("units", 100, "GRU units per direction, U (default 100).")
_INPUTS = flags.DEFINE_list("inputs", ["100", "200", "256"],
                            "Input widths K to time (default 100,200,256).")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"],
                           "Compute dtype (default float32).")
_LOOPS = flags.DEFINE_integer("loops", 5, "Round-robin rounds (default 5).")
_STEPS = flags.DEFINE_integer("steps_per_loop", 3, "Calls per runner per round (default 3).")
_OUTPUT = flags.DEFINE_string("output", "runs/benchmarks/projection_matmuls.json",
                              "Where to write the JSON results.")

# The three products of a projection y = x @ w and their operands:
# forward x [M, K] @ w [K, N]; dX = dy [M, N] @ w^T; dW = x^T @ dy.
_PRODUCTS = {
    "forward": lambda x, w, dy: tf.matmul(x, w),
    "dX": lambda x, w, dy: tf.matmul(dy, w, transpose_b=True),
    "dW": lambda x, w, dy: tf.matmul(x, dy, transpose_a=True),
}


def runners(rows, gates, inputs, dtype):
  """name -> `run(steps)` for every product and K, and its FLOPs a call."""
  result, flops = {}, {}
  for k in inputs:
    x, w, dy = (tf.cast(tf.random.normal(shape), dtype)
                for shape in ((rows, k), (k, gates), (rows, gates)))
    for product, body in _PRODUCTS.items():
      fn = tf.function(body)
      bench_output.one_value(fn(x, w, dy))  # Traced and warmed outside the timed rounds.
      name = f"K={k} {product}"
      result[name] = (lambda steps, fn=fn, x=x, w=w, dy=dy:
                      [bench_output.one_value(fn(x, w, dy)) for _ in range(steps)][-1])
      flops[name] = 2 * rows * k * gates
  return result, flops


def main(argv):
  del argv
  rows = _BATCH.value * _HEIGHT.value * _WIDTH.value
  gates = 3 * _UNITS.value
  inputs = [int(k) for k in _INPUTS.value]
  timed, flops = runners(rows, gates, inputs, _DTYPE.value)
  seconds = bench_output.time_round_robin({**timed, **flop_floor.probe_runners()},
                                          _LOOPS.value, _STEPS.value)
  rates, seconds = flop_floor.rates_from_seconds(seconds)
  cpu = bench_output.cpu_info()
  print(f"CPU: {cpu['cpu']}; floor: {flop_floor.format_rates(rates)}")
  print(f"[{rows}, K] x [K, {gates}] in {_DTYPE.value}:")
  rows_out = []
  for name, s in seconds.items():
    gflops = flops[name] / s / 1e9
    fraction = flop_floor.floor_fraction(flops[name], s, rates, _DTYPE.value)
    print(f"  {name:<12} {1e3 * s:8.2f} ms  {gflops:6.0f} GFLOP/s  "
          f"{100 * fraction:4.0f}% of the floor")
    rows_out.append({"name": name, "seconds": s, "gflops": gflops, "floor_fraction": fraction})
  bench_output.write_json(_OUTPUT.value, {**cpu, "dtype": _DTYPE.value, "rows": rows_out,
                                          "floor": rates})


if __name__ == "__main__":
  app.run(main)
