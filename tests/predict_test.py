"""Predicting image files: outputs, contact sheet, bad files, both model sources."""

import os

import numpy as np
import tensorflow as tf
from PIL import Image

import gin
from reseg_tf import configurables
from reseg_tf.common import image_files, progress
from reseg_tf.evaluation import summaries
from reseg_tf.serving import prediction
from reseg_tf.serving import segmenter as segmenter_lib
from tests import fixtures

_COLORS = [[0, 0, 0], [220, 20, 60], [30, 144, 255], [255, 215, 0]]


def write_images(folder):
  """Three good images (RGB PNG, grayscale JPEG, RGBA PNG), a corrupt one, a note."""
  os.makedirs(folder)
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 256, (32, 40, 3), np.uint8)).save(
      os.path.join(folder, "rgb.png"))
  Image.fromarray(rng.integers(0, 256, (21, 30), np.uint8)).save(
      os.path.join(folder, "gray.jpg"))
  Image.fromarray(rng.integers(0, 256, (40, 27, 4), np.uint8)).save(
      os.path.join(folder, "rgba.png"))
  with open(os.path.join(folder, "corrupt.png"), "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n truncated")
  with open(os.path.join(folder, "notes.txt"), "w") as f:
    f.write("not an image, and not an image extension: ignored")
  return folder


class PredictBinaryTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    root = os.path.join(tf.compat.v1.test.get_temp_dir(), "predict")
    cls.records, cls.model_dir, _ = fixtures.train_tiny_run(root)
    cls.images = write_images(os.path.join(root, "images"))
    cls.labels = os.path.join(root, "labels")
    os.makedirs(cls.labels)
    label = np.zeros((32, 40), np.uint8)
    label[8:20, 10:30] = 2
    Image.fromarray(label).save(os.path.join(cls.labels, "rgb.png"))
    cls.output = os.path.join(root, "out_model_dir")
    cls.process = fixtures.run_module(
        "reseg_tf.predict", f"--model_dir={cls.model_dir}", f"--input={cls.images}",
        f"--output_dir={cls.output}", f"--labels={cls.labels}")


  @classmethod
  def tearDownClass(cls):
    gin.clear_config()  # Leave no bindings to the next test module.
    super().tearDownClass()

  def test_a_corrupt_image_is_named_skipped_and_fails_the_run(self):
    self.assertEqual(self.process.returncode, 1, self.process.stderr)
    self.assertIn("1 file(s) could not be read", self.process.stderr)
    self.assertIn(os.path.join(self.images, "corrupt.png"), self.process.stderr)
    self.assertIn("Segmented 3 of 4 images", self.process.stdout)

  def test_writes_label_map_colours_overlay_and_contact_sheet(self):
    expected = {f"{stem}_{kind}.png" for stem in ("rgb", "gray", "rgba")
                for kind in ("classes", "color", "overlay")} | {"contact_sheet.png"}
    self.assertEqual(set(os.listdir(self.output)), expected)
    for stem, size in (("rgb", (32, 40)), ("gray", (21, 30)), ("rgba", (40, 27))):
      classes = np.asarray(Image.open(os.path.join(self.output, f"{stem}_classes.png")))
      color = np.asarray(Image.open(os.path.join(self.output, f"{stem}_color.png")))
      self.assertEqual(classes.shape, size)
      self.assertLess(classes.max(), 4)
      self.assertAllEqual(color, np.asarray(_COLORS, np.uint8)[classes])
      self.assertEqual(np.asarray(Image.open(
          os.path.join(self.output, f"{stem}_overlay.png"))).shape, size + (3,))
    sheet = np.asarray(Image.open(os.path.join(self.output, "contact_sheet.png")))
    # Three rows (one per good image), three panels: input | prediction | truth.
    self.assertEqual(sheet.shape[0], 3 * (prediction.THUMBNAIL_HEIGHT + 14) + 2 * 4)
    self.assertGreater(sheet.shape[1], 3 * prediction.THUMBNAIL_HEIGHT)

  def test_saved_model_predicts_the_same_classes(self):
    export_dir = os.path.join(self.create_tempdir().full_path, "export")
    restored = configurables.load_run(self.model_dir, "best")
    segmenter_lib.export_saved_model(
        segmenter_lib.Segmenter(restored.model, ["background", "circle", "square", "triangle"],
                          _COLORS, "synthetic"), export_dir, 1)
    output = self.create_tempdir().full_path
    process = fixtures.run_module(
        "reseg_tf.predict", f"--saved_model={export_dir}",
        f"--input={os.path.join(self.images, '*.png')}", f"--output_dir={output}",
        "--contact_sheet_rows=1")
    self.assertEqual(process.returncode, 1, process.stderr)  # corrupt.png again.
    for stem in ("rgb", "rgba"):
      self.assertAllEqual(
          np.asarray(Image.open(os.path.join(output, f"{stem}_classes.png"))),
          np.asarray(Image.open(os.path.join(self.output, f"{stem}_classes.png"))))
    # One image per sheet: two sheets.
    self.assertTrue(os.path.exists(os.path.join(output, "contact_sheet-2.png")))

  def test_a_single_good_file_exits_zero_without_contact_sheet(self):
    output = self.create_tempdir().full_path
    process = fixtures.run_module(
        "reseg_tf.predict", f"--model_dir={self.model_dir}", "--checkpoint=latest",
        f"--input={os.path.join(self.images, 'rgb.png')}", f"--output_dir={output}")
    self.assertEqual(process.returncode, 0, process.stderr)
    self.assertCountEqual(os.listdir(output),
                          ["rgb_classes.png", "rgb_color.png", "rgb_overlay.png"])


