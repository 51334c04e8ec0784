r"""The train step with TensorFlow's default CPU allocator and with its BFC one.

COMMAND:
  python benchmarks/cpu_allocator.py                     # 2 pairs, fp32, ~5 min
  python benchmarks/cpu_allocator.py --pairs=3 --dtype=bfloat16
  python benchmarks/cpu_allocator.py --quick             # smoke run: a tiny batch

`import reseg_tf` asks TensorFlow for its BFC allocator
(`reseg_tf/common/cpu_allocator.py`); TensorFlow's default hands every
tensor to malloc, which serves the large ones with fresh pages. TensorFlow
picks its allocator once per process, so each measurement is a child
process, alternating default and BFC (A B A B ...: load from other
processes and the machine's drift hit both alike). Each child runs the
CamVid train step (`benchmarks/train_step.build`, batch 5, 360x480, the
trainer's CPU default: no outer XLA function, the compiled sweep where it
loads) once to compile, then --steps timed steps, and reports the median
s/step, the minor page faults and system seconds per step (`getrusage`)
and its peak resident memory. Prints a table and default / BFC per pair;
writes JSON to --output.
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import time

import bench_output
import tensorflow as tf
import train_step
from absl import app, flags

from reseg_tf.common import cpu_allocator, machine

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_PAIRS = flags.DEFINE_integer("pairs", 2, "Child processes per allocator, alternating "
                              "(default 2).")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps per child (default 5).")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"],
                           "The step's compute dtype (default float32).")
_QUICK = flags.DEFINE_bool("quick", False, "Smoke run: a 24x32 batch, 1 pair, 1 step "
                           "(default false).")
_CHILD = flags.DEFINE_bool("child", False, "Internal: time the step in this process "
                           "and print one JSON line.")
flags.FLAGS.set_default(  # train_step's --output.
    "output", os.path.join(_ROOT, "benchmarks", "results", "cpu_allocator.json"))

ALLOCATORS = {"default": "false", "BFC": "true"}  # Name -> TF_CPU_ALLOCATOR_USE_BFC.


def _image_size():
  return (24, 32) if _QUICK.value else (train_step.HEIGHT, train_step.WIDTH)


def time_in_this_process() -> dict:
  """The child's measurement: median s/step, faults and system s per step."""
  tf.config.threading.set_intra_op_parallelism_threads(2)
  strategy, _, loop = train_step.build(_DTYPE.value, jit_compile=False)
  dataset = tf.data.Dataset.from_tensors(train_step.random_batch(*_image_size())).repeat()
  iterator = iter(strategy.experimental_distribute_dataset(dataset))
  loop(iterator, tf.constant(1))  # Compile.
  seconds, faults, system = [], [], []
  for _ in range(_STEPS.value):
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    float(loop(iterator, tf.constant(1)))
    seconds.append(time.perf_counter() - start)
    after = resource.getrusage(resource.RUSAGE_SELF)
    faults.append(after.ru_minflt - before.ru_minflt)
    system.append(after.ru_stime - before.ru_stime)
  return {"seconds_per_step": statistics.median(seconds),
          "minor_faults_per_step": statistics.median(faults),
          "system_seconds_per_step": statistics.median(system),
          "peak_resident_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_child(allocator: str) -> dict:
  env = dict(os.environ, **{cpu_allocator.ENV: ALLOCATORS[allocator]})
  args = [sys.executable, os.path.abspath(__file__), "--child", f"--steps={_STEPS.value}",
          f"--dtype={_DTYPE.value}", f"--quick={_QUICK.value}"]
  result = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
  if result.returncode:
    raise RuntimeError(f"the {allocator} child failed:\n{result.stderr[-3000:]}")
  return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _CHILD.value:
    print(json.dumps(time_in_this_process()), flush=True)
    return
  if _QUICK.value:
    flags.FLAGS.pairs, flags.FLAGS.steps = 1, 1
  print(f"CPU: {machine.cpu_model()}; load average {os.getloadavg()[0]:.2f}; "
        f"{_DTYPE.value}, {_PAIRS.value} pairs of children, {_STEPS.value} steps each",
        flush=True)
  runs = {name: [] for name in ALLOCATORS}
  print(f"{'allocator':9} {'s/step':>7} {'faults/step':>12} {'system s/step':>14} "
        f"{'peak MB':>8}")
  for _ in range(_PAIRS.value):
    for name in ALLOCATORS:
      run = run_child(name)
      runs[name].append(run)
      print(f"{name:9} {run['seconds_per_step']:7.3f} {run['minor_faults_per_step']:12.0f} "
            f"{run['system_seconds_per_step']:14.2f} {run['peak_resident_mb']:8.0f}",
            flush=True)
  ratios = [a["seconds_per_step"] / b["seconds_per_step"]
            for a, b in zip(runs["default"], runs["BFC"])]
  print(f"default / BFC s/step, pair by pair: {', '.join(f'{r:.2f}' for r in ratios)}; "
        f"median {statistics.median(ratios):.2f}")
  bench_output.write_json(flags.FLAGS.output, {
      "cpu": machine.cpu_model(), "dtype": _DTYPE.value, "image_size": _image_size(),
      "runs": runs, "default_over_bfc": ratios})


if __name__ == "__main__":
  app.run(main)
