r"""Where the time of a CamVid train step goes, by TensorFlow op type.

COMMAND:
  python benchmarks/step_profile.py                     # fp32 and bf16, ~2 min
  python benchmarks/step_profile.py --height=48 --width=64 --steps=1   # smoke run

Builds the train step of `train_step.py` (VGG configuration, 360x480, batch
5, random weights, the trainer's defaults on CPU: the compiled sweep where it
loads, no outer XLA function), runs it twice to warm up, then runs --steps
steps under TensorFlow's profiler and sums the time of every op executed,
by op type (`_MklNativeFusedConv2D` is VGG's convolutions, `_MklMatMul` the
ReNet input projections and the head, `ResegGruSweep` / `ResegGruSweepGrad`
the recurrences, `Cast` the conversions to and from bfloat16, ...). Op
times are summed over threads, so with two threads they add up to more than
the wall time; read them as shares. Beside each, its busy time: the wall
time while at least one op of the type ran, which does not count twice the
ops that run at once (a projection's input and weight gradients), each
slowed by the other. Writes JSON to --output.
"""

import collections
import glob
import os
import tempfile
import time

import bench_output
import tensorflow as tf
import train_step
from absl import app, flags
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from reseg_tf.common import machine

_DTYPES = flags.DEFINE_list("dtypes", ["float32", "bfloat16"],
                            "Compute dtypes to profile (default float32,bfloat16).")
_STEPS = flags.DEFINE_integer("steps", 2, "Profiled steps (default 2).")
_THREADS = flags.DEFINE_integer("threads", 2, "TensorFlow intra-op threads (default 2).")
_HEIGHT = flags.DEFINE_integer("height", 360, "Image height (default 360).")
_WIDTH = flags.DEFINE_integer("width", 480, "Image width (default 480).")
_TOP = flags.DEFINE_integer("top", 12, "Op types printed per dtype (default 12).")
# --output is train_step.py's flag (so are --loops, --steps_per_loop and
# --records_dir, unused here); its default here:
flags.FLAGS.set_default("output", os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "results",
    "step_profile.json"))


def op_seconds(logdir: str):
  """`(op seconds, busy seconds)` per op type in the profile written to
  `logdir`, from the events of TensorFlow's executor threads, named
  `<op name>:<op type>`. Op seconds add every op's duration; busy seconds
  count the wall time during which at least one op of the type ran, since
  the executor runs independent ops at once (a projection's input and
  weight gradients, each on both cores), and each then takes longer than
  alone."""
  seconds = collections.Counter()
  intervals = collections.defaultdict(list)
  for path in glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True):
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
      space.ParseFromString(f.read())
    for plane in space.planes:
      for line in plane.lines:
        if not line.name.startswith("tf_Compute"):
          continue
        for event in line.events:
          name = plane.event_metadata[event.metadata_id].name
          if ":" in name and "::" not in name:  # Ops, not the executor's own regions.
            op_type = name.rsplit(":", 1)[1]
            start = line.timestamp_ns * 1e-9 + event.offset_ps * 1e-12
            seconds[op_type] += event.duration_ps * 1e-12
            intervals[op_type].append((start, start + event.duration_ps * 1e-12))
  return seconds, {op: bench_output.busy_seconds(spans) for op, spans in intervals.items()}


def profile(dtype: str) -> dict:
  data = train_step.random_batch(_HEIGHT.value, _WIDTH.value)
  strategy, _, loop = train_step.build(dtype, jit_compile=False)
  iterator = iter(strategy.experimental_distribute_dataset(
      tf.data.Dataset.from_tensors(data).repeat()))
  for _ in range(2):
    float(loop(iterator, tf.constant(1)))
  with tempfile.TemporaryDirectory() as logdir:
    tf.profiler.experimental.start(
        logdir, options=tf.profiler.experimental.ProfilerOptions(host_tracer_level=3))
    start = time.perf_counter()
    float(loop(iterator, tf.constant(_STEPS.value)))
    wall = (time.perf_counter() - start) / _STEPS.value
    tf.profiler.experimental.stop()
    seconds, busy = op_seconds(logdir)
  per_step = {op: s / _STEPS.value for op, s in seconds.most_common()}
  return {"step_seconds": wall, "op_seconds_per_step": per_step,
          "op_seconds_total": sum(per_step.values()),
          "busy_seconds_per_step": {op: busy[op] / _STEPS.value for op in per_step}}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  tf.config.threading.set_intra_op_parallelism_threads(_THREADS.value)
  print(f"CPU: {machine.cpu_model()}; {_THREADS.value} threads; load average "
        f"{os.getloadavg()[0]:.2f}", flush=True)
  results = {"cpu": machine.cpu_model(), "threads": _THREADS.value,
             "height": _HEIGHT.value, "width": _WIDTH.value, "steps": _STEPS.value}
  for dtype in _DTYPES.value:
    result = results[dtype] = profile(dtype)
    total = result["op_seconds_total"]
    print(f"\n{dtype}: {result['step_seconds']:.3f} s/step (profiled), op time "
          f"{total:.3f} s/step summed over threads; busy: the wall time while "
          "at least one op of the type ran")
    for op, s in list(result["op_seconds_per_step"].items())[:_TOP.value]:
      busy = result["busy_seconds_per_step"][op]
      print(f"  {s:7.3f} s  {100 * s / total:4.1f}%  busy {busy:6.3f} s  {op}")
  bench_output.write_json(flags.FLAGS.output, results)


if __name__ == "__main__":
  app.run(main)
