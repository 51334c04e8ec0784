"""Helpers for the tests of the evaluate, predict and export binaries."""

import json
import os
import subprocess
import sys

from reseg_tf import configurables
from tests.trainer_test import build_synthetic, parse_quickstart

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train_tiny_run(root: str) -> tuple[str, str, dict]:
  """A quickstart run of 8 steps on small synthetic records (~10 s).

  32/8/6 train/val/test images of 32x40; validation at steps 4 and 8, so
  `best/` and `checkpoints/ckpt-8` exist and train_result.json has
  `last_validation` for ckpt-8.

  Returns:
    `(records_dir, model_dir, train_result)`.
  """
  records = build_synthetic(os.path.join(root, "synthetic"), sizes=(32, 8, 6))
  model_dir = os.path.join(root, "run")
  parse_quickstart(records, "train.max_steps = 8", "train.validate_every_steps = 4",
                   "train.steps_per_loop = 4", "train.log_every_seconds = 1000")
  configurables.train(model_dir=model_dir)
  with open(os.path.join(model_dir, "train_result.json")) as f:
    return records, model_dir, json.load(f)


def run_module(module: str, *args: str, timeout: float = 300
               ) -> subprocess.CompletedProcess:
  """`python -m <module> <args>` from the repository root, output captured."""
  return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=timeout,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))


def run_python(code: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
  """`python -c <code> <args>` in a fresh process, output captured."""
  return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=timeout,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
