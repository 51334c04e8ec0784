"""Reading and encoding image files with clear errors.

Pillow, not TensorFlow, decodes the raw files (`reseg_tf.common.image_files`):
it exposes palette indices (Flowers trimaps are palette PNGs whose *index*
is the class) and it releases the GIL while decoding, resizing and encoding,
so the writer's worker threads really run in parallel.

EXIF orientation: the readers here take `apply_exif_orientation`, False by
default, so the benchmark converters read their releases as stored, as the
masks of those releases were drawn and as the published numbers were
measured; the folder converter (the user's photos) turns them by default
(`--exif_orientation`).
"""

import io
from typing import Optional

import numpy as np
from PIL import Image

from data_prep.dataset import BadInputError
from reseg_tf.common import image_files

# Formats whose bytes tf.io.decode_image reads and we may store untouched.
_PASSTHROUGH_FORMATS = {"PNG": "png", "JPEG": "jpeg"}
# Fast zlib level: the shards are a working format, not an archive.
_PNG_COMPRESS_LEVEL = 1


def read_rgb(path: str, size: Optional[tuple[int, int]] = None,
             apply_exif_orientation: bool = False
             ) -> tuple[np.ndarray, Optional[bytes], Optional[str]]:
  """Reads an RGB image, optionally resized to `size` = (height, width).

  Returns:
    `(pixels, encoded, format)`: uint8 `[H, W, 3]` pixels, and the file's own
    bytes and format when they decode to exactly these pixels (so they can be
    stored untouched), else `(pixels, None, None)`.

  Raises:
    image_files.UnreadableImageError: the file is missing, empty or not an image.
  """
  image, data, turned = image_files.open_image(path, apply_exif_orientation)
  # Turned pixels are not what the stored bytes decode to (decoders ignore EXIF).
  passthrough = (_PASSTHROUGH_FORMATS.get(image.format)
                 if image.mode == "RGB" and not turned else None)
  pixels = image_files.to_rgb(image)
  if size is not None and pixels.shape[:2] != tuple(size):
    # Pillow's bilinear filter widens its support when shrinking, so this
    # is an antialiased resize.
    pixels = np.asarray(Image.fromarray(pixels).resize((size[1], size[0]), Image.BILINEAR),
                        dtype=np.uint8)
    passthrough = None
  if passthrough:
    return pixels, data, passthrough
  return pixels, None, None


def read_single_channel(path: str, apply_exif_orientation: bool = False) -> np.ndarray:
  """Reads a single-channel image: grey levels, or palette indices for 'P'.

  Raises:
    BadInputError: unreadable, or a colour image where one channel is needed.
  """
  image, _, _ = image_files.open_image(path, apply_exif_orientation)
  if image.mode in ("L", "P"):
    return np.asarray(image, dtype=np.uint8)
  if image.mode in ("I;16", "I;16B", "I", "1"):
    return np.asarray(image).astype(np.int32)  # Callers check the range.
  if image.mode in ("RGB", "RGBA", "LA"):
    array = np.asarray(image)
    # Some tools save grey masks as RGB with equal channels: accept those.
    channels = array[..., :3] if image.mode != "LA" else array[..., :1]
    if np.all(channels == channels[..., :1]):
      return channels[..., 0].astype(np.uint8)
  raise BadInputError(path, f"expected a single-channel image, found mode {image.mode}")


def read_rgb_array(path: str, apply_exif_orientation: bool = False) -> np.ndarray:
  """Reads the pixels of a colour-coded label image as uint8 `[H, W, 3]`."""
  image, _, _ = image_files.open_image(path, apply_exif_orientation)
  return np.asarray(image.convert("RGB"), dtype=np.uint8)


def encode_png(array: np.ndarray) -> bytes:
  """PNG bytes of a uint8 `[H, W]` or `[H, W, 3]` array."""
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format="PNG",
                              compress_level=_PNG_COMPRESS_LEVEL)
  return buffer.getvalue()


def check_same_size(image: np.ndarray, label: np.ndarray, label_path: str):
  """Raises BadInputError when the label map does not cover the image."""
  if image.shape[:2] != label.shape[:2]:
    raise BadInputError(
        label_path, f"label is {label.shape[0]}x{label.shape[1]} (HxW) but "
        f"its image is {image.shape[0]}x{image.shape[1]}")
