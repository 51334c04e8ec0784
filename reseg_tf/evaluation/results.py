"""A machine-readable record of evaluated runs (docs/results.json).

`python -m reseg_tf.evaluate ... --results_file=docs/results.json` merges one
entry per run into the file, keyed by the run's name (its model_dir's base
name unless `--results_name` says otherwise): the metrics, the split and
checkpoint, the training budget actually spent (steps, epochs, wall time),
the machine, and the command that produced it. The results tables (README,
docs/results.md) quote these entries and a test checks that they agree.

Training wall time comes from the run's TensorBoard train events: each start
of the trainer (a fresh run or a resume) writes the operative config there, so
the time from every start to that process's last loss event is counted
(compilation and validations included), and the time a stopped run waited to
be resumed is not.
"""

import datetime
import json
import os
from typing import Optional

import tensorflow as tf

from reseg_tf.common import machine
from reseg_tf.evaluation import metrics, summaries

# What a results entry keeps of an evaluation report.
_METRICS = (*metrics.SUMMARY_METRICS, "per_class_accuracy", "per_class_iou",
            "class_names", "num_pixels")


def training_seconds(model_dir: str) -> Optional[float]:
  """Wall time the run spent training (see the module docstring), or None."""
  events = []  # (wall time, is a trainer start)
  for event in summaries.read_events(os.path.join(model_dir, "train")):
    tags = {value.tag for value in event.summary.value}
    if tags & {"loss", summaries.OPERATIVE_CONFIG_TAG}:
      events.append((event.wall_time, summaries.OPERATIVE_CONFIG_TAG in tags))
  events.sort()
  seconds = [b - a for (a, _), (b, b_is_start) in zip(events, events[1:]) if not b_is_start]
  return float(sum(seconds)) if seconds else None


def hardware() -> str:
  """E.g. '2 x Intel(R) Xeon(R) ... (logical CPUs), no GPU'."""
  cpu = machine.cpu_model()
  gpus = tf.config.list_physical_devices("GPU")
  return (f"{os.cpu_count()} x {cpu} (logical CPUs), "
          f"{f'{len(gpus)} GPU(s)' if gpus else 'no GPU'}")


def training_budget(model_dir: str, step: Optional[int],
                    at_last_step: bool = False) -> dict:
  """The epoch of `step` (with `at_last_step`, of the last step trained), the
  steps trained and the training hours of a run (from its train_result.json
  and TensorBoard events), as far as known."""
  budget = {}
  summary_path = os.path.join(model_dir, "train_result.json")
  if os.path.exists(summary_path):
    with open(summary_path) as f:
      summary = json.load(f)
    if at_last_step:
      step = summary.get("step")
    steps_per_epoch = summary.get("steps_per_epoch")
    if steps_per_epoch and step is not None:
      budget["epoch"] = step / steps_per_epoch
    budget["trained_steps"] = summary.get("step")
  seconds = training_seconds(model_dir)
  budget["training_hours"] = None if seconds is None else seconds / 3600
  return budget


def run_entry(report: dict, restored, command: str) -> dict:
  """One results entry from an evaluation report (reseg_tf/evaluate.py) of
  a restored model (`serving.restore.Restored`): a published model carries
  its training budget in model_info.json, a run in its folder."""
  entry = {"dataset": report.get("dataset"), "split": report.get("split"),
           "checkpoint": report.get("checkpoint"), "step": report.get("step"),
           **{k: report[k] for k in ("test_time_augmentation", *_METRICS) if k in report}}
  if "training" in restored.info:
    entry.update(restored.info["training"])
  elif restored.folder:
    entry.update(training_budget(restored.folder, entry["step"]))
  entry.update(hardware=hardware(), tensorflow=tf.__version__,
               date=datetime.date.today().isoformat(), command=command)
  return entry


def merge(results_file: str, name: str, entry: dict) -> None:
  """Writes `entry` under `name` in `results_file`, keeping the other runs."""
  results = {}
  if os.path.exists(results_file):
    with open(results_file) as f:
      results = json.load(f)
  results[name] = entry
  os.makedirs(os.path.dirname(os.path.abspath(results_file)), exist_ok=True)
  temporary = results_file + ".tmp"
  with open(temporary, "w") as f:
    json.dump(dict(sorted(results.items())), f, indent=1)
    f.write("\n")
  os.replace(temporary, results_file)
