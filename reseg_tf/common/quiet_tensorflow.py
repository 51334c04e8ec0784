"""Importing TensorFlow without its start-up chatter.

TensorFlow 2.21 writes its start-up INFO lines (oneDNN, CPU features, CUDA
probing, a `cuInit` error on machines without a GPU) to the process's
stderr before its logging is initialised, whatever TF_CPP_MIN_LOG_LEVEL
says; only the later lines obey it (2: errors only). The binaries
(`reseg_tf/cli.py`) and the Python API (`reseg_tf.load_model`) import it
through `import_quietly`, unless the user asked for TensorFlow's INFO (0) or
WARNING (1) lines.
"""

import os
import sys
import tempfile

STARTUP_NOISE = ("I0000 ", "W0000 ", "E0000 ",
                 "WARNING: All log messages before absl::InitializeLog",
                 "To enable the following instructions", "This TensorFlow binary is optimized")


def wanted() -> bool:
  """Whether the user left TensorFlow's log level quiet (unset, 2 or 3)."""
  return os.environ.get("TF_CPP_MIN_LOG_LEVEL") not in ("0", "1")


def import_quietly():
  """Imports TensorFlow and probes its devices with the C-level stderr
  captured, then writes back what is not start-up noise. Sets
  TF_CPP_MIN_LOG_LEVEL to 2 (errors only) unless the user set it. A no-op
  once TensorFlow is imported."""
  if "tensorflow" in sys.modules:
    return
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    try:
      import tensorflow as tf  # noqa: PLC0415
      tf.config.list_physical_devices()  # The CUDA probe logs here.
    finally:
      os.dup2(saved, 2)
      os.close(saved)
    captured.seek(0)
    for line in captured.read().decode(errors="replace").splitlines():
      if not line.startswith(STARTUP_NOISE):
        print(line, file=sys.stderr)
