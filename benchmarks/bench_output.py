"""What the benchmarks share: timing a call, sizes on disk, writing results
(next to the scripts, so `import bench_output` finds it)."""

import json
import os
import statistics
import time


def write_json(path: str, results: dict) -> None:
  """Writes `results` as JSON to `path` (folders created) and says where."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    json.dump(results, f, indent=1, default=list)
  print(f"Wrote {path}")


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


def folder_bytes(path: str) -> int:
  """Bytes of every file below `path`."""
  return sum(os.path.getsize(os.path.join(d, f))
             for d, _, files in os.walk(path) for f in files)
