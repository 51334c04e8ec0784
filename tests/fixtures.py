"""Helpers the tests share: synthetic records, tiny trained runs, subprocesses.

A tiny run is the quickstart configuration trained for a few steps on small
synthetic records (seconds on 2 CPU cores); the evaluate, predict, export and
publish tests read its checkpoints.
"""

import atexit
import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent import futures
from typing import Optional

import tensorflow as tf
from tensorflow.python.framework import config as tf_config  # No public switch-off.

import gin
from data_prep import synthetic, writer
from reseg_tf import configurables

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(ROOT, "gin", "quickstart.gin")
SHARED_DATA = os.path.join(ROOT, "..", "shared", "data")


class EmptyGinConfig:
  """Test-case mixin: every test starts and ends with gin's configuration
  empty, so bindings never leak between tests (list it before TestCase)."""

  def setUp(self):
    super().setUp()
    gin.clear_config()

  def tearDown(self):
    gin.clear_config()
    super().tearDown()


def build_synthetic(records_dir, sizes=(96, 24, 0), image_size=(32, 40)):
  """Writes the synthetic dataset (seed 0) with `sizes` train/val/test images."""
  writer.write_dataset(synthetic.plan(0, sizes, image_size), records_dir,
                       num_shards=4, log=lambda _: None)
  return records_dir


def parse_quickstart(records_dir, *bindings):
  """Clears gin and parses gin/quickstart.gin on `records_dir`, then `bindings`."""
  gin.clear_config()
  gin.parse_config_files_and_bindings(
      [QUICKSTART], [f"train.records_dir = '{records_dir}'", *bindings])


@contextlib.contextmanager
def op_determinism(enabled: Optional[bool] = None):
  """Switches op determinism on or off (None: leaves it) for the block, and
  puts it back as it was on entry whatever the block switched: deterministic
  runs switch it on process-wide, for every test that follows."""
  was_enabled = tf_config.is_op_determinism_enabled()
  try:
    if enabled is not None:
      _set_op_determinism(enabled)
    yield
  finally:
    _set_op_determinism(was_enabled)


def _set_op_determinism(enabled: bool):
  if enabled:
    tf.config.experimental.enable_op_determinism()
  else:
    tf_config.disable_op_determinism()


def checkpoint_values(path):
  """`{variable name: value}` of a checkpoint, without its bookkeeping."""
  reader = tf.train.load_checkpoint(path)
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()
          # save_counter counts saves, which a resumed run makes more of.
          if not name.startswith(("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter"))}


_TINY_RUN_BINDINGS = ("Schedule.max_steps = 8", "Schedule.validate_every_steps = 4",
                      "Schedule.steps_per_loop = 4", "Checkpointing.log_every_seconds = 1000")
# This process's first tiny run, copied as it ended: (copy, where it trained).
_tiny_run_cache: list = []


def train_tiny_run(root: str, fresh: bool = False) -> tuple[str, str, dict]:
  """A quickstart run of 8 steps on small synthetic records (~10 s).

  32/8/6 train/val/test images of 32x40; validation at steps 4 and 8, so
  `best/` and `checkpoints/ckpt-8` exist and train_result.json has
  `last_validation` for ckpt-8. Gin holds the run's configuration after.

  The run is the same every time, so a process trains it once: later calls
  copy the records and the run into `root`, with the paths in the run's text
  files moved there, as if trained there. `fresh=True` trains anyway (for
  tests of training itself).

  Returns:
    `(records_dir, model_dir, train_result)`.
  """
  records, model_dir = os.path.join(root, "synthetic"), os.path.join(root, "run")
  parse_quickstart(records, *_TINY_RUN_BINDINGS)
  if _tiny_run_cache and not fresh:
    cache, trained_in = _tiny_run_cache[0]
    shutil.copytree(cache, root, dirs_exist_ok=True)
    for name in ("operative_config.gin", "model_info.json"):
      path = os.path.join(model_dir, name)
      with open(path) as f:
        text = f.read()
      with open(path, "w") as f:
        f.write(text.replace(trained_in, root))
  else:
    build_synthetic(records, sizes=(32, 8, 6))
    configurables.train(model_dir=model_dir)
    if not fresh and not _tiny_run_cache:
      # A copy of its own: the caller may change or delete its run.
      cache = tempfile.mkdtemp(prefix="tiny_run_")
      atexit.register(shutil.rmtree, cache, ignore_errors=True)
      for name in ("synthetic", "run"):
        shutil.copytree(os.path.join(root, name), os.path.join(cache, name))
      _tiny_run_cache.append((cache, root))
  with open(os.path.join(model_dir, "train_result.json")) as f:
    return records, model_dir, json.load(f)


def _run_python(argv: list, timeout: float, cwd: str = ROOT, **env: str
                ) -> subprocess.CompletedProcess:
  """`python <argv>` in a fresh process, quiet TensorFlow, output captured."""
  return subprocess.run([sys.executable, *argv], cwd=cwd, capture_output=True,
                        text=True, timeout=timeout,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **env))


def run_module(module: str, *args: str, timeout: float = 300, cwd: str = ROOT,
               env: Optional[dict] = None) -> subprocess.CompletedProcess:
  """`python -m <module> <args>` (from the repository root), output captured;
  `env`: more environment variables."""
  return _run_python(["-m", module, *args], timeout, cwd, PYTHONPATH=ROOT, **(env or {}))


def run_at_once(cwd: str = ROOT, **commands) -> dict:
  """`{name: run_module(*command, cwd=cwd)}` of `{name: command}`, the
  processes running at the same time (3 at most): most of each one's time is
  importing TensorFlow, on one core."""
  with futures.ThreadPoolExecutor(max_workers=3) as pool:
    running = {name: pool.submit(run_module, *command, cwd=cwd)
               for name, command in commands.items()}
  return {name: process.result() for name, process in running.items()}


def benchmark_module(name: str):
  """benchmarks/<name>.py, imported (benchmarks/ is not a package); its
  folder joins `sys.path` first, as when the script runs, since the
  benchmarks import their neighbours (`bench_output`, `flop_floor`)."""
  folder = os.path.join(ROOT, "benchmarks")
  if folder not in sys.path:
    sys.path.append(folder)
  spec = importlib.util.spec_from_file_location(name, os.path.join(folder, f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def run_script(path: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
  """`python <path> <args>`, for scripts outside the package (`benchmarks/`,
  which import their neighbours from their own folder), output captured."""
  return _run_python([os.path.join(ROOT, path), *args], timeout, PYTHONPATH=ROOT)


def start_training(records_dir: str, model_dir: str, *bindings: str,
                   stderr=subprocess.DEVNULL) -> subprocess.Popen:
  """`python -m reseg_tf.train` of the quickstart config on `records_dir`, in
  the background (no step limit unless `bindings` set one): for tests that
  signal, or compete with, a running trainer. The caller kills it."""
  return subprocess.Popen(
      [sys.executable, "-m", "reseg_tf.train", f"--gin_file={QUICKSTART}",
       f"--gin_bindings=train.records_dir = '{records_dir}'",
       "--gin_bindings=Schedule.max_steps = 100000",
       *[f"--gin_bindings={b}" for b in bindings], f"--model_dir={model_dir}"],
      cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr, text=True,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))


def run_python(code: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
  """`python -c <code> <args>` in a fresh process, output captured."""
  return _run_python(["-c", code, *args], timeout)
