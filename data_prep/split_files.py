"""A records split written back to image and label PNG files (data_prep.extract)."""

import os

import numpy as np
import tensorflow as tf
from PIL import Image

from reseg_tf.data import input_pipeline, records


def write_split_files(records_dir: str, split: str, output_dir: str, limit=None) -> list:
  """Writes `<stem>.png` images and `labels/<stem>.png`; returns the stems."""
  os.makedirs(os.path.join(output_dir, "labels"), exist_ok=True)
  dataset = tf.data.TFRecordDataset(input_pipeline.shard_files(records_dir, split))
  stems = []
  for serialized in dataset.take(-1 if limit is None else limit):
    example = records.decode_example(serialized)
    stem = os.path.splitext(os.path.basename(example["filename"].numpy().decode()))[0]
    if stem in stems:  # Same name in two source folders: keep both.
      stem = f"{stem}_{len(stems)}"
    Image.fromarray(example["image"].numpy()).save(os.path.join(output_dir, f"{stem}.png"))
    Image.fromarray(np.asarray(example["label"].numpy(), np.uint8)).save(
        os.path.join(output_dir, "labels", f"{stem}.png"))
    stems.append(stem)
  return stems
