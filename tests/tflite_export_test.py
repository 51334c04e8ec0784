"""The LiteRT (TFLite) and ONNX exports: the unrolled model, parity with the
SavedModel, the quantized variant, builtin ops only, input checks, the binary."""

import contextlib
import io
import json
import os
import re
import sys
from unittest import mock

import numpy as np
import tensorflow as tf

import gin
from data_prep import synthetic
from reseg_tf import configurables
from reseg_tf.common.errors import InputError
from reseg_tf.model import lowering
from reseg_tf.model import reseg as model_lib
from reseg_tf.serving import onnx_export, tflite_export
from reseg_tf.serving import segmenter as segmenter_lib
from tests import fixtures

_SIZE = (32, 40)  # The tiny run's image size, and the export's.


def _images(count, size=_SIZE, first=10_000):
  """Synthetic images the tiny run did not train on (uint8 [count, H, W, 3])."""
  return np.stack([synthetic.generate(0, first + i, *size)[0] for i in range(count)])


# VGG, a scaled input, void as a class, and every ReNet option off the default.
_OTHER_OPTIONS = dict(num_classes=3, void_as_class=True, renet_units=(4,),
                      renet_patch_sizes=((1, 1),), upsample_filters=(5, 5), renet_core="lstm",
                      sweep_order="vertical_first", bidirectional_mode="independent",
                      input_scale=0.5)


class FixedSizeLoweringTest(tf.test.TestCase):
  """The `FIXED_SIZE` form computes `model(images)`, for every model option."""

  def check(self, size, **options):
    tf.random.set_seed(1)
    model = model_lib.ReSeg(vgg_weights="random", **options)
    images = np.random.default_rng(0).integers(0, 256, (2, *size, 3), np.uint8)
    expected = model(images)
    got = tf.function(lambda x: model(x, lowering.FIXED_SIZE))(tf.constant(images))
    self.assertEqual(got.shape, expected.shape)
    self.assertAllClose(got, expected, atol=2e-5, rtol=1e-5)
    return model, images, expected

  def test_no_vgg_patches_a_size_off_the_stride_an_upscaled_input_and_a_stem(self):
    self.check((17, 23), num_classes=3, use_vgg=False, stem_filters=(4,), renet_units=(6, 5),
               renet_patch_sizes=((2, 2), (2, 2)), upsample_filters=(4, 4),
               renet_init="orthogonal", input_scale=1.5)

  def test_vgg_scaled_input_void_lstm_paper_options_also_converted(self):
    model, images, logits = self.check((30, 38), **_OTHER_OPTIONS)
    path = os.path.join(self.create_tempdir().full_path, "model.tflite")
    with open(path, "wb") as f:
      f.write(tflite_export.convert(model, (30, 38))["float32"])
    expected = tf.nn.softmax(logits[:1])[..., :3]
    got = tflite_export.TFLiteSegmenter(path)(images[:1])
    self.assertAllClose(got["probabilities"], expected, atol=1e-5, rtol=0)
    with open(path + ".onnx", "wb") as f:
      f.write(onnx_export.convert(model, (30, 38)))
    got = onnx_export.ONNXSegmenter(path + ".onnx")(images[:1])
    self.assertAllClose(got["probabilities"], expected, atol=1e-5, rtol=0)

  def test_a_dynamic_shape_is_refused(self):
    model = model_lib.ReSeg(num_classes=2, use_vgg=False, renet_units=(2,),
                            renet_patch_sizes=((2, 2),), upsample_filters=(2,))
    spec = tf.TensorSpec([1, None, None, 3], tf.uint8)
    with self.assertRaisesRegex(ValueError, "static input shape"):
      tf.function(lambda x: model(x, lowering.FIXED_SIZE)).get_concrete_function(spec)


class TFLiteExportTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    root = os.path.join(tf.compat.v1.test.get_temp_dir(), "tflite_export")
    _, cls.model_dir, train_result = fixtures.train_tiny_run(root)
    cls.step = train_result["best_step"]
    cls.export_dir = os.path.join(root, "exports")
    export = ("reseg_tf.export", f"--model_dir={cls.model_dir}",
              f"--export_dir={cls.export_dir}")
    size = f"--input_size={_SIZE[0]}x{_SIZE[1]}"
    runs = fixtures.run_at_once(
        tflite=(*export, "--format=tflite", size, "--tflite_quantize=dynamic_range"),
        onnx=(*export, "--format=onnx", size))
    cls.process, cls.onnx_process = runs["tflite"], runs["onnx"]
    # The SavedModel, the reference: written here as the export binary writes
    # it (tests/export_test.py runs the binary).
    restored = configurables.load_run(cls.model_dir, "best")
    table = restored.class_table()
    segmenter = segmenter_lib.Segmenter(restored.model, table["class_names"],
                                        table["class_colors"], table["dataset"])
    cls.saved_model = tf.saved_model.load(
        segmenter_lib.export_saved_model(segmenter, cls.export_dir, cls.step))
    stem = tflite_export.file_stem("run", cls.step, _SIZE)
    cls.paths = {variant: tflite_export.model_path(cls.export_dir, stem, variant)
                 for variant in tflite_export.VARIANTS}
    cls.onnx_path = os.path.join(cls.export_dir, f"{stem}.onnx")
    cls.images = _images(6)

  @classmethod
  def tearDownClass(cls):
    gin.clear_config()  # Leave no bindings to the next test module.
    super().tearDownClass()

  def saved_model_outputs(self, images):
    out = self.saved_model.signatures["serving_default"](images=tf.constant(images))
    return {key: value.numpy() for key, value in out.items()}

  def tflite_outputs(self, variant, images):
    """Runs the model image by image (it takes a batch of 1)."""
    segmenter = tflite_export.TFLiteSegmenter(self.paths[variant], num_threads=1)
    outputs = [segmenter(image[None]) for image in images]
    return {key: np.concatenate([out[key] for out in outputs]) for key in outputs[0]}

  def test_binary_writes_both_variants_and_their_description(self):
    self.assertEqual(self.process.returncode, 0, self.process.stderr)
    for path in self.paths.values():
      self.assertIn(path, self.process.stdout)
    with open(tflite_export.info_path(self.paths["float32"])) as f:
      info = json.load(f)
    self.assertEqual(info["class_names"], ["background", "circle", "square", "triangle"])
    self.assertEqual(info["inputs"], {"images": {"shape": [1, *_SIZE, 3], "dtype": "uint8"}})
    self.assertEqual(info["outputs"]["probabilities"]["shape"], [1, *_SIZE, 4])
    self.assertEqual((info["step"], info["version"]), (self.step, self.step))
    self.assertEqual(info["files"], {v: os.path.basename(p) for v, p in self.paths.items()})
    self.assertEqual(tflite_export.TFLiteSegmenter(self.paths["dynamic_range"]).info, info)

  def test_float32_matches_the_saved_model(self):
    expected = self.saved_model_outputs(self.images)
    got = self.tflite_outputs("float32", self.images)
    self.assertEqual(got["classes"].dtype, np.int32)
    self.assertEqual(got["probabilities"].dtype, np.float32)
    agreement = np.mean(got["classes"] == expected["classes"])
    self.assertGreaterEqual(agreement, 0.999)
    self.assertAllClose(got["probabilities"], expected["probabilities"], atol=1e-4, rtol=0)

  def test_dynamic_range_is_smaller_and_mostly_agrees(self):
    expected = self.saved_model_outputs(self.images)
    got = self.tflite_outputs("dynamic_range", self.images)
    agreement = np.mean(got["classes"] == expected["classes"])
    sizes = {v: os.path.getsize(p) for v, p in self.paths.items()}
    print(f"dynamic_range: {agreement:.2%} of the pixels agree with the SavedModel; "
          f"{sizes['dynamic_range']} bytes against {sizes['float32']} in float32")
    self.assertGreaterEqual(agreement, 0.95)
    self.assertLess(sizes["dynamic_range"], sizes["float32"])
    # The tiny run predicts mostly background, so compare the probabilities too.
    self.assertAllClose(got["probabilities"], expected["probabilities"], atol=0.02, rtol=0)

  def test_tensorflow_interpreter_without_ai_edge_litert(self):
    with mock.patch.dict(sys.modules, {"ai_edge_litert": None,
                                       "ai_edge_litert.interpreter": None}):
      segmenter = tflite_export.TFLiteSegmenter(self.paths["float32"])
    self.assertIsInstance(segmenter.interpreter, tf.lite.Interpreter)
    expected = tflite_export.TFLiteSegmenter(self.paths["float32"])(self.images[:1])
    got = segmenter(self.images[:1])
    self.assertAllEqual(got["classes"], expected["classes"])
    self.assertAllClose(got["probabilities"], expected["probabilities"], atol=1e-6, rtol=0)

  def test_only_builtin_ops(self):
    for path in self.paths.values():
      text = io.StringIO()
      with contextlib.redirect_stdout(text):
        tf.lite.experimental.Analyzer.analyze(model_path=path)
      ops = set(re.findall(r"Op#\d+ (\w+)", text.getvalue()))
      self.assertIn("FULLY_CONNECTED", ops)
      self.assertNotIn("WHILE", ops)  # The unrolled form.
      self.assertFalse({op for op in ops if op.startswith("Flex") or op == "CUSTOM"}, path)

  def test_batch_size_and_a_size_off_the_stride(self):
    model = configurables.load_run(self.model_dir, "best").model
    flatbuffer = tflite_export.convert(model, (17, 23), batch_size=2)["float32"]
    path = os.path.join(self.create_tempdir().full_path, "model.tflite")
    with open(path, "wb") as f:
      f.write(flatbuffer)
    images = _images(2, (17, 23))
    got = tflite_export.TFLiteSegmenter(path)(images)
    expected = self.saved_model_outputs(images)
    self.assertAllEqual(got["classes"], expected["classes"])
    self.assertAllClose(got["probabilities"], expected["probabilities"], atol=1e-4, rtol=0)

  def test_a_wrong_size_or_dtype_names_the_expected_input(self):
    segmenter = tflite_export.TFLiteSegmenter(self.paths["float32"])
    self.assertEqual(segmenter.input_shape, (1, *_SIZE, 3))
    cases = {
        "size": (np.zeros((1, 32, 48, 3), np.uint8), r"--input_size=32x48"),
        "dtype": (np.zeros((1, *_SIZE, 3), np.float32), r"got float32 \[1, 32, 40, 3\]"),
        "batch": (np.zeros((2, *_SIZE, 3), np.uint8), r"got uint8 \[2, 32, 40, 3\]"),
        "no batch axis": (np.zeros((*_SIZE, 3), np.uint8), r"\[batch, height, width, RGB\]"),
    }
    for name, (images, detail) in cases.items():
      with self.subTest(name), self.assertRaisesRegex(
          ValueError, r"takes images uint8 \[1, 32, 40, 3\] .*" + detail):
        segmenter(images)

  def test_existing_files_are_kept_without_overwrite(self):
    model = configurables.load_run(self.model_dir, "best").model
    with self.assertRaisesRegex(InputError, "exists: choose another version"):
      tflite_export.export_tflite(model, self.export_dir, tflite_export.file_stem(
          "run", self.step, _SIZE), _SIZE, {}, quantize="none")

  def test_bad_flags_end_with_one_line(self):
    for flag, expected in (
        ("--input_size=32", "error: --input_size: '32' is not a size HEIGHTxWIDTH"),
        ("--format=coreml", "error: --format: 'coreml' is not one of saved_model, tflite, onnx")):
      with self.subTest(flag):
        process = fixtures.run_module("reseg_tf.export", f"--model_dir={self.model_dir}",
                                      "--format=tflite", flag)
        self.assertEqual(process.returncode, 1)
        self.assertEqual(process.stderr.strip().splitlines()[-1].split(" in pixels")[0],
                         expected)

  def test_onnx_binary_and_parity_with_the_saved_model(self):
    self.assertEqual(self.onnx_process.returncode, 0, self.onnx_process.stderr)
    self.assertIn(self.onnx_path, self.onnx_process.stdout)
    with open(self.onnx_path + ".json") as f:
      self.assertEqual(json.load(f)["format"], "onnx")
    segmenter = onnx_export.ONNXSegmenter(self.onnx_path, num_threads=1)
    outputs = [segmenter(image[None]) for image in self.images]
    expected = self.saved_model_outputs(self.images)
    classes = np.concatenate([out["classes"] for out in outputs])
    self.assertEqual(classes.dtype, np.int32)
    self.assertGreaterEqual(np.mean(classes == expected["classes"]), 0.999)
    self.assertAllClose(np.concatenate([out["probabilities"] for out in outputs]),
                        expected["probabilities"], atol=1e-4, rtol=0)
    with self.assertRaisesRegex(ValueError, r"takes images uint8 \[1, 32, 40, 3\]"):
      segmenter(self.images[:1].astype(np.float32))

  def test_parse_input_size(self):
    self.assertEqual(tflite_export.parse_input_size("360x480"), (360, 480))
    self.assertEqual(tflite_export.parse_input_size(" 17X23 "), (17, 23))
    for text in (None, "", "360", "0x480", "360x480x3", "-1x4", "axb"):
      with self.subTest(text), self.assertRaisesRegex(InputError, "HEIGHTxWIDTH"):
        tflite_export.parse_input_size(text)


if __name__ == "__main__":
  tf.test.main()
