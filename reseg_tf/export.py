r"""Exports a trained ReSeg as a SavedModel that TensorFlow Serving loads as is.

  python -m reseg_tf.export --model=camvid_no_vgg       # -> exports/camvid_no_vgg/<step>/
  python -m reseg_tf.export --model_dir=runs/camvid     # -> runs/camvid/export/<step>/
  python -m reseg_tf.export --model_dir=runs/camvid --export_dir=/models/reseg \
      --checkpoint=latest --version=next

Writes `<export_dir>/<version>/` with two signatures (see
reseg_tf/serving/segmenter.py): `serving_default` (uint8 images [B, H, W, 3])
and `serving_bytes` (encoded PNG/JPEG strings [B]), both returning `classes`
(int32 [B, H, W]) and `probabilities` (float32 [B, H, W, K]), plus the class
names and colours. The version is the checkpoint's training step by default.
"""

import os

from absl import app, flags

from reseg_tf import cli
from reseg_tf.common import run_files
from reseg_tf.serving import segmenter as segmenter_lib

_MODEL = cli.define_model_flags(
    "Records whose metadata.json gives the class names and colours. Default: "
    "the model's own class table (model_info.json).")
_EXPORT_DIR = flags.DEFINE_string(
    "export_dir", None, "Base folder of the versions (TF Serving's "
    "--model_base_path). Default: <model_dir>/export for a run, "
    "exports/<model> for a published model.")
_VERSION = flags.DEFINE_string(
    "version", "step", "'step': the checkpoint's training step; 'next': one more "
    "than the highest version in --export_dir (1 if none); or a positive integer.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing version folder.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  restored = cli.load_model(_MODEL)
  if _EXPORT_DIR.value:
    export_dir = _EXPORT_DIR.value
  elif _MODEL.model.value:
    export_dir = os.path.join("exports", restored.name)
  else:
    export_dir = os.path.join(restored.folder or ".", "export")
  version = segmenter_lib.resolve_version(_VERSION.value, export_dir, restored.step)
  table = restored.class_table(_MODEL.records_dir.value)
  segmenter = segmenter_lib.Segmenter(restored.model, table["class_names"],
                                      table["class_colors"], table["dataset"])
  extra_files = {}
  for config in (run_files.OPERATIVE_CONFIG, run_files.PUBLISHED_CONFIG):
    path = os.path.join(restored.folder or ".", config)
    if restored.folder and os.path.exists(path):
      with open(path) as f:
        extra_files[run_files.OPERATIVE_CONFIG] = f.read()
  path = segmenter_lib.export_saved_model(
      segmenter, export_dir, version, overwrite=_OVERWRITE.value,
      info={"checkpoint": restored.checkpoint, "step": restored.step,
            "void_as_class": restored.model.void_as_class,
            "class_table_source": table["source"]},
      extra_files=extra_files)
  print(f"Exported {restored.checkpoint} to {path}")


if __name__ == "__main__":
  cli.run(main)
