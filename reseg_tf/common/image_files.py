"""Reading a user's image file as it is shown: one function for every reader.

Phones store a photo as the sensor saw it and a tag (EXIF Orientation, 1..8)
that tells viewers how to turn it. A viewer, and so the labelling tool on
which a mask was drawn, shows it turned; TensorFlow's decoders ignore the
tag. `read_rgb` turns the pixels as the tag says (`PIL.ImageOps.exif_transpose`)
so that the build, prediction and the Python API see what the user sees;
`apply_exif_orientation=False` reads the pixels as stored.

Pillow decodes: it reads every format the users bring (PNG, JPEG, BMP, TIFF,
GIF, WebP) and releases the GIL while decoding, so reader threads run in
parallel.
"""

import io

import numpy as np
from PIL import Image, ImageOps

from reseg_tf.common.errors import InputError

# The EXIF tag that says how to turn the stored pixels for display.
EXIF_ORIENTATION = 0x0112
# 16-bit greys: Pillow's convert("RGB") clips them at 255 instead of scaling.
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L")


class UnreadableImageError(InputError):
  """An image file that is missing, empty or not decodable."""


def orientation(image: Image.Image) -> int:
  """The image's EXIF orientation (1..8), 1 when it has none (or a bad one)."""
  try:
    value = image.getexif().get(EXIF_ORIENTATION, 1)
  except Exception:  # pylint: disable=broad-except  # Damaged EXIF: show as stored.
    return 1
  return value if isinstance(value, int) and 1 <= value <= 8 else 1


def open_image(path: str, apply_exif_orientation: bool = True
               ) -> tuple[Image.Image, bytes, bool]:
  """Reads and fully decodes an image file (the first frame of an animation).

  Args:
    path: the file.
    apply_exif_orientation: turn the pixels as the EXIF orientation tag says.

  Returns:
    `(image, data, turned)`: the decoded Pillow image, the file's bytes, and
    whether the pixels were turned (the bytes then decode to other pixels).

  Raises:
    UnreadableImageError: the file is missing, empty, not an image or truncated.
  """
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise UnreadableImageError(path, f"cannot read file ({e.strerror})") from e
  if not data:
    raise UnreadableImageError(path, "file is empty")
  try:
    image = Image.open(io.BytesIO(data))
    image.load()  # Decode now: truncation only shows when pixels are read.
  except Exception as e:  # Pillow raises several unrelated types here.
    raise UnreadableImageError(path, f"cannot decode image ({e})") from e
  turned = apply_exif_orientation and orientation(image) != 1
  if turned:
    image = ImageOps.exif_transpose(image)
  return image, data, turned


def to_rgb(image: Image.Image) -> np.ndarray:
  """uint8 `[H, W, 3]` pixels: grey copied to 3 channels, alpha dropped,
  palette looked up, 16-bit grey scaled to 8 bits."""
  if image.mode in _SIXTEEN_BIT_MODES:
    grey = np.round(np.asarray(image, np.float64) / 257.0).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)
  if image.mode != "RGB":
    image = image.convert("RGB")
  return np.asarray(image, dtype=np.uint8)


def read_rgb(path: str, apply_exif_orientation: bool = True) -> np.ndarray:
  """An image file's pixels as shown, uint8 `[H, W, 3]` (module docstring).

  Grey images are copied to 3 channels, alpha is dropped, an animation
  gives its first frame.

  Raises:
    UnreadableImageError: the file is missing, empty or not decodable.
  """
  image, _, _ = open_image(path, apply_exif_orientation)
  return to_rgb(image)


def pil_to_rgb(image: Image.Image, apply_exif_orientation: bool = True) -> np.ndarray:
  """A Pillow image's pixels as shown, uint8 `[H, W, 3]` (as `read_rgb`)."""
  if apply_exif_orientation and orientation(image) != 1:
    image = ImageOps.exif_transpose(image)
  return to_rgb(image)
