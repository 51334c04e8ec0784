"""Tests of the training run's rules (reseg_tf/training/run_control.py)."""

import json
import os
import socket
import subprocess
import sys

import tensorflow as tf

from reseg_tf.common.errors import InputError
from reseg_tf.training import run_control


def _dead_pid() -> int:
  process = subprocess.Popen([sys.executable, "-c", "pass"])
  process.wait()
  return process.pid


class ModelDirLockTest(tf.test.TestCase):

  def test_a_held_lock_refuses_a_second_owner_and_is_released(self):
    folder = self.create_tempdir().full_path
    with run_control.ModelDirLock(folder):
      with open(os.path.join(folder, run_control.LOCK_FILE)) as f:
        self.assertEqual(json.load(f)["pid"], os.getpid())
      with self.assertRaisesRegex(InputError, f"pid {os.getpid()} on {socket.gethostname()}"):
        with run_control.ModelDirLock(folder):
          pass
    self.assertFalse(os.path.exists(os.path.join(folder, run_control.LOCK_FILE)))

  def test_a_lock_left_by_a_dead_process_is_taken_over(self):
    folder = self.create_tempdir().full_path
    for content in (json.dumps({"host": socket.gethostname(), "pid": _dead_pid()}),
                    '{"host": '):  # Half-written by a run killed while writing.
      with open(os.path.join(folder, run_control.LOCK_FILE), "w") as f:
        f.write(content)
      with run_control.ModelDirLock(folder):
        with open(os.path.join(folder, run_control.LOCK_FILE)) as f:
          self.assertEqual(json.load(f)["pid"], os.getpid())

  def test_a_lock_from_another_host_is_respected(self):
    folder = self.create_tempdir().full_path
    with open(os.path.join(folder, run_control.LOCK_FILE), "w") as f:
      json.dump({"host": "elsewhere", "pid": 1, "started": "then"}, f)
    with self.assertRaisesRegex(InputError, "pid 1 on elsewhere"):
      with run_control.ModelDirLock(folder):
        pass


class EarlyStoppingTest(tf.test.TestCase):

  def test_the_original_codes_rule(self):
    # Patience 2 after epoch 3: improvements reset the count; no stop before
    # epoch 3 however long the plateau.
    rule = run_control.EarlyStopping(min_epochs=3, patience=2)
    self.assertTrue(rule.update(0.5))
    self.assertFalse(rule.update(0.5))  # Equal is not better.
    self.assertFalse(rule.update(0.4))
    self.assertFalse(rule.should_stop(epoch=2))
    self.assertTrue(rule.should_stop(epoch=3))
    self.assertTrue(rule.update(0.6))
    self.assertFalse(rule.should_stop(epoch=10))
    self.assertAllClose(rule.best.numpy(), 0.6)


class LearningRateDropTest(tf.test.TestCase):

  def test_step_decay_by_epoch(self):
    rates = [run_control.learning_rate_at(epoch, 1e-3, (50, 55), 0.1)
             for epoch in (0, 49, 50, 54, 55, 59)]
    self.assertAllClose(rates, [1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5])
    self.assertEqual(run_control.learning_rate_at(7, 0.5, (), 0.1), 0.5)



if __name__ == "__main__":
  tf.test.main()
