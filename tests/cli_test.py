"""Tests of what the binaries share (reseg_tf/cli.py): one-line errors for
expected mistakes, TensorFlow's start-up lines and the traceback with
--verbose (quiet without it: tests/binaries_output_test.py), one trainer per
model_dir."""

import json
import os
import subprocess
import sys
import time

import tensorflow as tf

from reseg_tf.training import run_control
from tests import fixtures


def _run_quietly_configured(module, *args, timeout=300):
  """Like `fixtures.run_module`, but with TensorFlow's log level unset, as a
  user's shell has it, so the binary decides what to show."""
  env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
  return subprocess.run([sys.executable, "-m", module, *args], cwd=fixtures.ROOT,
                        capture_output=True, text=True, timeout=timeout,
                        env=dict(env, PYTHONPATH=fixtures.ROOT))


# What TensorFlow, XLA and absl print at start-up unless --verbose is given.
START_UP_NOISE = ("oneDNN", "cuda", "I0000", "absl::InitializeLog", "Sharding callback")


class ExpectedErrorsTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    root = tf.compat.v1.test.get_temp_dir()
    cls.records, cls.model_dir, _ = fixtures.train_tiny_run(os.path.join(root, "cli"))

  def assert_one_line_error(self, process, *fragments):
    self.assertEqual(process.returncode, 1, process.stderr)
    self.assertNotIn("Traceback", process.stderr)
    last = process.stderr.strip().splitlines()[-1]
    self.assertTrue(last.startswith("error: "), last)
    for fragment in fragments:
      self.assertIn(fragment, last)

  def test_records_without_metadata(self):
    empty = self.create_tempdir().full_path
    process = _run_quietly_configured(
        "reseg_tf.train", f"--gin_file={fixtures.QUICKSTART}",
        f"--gin_bindings=train.records_dir = '{empty}'",
        f"--model_dir={self.create_tempdir().full_path}")
    self.assert_one_line_error(process, os.path.join(empty, "metadata.json"),
                               "data_prep.build")

  def test_checkpoint_that_does_not_fit_the_model(self):
    process = _run_quietly_configured(
        "reseg_tf.evaluate", f"--model_dir={self.model_dir}", "--split=val",
        "--gin_bindings=ReSeg.renet_units = (8, 8)")
    self.assert_one_line_error(process, os.path.join(self.model_dir, "best"),
                               "does not fit the configured model")

  def test_unknown_published_model_lists_the_published_ones(self):
    process = _run_quietly_configured("reseg_tf.predict", "--model=no_such_model",
                                      f"--input={fixtures.ROOT}/docs/horse_test.png",
                                      f"--output_dir={self.create_tempdir().full_path}")
    self.assert_one_line_error(process, "no_such_model", "no such published model")

  def test_verbose_shows_the_start_up_lines_and_the_traceback(self):
    # The quiet start-up without --verbose: tests/binaries_output_test.py.
    process = _run_quietly_configured(
        "reseg_tf.evaluate", f"--model_dir={self.model_dir}", "--split=val",
        "--gin_bindings=ReSeg.renet_units = (8, 8)", "--verbose")
    self.assertNotEqual(process.returncode, 0)
    self.assertIn("Traceback", process.stderr)
    # Which lines TensorFlow prints depends on the CPU (the oneDNN notice only
    # appears where oneDNN is on by default, e.g. with AVX-512 VNNI or bf16),
    # so --verbose must let some of them through, not a given one.
    self.assertTrue(any(noise in process.stderr for noise in START_UP_NOISE),
                    process.stderr)


class ModelDirOwnershipTest(tf.test.TestCase):

  def test_second_trainer_on_a_busy_model_dir_refuses(self):
    root = self.create_tempdir().full_path
    records = fixtures.build_synthetic(os.path.join(root, "synthetic"), sizes=(16, 8, 0))
    model_dir = os.path.join(root, "run")
    first = fixtures.start_training(records, model_dir)
    try:
      lock = os.path.join(model_dir, "training.lock")
      deadline = time.monotonic() + 120
      while not os.path.exists(lock) and time.monotonic() < deadline:
        time.sleep(0.2)
      self.assertTrue(os.path.exists(lock))
      second = _run_quietly_configured(
          "reseg_tf.train", f"--gin_file={fixtures.QUICKSTART}",
          f"--gin_bindings=train.records_dir = '{records}'", f"--model_dir={model_dir}")
      self.assertEqual(second.returncode, 1, second.stderr)
      self.assertIn(f"another training is running in this model_dir (pid {first.pid}",
                    second.stderr.strip().splitlines()[-1])
    finally:
      first.kill()
      first.wait()
    # Killed: its lock stays behind, and the next run's lock takes it over.
    self.assertTrue(os.path.exists(lock))
    with run_control.ModelDirLock(model_dir):
      with open(lock) as f:
        self.assertEqual(json.load(f)["pid"], os.getpid())
    self.assertFalse(os.path.exists(lock))


if __name__ == "__main__":
  tf.test.main()
