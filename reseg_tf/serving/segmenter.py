"""The exported model: a small `tf.Module` with two serving signatures.

`Segmenter` wraps a trained `model.ReSeg` with everything a client needs,
so that a client sends raw pixels (or encoded image files) and gets class
maps back. It is what `export_saved_model` saves (not the training object):

  serving_default(images: uint8 [B, H, W, 3])
      -> classes: int32 [B, H, W], probabilities: float32 [B, H, W, K]
  serving_bytes(image_bytes: string [B], PNG/JPEG (also BMP, GIF) files)
      -> the same outputs

Any height and width; preprocessing (the model's own "caffe" preprocessing
and padding to its stride) lives inside the graph.

Probabilities and void. `K` is the number of real classes. A model that
trains void as an extra class (the original CamVid code) has `K + 1`
outputs: the softmax runs over all of them and `probabilities` keeps the
real K (a pixel's K values then sum to 1 - p(void)); `classes` is the most
probable *real* class. (`evaluate` instead counts a void prediction as an
error, as the paper's evaluation does.)

`serving_bytes`: images are decoded with 3 channels, so grayscale becomes
RGB (the value copied to each channel) and RGBA or grayscale+alpha loses its
alpha channel (no compositing). Images of one batch may differ in size: when
they all have one size, they go through the model as one batch; otherwise
each goes through the model alone at its own size (exactly as if sent
alone, the recurrent sweeps never see padding), and the outputs are padded
bottom/right to the batch's largest height and width with class -1 and
probability 0. A batch that is empty, or holds an image that is not one of
the formats, or an image with no pixels, fails with `InvalidArgumentError`.

Class table. The module also holds the class names, colours (uint8 RGB) and
dataset name as variables (`class_names`, `class_colors`, `dataset`), so
`predict --saved_model` needs nothing else.

Nothing is compiled with XLA (`jit_compile`) here: TensorFlow Serving runs
XLA-compiled functions only with its experimental XLA flag, so the SavedModel
would not load "as is". The ReNet layers therefore run their `tf.scan`
form (the fused form needs static shapes and XLA).
"""

import json
import os
import re
import shutil
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from reseg_tf.common.errors import InputError, MissingFileError
from reseg_tf.model import lowering as lowering_lib
from reseg_tf.model import reseg as model_lib
from reseg_tf.model import test_time_augmentation

IMAGES_KEY = "images"
BYTES_KEY = "image_bytes"
CLASSES_KEY = "classes"
PROBABILITIES_KEY = "probabilities"
DEFAULT_SIGNATURE = "serving_default"
BYTES_SIGNATURE = "serving_bytes"
PADDING_CLASS = -1  # `classes` value outside an image in a mixed-size batch.
INFO_FILENAME = "reseg_export.json"  # In assets.extra/: provenance for people.

# File signatures of the formats `tf.io.decode_image` reads.
_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")


