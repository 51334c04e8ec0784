r"""Exports a trained ReSeg as a SavedModel that TensorFlow Serving loads as is.

  python -m reseg_tf.export --model_dir=runs/camvid     # -> runs/camvid/export/<step>/
  python -m reseg_tf.export --model_dir=runs/camvid --export_dir=/models/reseg \
      --checkpoint=latest --version=next

Writes `<export_dir>/<version>/` with two signatures (see reseg_tf/serving.py):
`serving_default` (uint8 images [B, H, W, 3]) and `serving_bytes` (encoded
PNG/JPEG strings [B]), both returning `classes` (int32 [B, H, W]) and
`probabilities` (float32 [B, H, W, K]), plus the class names and colours.
The version is the checkpoint's training step by default.
"""

import os
import sys

from absl import app, flags, logging

from reseg_tf import restore, serving

_MODEL_DIR = flags.DEFINE_string("model_dir", None, "The training run's folder (required).")
_GIN_FILE = flags.DEFINE_multi_string(
    "gin_file", [], "Gin files that build the model (repeatable). Default: "
    "<model_dir>/operative_config.gin.")
_GIN_BINDINGS = flags.DEFINE_multi_string(
    "gin_bindings", [], "Gin bindings applied after the files. Default: none.")
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", "best", "'best', 'latest' or a checkpoint path.")
_RECORDS_DIR = flags.DEFINE_string(
    "records_dir", None, "Records whose metadata.json gives the class names and "
    "colours. Default: train.records_dir of the gin configuration (generic names "
    "and colours if it is absent).")
_EXPORT_DIR = flags.DEFINE_string(
    "export_dir", None, "Base folder of the versions (TF Serving's "
    "--model_base_path). Default: <model_dir>/export.")
_VERSION = flags.DEFINE_string(
    "version", "step", "'step': the checkpoint's training step; 'next': one more "
    "than the highest version in --export_dir (1 if none); or a positive integer.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing version folder.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not _MODEL_DIR.value:
    raise app.UsageError("give --model_dir")
  try:
    restored = restore.load(_MODEL_DIR.value, _CHECKPOINT.value, _GIN_FILE.value,
                            _GIN_BINDINGS.value)
  except FileNotFoundError as e:  # No config or no such checkpoint.
    sys.exit(f"error: {e}")
  export_dir = _EXPORT_DIR.value or os.path.join(_MODEL_DIR.value, "export")
  if _VERSION.value == "step":
    if not restored.step:
      raise app.UsageError(f"{restored.checkpoint} has no step in its name: "
                           "give --version=next or a number")
    version = restored.step
  elif _VERSION.value == "next":
    version = serving.next_version(export_dir)
  elif _VERSION.value.isdigit() and int(_VERSION.value) > 0:
    version = int(_VERSION.value)
  else:
    raise app.UsageError(f"--version={_VERSION.value}: 'step', 'next' or a positive integer")

  table = restore.load_class_table(_RECORDS_DIR.value or restored.records_dir,
                                   restored.model.num_classes)
  logging.info("Class names and colours from %s", table["source"])
  segmenter = serving.Segmenter(restored.model, table["class_names"],
                                table["class_colors"], table["dataset"])
  config = os.path.join(_MODEL_DIR.value, restore.OPERATIVE_CONFIG)
  extra_files = {}
  if os.path.exists(config):
    with open(config) as f:
      extra_files[restore.OPERATIVE_CONFIG] = f.read()
  try:
    path = serving.export_saved_model(
        segmenter, export_dir, version, overwrite=_OVERWRITE.value,
        info={"checkpoint": restored.checkpoint, "step": restored.step,
              "void_as_class": restored.model.void_as_class,
              "class_table_source": table["source"]},
        extra_files=extra_files)
  except FileExistsError as e:
    raise app.UsageError(f"{e} (pass --overwrite, or --version=next)")
  print(f"Exported {restored.checkpoint} to {path}")


if __name__ == "__main__":
  app.run(main)
