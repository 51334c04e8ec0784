"""The model as ONNX, at one fixed size, for onnxruntime.

  python -m reseg_tf.export --model_dir=runs/camvid --format=onnx --input_size=360x480

writes `<name>-<version>-<H>x<W>.onnx` and its `.onnx.json` in the export folder,
as `tflite_export.py` does, with the same signature (uint8 `images`
`[B, H, W, 3]` -> int32 `classes`, float32 `probabilities`). tf2onnx
converts the same fixed-size function as the .tflite (`lowering.FIXED_SIZE`),
not a Keras model. Needs the `onnx` extra (tf2onnx, onnxruntime).

Why a fixed size: tf2onnx also converts the SavedModel's `tf.scan` form at
any size, but its outputs are then a pixel short for sizes that are not
multiples of the model's stride (17x23 -> 16x22 with tf2onnx 1.17: it
looks like the padding `(-h) % stride` comes out negative). At 360x480 the
unrolled form takes ~1.5 min and ~2 GB to convert (the scan form ~20 s) and
runs at about the float32 .tflite's speed in onnxruntime
(`benchmarks/tflite.py --onnx`); the scan form was ~20% slower there.
"""

import importlib
import json
import logging
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from reseg_tf.common.errors import InputError, MissingFileError
from reseg_tf.model import reseg as model_lib
from reseg_tf.serving import segmenter as segmenter_lib
from reseg_tf.serving import tflite_export

OPSET = 17  # onnxruntime >= 1.14 runs it.


def _require(module: str):
  try:
    return importlib.import_module(module)
  except ImportError as e:
    raise InputError("--format=onnx", f"needs the {module.split('.')[0]} package: "
                     "pip install 'reseg-tf[onnx]'") from e


def convert(model: model_lib.ReSeg, input_size: Sequence[int], batch_size: int = 1) -> bytes:
  """Converts `model` at a fixed size to a serialized ONNX model.

  Raises:
    InputError: tf2onnx is not installed.
    ValueError: tf2onnx left an op it could not convert.
  """
  tf2onnx_convert = _require("tf2onnx.convert")
  logging.getLogger("tf2onnx").setLevel(logging.WARNING)  # INFO: every optimizer pass.
  function = tflite_export.serving_function(model, input_size, batch_size)
  proto, _ = tf2onnx_convert.from_function(function, function.input_signature, opset=OPSET)
  # from_function carries on past ops it cannot convert, leaving TF ops in.
  foreign = {node.op_type for node in proto.graph.node if node.domain not in ("", "ai.onnx")}
  if foreign:
    raise ValueError(f"tf2onnx could not convert the ops {sorted(foreign)}")
  return proto.SerializeToString()


def export_onnx(model: model_lib.ReSeg, export_dir: str, stem: str,
                input_size: Sequence[int], class_table: dict, batch_size: int = 1,
                info: Optional[dict] = None, overwrite: bool = False) -> List[str]:
  """Writes `<stem>.onnx` and `<stem>.onnx.json`; see `tflite_export.export_tflite`.

  Raises:
    InputError: a file exists and `overwrite` is False, or tf2onnx is not
      installed.
  """
  path = os.path.join(export_dir, f"{stem}.onnx")
  json_path = path + ".json"
  tflite_export.check_absent([path, json_path], overwrite)
  data = convert(model, input_size, batch_size)
  document = tflite_export.describe(model, input_size, batch_size, class_table, info, "onnx",
                                    {tflite_export.FLOAT32: (path, data)})
  document["opset"] = OPSET
  return tflite_export.write_files(
      export_dir, [(path, data), (json_path, json.dumps(document, indent=1).encode())])


class ONNXSegmenter:
  """Runs an exported .onnx model in onnxruntime, as `TFLiteSegmenter`.

  Attributes:
    path, input_shape, input_dtype: as `TFLiteSegmenter`'s.
    session: the `onnxruntime.InferenceSession`.
  """

  def __init__(self, path: str, num_threads: Optional[int] = None):
    """Loads the model (`num_threads`: onnxruntime's intra-op threads)."""
    if not tf.io.gfile.exists(path):
      raise MissingFileError(path, "not found")
    ort = _require("onnxruntime")
    options = ort.SessionOptions()
    if num_threads:
      options.intra_op_num_threads = num_threads
    self.path = path
    self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    spec = self.session.get_inputs()[0]
    self.input_shape = tuple(spec.shape)
    self.input_dtype = np.dtype(np.uint8)  # The signature's, checked at export.
    self._outputs = [segmenter_lib.CLASSES_KEY, segmenter_lib.PROBABILITIES_KEY]

  def __call__(self, images) -> Dict[str, np.ndarray]:
    """uint8 `[B, H, W, 3]` (exactly `input_shape`) -> `{"classes", "probabilities"}`.

    Raises:
      ValueError: `images` has another shape or dtype.
    """
    images = tflite_export.check_images(images, self.input_shape, self.input_dtype, self.path)
    values = self.session.run(self._outputs, {segmenter_lib.IMAGES_KEY: images})
    return dict(zip(self._outputs, values))