class Segmenter(tf.Module):
  """A trained ReSeg behind two `tf.function`s with input signatures.

  Attributes:
    model: the wrapped `model.ReSeg`.
    num_classes: `K`, the real classes.
    class_names: string variable `[K]`.
    class_colors: uint8 variable `[K, 3]`.
    dataset: string variable, e.g. "camvid" ("" when unknown).
    serve_images, serve_bytes: the two serving functions (see the module
      docstring); `signatures()` maps the signature names to them.
  """

  def __init__(self, model: model_lib.ReSeg, class_names: Sequence[str],
               class_colors: Sequence[Sequence[int]], dataset: str = "",
               lowering: lowering_lib.Lowering = lowering_lib.SAVED_MODEL,
               augmentation: test_time_augmentation.TestTimeAugmentation =
               test_time_augmentation.NONE,
               trace_now: bool = True,
               name: Optional[str] = "segmenter"):
    """Wraps `model` and traces both functions.

    Args:
      model: a `model.ReSeg` (its variables are shared, not copied).
      class_names: `K` names.
      class_colors: `K` RGB triples in 0..255.
      dataset: the records' dataset name (metadata.json's "dataset").
      lowering: the model's form: `SAVED_MODEL` (the default; builtin
        TensorFlow ops, what TF Serving runs) for a segmenter that is
        exported, `IN_PROCESS` (the compiled sweep where it loads) for one
        that only runs here.
      augmentation: test-time augmentation, the views whose probabilities
        are averaged (`model/test_time_augmentation.py`); default none. It
        is part of the traced functions, so an export keeps it.
      trace_now: trace both serving functions now, so that an export's
        errors surface here rather than at save time; False leaves each to
        its first call (in-process use, which may never need `serve_bytes`).
      name: module name.

    Raises:
      ValueError: `class_names` or `class_colors` do not have `K` entries.
    """
    super().__init__(name=name)
    if len(class_names) != model.num_classes or len(class_colors) != model.num_classes:
      raise ValueError(f"the model predicts {model.num_classes} classes, but got "
                       f"{len(class_names)} names and {len(class_colors)} colours")
    self.model = model
    self.lowering = lowering
    self.augmentation = augmentation
    self.num_classes = model.num_classes
    with self.name_scope:
      self.class_names = tf.Variable([str(n) for n in class_names], trainable=False,
                                     name="class_names")
      self.class_colors = tf.Variable(np.asarray(class_colors, np.uint8),
                                      trainable=False, name="class_colors")
      self.dataset = tf.Variable(dataset, trainable=False, name="dataset")
    if trace_now:
      self.serve_images.get_concrete_function()
      self.serve_bytes.get_concrete_function()

  @tf.function(input_signature=[
      tf.TensorSpec([None, None, None, 3], tf.uint8, name=IMAGES_KEY)])
  def serve_images(self, images):
    """uint8 `[B, H, W, 3]` RGB -> `{"classes", "probabilities"}`."""
    shape = tf.shape(images)
    checks = [
        tf.debugging.assert_positive(
            shape[0], message=f"{DEFAULT_SIGNATURE}: the batch is empty"),
        tf.debugging.assert_positive(
            shape[1] * shape[2],
            message=f"{DEFAULT_SIGNATURE}: images have no pixels (height or width 0)")]
    with tf.control_dependencies(checks):
      images = tf.identity(images)
    return self._predict(images)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=BYTES_KEY)])
  def serve_bytes(self, image_bytes):
    """string `[B]` encoded images -> `{"classes", "probabilities"}`."""
    count = tf.shape(image_bytes)[0]
    check = tf.debugging.assert_positive(
        count, message=f"{BYTES_SIGNATURE}: the batch is empty")
    with tf.control_dependencies([check]):
      count = tf.identity(count)

    def decode(i, images, sizes):
      data = image_bytes[i]
      known = tf.reduce_any([tf.equal(tf.strings.substr(data, 0, len(m)), m)
                             for m in _MAGIC])
      check = tf.debugging.Assert(known, [
          f"{BYTES_SIGNATURE}: image", i, "of the batch is not a PNG, JPEG, GIF "
          "or BMP file; it starts with", tf.strings.substr(data, 0, 8)])
      with tf.control_dependencies([check]):
        image = tf.io.decode_image(data, channels=3, dtype=tf.uint8,
                                   expand_animations=False)  # [H, W, 3]
      size = tf.shape(image)[:2]
      check = tf.debugging.Assert(tf.reduce_all(size > 0), [
          f"{BYTES_SIGNATURE}: image", i, "of the batch has no pixels, size", size])
      with tf.control_dependencies([check]):
        return i + 1, images.write(i, image), sizes.write(i, size)

    _, images, sizes = tf.while_loop(
        lambda i, *_: i < count, decode,
        (0, tf.TensorArray(tf.uint8, size=count, infer_shape=False,
                           element_shape=[None, None, 3]),
         tf.TensorArray(tf.int32, size=count, element_shape=[2])))
    sizes = sizes.stack()  # [B, 2]
    largest = tf.reduce_max(sizes, axis=0)  # [2]
    one_size = tf.reduce_all(sizes == largest)

    def as_one_batch():
      return self._predict(images.stack())

    def one_by_one():
      def predict(i, classes, probabilities):
        out = self._predict(images.read(i)[None])
        pad = largest - sizes[i]
        paddings = [[0, pad[0]], [0, pad[1]]]
        return (i + 1,
                classes.write(i, tf.pad(out[CLASSES_KEY][0], paddings,
                                        constant_values=PADDING_CLASS)),
                probabilities.write(i, tf.pad(out[PROBABILITIES_KEY][0],
                                              paddings + [[0, 0]])))

      _, classes, probabilities = tf.while_loop(
          lambda i, *_: i < count, predict,
          (0, tf.TensorArray(tf.int32, size=count, element_shape=[None, None]),
           tf.TensorArray(tf.float32, size=count,
                          element_shape=[None, None, self.num_classes])))
      return {CLASSES_KEY: classes.stack(), PROBABILITIES_KEY: probabilities.stack()}

    return tf.cond(one_size, as_one_batch, one_by_one)

  def _predict(self, images: tf.Tensor) -> dict:
    """uint8 `[B, H, W, 3]` -> int32 classes, float32 real-class probabilities."""
    return outputs(test_time_augmentation.probabilities(
        lambda views: self.model(views, self.lowering), images, self.num_classes,
        self.augmentation))

  def signatures(self) -> dict:
    """`{signature name: concrete function}` for `tf.saved_model.save`."""
    return {DEFAULT_SIGNATURE: self.serve_images.get_concrete_function(),
            BYTES_SIGNATURE: self.serve_bytes.get_concrete_function()}


def postprocess(logits: tf.Tensor, num_classes: int) -> dict:
  """Logits `[B, H, W, K or K + 1]` -> `{"classes": int32 [B, H, W],
  "probabilities": float32 [B, H, W, K]}`: the softmax over every output,
  then the real classes only (void is never predicted). Shared by the
  SavedModel, LiteRT and ONNX serving functions."""
  return outputs(test_time_augmentation.real_class_probabilities(logits, num_classes))


