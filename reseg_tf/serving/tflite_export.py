"""The model as a LiteRT (TFLite) flatbuffer: one fixed size, builtin ops only.

  python -m reseg_tf.export --model_dir=runs/camvid --format=tflite --input_size=360x480
  python -m reseg_tf.export --model=camvid_no_vgg_cycle4 --format=tflite --input_size=360x480 \
      --tflite_quantize=dynamic_range

write, next to the SavedModel versions of the export folder (TF Serving
ignores files):

    <name>-<version>-<H>x<W>.tflite                float32
    <name>-<version>-<H>x<W>-dynamic_range.tflite  with --tflite_quantize=dynamic_range
    <name>-<version>-<H>x<W>.tflite.json           the signature, class table, provenance

(`-b<B>` follows the size when the batch size B is not 1.) Each .tflite has
one signature, `serving_default`, as the SavedModel's (`segmenter.py`, void
handling included) at a fixed shape:

    images: uint8 [B, H, W, 3] RGB
      -> classes: int32 [B, H, W], probabilities: float32 [B, H, W, K]

with the preprocessing inside. The ops are TFLite builtins only
(`TFLITE_BUILTINS`, no Flex), so any LiteRT interpreter runs it; the model
is built in the `lowering.FIXED_SIZE` form (static shapes, the ReNet sweeps
unrolled into one step per time step, the input resize as constant
matrices, float32 throughout; docs/performance.md says why unrolled). `dynamic_range`: the converter's dynamic-range
quantization (weights of the matmuls and convolutions in int8, activations
float32, quantized on the fly): less than half the size at CamVid's (the
unrolled graph itself is not quantized), classes close to the float32
model's (measured in tests/tflite_export_test.py and benchmarks/tflite.py).

Running one: `TFLiteSegmenter(path)(images)`, which checks the images'
shape and dtype first (the interpreter's own error for a wrong size is an
XNNPACK "failed to prepare"). It uses the `ai-edge-litert` package (the
`tflite` extra) when installed, else TensorFlow's deprecated
`tf.lite.Interpreter`; neither has the Flex delegate, nor needs it.
"""

import json
import os
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from reseg_tf.common.errors import InputError, MissingFileError
from reseg_tf.model import lowering as lowering_lib
from reseg_tf.model import reseg as model_lib
from reseg_tf.serving import segmenter as segmenter_lib

FLOAT32 = "float32"
DYNAMIC_RANGE = "dynamic_range"
VARIANTS = (FLOAT32, DYNAMIC_RANGE)
QUANTIZE_CHOICES = ("none", DYNAMIC_RANGE)  # --tflite_quantize.
SIGNATURE = segmenter_lib.DEFAULT_SIGNATURE


def parse_input_size(text: Optional[str], flag: str = "--input_size") -> Tuple[int, int]:
  """`"360x480"` -> `(360, 480)`.

  Raises:
    InputError: `text` is missing or not two positive integers `HxW`.
  """
  match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text or "")
  if not match or min(int(match[1]), int(match[2])) < 1:
    raise InputError(flag, f"{text!r} is not a size HEIGHTxWIDTH in pixels, e.g. 360x480"
                     if text else "required: the model's fixed input size HEIGHTxWIDTH, "
                     "e.g. 360x480")
  return int(match[1]), int(match[2])


def serving_function(model: model_lib.ReSeg, input_size: Sequence[int],
                     batch_size: int = 1,
                     lowering: lowering_lib.Lowering = lowering_lib.FIXED_SIZE
                     ) -> tf.types.experimental.PolymorphicFunction:
  """The `tf.function` converted: `serving_default` at a fixed shape (also
  the ONNX export's, `onnx_export.py`), with the model in `lowering`'s form
  (`FIXED_SIZE`: builtin TFLite ops only)."""
  height, width = input_size

  @tf.function(input_signature=[tf.TensorSpec(
      [batch_size, height, width, 3], tf.uint8, name=segmenter_lib.IMAGES_KEY)])
  def serve(images):
    return segmenter_lib.postprocess(model(images, lowering), model.num_classes)

  return serve


