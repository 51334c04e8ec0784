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

from data_prep import split_files

_RECORDS_DIR = flags.DEFINE_string("records_dir", None, "The converter's output folder (required).")
_SPLIT = flags.DEFINE_string("split", "test", "The split to extract.")
_LIMIT = flags.DEFINE_integer("limit", None, "At most this many examples. Default: all.")
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "Where to write. Default: <records_dir>/extracted/<split>.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not _RECORDS_DIR.value:
    raise app.UsageError("give --records_dir")
  output_dir = _OUTPUT_DIR.value or os.path.join(_RECORDS_DIR.value, "extracted", _SPLIT.value)
  try:
    stems = split_files.write_split_files(_RECORDS_DIR.value, _SPLIT.value, output_dir, _LIMIT.value)
  except FileNotFoundError as e:
    raise SystemExit(f"error: {e}") from None
  print(f"Wrote {len(stems)} images to {output_dir} and their labels to "
        f"{os.path.join(output_dir, 'labels')}")


if __name__ == "__main__":
  app.run(main)