def outputs(probabilities: tf.Tensor) -> dict:
  """Real-class probabilities `[B, H, W, K]` -> the serving outputs: they
  and the most probable class of each pixel."""
  return {CLASSES_KEY: tf.argmax(probabilities, axis=-1, output_type=tf.int32),
          PROBABILITIES_KEY: probabilities}


def export_saved_model(segmenter: Segmenter, export_dir: str, version: int,
                       info: Optional[dict] = None, extra_files: Optional[dict] = None,
                       overwrite: bool = False) -> str:
  """Writes `segmenter` as `export_dir/<version>/`, the layout TF Serving polls.

  The SavedModel is written to a hidden sibling folder and renamed into
  place, so a server watching `export_dir` never sees a half-written
  version.

  Args:
    segmenter: what to save.
    export_dir: the model's base folder (TF Serving's `--model_base_path`).
    version: a positive integer (TF Serving serves the highest).
    info: JSON-serialisable provenance, written to
      `assets.extra/reseg_export.json` with the class table.
    extra_files: `{file name: text}` also written to `assets.extra/`.
    overwrite: replace an existing version folder.

  Returns:
    The version folder.

  Raises:
    InputError: the version exists and `overwrite` is False.
    ValueError: `version` is not a positive integer.
  """
  if int(version) != version or version < 1:
    raise ValueError(f"version must be a positive integer, got {version!r}")
  path = os.path.join(export_dir, str(int(version)))
  if tf.io.gfile.exists(path) and not overwrite:
    raise InputError(path, "exists: choose another version (--version=next) or "
                     "pass --overwrite")
  temp = os.path.join(export_dir, f".tmp-{int(version)}-{os.getpid()}")
  if tf.io.gfile.exists(temp):
    tf.io.gfile.rmtree(temp)
  tf.io.gfile.makedirs(export_dir)
  try:
    tf.saved_model.save(segmenter, temp, signatures=segmenter.signatures())
    extra = os.path.join(temp, "assets.extra")
    tf.io.gfile.makedirs(extra)
    table = class_table(segmenter)
    with tf.io.gfile.GFile(os.path.join(extra, INFO_FILENAME), "w") as f:
      json.dump(dict(info or {}, version=int(version), **table), f, indent=1)
    for name, text in (extra_files or {}).items():
      with tf.io.gfile.GFile(os.path.join(extra, name), "w") as f:
        f.write(text)
    if tf.io.gfile.exists(path):
      tf.io.gfile.rmtree(path)
    tf.io.gfile.rename(temp, path)
  except BaseException:
    if tf.io.gfile.exists(temp):
      shutil.rmtree(temp, ignore_errors=True)
    raise
  return path


def resolve_version(spec: str, export_dir: str, step: Optional[int]) -> int:
  """The version folder number `spec` names: "step" (the checkpoint's
  training step), "next" (one above the highest in `export_dir`) or a
  positive integer.

  Raises:
    InputError: `spec` is none of these, or "step" without a known step.
  """
  if spec == "step":
    if not step:
      raise InputError(spec, "the checkpoint's training step is unknown: give "
                       "--version=next or a number")
    return step
  if spec == "next":
    return next_version(export_dir)
  if spec.isdigit() and int(spec) > 0:
    return int(spec)
  raise InputError(spec, "not a version: 'step', 'next' or a positive integer")


# LiteRT / ONNX exports beside the version folders: `<name>-<version>-<H>x<W>...`
# (`tflite_export.file_stem`).
_FILE_VERSION = re.compile(r"-(\d+)-\d+x\d+(-b\d+)?(-[a-z_]+)?\.(tflite|onnx)$")


def next_version(export_dir: str) -> int:
  """1 + the highest version in `export_dir`: integer-named folders
  (SavedModels) and the versions in `.tflite` / `.onnx` file names (1 when
  none)."""
  if not tf.io.gfile.isdir(export_dir):
    return 1
  versions = []
  for entry in (n.rstrip("/") for n in tf.io.gfile.listdir(export_dir)):
    match = _FILE_VERSION.search(entry)
    if entry.isdigit():
      versions.append(int(entry))
    elif match:
      versions.append(int(match.group(1)))
  return max(versions, default=0) + 1


def class_table(segmenter) -> dict:
  """`{"dataset", "class_names", "class_colors"}` of a `Segmenter` or a loaded one."""
  return {"dataset": segmenter.dataset.numpy().decode(),
          "class_names": [n.decode() for n in segmenter.class_names.numpy()],
          "class_colors": segmenter.class_colors.numpy().astype(int).tolist()}


def load_saved_model(path: str):
  """Loads an exported model; `path` is a version folder or their base folder.

  Given a base folder (TF Serving's `--model_base_path`), loads its highest
  version. The result has `serve_images`, `serve_bytes`, `signatures`,
  `class_names`, `class_colors` and `dataset`, as a `Segmenter`.

  Raises:
    MissingFileError: no SavedModel at `path` or in a version folder below it.
  """
  if not tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
    latest = next_version(path) - 1
    if latest < 1:
      raise MissingFileError(path, "no saved_model.pb here or in a version folder below it")
    path = os.path.join(path, str(latest))
  return tf.saved_model.load(path)
