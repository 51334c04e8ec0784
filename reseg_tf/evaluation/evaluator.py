"""Scoring a model on a split, and the table that compares it with the paper.

`evaluate` streams every example of a split through the model and sums one
confusion matrix, with the trainer's own evaluation step
(`eval_step.make_eval_step`) and metric code (`metrics.confusion_matrix`,
`metrics.scores`), so its numbers are the ones the trainer logs for the same
checkpoint and split. The last batch is completed with padding examples
that do not count (`eval_pipeline.make_eval_dataset`): every image is
scored (the original code dropped the last incomplete batch).

Images of different sizes (Horse) are padded bottom/right to the split's
largest size, as in the trainer's validation; the padding is never scored,
but the recurrent sweeps run across it. `pad_to_size=None` instead runs
each image alone at its own size (batch 1; slower, the XLA step compiles
once per distinct size).

`format_table` prints per-class accuracy and IoU with the class names and,
for the paper's three datasets (metadata.json's "dataset": camvid, horse,
flowers), the published ReSeg numbers beside ours (docs/protocol.md,
"Published results").
"""

import json
import math
import os
from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from reseg_tf.common.errors import InputError
from reseg_tf.common.progress import RateLog
from reseg_tf.data import eval_pipeline, records
from reseg_tf.evaluation import eval_step, metrics
from reseg_tf.model import test_time_augmentation as tta

# ReSeg's published results (Visin et al. 2016, tables 1-3), as fractions.
PAPER_RESULTS = {
    "camvid": {
        "row": "ReSeg (CamVid test, 11 classes)",
        "global_accuracy": 0.887,
        "class_average_accuracy": 0.681,
        "mean_iou": 0.588,
        "per_class_accuracy": {
            "Building": 0.868, "Tree": 0.847, "Sky": 0.930, "Car": 0.873,
            "SignSymbol": 0.486, "Road": 0.980, "Pedestrian": 0.633,
            "Fence": 0.209, "Pole": 0.356, "Sidewalk": 0.873, "Bicyclist": 0.435},
    },
    "horse": {"row": "ReSeg (Weizmann Horse)", "global_accuracy": 0.968,
              "foreground_iou": 0.916},
    "flowers": {"row": "ReSeg (Oxford Flowers 17)", "global_accuracy": 0.980,
                "foreground_iou": 0.937},
}



def evaluate(model, records_dir: str, split: str, batch_size: int,
             pad_to_size: Optional[str] = "max", jit_compile: Optional[bool] = None,
             log: Callable[[str], None] = print, log_every_seconds: float = 10.0,
             augmentation: tta.TestTimeAugmentation = tta.NONE) -> dict:
  """Scores `model` on every example of `split`.

  Args:
    model: a `model.ReSeg`.
    records_dir: the converter's output folder (shards + metadata.json).
    split: e.g. "test".
    batch_size: images per step (the trainer's batch size reproduces its
      validation numbers to the last pixel).
    pad_to_size: "max" (as the trainer) or None (each image at its own
      size, batch 1); see the module docstring.
    jit_compile: compile the model's trainable part with XLA; None: on GPUs
      only (`eval_step.default_jit_compile()`).
    log: where progress lines go.
    log_every_seconds: how often a progress line is written.
    augmentation: test-time augmentation (`model/test_time_augmentation.py`);
      default none. With padding ("max"), mirrored views see the padding on
      the other side; padded pixels are never scored.

  Returns:
    `metrics.scores` of the summed confusion matrix (class names included),
    plus `confusion_matrix` (`[K, K + 1]` list of lists; the last column
    counts predictions that are no real class, e.g. a trained void class),
    `num_images` and `split`.

  Raises:
    InputError: `split` is not in the records, or their number of classes
      differs from the model's.
    ValueError: not every image was scored.
  """
  metadata = records.load_metadata(records_dir)
  metadata_path = os.path.join(records_dir, records.METADATA_FILENAME)
  if split not in metadata["splits"]:
    raise InputError(metadata_path, f"no split {split!r} (it has "
                     f"{', '.join(sorted(metadata['splits']))})")
  num_classes = metadata["num_classes"]
  if model.num_classes != num_classes:
    raise InputError(metadata_path, f"{num_classes} classes, but the model "
                     f"predicts {model.num_classes}")
  expected = metadata["splits"][split]["num_examples"]
  if pad_to_size is None:
    batch_size = 1
  # The default strategy: one device, no replicas; the step is the trainer's.
  if jit_compile is None:
    jit_compile = eval_step.default_jit_compile()
  step = eval_step.make_eval_step(tf.distribute.get_strategy(), model, num_classes,
                                  jit_compile=jit_compile, augmentation=augmentation)
  dataset = eval_pipeline.make_eval_dataset(records_dir, split, batch_size,
                                             pad_to_size=pad_to_size)
  progress = RateLog(split, expected, log, "images", log_every_seconds)
  confusion = eval_step.sum_confusion(
      step, dataset, num_classes,
      on_batch=lambda batch: progress.update(int(np.sum(batch["mask"].numpy()))))
  num_images = progress.done
  if num_images != expected:
    raise ValueError(f"scored {num_images} images of {split!r}, but metadata.json "
                     f"says it has {expected}")
  result = metrics.scores(confusion, metadata["class_names"])
  result.update(confusion_matrix=confusion.tolist(), num_images=num_images,
                split=split)
  return result