class PredictionLibraryTest(tf.test.TestCase):

  def test_find_inputs_takes_a_file_a_folder_or_a_glob(self):
    folder = write_images(os.path.join(self.create_tempdir().full_path, "images"))
    paths, collection = prediction.find_inputs(folder)
    self.assertTrue(collection)
    self.assertEqual([os.path.basename(p) for p in paths],
                     ["corrupt.png", "gray.jpg", "rgb.png", "rgba.png"])
    paths, _ = prediction.find_inputs(os.path.join(folder, "*.txt"))
    self.assertEqual([os.path.basename(p) for p in paths], ["notes.txt"])
    self.assertEqual(prediction.find_inputs(paths[0]), (paths, False))
    with self.assertRaises(FileNotFoundError):
      prediction.find_inputs(os.path.join(folder, "*.webp"))

  def test_read_rgb_converts_to_rgb_and_rejects_non_images(self):
    folder = write_images(os.path.join(self.create_tempdir().full_path, "images"))
    self.assertEqual(image_files.read_rgb(os.path.join(folder, "gray.jpg")).shape, (21, 30, 3))
    self.assertEqual(image_files.read_rgb(os.path.join(folder, "rgba.png")).shape, (40, 27, 3))
    for name in ("corrupt.png", "notes.txt", "missing.png"):
      with self.assertRaises(image_files.UnreadableImageError) as raised:
        image_files.read_rgb(os.path.join(folder, name))
      self.assertEqual(raised.exception.path, os.path.join(folder, name))

  def test_overlay_blends(self):
    image = np.full((2, 2, 3), 100, np.uint8)
    color = np.full((2, 2, 3), 200, np.uint8)
    self.assertAllEqual(summaries.overlay(image, color, 0.25), np.full((2, 2, 3), 125))

  def test_progress_bar_writes_lines_when_not_a_terminal(self):
    class Stream(list):
      def write(self, text):
        self.append(text)

      def flush(self):
        pass

    stream = Stream()
    bar = progress.ProgressBar(3, stream=stream)
    for _ in range(3):
      bar.update()
    self.assertIn("3/3 images", "".join(stream))


if __name__ == "__main__":
  tf.test.main()
