"""Reading photos as people see them: RGB pixels with the EXIF orientation applied.

Phones store a photo's pixels as the sensor read them and an EXIF tag that
tells viewers how to turn it. A mask drawn on the photo as shown, and a
prediction a user compares with the photo as shown, need the same turn, so
images are read with the tag applied unless the caller says otherwise.
"""

import numpy as np
from PIL import Image, ImageOps

from reseg_tf.common.errors import ResegError


class UnreadableImageError(ResegError):
  """A file that is missing, empty, or not an image Pillow can decode."""


def pil_to_rgb(image: Image.Image, apply_exif_orientation: bool = True) -> np.ndarray:
  """uint8 `[H, W, 3]` of a PIL image: grayscale copied to three channels,
  alpha dropped, the first frame of an animation; turned as its EXIF
  orientation tag says when `apply_exif_orientation`."""
  if apply_exif_orientation:
    image = ImageOps.exif_transpose(image)
  return np.asarray(image.convert("RGB"), np.uint8)


def read_rgb(path: str, apply_exif_orientation: bool = True) -> np.ndarray:
  """uint8 `[H, W, 3]` of an image file (see `pil_to_rgb`).

  Raises:
    UnreadableImageError: the file is missing, empty or not a decodable image.
  """
  try:
    with Image.open(path) as image:
      image.load()
      return pil_to_rgb(image, apply_exif_orientation)
  except (OSError, ValueError, SyntaxError) as e:  # PIL's decoding errors.
    raise UnreadableImageError(path, f"not a readable image ({type(e).__name__}: {e})") from e