def convert(model: model_lib.ReSeg, input_size: Sequence[int], batch_size: int = 1,
            variants: Sequence[str] = (FLOAT32,),
            lowering: lowering_lib.Lowering = lowering_lib.FIXED_SIZE) -> Dict[str, bytes]:
  """Converts `model` at a fixed size to TFLite flatbuffers.

  Args:
    model: a `ReSeg`.
    input_size: `(H, W)`.
    batch_size: `B`.
    variants: any of `VARIANTS`: `"float32"`, `"dynamic_range"`.
    lowering: the model's form (`FIXED_SIZE`; other forms are for
      benchmarks, e.g. the rejected `tf.scan` sweeps).

  Returns:
    `{variant: flatbuffer}`.

  Raises:
    ValueError: an unknown variant, or a batch size below 1.
  """
  unknown = set(variants) - set(VARIANTS)
  if unknown or batch_size < 1:
    raise ValueError(f"variants must be among {VARIANTS} and batch_size >= 1, got "
                     f"{tuple(variants)} and {batch_size}")
  function = serving_function(model, input_size, batch_size, lowering).get_concrete_function()
  models = {}
  for variant in variants:
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], model)
    # Builtins only: the users' interpreters have no Flex delegate.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant == DYNAMIC_RANGE:
      converter.optimizations = [tf.lite.Optimize.DEFAULT]  # No dataset: dynamic range.
    models[variant] = converter.convert()
  return models


def file_stem(name: str, version: int, input_size: Sequence[int], batch_size: int = 1) -> str:
  """`<name>-<version>-<H>x<W>[-b<B>]`, the exported files' common stem."""
  batch = f"-b{batch_size}" if batch_size != 1 else ""
  return f"{name}-{version}-{input_size[0]}x{input_size[1]}{batch}"


def model_path(export_dir: str, stem: str, variant: str = FLOAT32) -> str:
  """The .tflite file of `variant`."""
  suffix = "" if variant == FLOAT32 else f"-{variant}"
  return os.path.join(export_dir, f"{stem}{suffix}.tflite")


def info_path(tflite_path: str) -> str:
  """The JSON written next to a .tflite file (either variant)."""
  stem = tflite_path.removesuffix(".tflite")
  for variant in VARIANTS:
    stem = stem.removesuffix(f"-{variant}")
  return stem + ".tflite.json"


def export_tflite(model: model_lib.ReSeg, export_dir: str, stem: str,
                  input_size: Sequence[int], class_table: dict, batch_size: int = 1,
                  quantize: str = "none", info: Optional[dict] = None,
                  overwrite: bool = False) -> List[str]:
  """Writes the float32 .tflite, the quantized one if asked, and the JSON.

  Args:
    model: a `ReSeg`.
    export_dir: the folder (created if absent).
    stem: the files' stem (`file_stem`).
    input_size: `(H, W)`.
    class_table: `{"dataset", "class_names", "class_colors"}` for the JSON.
    batch_size: `B`.
    quantize: one of `QUANTIZE_CHOICES`: `"none"` or `"dynamic_range"` (also
      write that variant).
    info: JSON-serialisable provenance (checkpoint, step...) for the JSON.
    overwrite: replace existing files.

  Returns:
    The paths written, the .tflite files first.

  Raises:
    InputError: a file exists and `overwrite` is False.
    ValueError: an unknown `quantize`.
  """
  if quantize not in QUANTIZE_CHOICES:
    raise ValueError(f"quantize must be one of {QUANTIZE_CHOICES}, got {quantize!r}")
  variants = (FLOAT32,) if quantize == "none" else (FLOAT32, quantize)
  paths = {variant: model_path(export_dir, stem, variant) for variant in variants}
  json_path = info_path(paths[FLOAT32])
  check_absent([*paths.values(), json_path], overwrite)
  flatbuffers = convert(model, input_size, batch_size, variants)
  document = describe(model, input_size, batch_size, class_table, info, "tflite",
                      {variant: (paths[variant], flatbuffers[variant]) for variant in variants})
  return write_files(export_dir, [(paths[v], flatbuffers[v]) for v in variants] +
                     [(json_path, json.dumps(document, indent=1).encode())])


def check_absent(paths: Sequence[str], overwrite: bool) -> None:
  """Raises `InputError` for the first of `paths` that exists, unless `overwrite`."""
  for path in paths:
    if tf.io.gfile.exists(path) and not overwrite:
      raise InputError(path, "exists: choose another version (--version=N) or pass --overwrite")


