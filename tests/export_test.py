"""The exported SavedModel: round trip, saved_model_cli, bad input."""

import io
import json
import os

import numpy as np
import tensorflow as tf
from PIL import Image
from tensorflow.core.protobuf import saved_model_pb2

import gin
from reseg_tf import configurables
from reseg_tf.common.errors import InputError
from reseg_tf.serving import segmenter as segmenter_lib
from tests import fixtures

_SIZES = ((32, 40), (17, 23), (45, 61))  # (H, W); 17x23 is no multiple of the stride.

# Run in a fresh Python process: loads the SavedModel and feeds both signatures.
_FRESH_PROCESS = r"""
import sys
import numpy as np
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
inputs = np.load(sys.argv[2], allow_pickle=True)
outputs = {}
for key in inputs.files:
  kind, name = key.split(":")
  if kind == "images":
    out = loaded.signatures["serving_default"](images=tf.constant(inputs[key]))
  else:
    out = loaded.signatures["serving_bytes"](image_bytes=tf.constant(list(inputs[key])))
  for output, value in out.items():
    outputs[f"{key}:{output}"] = value.numpy()
np.savez(sys.argv[3], **outputs)
"""


def encode(image: np.ndarray, fmt: str = "PNG") -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, fmt)
  return buffer.getvalue()


class ExportTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    root = os.path.join(tf.compat.v1.test.get_temp_dir(), "export")
    cls.records, cls.model_dir, cls.train_result = fixtures.train_tiny_run(root)
    cls.export_dir = os.path.join(root, "exports")
    cls.process = fixtures.run_module(
        "reseg_tf.export", f"--model_dir={cls.model_dir}", f"--export_dir={cls.export_dir}")
    cls.version_dir = os.path.join(cls.export_dir, str(cls.train_result["best_step"]))
    cls.model = configurables.load_run(cls.model_dir, "best").model
    cls.loaded = tf.saved_model.load(cls.version_dir)
    rng = np.random.default_rng(0)
    cls.images = {size: rng.integers(0, 256, (2, *size, 3), np.uint8) for size in _SIZES}


  @classmethod
  def tearDownClass(cls):
    gin.clear_config()  # Leave no bindings to the next test module.
    super().tearDownClass()

  def expected(self, images):
    """Classes and probabilities of the in-memory (training) model."""
    probabilities = tf.nn.softmax(self.model(images), axis=-1).numpy()
    return probabilities.argmax(-1), probabilities

  def test_export_binary_writes_the_checkpoint_step_as_version(self):
    self.assertEqual(self.process.returncode, 0, self.process.stderr)
    self.assertEqual(sorted(os.listdir(self.export_dir)), [str(self.train_result["best_step"])])
    with open(os.path.join(self.version_dir, "assets.extra", "reseg_export.json")) as f:
      info = json.load(f)
    self.assertEqual(info["class_names"], ["background", "circle", "square", "triangle"])
    self.assertEqual(info["step"], self.train_result["best_step"])
    self.assertTrue(os.path.exists(
        os.path.join(self.version_dir, "assets.extra", "operative_config.gin")))

  def test_fresh_process_matches_the_in_memory_model(self):
    inputs = {}
    for (h, w), images in self.images.items():
      inputs[f"images:{h}x{w}"] = images
      inputs[f"bytes:{h}x{w}"] = np.array(
          [encode(images[0], "PNG"), encode(images[1], "PNG")], object)
    mixed = [self.images[s][0] for s in _SIZES]
    inputs["bytes:mixed"] = np.array([encode(image) for image in mixed], object)
    folder = self.create_tempdir().full_path
    np.savez(os.path.join(folder, "inputs.npz"), **inputs)
    process = fixtures.run_python(_FRESH_PROCESS, self.version_dir,
                                     os.path.join(folder, "inputs.npz"),
                                     os.path.join(folder, "outputs.npz"))
    self.assertEqual(process.returncode, 0, process.stderr)
    outputs = np.load(os.path.join(folder, "outputs.npz"))

    for (h, w), images in self.images.items():
      classes, probabilities = self.expected(images)
      for kind in ("images", "bytes"):
        key = f"{kind}:{h}x{w}"
        self.assertEqual(outputs[f"{key}:classes"].dtype, np.int32)
        self.assertAllEqual(outputs[f"{key}:classes"], classes, msg=key)
        self.assertAllClose(outputs[f"{key}:probabilities"], probabilities,
                            atol=1e-5, rtol=0, msg=key)
    # Different sizes in one batch: each image alone, padded with -1 / 0.
    classes = outputs["bytes:mixed:classes"]
    probabilities = outputs["bytes:mixed:probabilities"]
    self.assertEqual(classes.shape, (3, 45, 61))
    for i, image in enumerate(mixed):
      h, w = image.shape[:2]
      expected_classes, expected_probabilities = self.expected(image[None])
      self.assertAllEqual(classes[i, :h, :w], expected_classes[0])
      self.assertAllClose(probabilities[i, :h, :w], expected_probabilities[0], atol=1e-5)
      self.assertTrue(np.all(classes[i, h:] == -1) and np.all(classes[i, :, w:] == -1))
      self.assertAllEqual(probabilities[i, h:], np.zeros_like(probabilities[i, h:]))

  def test_saved_model_cli_show_lists_both_signatures(self):
    process = fixtures.run_python(
        "from tensorflow.python.tools import saved_model_cli; saved_model_cli.main()",
        "show", "--dir", self.version_dir, "--all")
    self.assertEqual(process.returncode, 0, process.stderr)
    for text in ("signature_def['serving_default']", "signature_def['serving_bytes']",
                 "inputs['images']", "inputs['image_bytes']", "outputs['classes']",
                 "outputs['probabilities']", "dtype: DT_UINT8", "dtype: DT_STRING",
                 "shape: (-1, -1, -1, 3)", "shape: (-1, -1, -1, 4)"):
      self.assertIn(text, process.stdout)

  def test_saved_model_cli_run_on_an_npy_file(self):
    folder = self.create_tempdir().full_path
    images = self.images[(17, 23)]
    np.save(os.path.join(folder, "images.npy"), images)
    process = fixtures.run_python(
        "from tensorflow.python.tools import saved_model_cli; saved_model_cli.main()",
        "run", "--dir", self.version_dir, "--tag_set", "serve",
        "--signature_def", "serving_default",
        "--inputs", f"images={os.path.join(folder, 'images.npy')}", "--outdir", folder)
    self.assertEqual(process.returncode, 0, process.stderr)
    classes, _ = self.expected(images)
    self.assertAllEqual(np.load(os.path.join(folder, "classes.npy")), classes)
    self.assertEqual(np.load(os.path.join(folder, "probabilities.npy")).shape,
                     (2, 17, 23, 4))

  def test_bad_bytes_fail_with_invalid_argument_error(self):
    serve = self.loaded.signatures["serving_bytes"]
    good = encode(self.images[(32, 40)][0])
    cases = {
        "not an image": ([b"plain text", good],
                         r"image\] \[0\] \[of the batch is not a PNG"),
        "truncated PNG": ([good, good[:60]], r"PNG"),
        "empty string": ([good, b""], r"image\] \[1\] \[of the batch is not a PNG"),
        "empty batch": ([], r"serving_bytes: the batch is empty"),
    }
    for name, (batch, message) in cases.items():
      with self.subTest(name):
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, message):
          serve(image_bytes=tf.constant(batch, tf.string))
    # The process survives and keeps serving.
    self.assertEqual(serve(image_bytes=tf.constant([good]))["classes"].shape, (1, 32, 40))

  def test_bad_arrays_fail_with_invalid_argument_error(self):
    serve = self.loaded.signatures["serving_default"]
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "the batch is empty"):
      serve(images=tf.zeros([0, 8, 8, 3], tf.uint8))
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "no pixels"):
      serve(images=tf.zeros([1, 0, 8, 3], tf.uint8))
    # Four channels do not match the signature: refused before anything runs.
    with self.assertRaises((ValueError, TypeError, tf.errors.InvalidArgumentError)):
      serve(images=tf.zeros([1, 8, 8, 4], tf.uint8))
    self.assertEqual(serve(images=tf.zeros([1, 8, 8, 3], tf.uint8))["classes"].shape,
                     (1, 8, 8))

  def test_grayscale_and_rgba_files_are_converted_to_rgb(self):
    serve = self.loaded.signatures["serving_bytes"]
    rgb = self.images[(32, 40)][0]
    gray = rgb[..., 0]
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 77, np.uint8)])
    gray_classes, _ = self.expected(np.repeat(gray[None, ..., None], 3, axis=-1))
    rgb_classes, _ = self.expected(rgb[None])
    out = serve(image_bytes=tf.constant([encode(gray), encode(rgba), encode(rgb, "JPEG")]))
    self.assertAllEqual(out["classes"][0], gray_classes[0])
    self.assertAllEqual(out["classes"][1], rgb_classes[0])  # Alpha dropped.
    self.assertEqual(out["classes"].shape, (3, 32, 40))  # JPEG decodes too.

  def test_class_table_is_stored_in_the_saved_model(self):
    self.assertEqual(segmenter_lib.class_table(self.loaded), {
        "dataset": "synthetic",
        "class_names": ["background", "circle", "square", "triangle"],
        "class_colors": [[0, 0, 0], [220, 20, 60], [30, 144, 255], [255, 215, 0]]})

  def test_nothing_is_compiled_with_xla(self):
    # TF Serving runs XLA-compiled functions only behind an experimental flag.
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(self.version_dir, "saved_model.pb"), "rb") as f:
      proto.ParseFromString(f.read())
    functions = proto.meta_graphs[0].graph_def.library.function
    self.assertNotEmpty(functions)
    for function in functions:
      for attr in ("_XlaMustCompile", "_noinline_xla"):
        self.assertFalse(function.attr[attr].b if attr in function.attr else False,
                         msg=function.signature.name)

  def test_next_version_counts_litert_and_onnx_files(self):
    folder = self.create_tempdir().full_path
    for name in ("camvid-3-360x480.tflite", "camvid-7-360x480-b4-dynamic_range.tflite",
                 "my-model-5-32x40.onnx", "my-model-5-32x40.onnx.json", "notes-99.txt"):
      open(os.path.join(folder, name), "w").close()
    self.assertEqual(segmenter_lib.next_version(folder), 8)
    os.makedirs(os.path.join(folder, "12"))
    self.assertEqual(segmenter_lib.next_version(folder), 13)

  def test_versions_and_overwriting(self):
    self.assertEqual(segmenter_lib.next_version(self.export_dir), self.train_result["best_step"] + 1)
    segmenter = segmenter_lib.Segmenter(self.model, ["a", "b", "c", "d"], [[0, 0, 0]] * 4)
    with self.assertRaisesRegex(InputError, "exists"):
      segmenter_lib.export_saved_model(segmenter, self.export_dir, self.train_result["best_step"])
    folder = self.create_tempdir().full_path
    path = segmenter_lib.export_saved_model(segmenter, folder, segmenter_lib.next_version(folder))
    self.assertEqual(path, os.path.join(folder, "1"))
    self.assertEqual(os.listdir(folder), ["1"])  # No temporary folder left.
    self.assertEqual(segmenter_lib.class_table(segmenter_lib.load_saved_model(folder))["class_names"],
                     ["a", "b", "c", "d"])


class VoidAsClassTest(tf.test.TestCase):

  def test_probabilities_cover_the_real_classes_after_a_softmax_over_all(self):
    fixtures.parse_quickstart("unused", "ReSeg.void_as_class = True")
    model = configurables.ReSeg()
    self.assertEqual(model.num_outputs, 5)
    segmenter = segmenter_lib.Segmenter(model, ["a", "b", "c", "d"], [[0, 0, 0]] * 4)
    images = np.random.default_rng(1).integers(0, 256, (1, 12, 20, 3), np.uint8)
    out = segmenter.serve_images(images)
    softmax = tf.nn.softmax(model(images), axis=-1).numpy()
    self.assertEqual(out["probabilities"].shape, (1, 12, 20, 4))
    self.assertAllClose(out["probabilities"], softmax[..., :4], atol=1e-6)
    self.assertAllEqual(out["classes"], softmax[..., :4].argmax(-1))

  def tearDown(self):
    gin.clear_config()
    super().tearDown()


if __name__ == "__main__":
  tf.test.main()
