"""What the benchmarks share: timing a call, sizes on disk, writing results,
the CPU, our model as a gin file configures it (next to the scripts, so
`import bench_output` finds it)."""

import json
import os
import statistics
import time

import tensorflow as tf

import gin
from reseg_tf import configurables
from reseg_tf.common import machine

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_json(path: str, results: dict) -> None:
  """Writes `results` as JSON to `path` (folders created) and says where."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    json.dump(results, f, indent=1, default=list)
  print(f"Wrote {path}")


def one_value(tensor: tf.Tensor):
  """One element of `tensor`, as a number: what a timed call returns so that
  the time covers the op, not a copy of its whole output into numpy (for a
  `[54000, 300]` product, 65 MB: more than the product itself takes)."""
  return tf.reshape(tensor, [-1])[0].numpy()


def busy_seconds(intervals) -> float:
  """Seconds during which at least one of `intervals` (`(start, end)` pairs,
  in seconds) runs: their union's length."""
  total, reach = 0.0, float("-inf")
  for start, end in sorted(intervals):
    if end > reach:
      total += end - max(start, reach)
      reach = end
  return total


def median_time(fn, warmup: int, repeats: int):
  """`(median seconds, all times)` of `repeats` calls of `fn` after `warmup`."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times), times


def time_round_robin(runners, loops, steps_per_loop):
  """Median seconds per step of each `run(steps)` of `runners` (name -> run),
  timed in turn, loop by loop (A B C A B C ...: load from other processes
  hits all alike)."""
  times = {name: [] for name in runners}
  for _ in range(loops):
    for name, run in runners.items():
      start = time.perf_counter()
      run(steps_per_loop)
      times[name].append((time.perf_counter() - start) / steps_per_loop)
  return {name: statistics.median(t) for name, t in times.items()}


def folder_bytes(path: str) -> int:
  """Bytes of every file below `path`."""
  return sum(os.path.getsize(os.path.join(d, f))
             for d, _, files in os.walk(path) for f in files)


def cpu_info():
  """The CPU model and its AMX / AVX512-BF16 flags (`reseg_tf.common.machine`)."""
  cpu_flags = machine.cpu_flags()
  return {"cpu": machine.cpu_model(), "amx": sorted(f for f in cpu_flags if f.startswith("amx")),
          "avx512_bf16": "avx512_bf16" in cpu_flags}


TORCH_PIN = "torch==2.13.0"


def import_torch():
  """torch, or None after saying how to install it (the PyTorch peer is optional)."""
  try:
    import torch
  except ImportError:
    print(f"torch is not installed: `pip install {TORCH_PIN}` (or "
          '`pip install -e ".[torch]"`) to run the PyTorch peer.')
    return None
  return torch


def set_threads(torch, threads: int, torch_threads: int) -> dict:
  """Gives TensorFlow `threads` intra-op threads and torch `torch_threads`,
  prints the machine (CPU, versions, threads, load) and returns it as a dict."""
  tf.config.threading.set_intra_op_parallelism_threads(threads)
  torch.set_num_threads(torch_threads)
  info = cpu_info()
  print(f"CPU: {info['cpu']}; AMX: {', '.join(info['amx']) or 'no'}; "
        f"AVX512-BF16: {'yes' if info['avx512_bf16'] else 'no'}; torch "
        f"{torch.__version__} ({torch_threads} threads), TensorFlow {tf.__version__} "
        f"({threads} threads); load average {os.getloadavg()[0]:.2f}", flush=True)
  return {**info, "torch": torch.__version__, "tensorflow": tf.__version__,
          "threads": threads, "torch_threads": torch_threads}


def ours_from_gin(gin_file, bindings=(), seed=0):
  """Our `ReSeg` as `gin_file` (relative to the repository) configures it,
  random VGG, seeded weights."""
  gin.clear_config()
  gin.parse_config_files_and_bindings(
      [os.path.join(_ROOT, gin_file)],
      ["ReSeg.vgg_weights = 'random'", *bindings])
  tf.random.set_seed(seed)
  try:
    return configurables.ReSeg()
  finally:
    gin.clear_config()