def describe(model: model_lib.ReSeg, input_size: Sequence[int], batch_size: int,
             class_table: dict, info: Optional[dict], fmt: str, files: dict) -> dict:
  """The JSON document next to the model files: `info`, the format, the
  signature's shapes and dtypes, `files` (`{variant: (path, bytes)}`, as
  names and sizes) and the class table."""
  height, width = input_size
  table = {key: class_table[key] for key in ("dataset", "class_names", "class_colors")}
  return dict(
      info or {}, format=fmt, signature=SIGNATURE,
      inputs={segmenter_lib.IMAGES_KEY: {"shape": [batch_size, height, width, 3],
                                         "dtype": "uint8"}},
      outputs={segmenter_lib.CLASSES_KEY: {"shape": [batch_size, height, width],
                                           "dtype": "int32"},
               segmenter_lib.PROBABILITIES_KEY: {
                   "shape": [batch_size, height, width, model.num_classes],
                   "dtype": "float32"}},
      files={variant: os.path.basename(path) for variant, (path, _) in files.items()},
      bytes={variant: len(data) for variant, (_, data) in files.items()}, **table)


def write_files(export_dir: str, outputs: Sequence[Tuple[str, bytes]]) -> List[str]:
  """Writes `(path, bytes)` pairs in `export_dir` (created); returns the paths."""
  tf.io.gfile.makedirs(export_dir)
  for path, data in outputs:
    # Written aside and renamed: a reader never sees half a file.
    temp = os.path.join(export_dir, f".tmp-{os.getpid()}-{os.path.basename(path)}")
    with tf.io.gfile.GFile(temp, "wb") as f:
      f.write(data)
    tf.io.gfile.rename(temp, path, overwrite=True)
  return [path for path, _ in outputs]


def _interpreter_class():
  try:
    from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415
  except ImportError:  # Without the `tflite` extra: TensorFlow's deprecated copy.
    Interpreter = tf.lite.Interpreter  # noqa: N806
  return Interpreter


class TFLiteSegmenter:
  """Runs an exported .tflite model on numpy images.

  Attributes:
    path: the .tflite file.
    input_shape: `(B, H, W, 3)`, the fixed shape it takes.
    input_dtype: `numpy.uint8`.
    info: the JSON written next to it (class table, provenance), or `{}`.
    interpreter: the LiteRT interpreter.
  """

  def __init__(self, path: str, num_threads: Optional[int] = None):
    """Loads the model.

    Args:
      path: a .tflite file written by `export_tflite`.
      num_threads: the interpreter's CPU threads (None: its default).

    Raises:
      MissingFileError: no such file.
    """
    if not tf.io.gfile.exists(path):
      raise MissingFileError(path, "not found")
    self.path = path
    self.interpreter = _interpreter_class()(model_path=path, num_threads=num_threads)
    self._run = self.interpreter.get_signature_runner(SIGNATURE)
    spec = self._run.get_input_details()[segmenter_lib.IMAGES_KEY]
    self.input_shape = tuple(int(d) for d in spec["shape"])
    self.input_dtype = np.dtype(spec["dtype"])
    self.info = {}
    if tf.io.gfile.exists(info_path(path)):
      with tf.io.gfile.GFile(info_path(path)) as f:
        self.info = json.load(f)

  def __call__(self, images) -> Dict[str, np.ndarray]:
    """uint8 `[B, H, W, 3]` (exactly `input_shape`) -> `{"classes", "probabilities"}`.

    Raises:
      ValueError: `images` has another shape or dtype; the message names
        the expected ones.
    """
    images = check_images(images, self.input_shape, self.input_dtype, self.path)
    return self._run(**{segmenter_lib.IMAGES_KEY: images})


def check_images(images, shape: Sequence[int], dtype: np.dtype, path: str) -> np.ndarray:
  """`images` as a numpy array, checked against a fixed-size model's input.

  Raises:
    ValueError: another shape or dtype; the message names the expected ones.
  """
  images = np.asarray(images)
  if images.shape == tuple(shape) and images.dtype == dtype:
    return images
  hint = ""
  if images.ndim != 4:
    hint = "; images are [batch, height, width, RGB]"
  elif images.shape[1:3] != tuple(shape[1:3]):
    hint = (f"; the size is fixed at export: resize the images, or export again "
            f"with --input_size={images.shape[1]}x{images.shape[2]}")
  raise ValueError(f"{path} takes images {np.dtype(dtype).name} {list(shape)} (RGB 0..255), "
                   f"got {images.dtype.name} {list(images.shape)}{hint}")
