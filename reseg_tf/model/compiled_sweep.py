"""The compiled sweep: `kernels/gru_sweep.cc` built on first use, and the
`'compiled'` recurrence of `model/sweep.py` that runs it.

The C++ op runs a whole GRU recurrence (every time step, one or both
directions) and its gradient (`dgx`, `dw_h`, `db`); the input projections
stay in TensorFlow, as large matmuls that oneDNN runs (in bfloat16 when the
layer's `compute_dtype` is). With `compute_dtype=bfloat16` the recurrent
GEMMs also run in bfloat16 with float32 accumulation and a float32 state, on
AMX or AVX512-BF16 where the CPU has them (chosen at run time, so one build
serves both CPU families); elsewhere on bf16-rounded values in float32.

Building: the sources are compiled with the machine's C++ compiler against
the installed TensorFlow's headers (`tf.sysconfig`), once, into
`<cache>/kernels/gru_sweep-<hash>.so` (`common.machine.cache_dir()`), where
the hash covers the sources, the flags, the compiler and TensorFlow's
version, the way `torch.utils.cpp_extension.load` caches its builds. Where
the op cannot be built or loaded (no compiler, not x86-64 with AVX2 and FMA,
`RESEG_TF_COMPILED_SWEEP=0`), `load()` logs one line saying why and returns
None, and `lowering.py` uses the XLA sweep instead.
"""

import contextlib
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import time
from typing import Optional, Sequence

import tensorflow as tf
from absl import logging
from tensorflow.python.eager import record  # Whether a gradient tape is active.

from reseg_tf.common import machine

KERNEL_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "kernels")
SOURCE = "gru_sweep.cc"
HEADERS = ("gemm.h", "gru_gates.h", "gru_gates_body.inc")
DISABLE_ENV = "RESEG_TF_COMPILED_SWEEP"  # "0": never build or load the op.
COMPILER_ENV = "CXX"
# The baseline every x86-64 CPU of the last decade has; AVX-512, AVX512-BF16
# and AMX paths carry their own target attributes and are chosen at run time.
ARCH_FLAGS = ("-mavx2", "-mfma", "-mf16c")
REQUIRED_CPU_FLAGS = ("avx2", "fma", "f16c")
BUILD_TIMEOUT_S = 600


def _compiler() -> Optional[str]:
  return shutil.which(os.environ.get(COMPILER_ENV, "g++"))


def _flags() -> list:
  return (["-std=c++17", "-shared", "-fPIC", "-O3", *ARCH_FLAGS, f"-I{KERNEL_DIR}",
           "-Wno-deprecated-declarations"] + tf.sysconfig.get_compile_flags() +
          tf.sysconfig.get_link_flags())


def library_path(compiler: str) -> str:
  """The cached build for these sources, flags, compiler and TensorFlow."""
  digest = hashlib.sha256()
  for name in (SOURCE, *HEADERS):
    with open(os.path.join(KERNEL_DIR, name), "rb") as f:
      digest.update(f.read())
  version = subprocess.run([compiler, "--version"], capture_output=True, text=True,
                           check=False).stdout
  digest.update("\0".join([tf.__version__, version, *_flags()]).encode())
  return os.path.join(machine.cache_dir(), "kernels",
                      f"gru_sweep-{digest.hexdigest()[:16]}.so")


def build(compiler: str, path: str) -> None:
  """Compiles the op into `path`, atomically and once: a process that finds
  another building it waits for that build instead of compiling again.

  Raises:
    RuntimeError: the compiler failed; the message holds its first error.
  """
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with _exclusive(f"{path}.lock"):
    if os.path.exists(path):  # Built by the process this one waited for.
      return
    temporary = f"{path}.{os.getpid()}.tmp"
    logging.info("Building the compiled ReNet sweep (once per machine and "
                 "TensorFlow version): %s", path)
    start = time.perf_counter()
    result = subprocess.run(
        [compiler, os.path.join(KERNEL_DIR, SOURCE), "-o", temporary, *_flags()],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False)
    if result.returncode:
      errors = [line for line in result.stderr.splitlines() if "error" in line]
      raise RuntimeError(f"{compiler} failed: {(errors or [result.stderr.strip()])[0]}")
    os.replace(temporary, path)
    logging.info("Built the compiled ReNet sweep in %.0f s.", time.perf_counter() - start)


