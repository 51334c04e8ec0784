"""Whether to compile the trainable part with XLA: measured, once per machine.

On GPUs the outer XLA function always pays. On CPUs it depends on the CPU
and on the sweep: without it the ReNet sweeps run in their compiled form
(a C++ op, which XLA cannot hold) and the input projections and the head in
oneDNN; with it they run as fused XLA loops and everything else in XLA too.
Which is faster has differed from one CPU to the next (docs/performance.md). So, on a CPU and for a run
long enough to repay it, the trainer times both variants of its own step
(forward, loss and gradients of this model at this batch shape, no
optimizer update, so the run's weights do not move) and keeps the faster.
The answer is cached per CPU model, TensorFlow version, model and batch
shape in `$RESEG_TF_CACHE_DIR/jit_choice.json` (default
`~/.cache/reseg_tf`), so the next run on the machine starts at once.
`train.jit_compile = True/False` skips all of this.
"""

import hashlib
import json
import os
import statistics
import time
from typing import Callable, Optional

import tensorflow as tf
from absl import logging

from reseg_tf.common import machine

CACHE_ENV = machine.CACHE_ENV
CACHE_FILENAME = "jit_choice.json"
# Calibrating compiles the step twice and runs it a few times (about a minute
# for CamVid at half resolution): shorter runs take the rule below instead.
MIN_STEPS_TO_CALIBRATE = 500
TIMED_REPEATS = 3


def cache_path() -> str:
  return os.path.join(machine.cache_dir(), CACHE_FILENAME)


def cache_key(variables, inputs: tf.Tensor, labels: tf.Tensor) -> str:
  """Names what the timing depends on: CPU, TensorFlow, model, batch shape."""
  model = [(v.name, v.shape.as_list(), v.dtype.name) for v in variables]
  batch = [(t.shape.as_list(), t.dtype.name) for t in (inputs, labels)]
  digest = hashlib.sha1(json.dumps([model, batch]).encode()).hexdigest()[:16]
  return f"{machine.cpu_model()} | TensorFlow {tf.__version__} | model+batch {digest}"


def _read(path: str) -> dict:
  try:
    with open(path) as f:
      cache = json.load(f)
    return cache if isinstance(cache, dict) else {}
  except FileNotFoundError:
    return {}
  except (OSError, ValueError) as e:  # A damaged cache is re-measured, not fatal.
    logging.warning("ignoring %s (%s): measuring again", path, e)
    return {}


def _write(path: str, cache: dict) -> None:
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as f:
      json.dump(cache, f, indent=1, sort_keys=True)
    os.replace(temporary, path)  # Atomic: concurrent runs never read half a file.
  except OSError as e:
    logging.warning("could not cache the XLA choice in %s: %s", path, e)


def choose(measure: Callable[[bool], float], key: str,
           path: Optional[str] = None) -> dict:
  """The cached choice for `key`, else `measure(jit)` (seconds per step) for
  both variants, cached.

  Returns `{"jit_compile": bool, "seconds_per_step": {"xla": s, "no_xla": s},
  "cached": bool}`.
  """
  path = path or cache_path()
  entry = _read(path).get(key)
  if isinstance(entry, dict) and isinstance(entry.get("jit_compile"), bool):
    return {**entry, "cached": True}
  seconds = {"no_xla": measure(False), "xla": measure(True)}
  entry = {"jit_compile": seconds["xla"] < seconds["no_xla"],
           "seconds_per_step": seconds,
           "measured": time.strftime("%Y-%m-%d %H:%M:%S")}
  cache = _read(path)  # Re-read: another run may have written meanwhile.
  cache[key] = entry
  _write(path, cache)
  return {**entry, "cached": False}


def step_timer(loss_and_gradients: Callable, inputs: tf.Tensor, labels: tf.Tensor,
               repeats: int = TIMED_REPEATS) -> Callable[[bool], float]:
  """`measure(jit) -> median seconds` of `loss_and_gradients(inputs, labels)`
  compiled with or without XLA (the first, compiling call is not timed)."""

  def measure(jit_compile: bool) -> float:
    step = tf.function(loss_and_gradients, jit_compile=jit_compile)
    tf.nest.map_structure(lambda t: t.numpy(), step(inputs, labels))
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      tf.nest.map_structure(lambda t: t.numpy(), step(inputs, labels))
      times.append(time.perf_counter() - start)
    return statistics.median(times)

  return measure


def decide(loss_and_gradients: Callable, variables, example_batch: Callable[[], tuple],
           total_steps: int, xla_excluded: Optional[str] = None) -> tuple:
  """`(jit_compile, why)` for a run of `total_steps` on this machine.

  `example_batch()` returns one replica's `(inputs, labels)`; it is called
  only when a measurement is needed. `xla_excluded`, when given, is why the
  step cannot be compiled at all (nothing is measured then).
  """
  if xla_excluded:
    return False, xla_excluded
  if tf.config.list_logical_devices("GPU"):
    return True, "a GPU is visible"
  if total_steps < MIN_STEPS_TO_CALIBRATE:
    return False, (f"{total_steps} steps are too few to repay a calibration "
                   f"(< {MIN_STEPS_TO_CALIBRATE}): the sweeps' own loops alone")
  inputs, labels = example_batch()
  key = cache_key(variables, inputs, labels)
  logging.info("Choosing the outer XLA function: the train step is timed with and "
               "without it once per machine and model (cache: %s)", cache_path())
  result = choose(step_timer(loss_and_gradients, inputs, labels), key)
  seconds = result["seconds_per_step"]
  source = "cached" if result["cached"] else "measured"
  return result["jit_compile"], (
      f"{source} on {machine.cpu_model()}: {seconds['xla']:.3f} s/step with the outer XLA "
      f"function, {seconds['no_xla']:.3f} s without")
