"""TensorBoard summaries and pictures of predictions, and reading them back."""

import glob
import os
from typing import Iterator, Sequence

import numpy as np
import tensorflow as tf
from tensorflow.core.util import event_pb2

from reseg_tf.data.records import IGNORE_LABEL
from reseg_tf.evaluation.metrics import SUMMARY_METRICS

VOID_COLOR = (0, 0, 0)

# The trainer writes its operative config under this tag each time it starts,
# which is how results.py finds where a resumed session begins.
OPERATIVE_CONFIG_TAG = "operative_config"


def colorize(label_map: np.ndarray, colors: Sequence[Sequence[int]]) -> np.ndarray:
  """Class ids `[..., H, W]` -> RGB uint8 `[..., H, W, 3]` in the dataset's colours.

  Void (255) and ids without a colour (a predicted void class) are black.
  """
  palette = np.zeros((256, 3), np.uint8)
  palette[:] = VOID_COLOR
  palette[:len(colors)] = np.asarray(colors, np.uint8)
  palette[IGNORE_LABEL] = VOID_COLOR
  return palette[np.asarray(label_map, np.int64).clip(0, 255)]


def overlay(image: np.ndarray, color: np.ndarray, alpha: float = 0.5) -> np.ndarray:
  """`(1 - alpha) * image + alpha * color`, rounded to uint8: a colourised
  class map (`colorize`) blended over its image."""
  blended = (1.0 - alpha) * image.astype(np.float32) + alpha * color.astype(np.float32)
  return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def comparison_strip(images: np.ndarray, labels: np.ndarray,
                     predictions: np.ndarray, colors) -> np.ndarray:
  """`[B, H, 3W, 3]` uint8: input | ground truth | prediction, side by side."""
  return np.concatenate([np.asarray(images, np.uint8), colorize(labels, colors),
                         colorize(predictions, colors)], axis=2)


def write_scalars(writer, step: int, values: dict):
  with writer.as_default(step=step):
    for name, value in values.items():
      tf.summary.scalar(name, value)


def write_metrics(writer, step: int, scores: dict, class_names: Sequence[str]):
  """Every validation metric, per-class IoU and accuracy included."""
  with writer.as_default(step=step):
    for name in SUMMARY_METRICS:
      if name in scores:
        tf.summary.scalar(f"metrics/{name}", scores[name])
    for i, name in enumerate(class_names):
      for kind in ("iou", "accuracy"):
        value = scores[f"per_class_{kind}"][i]
        if not np.isnan(value):
          tf.summary.scalar(f"per_class_{kind}/{i:02d}_{name}", value)


def read_events(log_dir: str) -> Iterator[event_pb2.Event]:
  """Every event of `log_dir`'s event files, file by file in name order."""
  for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
    for record in tf.data.TFRecordDataset(path):
      yield event_pb2.Event.FromString(record.numpy())


def write_config(writer, step: int, config: str):
  """The operative configuration as a text summary (indented: Markdown code)."""
  with writer.as_default(step=step):
    tf.summary.text(OPERATIVE_CONFIG_TAG, "\n".join("    " + line for line in config.splitlines()))


def write_prediction_images(writer, step: int, model, dataset, colors, count: int):
  """Input | truth | prediction strips of the first `count` examples of
  `dataset` (an eval dataset, batch `count`), in the dataset's colours."""
  if count <= 0:
    return
  batch = next(iter(dataset))
  predictions = tf.argmax(model(batch["image"]), axis=-1).numpy()
  strip = comparison_strip(batch["image"].numpy(), batch["label"].numpy(), predictions, colors)
  with writer.as_default(step=step):
    tf.summary.image("input_truth_prediction", strip[batch["mask"].numpy()],
                     max_outputs=count)