def evaluate_report(restored, records_dir: str, split: str, batch_size: int,
                    **evaluate_options) -> dict:
  """`evaluate` of a restored model (`serving.restore.Restored`), with where
  the numbers come from: checkpoint, step, records, dataset, batch size and
  the paper's numbers for the dataset."""
  result = evaluate(restored.model, records_dir, split, batch_size, **evaluate_options)
  dataset = records.load_metadata(records_dir).get("dataset", "")
  pad_to_size = evaluate_options.get("pad_to_size", "max")
  augmentation = evaluate_options.get("augmentation", tta.NONE)
  declared = ({} if augmentation.is_identity else
              {"test_time_augmentation": augmentation.describe()})
  return json_ready({
      "checkpoint": restored.checkpoint, "step": restored.step, "split": split,
      "records_dir": records_dir, "dataset": dataset, "batch_size": batch_size,
      "pad_to_size": pad_to_size or "none", **declared, **result,
      "paper": paper_results(dataset)})


def default_output(restored, split: str, published: bool,
                   augmentation: tta.TestTimeAugmentation = tta.NONE) -> str:
  """Where a report goes unless told: beside a run's checkpoints, or under
  `eval/<name>/` of the working folder for a published model (whose folder
  belongs to the repository); test-time views add their tag to the name."""
  tag = augmentation.file_tag()
  if published:
    return os.path.join("eval", restored.name, f"{split}{tag}.json")
  return os.path.join(restored.folder or ".", "eval",
                      f"{split}-{os.path.basename(restored.checkpoint)}{tag}.json")


def write_report(report: dict, path: str):
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    json.dump(report, f, indent=1)


def paper_results(dataset: str) -> Optional[dict]:
  """The published ReSeg numbers for `dataset`, or None."""
  return PAPER_RESULTS.get(dataset)


def format_table(result: dict, dataset: str = "", title: str = "") -> str:
  """A plain-text table of `evaluate`'s result, in percent.

  Per class: accuracy and IoU (and the paper's accuracy on CamVid); then
  the summary metrics beside the paper's (camvid, horse, flowers).
  """
  paper = paper_results(dataset) or {}
  names = result.get("class_names") or [
      f"class {i}" for i in range(len(result["per_class_iou"]))]
  width = max(24, max(len(n) for n in names) + 2)
  per_class_paper = paper.get("per_class_accuracy", {})
  lines = [title] if title else []
  header = f"{'class':<{width}}{'accuracy':>10}{'IoU':>8}"
  if per_class_paper:
    header += f"{'paper acc.':>12}"
  lines += [header, "-" * len(header)]
  for name, accuracy, iou in zip(names, result["per_class_accuracy"],
                                 result["per_class_iou"]):
    line = f"{name:<{width}}{_percent(accuracy):>10}{_percent(iou):>8}"
    if per_class_paper:
      line += f"{_percent(per_class_paper.get(name)):>12}"
    lines.append(line)
  lines.append("")
  header = f"{'':<{width}}{'ours':>10}"
  if paper:
    header += f"{'paper':>8}  {paper['row']}"
  lines.append(header)
  for key, label in metrics.SUMMARY_METRICS.items():
    if key not in result:
      continue
    line = f"{label:<{width}}{_percent(result[key]):>10}"
    if paper:
      line += f"{_percent(paper.get(key)):>8}"
    lines.append(line)
  lines.append(f"{result.get('num_images', '?')} images, "
               f"{result['num_pixels']:,} labelled pixels (void excluded)")
  return "\n".join(lines)


def json_ready(value):
  """`value` with NaN and infinities as None (strict JSON has neither)."""
  if isinstance(value, dict):
    return {k: json_ready(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [json_ready(v) for v in value]
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def _percent(value) -> str:
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return "-"
  return f"{100 * value:.1f}"
