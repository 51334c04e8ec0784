r"""Exports a trained ReSeg as a SavedModel that TensorFlow Serving loads as is.

  python -m reseg_tf.export --model=camvid_no_vgg_cycle4   # -> exports/camvid_no_vgg_cycle4/<step>/
  python -m reseg_tf.export --model_dir=runs/camvid        # -> runs/camvid/export/<step>/
  python -m reseg_tf.export --model_dir=runs/camvid --export_dir=/models/reseg \
      --checkpoint=latest --version=next

Writes `<export_dir>/<version>/` with two signatures (see
reseg_tf/serving/segmenter.py): `serving_default` (uint8 images [B, H, W, 3])
and `serving_bytes` (encoded PNG/JPEG strings [B]), both returning `classes`
(int32 [B, H, W]) and `probabilities` (float32 [B, H, W, K]), plus the class
names and colours. The version is the checkpoint's training step by default.

  python -m reseg_tf.export --model_dir=runs/camvid --format=tflite --input_size=360x480 \
      [--tflite_quantize=dynamic_range] [--batch_size=1]

Writes a LiteRT (TFLite) model instead, at one fixed size, with builtin ops
only: `<export_dir>/<name>-<version>-<H>x<W>.tflite` (and its
`-dynamic_range` variant, and a `.tflite.json` with the signature and the class
table); see reseg_tf/serving/tflite_export.py. `--format=onnx` writes
`<name>-<version>-<H>x<W>.onnx` and its `.onnx.json` (reseg_tf/serving/onnx_export.py).
"""

import os

from absl import app, flags

from reseg_tf import cli
from reseg_tf.common import run_files
from reseg_tf.common.errors import InputError
from reseg_tf.model import lowering
from reseg_tf.serving import onnx_export, tflite_export
from reseg_tf.serving import segmenter as segmenter_lib

FORMATS = ("saved_model", "tflite", "onnx")

_MODEL = cli.define_model_flags(
    "Records whose metadata.json gives the class names and colours. Default: "
    "the model's own class table (model_info.json).")
_EXPORT_DIR = flags.DEFINE_string(
    "export_dir", None, "Base folder of the versions (TF Serving's "
    "--model_base_path; the files of --format=tflite or onnx go there too). "
    "Default: <model_dir>/export for a run, exports/<model> for a published model.")
_VERSION = flags.DEFINE_string(
    "version", "step", "'step': the checkpoint's training step; 'next': one more "
    "than the highest version in --export_dir, folders and .tflite/.onnx file names (1 if none); or a positive integer.")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Replace an existing version folder (or the files of "
    "--format=tflite or onnx).")
_FORMAT = flags.DEFINE_string(
    "format", "saved_model", "'saved_model' (TF Serving; any image size), "
    "'tflite' (LiteRT: one fixed --input_size, builtin ops only) or 'onnx' "
    "(onnxruntime: one fixed --input_size; needs the onnx extra).")
_INPUT_SIZE = flags.DEFINE_string(
    "input_size", None, "With --format=tflite or onnx (required): the model's "
    "fixed image size HEIGHTxWIDTH, e.g. 360x480.")
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", 1, "With --format=tflite or onnx: the model's fixed batch size.")
_TFLITE_QUANTIZE = flags.DEFINE_string(
    "tflite_quantize", "none", "With --format=tflite: 'none' (float32 only) or "
    "'dynamic_range' (also write a model with int8 weights: less than half the "
    "size at 360x480).")


def check_format_flags():
  """Checks --format and the flags that go with it, before the model loads.

  Returns:
    `(H, W)` for the fixed-size formats (tflite, onnx), else None.

  Raises:
    InputError: an unknown format or quantization, a bad size, or a flag
      that does not apply to the format.
  """
  if _FORMAT.value not in FORMATS:
    raise InputError("--format", f"{_FORMAT.value!r} is not one of {', '.join(FORMATS)}")
  if _FORMAT.value == "saved_model":
    for flag, given in (("--input_size", _INPUT_SIZE.value is not None),
                        ("--batch_size", _BATCH_SIZE.value != 1),
                        ("--tflite_quantize", _TFLITE_QUANTIZE.value != "none")):
      if given:
        raise InputError(flag, "only with --format=tflite or onnx (the SavedModel "
                         "takes any batch and image size, in float32)")
    return None
  if _FORMAT.value == "onnx" and _TFLITE_QUANTIZE.value != "none":
    raise InputError("--tflite_quantize", "only with --format=tflite")
  if _TFLITE_QUANTIZE.value not in tflite_export.QUANTIZE_CHOICES:
    raise InputError("--tflite_quantize", f"{_TFLITE_QUANTIZE.value!r} is not one of "
                     f"{', '.join(tflite_export.QUANTIZE_CHOICES)}")
  if _BATCH_SIZE.value < 1:
    raise InputError("--batch_size", f"{_BATCH_SIZE.value} is not a positive integer")
  return tflite_export.parse_input_size(_INPUT_SIZE.value)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")

  input_size = check_format_flags()
  restored = cli.load_model(_MODEL)
  if _EXPORT_DIR.value:
    export_dir = _EXPORT_DIR.value
  elif _MODEL.model.value:
    export_dir = os.path.join("exports", restored.name)
  else:
    export_dir = os.path.join(restored.folder or ".", "export")
  version = segmenter_lib.resolve_version(_VERSION.value, export_dir, restored.step)
  table = restored.class_table(_MODEL.records_dir.value)
  info = {"checkpoint": restored.checkpoint, "step": restored.step,
          "void_as_class": restored.model.void_as_class, "class_table_source": table["source"]}
  if input_size:
    stem = tflite_export.file_stem(restored.name, version, input_size, _BATCH_SIZE.value)
    info = dict(info, version=version)
    if _FORMAT.value == "onnx":
      paths = onnx_export.export_onnx(restored.model, export_dir, stem, input_size, table,
                                      _BATCH_SIZE.value, info, overwrite=_OVERWRITE.value)
    else:
      paths = tflite_export.export_tflite(
          restored.model, export_dir, stem, input_size, table, _BATCH_SIZE.value,
          _TFLITE_QUANTIZE.value, info, overwrite=_OVERWRITE.value)
    print(f"Exported {restored.checkpoint} to {', '.join(paths)}")
    return
  segmenter = segmenter_lib.Segmenter(restored.model, table["class_names"],
                                      table["class_colors"], table["dataset"],
                                      lowering=lowering.SAVED_MODEL)
  extra_files = {}
  for config in (run_files.OPERATIVE_CONFIG, run_files.PUBLISHED_CONFIG):
    path = os.path.join(restored.folder or ".", config)
    if restored.folder and os.path.exists(path):
      with open(path) as f:
        extra_files[run_files.OPERATIVE_CONFIG] = f.read()
  path = segmenter_lib.export_saved_model(
      segmenter, export_dir, version, overwrite=_OVERWRITE.value,
      info=info, extra_files=extra_files)
  print(f"Exported {restored.checkpoint} to {path}")


if __name__ == "__main__":
  cli.run(main)
