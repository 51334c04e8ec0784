"""docs/results.json: the training-time rule, merging, and the README's tables."""

import json
import os
import re

import tensorflow as tf
from tensorflow.core.util import event_pb2

from reseg_tf.evaluation import results

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write_train_events(folder, events):
  """`events`: (wall time, tag) pairs, as the trainer writes them."""
  os.makedirs(folder)
  with tf.io.TFRecordWriter(os.path.join(folder, "events.out.tfevents.1")) as writer:
    for step, (wall_time, tag) in enumerate(events):
      event = event_pb2.Event(wall_time=wall_time, step=step)
      event.summary.value.add(tag=tag, simple_value=1.0)
      writer.write(event.SerializeToString())


class ResultsTest(tf.test.TestCase):

  def test_training_time_leaves_out_the_wait_before_a_resume(self):
    model_dir = self.create_tempdir().full_path
    # A start, 3 loss events (5 s of compilation, then 10 s apart), a stop of
    # 7 minutes, a resume, 2 more loss events 20 s and 10 s later.
    _write_train_events(os.path.join(model_dir, "train"), [
        (95.0, "operative_config"), (100.0, "loss"), (110.0, "loss"), (120.0, "loss"),
        (540.0, "operative_config"), (560.0, "loss"), (570.0, "images_per_second"),
        (570.0, "loss")])
    self.assertEqual(results.training_seconds(model_dir), 5 + 10 + 10 + 20 + 10)
    self.assertIsNone(results.training_seconds(self.create_tempdir().full_path))

  def test_merge_keeps_other_runs_and_replaces_its_own(self):
    path = os.path.join(self.create_tempdir().full_path, "docs", "results.json")
    results.merge(path, "b", {"mean_iou": 0.1})
    results.merge(path, "a", {"mean_iou": 0.2})
    results.merge(path, "b", {"mean_iou": 0.3})
    with open(path) as f:
      self.assertEqual(json.load(f), {"a": {"mean_iou": 0.2}, "b": {"mean_iou": 0.3}})


class ReadmeResultsTest(tf.test.TestCase):
  """Every docs/results.json run has a README row quoting its numbers."""

  def test_readme_rows_match_results_json(self):
    path = os.path.join(_ROOT, "docs", "results.json")
    if not os.path.exists(path):
      self.skipTest("no docs/results.json yet")
    with open(path) as f:
      runs = json.load(f)
    with open(os.path.join(_ROOT, "README.md")) as f:
      rows = [line for line in f if line.startswith("|")]
    for name, entry in runs.items():
      quoting = [row for row in rows if f"`{name}`" in row]
      self.assertLen(quoting, 1, msg=f"README rows naming `{name}`")
      cells = re.findall(r"\d+\.\d", quoting[0])
      for key in ("global_accuracy", "class_average_accuracy", "mean_iou", "foreground_iou"):
        if entry.get(key) is not None:
          self.assertIn(f"{100 * entry[key]:.1f}", cells, msg=f"{name} {key}")


if __name__ == "__main__":
  tf.test.main()
