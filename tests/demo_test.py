"""The demo page's backend, called directly: the models offered, uploads read
with limits, and what the page shows."""

import io
import os
import re
import unittest
from unittest import mock

import numpy as np
import tensorflow as tf
from PIL import Image

from reseg_tf.common.errors import InputError
from reseg_tf.serving import demo_backend
from tests import video_test

try:
  import gradio  # noqa: F401
except ImportError:  # pragma: no cover
  gradio = None

HORSE = os.path.join(demo_backend.EXAMPLES_DIR, "horse004.jpg")  # 400x313


class ModelsTest(unittest.TestCase):

  def setUp(self):
    self.loaded = []
    self.models = demo_backend.Models(
        ["runs/mine", "horse_no_vgg"],
        loader=lambda name, **kwargs: self.loaded.append((name, kwargs)) or name)

  def test_offers_the_given_models_first_then_the_published_ones(self):
    self.assertEqual(self.models.default, "runs/mine")
    self.assertEqual(self.models.choices[:2], ["runs/mine", "horse_no_vgg"])
    self.assertIn("camvid_no_vgg_cycle4", self.models.choices)
    self.assertEqual(len(self.models.choices), len(set(self.models.choices)))

  def test_the_default_is_the_best_published_camvid_model(self):
    self.assertEqual(demo_backend.Models(loader=None).default, "camvid_no_vgg_cycle4")

  def test_loads_each_model_once_and_nothing_it_does_not_offer(self):
    self.assertEqual(self.models.get("horse_no_vgg"), "horse_no_vgg")
    self.models.get("horse_no_vgg")
    for name in ("/etc", "../models/horse_no_vgg", "runs/other"):
      with self.assertRaisesRegex(InputError, "not a model this page offers"):
        self.models.get(name)
    self.assertEqual(self.loaded, [("horse_no_vgg", {})])


class BackendTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = os.path.join(tf.compat.v1.test.get_temp_dir(), "demo")
    os.makedirs(cls.root, exist_ok=True)
    cls.models = demo_backend.Models(["horse_no_vgg"])
    cls.model = cls.models.get("horse_no_vgg")
    cls.limits = demo_backend.Limits(max_side=256, max_pixels=2_000_000)

  def write(self, name, content: bytes) -> str:
    path = os.path.join(self.root, name)
    with open(path, "wb") as f:
      f.write(content)
    return path

  def save(self, name, image: Image.Image, **kwargs) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG" if name.endswith(".jpg") else "PNG", **kwargs)
    return self.write(name, buffer.getvalue())

  def test_shows_what_segment_gives_with_a_legend_and_the_time(self):
    outcome = demo_backend.segment_image(self.models, "horse_no_vgg", HORSE,
                                         demo_backend.Limits())
    expected = self.model.segment(HORSE)
    self.assertAllEqual(outcome.result.classes, expected.classes)
    self.assertAllEqual(outcome.result.overlay(), expected.overlay())
    self.assertEqual(outcome.result.classes.shape, (313, 400))
    legend = outcome.legend_html()
    shares = re.findall(r"<td>(\w+)</td><td class=\"reseg-share\">([\d.]+)%", legend)
    self.assertEqual([name for name, _ in shares], ["background", "horse"])
    horse = 100 * np.mean(expected.classes == 1)
    self.assertAlmostEqual(float(shares[1][1]), horse, delta=0.051)
    self.assertAlmostEqual(sum(float(s) for _, s in shares), 100.0, delta=0.11)
    self.assertIn("rgb({},{},{})".format(*self.model.colors[1]), legend)
    self.assertRegex(outcome.summary(),
                     r"^\*\*horse_no_vgg\*\* segmented 400x313 pixels in \d+ ms\.$")

  def test_downscales_large_images_and_says_so(self):
    path = self.save("large.png", Image.new("RGB", (1200, 900), (200, 120, 40)))
    outcome = demo_backend.segment_image(self.models, "horse_no_vgg", path, self.limits)
    self.assertEqual(outcome.result.classes.shape, (192, 256))
    self.assertIn("Downscaled from 1200x900 to 256x192 pixels", outcome.summary())

  def test_a_6000x4000_photo_is_downscaled_to_max_side(self):
    photo = Image.fromarray(np.linspace(0, 255, 6000, dtype=np.uint8)[None].repeat(8, 0))
    path = self.save("photo.jpg", photo.convert("RGB").resize((6000, 4000)), quality=60)
    image, note = demo_backend.read_image(path, demo_backend.Limits(max_pixels=30_000_000))
    self.assertEqual(image.shape, (683, 1024, 3))
    self.assertEqual(note, "Downscaled from 6000x4000 to 1024x683 pixels (the longer "
                     "side to at most 1024).")

  def test_applies_the_exif_orientation(self):
    exif = Image.Exif()
    exif[0x0112] = 6  # Turned 90 degrees: stored 400x300, shown 300x400.
    path = self.save("turned.jpg", Image.new("RGB", (400, 300)), exif=exif.tobytes())
    image, note = demo_backend.read_image(path, self.limits)
    self.assertEqual(image.shape, (256, 192, 3))
    self.assertIn("from 300x400 to 192x256", note)

  def test_a_cmyk_jpeg_is_segmented_as_rgb(self):
    rgb = Image.open(HORSE).convert("RGB")
    path = self.save("cmyk.jpg", rgb.convert("CMYK"), quality=95)
    self.assertEqual(Image.open(path).mode, "CMYK")
    image, _ = demo_backend.read_image(path, demo_backend.Limits())
    self.assertEqual(image.shape, (313, 400, 3))
    self.assertLess(np.abs(image.astype(int) - np.asarray(rgb, int)).mean(), 6)
    outcome = demo_backend.segment_image(self.models, "horse_no_vgg", path,
                                         demo_backend.Limits())
    self.assertAllEqual(outcome.result.classes, self.model.segment(image).classes)

  def test_bad_uploads_are_named_and_explained(self):
    too_large = self.save("huge.png", Image.new("L", (2000, 1500)))
    cases = {self.write("notes.jpg", b"not an image\n"): "not an image this page can read",
             self.write("empty.png", b""): "the file is empty",
             self.write("cut.png", open(HORSE, "rb").read()[:50]): "not an image",
             too_large: r"2000x1500 pixels \(3 MP\) is more than this page takes \(2 MP\)"}
    for path, problem in cases.items():
      with self.assertRaisesRegex(InputError, problem) as raised:
        demo_backend.segment_image(self.models, "horse_no_vgg", path, self.limits,
                                   name="upload-" + os.path.basename(path))
      self.assertEqual(raised.exception.path, "upload-" + os.path.basename(path))
    # Still serving.
    demo_backend.segment_image(self.models, "horse_no_vgg", HORSE, self.limits)

  @unittest.skipIf(video_test.video is None, "needs the video extra: pip install -e '.[video]'")
  def test_segments_a_video_at_its_size_through_downscaled_frames(self):
    clip = video_test.write_clip(os.path.join(self.root, "clip.mp4"))
    limits = demo_backend.Limits(max_video_side=32, max_video_frames=8)
    outcome = demo_backend.segment_video(self.models, "horse_no_vgg", clip, self.root,
                                         limits, layout="side_by_side")
    info, _ = video_test.video.open_video(outcome.report.output)
    self.assertEqual((info.frames, info.width, info.height),
                     (video_test.FRAMES, 2 * video_test.WIDTH, video_test.HEIGHT))
    self.assertRegex(outcome.summary(), r"segmented 8 frames of 64x48 \(10.00 fps\)")
    with self.assertRaisesRegex(InputError, "^drive.mp4: 8 frames"):
      demo_backend.segment_video(self.models, "horse_no_vgg", clip, self.root,
                                 demo_backend.Limits(max_video_frames=4), name="drive.mp4")

  @unittest.skipIf(gradio is None, "needs the demo extra: pip install -e '.[demo]'")
  def test_the_page_builds(self):
    from reseg_tf import demo  # noqa: PLC0415
    # Gradio copies the examples into its folder, as the demo's main sets it.
    with mock.patch.dict(os.environ, GRADIO_TEMP_DIR=os.path.join(self.root, "gradio")):
      page = demo.build_page(self.models, self.limits, self.root)
    self.assertTrue(os.listdir(os.path.join(self.root, "gradio")))
    self.assertIn("Model", {getattr(b, "label", None) for b in page.blocks.values()})


if __name__ == "__main__":
  tf.test.main()
