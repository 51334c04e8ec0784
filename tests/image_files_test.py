"""reseg_tf.common.image_files: photos read as shown (EXIF orientation), any mode."""

import io
import os

import numpy as np
import tensorflow as tf
from absl.testing import parameterized
from PIL import Image

from reseg_tf.common import image_files
from reseg_tf.common.errors import InputError

# What a viewer shows for each EXIF orientation, written from the EXIF
# specification (not from Pillow): row 0 of the stored pixels is at ...
SHOWN = {
    1: lambda a: a,                              # ... the top.
    2: lambda a: a[:, ::-1],                     # ... the top, mirrored.
    3: lambda a: a[::-1, ::-1],                  # ... the bottom (180 degrees).
    4: lambda a: a[::-1],                        # ... the bottom, mirrored.
    5: lambda a: a.swapaxes(0, 1),               # ... the left, mirrored.
    6: lambda a: a.swapaxes(0, 1)[:, ::-1],      # ... the right (turn 90 clockwise).
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],   # ... the right, mirrored.
    8: lambda a: a.swapaxes(0, 1)[::-1],         # ... the left (turn 90 anticlockwise).
}


def save_with_orientation(path: str, array: np.ndarray, orientation: int, **kwargs):
  """Saves `array` as stored pixels with an EXIF orientation tag."""
  image = Image.fromarray(array)
  exif = image.getexif()
  exif[image_files.EXIF_ORIENTATION] = orientation
  os.makedirs(os.path.dirname(path), exist_ok=True)
  image.save(path, exif=exif, **kwargs)


class ReadRgbTest(parameterized.TestCase, tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.dir = self.create_tempdir().full_path
    # Distinct values everywhere, and not square: any wrong turn shows.
    self.stored = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)

  @parameterized.parameters(*range(1, 9))
  def test_exif_orientation_gives_the_photo_as_shown(self, orientation):
    path = os.path.join(self.dir, f"o{orientation}.png")
    save_with_orientation(path, self.stored, orientation)
    self.assertAllEqual(image_files.read_rgb(path), SHOWN[orientation](self.stored))
    self.assertAllEqual(image_files.read_rgb(path, apply_exif_orientation=False),
                        self.stored)

  def test_an_invalid_orientation_reads_as_stored(self):
    path = os.path.join(self.dir, "o9.png")
    save_with_orientation(path, self.stored, 9)
    self.assertAllEqual(image_files.read_rgb(path), self.stored)

  def test_jpeg_with_orientation_is_turned(self):
    path = os.path.join(self.dir, "phone.jpg")
    save_with_orientation(path, self.stored, 6, quality=95)
    as_stored = image_files.read_rgb(path, apply_exif_orientation=False)
    self.assertEqual(as_stored.shape, (4, 6, 3))
    self.assertAllEqual(image_files.read_rgb(path), SHOWN[6](as_stored))
    _, _, turned = image_files.open_image(path)
    self.assertTrue(turned)

  def test_modes_become_rgb(self):
    grey = self.stored[..., 0]
    cases = {
        "grey.png": (grey, np.dstack([grey] * 3)),
        "rgba.png": (np.dstack([self.stored, np.full((4, 6), 7, np.uint8)]), self.stored),
        "grey16.png": (grey.astype(np.uint16) * 257, np.dstack([grey] * 3)),
    }
    for name, (array, expected) in cases.items():
      with self.subTest(name):
        path = os.path.join(self.dir, name)
        Image.fromarray(array).save(path)
        got = image_files.read_rgb(path)
        self.assertEqual(got.dtype, np.uint8)
        self.assertAllEqual(got, expected)

  def test_animation_gives_its_first_frame(self):
    path = os.path.join(self.dir, "anim.gif")
    frames = [Image.fromarray(np.full((4, 6), v, np.uint8), mode="L").convert("P")
              for v in (10, 200)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    got = image_files.read_rgb(path)
    self.assertEqual(got.shape, (4, 6, 3))
    self.assertAllEqual(got, np.full((4, 6, 3), 10, np.uint8))

  def test_unreadable_files_are_input_errors_naming_the_file(self):
    empty, text = os.path.join(self.dir, "empty.png"), os.path.join(self.dir, "notes.jpg")
    open(empty, "wb").close()
    with open(text, "w") as f:
      f.write("not an image")
    truncated = os.path.join(self.dir, "cut.png")
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, format="PNG")
    with open(truncated, "wb") as f:
      f.write(buffer.getvalue()[:len(buffer.getvalue()) // 2])
    for path, problem in ((os.path.join(self.dir, "absent.png"), "cannot read file"),
                          (empty, "file is empty"), (text, "cannot decode image"),
                          (truncated, "cannot decode image")):
      with self.subTest(os.path.basename(path)):
        with self.assertRaises(image_files.UnreadableImageError) as caught:
          image_files.read_rgb(path)
        self.assertIsInstance(caught.exception, InputError)
        self.assertEqual(caught.exception.path, path)
        self.assertStartsWith(caught.exception.problem, problem)


if __name__ == "__main__":
  tf.test.main()
