"""docs/results.json: the training-time rule, merging, and the tables of the
README and the manual that quote it."""

import collections
import glob
import json
import os

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


_METRIC_COLUMNS = {"global accuracy": "global_accuracy",
                   "class-average accuracy": "class_average_accuracy",
                   "mean IoU": "mean_iou", "foreground IoU": "foreground_iou"}


def _cells(line):
  return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _tables(path):
  """The tables of a Markdown file: (header cells, body rows of cells)."""
  with open(path) as f:
    lines = [line for line in f]
  tables = []
  for i in range(len(lines) - 1):
    if lines[i].startswith("|") and lines[i + 1].startswith("|---"):
      if i > 0 and lines[i - 1].startswith("|"):
        continue
      body = []
      for line in lines[i + 2:]:
        if not line.startswith("|"):
          break
        body.append(_cells(line))
      tables.append((_cells(lines[i]), body))
  return tables


def _rows_of(rows, name):
  """The rows that are `name`'s: one of their cells begins with `name` in
  backticks (`horse_no_vgg` but not `horse_no_vgg_full_res`, nor a cell that
  only mentions it, "kept: the published `horse_no_vgg`")."""
  return [row for row in rows if any(cell.startswith(f"`{name}`") for cell in row)]


class DocumentedResultsTest(tf.test.TestCase):
  """The README and the manual quote docs/results.json's numbers."""

  def setUp(self):
    super().setUp()
    path = os.path.join(_ROOT, "docs", "results.json")
    if not os.path.exists(path):
      self.skipTest("no docs/results.json yet")
    with open(path) as f:
      self.runs = json.load(f)
    self.pages = [os.path.join(_ROOT, "README.md")] + sorted(
        glob.glob(os.path.join(_ROOT, "docs", "*.md")))

  def _entry(self, name, header, row):
    """The results.json entry a row of `name` quotes: `name`'s own, or
    `name@<split>` when the row's "held-out split" cell names another split
    ("test, 233 images")."""
    if "held-out split" in header:
      split = row[header.index("held-out split")].split(",")[0].strip()
      if split != self.runs[name]["split"]:
        return f"{name}@{split}"
    return name

  def test_every_row_of_a_run_quotes_its_numbers(self):
    checked = collections.Counter()
    for page in self.pages:
      for header, rows in _tables(page):
        columns = {index: _METRIC_COLUMNS[title] for index, title in enumerate(header)
                   if title in _METRIC_COLUMNS}
        for name in self.runs:
          for row in _rows_of(rows, name):
            quoted = self._entry(name, header, row)
            self.assertIn(quoted, self.runs, msg=f"{os.path.relpath(page, _ROOT)}: {row}")
            for index, key in columns.items():
              value = self.runs[quoted].get(key)
              want = "-" if value is None else f"{100 * value:.1f}"
              self.assertEqual(row[index].strip("*"), want,
                               msg=f"{os.path.relpath(page, _ROOT)}: {quoted} {key}")
              checked[os.path.basename(page), quoted] += 1
    for name in self.runs:
      # The Results page quotes at least global, class-average and mean IoU.
      self.assertGreaterEqual(checked["results.md", name], 3, msg=name)

  def test_the_results_page_has_one_row_per_run(self):
    rows = [row for _, body in _tables(os.path.join(_ROOT, "docs", "results.md"))
            for row in body]
    for name in self.runs:
      self.assertLen(_rows_of(rows, name), 1, msg=f"docs/results.md rows of `{name}`")

  def test_the_front_page_shows_the_best_published_model_of_each_dataset(self):
    best = {}  # Chosen as the models were, on the split they were scored on first,
    for name, entry in self.runs.items():  # among those with a test score to show.
      if "@" in name:  # A published model scored on another split.
        continue
      if entry["split"] != "test" and f"{name}@test" not in self.runs:
        continue  # Its test score is still to be measured (outside our data).
      if entry["mean_iou"] > best.get(entry["dataset"], ("", -1.0))[1]:
        best[entry["dataset"]] = (name, entry["mean_iou"])
    rows = [row for _, body in _tables(os.path.join(_ROOT, "README.md")) for row in body]
    shown = {name for name in self.runs if _rows_of(rows, name)}
    self.assertEqual(shown, {name for name, _ in best.values()})
    self.assertLen(best, 3)  # CamVid, Horse, Flowers.
    # Each on its test split where one was measured.
    for header, body in _tables(os.path.join(_ROOT, "README.md")):
      for name in shown:
        for row in _rows_of(body, name):
          self.assertTrue(row[header.index("held-out split")].startswith("test"), msg=name)


if __name__ == "__main__":
  tf.test.main()