@contextlib.contextmanager
def _exclusive(lock_path: str):
  """Holds an exclusive lock on `lock_path` (created if absent) for the block;
  the system releases it if the process dies. Without POSIX locks (Windows)
  the block runs unlocked: concurrent builds then compile twice, and the
  rename still keeps the result whole."""
  try:
    import fcntl  # pylint: disable=import-outside-toplevel
  except ImportError:
    yield
    return
  with open(lock_path, "a") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)


def _why_not_buildable() -> Optional[str]:
  if os.environ.get(DISABLE_ENV, "1") == "0":
    return f"{DISABLE_ENV}=0"
  if platform.machine() not in ("x86_64", "AMD64"):
    return f"it is written for x86-64 CPUs, this is {platform.machine()}"
  missing = [f for f in REQUIRED_CPU_FLAGS if f not in machine.cpu_flags()]
  if missing:
    return f"the CPU lacks {', '.join(missing)}"
  if _compiler() is None:
    return f"no C++ compiler ({os.environ.get(COMPILER_ENV, 'g++')}) on the PATH"
  return None


@functools.cache
def load():
  """The op library, built if needed; None (after one log line) if it
  cannot be built or loaded here."""
  reason = _why_not_buildable()
  if reason is None:
    try:
      compiler = _compiler()
      path = library_path(compiler)
      if not os.path.exists(path):
        build(compiler, path)
      return tf.load_op_library(path)
    except (OSError, RuntimeError, subprocess.SubprocessError, tf.errors.OpError) as e:
      reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
  logging.warning("The compiled ReNet sweep is not available (%s): the XLA sweep runs "
                  "instead.", reason)
  return None


def available() -> bool:
  return load() is not None


def recurrence(core: str, gx: tf.Tensor, w_h: tf.Tensor, b: tf.Tensor, axis: int,
               reverse: Sequence[bool], compute_dtype=None) -> tf.Tensor:
  """The compiled recurrence (see `sweep.py` for the arguments): GRU only.

  Any shape, static or not. `compute_dtype=bfloat16` runs the recurrent
  GEMMs in bfloat16 (float32 accumulation and state). `gx` may be float32 or
  bfloat16 (the projections' dtype; the op reads it as it is and returns its
  gradient in the same dtype); other dtypes are cast to float32.
  """
  if core != "gru":
    raise ValueError(f"the compiled sweep runs GRU cores only, got {core!r}")
  ops = load()
  if ops is None:
    raise RuntimeError("the compiled sweep is not available (see the log)")
  reverse = [bool(r) for r in reverse]
  bf16 = compute_dtype is not None and tf.as_dtype(compute_dtype) == tf.bfloat16
  if gx.dtype not in (tf.float32, tf.bfloat16):
    gx = tf.cast(gx, tf.float32)
  attrs = dict(axis=axis, reverse=reverse, bf16=bf16)
  # With no gradient tape active (evaluation, prediction) the forward op
  # keeps no gates for a backward pass: it writes the states only, a fifth of
  # the bytes (docs/performance.md). A gradient asked for without a tape
  # (`tf.gradients` in a graph) still gets them, from a second forward pass.
  keep_gates = record.could_possibly_record()

  @tf.custom_gradient
  def run(gx, w_h, b):
    hs, saved, _ = ops.reseg_gru_sweep(gx, w_h, b, keep_gates=keep_gates, **attrs)

    def grad(dhs):
      kept = saved if keep_gates else ops.reseg_gru_sweep(gx, w_h, b, **attrs)[1]
      dgx, dw_h, db, _ = ops.reseg_gru_sweep_grad(dhs, hs, kept, w_h, T=gx.dtype, **attrs)
      return dgx, dw_h, db

    return hs, grad

  return run(gx, w_h, b)
