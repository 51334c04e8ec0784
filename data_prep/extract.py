r"""Writes the images and label maps of a records split back to PNG files.

  python -m data_prep.extract --records_dir=data/horse --split=test --limit=6
  # -> data/horse/extracted/test/<stem>.png and .../labels/<stem>.png

For looking at what the converter wrote, and for `reseg_tf.predict`: its
`--input` takes the images folder and `--labels` the labels folder (class
ids, 255 void), which draws the ground truth in the contact sheets. Examples
come in file order (shards sorted, records in order), so a --limit picks the
same ones every time.
"""

import os

from absl import app, flags
import numpy as np
from PIL import Image
import tensorflow as tf

from reseg_tf import input_pipeline, records

_RECORDS_DIR = flags.DEFINE_string("records_dir", None, "The converter's output folder (required).")
_SPLIT = flags.DEFINE_string("split", "test", "The split to extract.")
_LIMIT = flags.DEFINE_integer("limit", None, "At most this many examples. Default: all.")
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "Where to write. Default: <records_dir>/extracted/<split>.")


def extract(records_dir: str, split: str, output_dir: str, limit=None) -> list:
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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not _RECORDS_DIR.value:
    raise app.UsageError("give --records_dir")
  output_dir = _OUTPUT_DIR.value or os.path.join(_RECORDS_DIR.value, "extracted", _SPLIT.value)
  try:
    stems = extract(_RECORDS_DIR.value, _SPLIT.value, output_dir, _LIMIT.value)
  except FileNotFoundError as e:
    raise SystemExit(f"error: {e}")
  print(f"Wrote {len(stems)} images to {output_dir} and their labels to "
        f"{os.path.join(output_dir, 'labels')}")


if __name__ == "__main__":
  app.run(main)
