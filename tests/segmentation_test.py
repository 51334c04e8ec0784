"""The Python API: `reseg_tf.load_model(...).segment(...)`.

Checked against the command-line `predict` on a published model, against
one-by-one calls for batches, and against exact pictures and counts for the
result's helpers; loading must leave a caller's gin configuration as it was.
"""

import os
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf
from PIL import Image

import gin
import reseg_tf
from reseg_tf import configurables
from reseg_tf.serving import segmenter as segmenter_lib
from tests import fixtures

_PUBLISHED = "horse_no_vgg"
_EXIF_ORIENTATION = 0x0112
_ROTATE_90_CLOCKWISE = 6  # EXIF: the stored pixels must turn 90 degrees clockwise.


def _photo(height, width, seed=0):
  """A smooth picture with a bright blob (something for the model to find)."""
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[:height, :width]
  blob = np.exp(-(((y - height * 0.6) / (height * 0.2)) ** 2
                  + ((x - width * 0.4) / (width * 0.25)) ** 2))
  image = 60 + 150 * blob[..., None] + rng.normal(0, 8, (height, width, 3))
  return np.clip(image, 0, 255).astype(np.uint8)


class PublishedModelTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.model = reseg_tf.load_model(_PUBLISHED)

  def test_segment_gives_the_classes_of_the_predict_binary(self):
    image = _photo(90, 131)
    folder = self.create_tempdir().full_path
    Image.fromarray(image).save(os.path.join(folder, "photo.png"))
    process = fixtures.run_module(
        "reseg_tf.predict", f"--model={_PUBLISHED}",
        f"--input={os.path.join(folder, 'photo.png')}", f"--output_dir={folder}")
    self.assertEqual(process.returncode, 0, process.stderr)
    from_binary = np.asarray(Image.open(os.path.join(folder, "photo_classes.png")))

    result = self.model.segment(image)
    self.assertEqual(result.classes.shape, (90, 131))
    self.assertEqual(result.classes.dtype, np.int32)
    self.assertAllEqual(result.classes, from_binary)
    # Not a constant map, or the comparison above would prove little.
    self.assertLen(np.unique(result.classes), 2)

  def test_a_list_is_batched_and_equals_one_call_per_image(self):
    images = [_photo(64, 80, 1), _photo(48, 70, 2), _photo(64, 80, 3), _photo(64, 80, 4)]
    batched = self.model.segment(images, batch_size=2)
    self.assertLen(batched, 4)
    for image, result in zip(images, batched):
      alone = self.model.segment(image)
      self.assertAllEqual(result.classes, alone.classes)
      self.assertAllClose(result.probabilities, alone.probabilities, atol=1e-5)
      self.assertEqual(result.probabilities.shape, image.shape[:2] + (2,))
      self.assertAllClose(result.probabilities.sum(-1), np.ones(image.shape[:2]), atol=1e-5)
    self.assertEqual(self.model.segment([]), [])

  def test_paths_pil_images_and_grayscale_arrays_are_the_same_pixels(self):
    image = _photo(40, 52, 5)
    path = os.path.join(self.create_tempdir().full_path, "photo.png")
    Image.fromarray(image).save(path)
    expected = self.model.segment(image).classes
    self.assertAllEqual(self.model.segment(path).classes, expected)
    self.assertAllEqual(self.model.segment(Image.fromarray(image)).classes, expected)
    gray = image[..., 0]
    self.assertAllEqual(self.model.segment(gray).classes,
                        self.model.segment(np.stack([gray] * 3, -1)).classes)

  def test_exif_orientation_is_applied_unless_turned_off(self):
    stored = _photo(30, 50, 6)
    path = os.path.join(self.create_tempdir().full_path, "phone.png")
    exif = Image.Exif()
    exif[_EXIF_ORIENTATION] = _ROTATE_90_CLOCKWISE
    Image.fromarray(stored).save(path, exif=exif)
    shown = self.model.segment(path)
    self.assertAllEqual(shown.image, np.rot90(stored, k=-1))
    self.assertEqual(shown.classes.shape, (50, 30))
    as_stored = self.model.segment(path, apply_exif_orientation=False)
    self.assertAllEqual(as_stored.image, stored)
    self.assertAllEqual(self.model.segment(Image.open(path)).image, np.rot90(stored, k=-1))

  def test_colour_overlay_and_pixel_shares(self):
    result = self.model.segment(_photo(33, 47, 7))
    colors = np.asarray([[10, 20, 30], [250, 0, 100]], np.uint8)
    result = reseg_tf.Segmentation(image=result.image, classes=result.classes,
                                   probabilities=result.probabilities,
                                   class_names=("background", "horse"), colors=colors)
    self.assertAllEqual(result.color(), colors[result.classes])
    expected = np.rint(0.75 * result.image + 0.25 * colors[result.classes].astype(float))
    self.assertAllEqual(result.overlay(alpha=0.25), expected.astype(np.uint8))
    self.assertIsInstance(result.overlay(pil=True), Image.Image)
    self.assertAllEqual(np.asarray(result.color(pil=True)), result.color())
    horse = int((result.classes == 1).sum())
    self.assertEqual(result.pixel_shares(),
                     {"background": 1 - horse / (33 * 47), "horse": horse / (33 * 47)})

  def test_class_table_comes_with_the_model(self):
    self.assertEqual(self.model.class_names, ("background", "horse"))
    self.assertEqual(self.model.colors.shape, (2, 3))
    self.assertEqual(self.model.name, _PUBLISHED)
    self.assertEqual(self.model.dataset, "horse")

  def test_bad_images_raise_reseg_errors_naming_them(self):
    cases = [(np.zeros((5, 5, 3), np.float32), "expected a uint8 array"),
             (np.zeros((5, 5, 4), np.uint8), "expected an [H, W, 3] RGB array"),
             (np.zeros((0, 5, 3), np.uint8), "no pixels")]
    for image, problem in cases:
      with self.assertRaises(reseg_tf.ResegError) as raised:
        self.model.segment([_photo(8, 8), image])
      self.assertEqual(raised.exception.path, "images[1]")
      self.assertIn(problem, raised.exception.problem)
    empty = os.path.join(self.create_tempdir().full_path, "empty.jpg")
    open(empty, "wb").close()
    with self.assertRaises(reseg_tf.ResegError) as raised:
      self.model.segment(empty)
    self.assertEqual(raised.exception.path, empty)


class LoadModelTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    root = tempfile.mkdtemp()
    cls.records, cls.run_dir, _ = fixtures.train_tiny_run(root)
    gin.clear_config()

  def tearDown(self):
    gin.clear_config()
    super().tearDown()

  def test_loading_keeps_the_callers_gin_configuration(self):
    gin.parse_config("reseg_tf.ReSeg.renet_units = (7,)\ntrain.batch_size = 3")
    before = gin.config_str()
    reseg_tf.load_model(self.run_dir)
    reseg_tf.load_model(_PUBLISHED)
    self.assertEqual(gin.config_str(), before)
    self.assertEqual(gin.query_parameter("reseg_tf.ReSeg.renet_units"), (7,))

  def test_a_run_folder_and_its_saved_model_give_the_same_classes(self):
    model = reseg_tf.load_model(self.run_dir)
    latest = reseg_tf.load_model(self.run_dir, checkpoint="latest")
    self.assertEqual(model.class_names, ("background", "circle", "square", "triangle"))
    restored = configurables.load_run(self.run_dir, "best")
    export = os.path.join(self.create_tempdir().full_path, "export")
    segmenter_lib.export_saved_model(
        segmenter_lib.Segmenter(restored.model, model.class_names, model.colors,
                                model.dataset), export, 1)
    exported = reseg_tf.load_model(export)
    self.assertEqual(exported.name, "export")
    self.assertEqual(exported.class_names, model.class_names)
    image = _photo(32, 40, 8)
    self.assertAllEqual(exported.segment(image).classes, model.segment(image).classes)
    self.assertAllClose(exported.segment(image).probabilities,
                        model.segment(image).probabilities, atol=1e-5)
    self.assertEqual(latest.segment(image).classes.shape, (32, 40))
    with self.assertRaises(reseg_tf.ResegError):
      reseg_tf.load_model(export, compute_dtype="bfloat16")
    with self.assertRaises(reseg_tf.ResegError):
      reseg_tf.load_model(export, augmentation=reseg_tf.TestTimeAugmentation(flip=True))

  def test_bfloat16_agrees_with_float32_on_most_pixels(self):
    image = _photo(64, 96, 9)
    fp32 = reseg_tf.load_model(_PUBLISHED).segment(image)
    bf16 = reseg_tf.load_model(_PUBLISHED, compute_dtype="bfloat16").segment(image)
    self.assertGreater(np.mean(fp32.classes == bf16.classes), 0.98)
    self.assertAllClose(fp32.probabilities, bf16.probabilities, atol=0.1)

  def test_a_script_using_the_api_prints_nothing_but_its_own_output(self):
    code = ("import numpy as np, reseg_tf\n"
            f"model = reseg_tf.load_model({_PUBLISHED!r})\n"
            "print(model.segment(np.zeros((20, 30, 3), np.uint8)).classes.shape)\n")
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    environment["PYTHONPATH"] = fixtures.ROOT
    process = subprocess.run([sys.executable, "-c", code], cwd=self.create_tempdir().full_path,
                             env=environment, capture_output=True, text=True, timeout=300)
    self.assertEqual(process.returncode, 0, process.stderr)
    self.assertEqual(process.stdout, "(20, 30)\n")
    self.assertEqual(process.stderr, "")  # No TensorFlow start-up lines, no logs.

  def test_unknown_models_and_options_are_named(self):
    with self.assertRaises(reseg_tf.ResegError) as raised:
      reseg_tf.load_model("no_such_model")
    self.assertEqual(raised.exception.path, "no_such_model")
    self.assertIn(_PUBLISHED, raised.exception.problem)  # It lists the published ones.
    with self.assertRaises(ValueError):
      reseg_tf.load_model(_PUBLISHED, compute_dtype="float16")


if __name__ == "__main__":
  tf.test.main()
