"""The trainer's typed state and result (training/run_state.py)."""

import dataclasses
import json
import os

import tensorflow as tf

from reseg_tf.common import run_files
from reseg_tf.common.progress import RateLog
from reseg_tf.training import run_state


class TrainResultTest(tf.test.TestCase):

  def test_the_file_keeps_its_keys_and_leaves_out_what_did_not_happen(self):
    plain = run_state.TrainResult(steps_per_epoch=12, step=24, epoch=2.0, best_mean_iou=-1.0)
    self.assertEqual(list(plain.to_json()), ["steps_per_epoch", "step", "epoch",
                                             "best_mean_iou"])
    full = dataclasses.replace(plain, best_step=12, last_validation={"mean_iou": 0.5},
                               early_stopped=True, interrupted_by="SIGTERM")
    self.assertEqual(list(full.to_json()), [
        "steps_per_epoch", "best_step", "last_validation", "early_stopped",
        "interrupted_by", "step", "epoch", "best_mean_iou"])
    self.assertIs(full.to_json()["early_stopped"], True)
    with self.assertRaises(dataclasses.FrozenInstanceError):
      full.step = 3  # noqa: B003 (checks that the result is frozen)

  def test_write_puts_the_json_in_the_run_folder(self):
    folder = self.create_tempdir().full_path
    result = run_state.TrainResult(steps_per_epoch=4, step=8, epoch=2.0, best_mean_iou=0.75,
                                   best_step=8)
    result.write(folder)
    with open(os.path.join(folder, run_files.TRAIN_RESULT)) as f:
      self.assertEqual(json.load(f), result.to_json())

  def test_the_finished_line_says_whether_a_validation_ran(self):
    validated = run_state.TrainResult(steps_per_epoch=4, step=8, epoch=2.0,
                                      best_mean_iou=0.61234, best_step=8)
    self.assertEqual(run_state.finished_line(validated.to_json()),
                     "Finished at step 8; best validation mean IoU 0.6123.")
    # max_epochs = 0, or a run stopped before its first validation.
    unvalidated = run_state.TrainResult(steps_per_epoch=4, step=0, epoch=0.0,
                                        best_mean_iou=-1.0)
    self.assertEqual(run_state.finished_line(unvalidated.to_json()),
                     "Finished at step 0; no validation ran, so there is no best "
                     "checkpoint (evaluate with --checkpoint=latest).")


class TrainStateTest(tf.test.TestCase):

  def test_the_step_is_the_counter_and_the_result_carries_what_was_seen(self):
    iterations = tf.Variable(6, dtype=tf.int64)
    state = run_state.TrainState(iterations, RateLog("step", 10, lambda _: None, start=6))
    iterations.assign(10)  # What the train loop does through the optimizer.
    state.best_step, state.last_validation = 10, {"mean_iou": 0.5}
    result = state.result(steps_per_epoch=4, best_mean_iou=0.5, interrupted_by="SIGINT")
    self.assertEqual((result.step, result.epoch, result.best_step, result.interrupted_by),
                     (10, 2.5, 10, "SIGINT"))
    self.assertFalse(result.early_stopped)


if __name__ == "__main__":
  tf.test.main()
