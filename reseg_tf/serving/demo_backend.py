"""What the demo page does, without the page: the models it offers, reading an
upload with limits, segmenting it and describing the result.

`reseg_tf/demo.py` puts these behind a Gradio page; the tests call them
directly. Nothing here imports Gradio.

Safety. `Models` loads only the published models (folders under `models/`)
and the models given on the command line, whatever name a request sends.
`read_image` checks an upload's size in pixels from its header before
decoding it: images of more than `Limits.max_pixels` are refused, larger
than `Limits.max_side` (the longer side) are downscaled before the model
sees them, and the result says so. Video frames are downscaled likewise
(to `max_video_side`) and their class maps scaled back, so the overlay
video has the upload's size. Every expected problem raises `InputError`
naming the upload (by its file name, not its temporary path).
"""

import dataclasses
import html
import os
import tempfile
import threading
import time
from typing import Callable, Optional, Sequence

import numpy as np
from PIL import Image

import reseg_tf
from reseg_tf.common import image_files, run_files
from reseg_tf.common.errors import InputError
from reseg_tf.serving import video

EXAMPLES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "demo_examples")
# (file in EXAMPLES_DIR, the published model it suits).
EXAMPLES = (("camvid_0016E5_08085.jpg", "camvid_no_vgg_cycle4"),
            ("horse004.jpg", "horse_no_vgg"),
            ("flowers17_image_0008.jpg", "flowers_no_vgg"))
DEFAULT_MODEL = "camvid_no_vgg_cycle4"  # The best published CamVid model.
_TURNED = (5, 6, 7, 8)  # EXIF orientations that swap width and height.
READABLE = "PNG, JPEG, GIF, BMP, TIFF or WebP"


@dataclasses.dataclass(frozen=True)
class Limits:
  """What the page accepts.

  Attributes:
    max_side: images whose longer side is larger are downscaled to it.
    max_pixels: larger images are refused before they are decoded.
    max_video_frames: longer videos are refused.
    max_video_side: video frames whose longer side is larger are
      downscaled to it for the model.
  """
  max_side: int = 1024
  max_pixels: int = 50_000_000
  max_video_frames: int = 300
  max_video_side: int = 480


class Models:
  """The models the page offers, loaded on first use and kept.

  Args:
    given: models named on the command line (a published model's name or
      folder, a training run's folder, an exported SavedModel); the first is
      the page's default. None or empty: the default published model.
    compute_dtype: passed to `load_model` ("bfloat16" or None).
    loader: `reseg_tf.load_model` (default) or a stand-in with its arguments.
  """

  def __init__(self, given: Optional[Sequence[str]] = None,
               compute_dtype: Optional[str] = None,
               loader: Optional[Callable] = None):
    given = list(given or [DEFAULT_MODEL])
    published = sorted(run_files.published_names())
    self.choices = list(dict.fromkeys(given + published))
    self.default = given[0]
    self._compute_dtype = compute_dtype
    self._loader = loader or reseg_tf.load_model
    self._loaded = {}
    self._lock = threading.Lock()

  def get(self, choice: str):
    """The `SegmentationModel` of one of `choices`.

    Raises:
      InputError: `choice` is not offered, or cannot be loaded.
    """
    if choice not in self.choices:
      raise InputError(str(choice), "not a model this page offers")
    with self._lock:  # Two requests must not load one model twice.
      if choice not in self._loaded:
        kwargs = {"compute_dtype": self._compute_dtype} if self._compute_dtype else {}
        self._loaded[choice] = self._loader(choice, **kwargs)
      return self._loaded[choice]


def read_image(path: str, limits: Limits, name: Optional[str] = None) -> tuple:
  """An upload as uint8 RGB `[H, W, 3]`, its EXIF orientation applied (as
  viewers show it), downscaled to `limits.max_side`.

  Args:
    path: the uploaded file.
    limits: the page's `Limits`.
    name: how to call the file in messages (default: its base name).

  Returns:
    `(image, note)`: `note` says how the image was downscaled, or is "".

  Raises:
    InputError: the file is empty, not an image, or too large.
  """
  name = name or os.path.basename(path)
  if not os.path.isfile(path) or os.path.getsize(path) == 0:
    raise InputError(name, "the file is empty")
  try:
    with Image.open(path) as image:
      width, height = image.size
      if width * height > limits.max_pixels:
        raise _too_large(name, width, height, limits)
      if image_files.orientation(image) in _TURNED:
        width, height = height, width  # As shown, and as `rgb` will be.
      # JPEG: decode at 1/2, 1/4 or 1/8 scale when still larger than needed.
      image.draft("RGB", (limits.max_side, limits.max_side))
      rgb = image_files.pil_to_rgb(image)
  except Image.DecompressionBombError:  # Pillow's own limit, met in Image.open.
    raise _too_large(name, *_header_size(path), limits) from None
  except (OSError, ValueError, SyntaxError) as e:  # Pillow's decoding errors.
    raise InputError(name, f"not an image this page can read ({READABLE})") from e
  scale = limits.max_side / max(rgb.shape[:2])
  if scale >= 1:
    return rgb, ""
  size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
  rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR, reducing_gap=2.0))
  return rgb, (f"Downscaled from {width}x{height} to {size[0]}x{size[1]} pixels "
               f"(the longer side to at most {limits.max_side}).")


def _header_size(path: str) -> tuple:
  """The width and height in an image's header, past Pillow's size limit."""
  limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
  try:
    with Image.open(path) as image:
      return image.size
  finally:
    Image.MAX_IMAGE_PIXELS = limit


def _too_large(name: str, width: int, height: int, limits: Limits) -> InputError:
  return InputError(name, f"{width}x{height} pixels ({width * height / 1e6:.0f} MP) is "
                    f"more than this page takes ({limits.max_pixels / 1e6:.0f} MP); "
                    "scale it down first")


@dataclasses.dataclass
class ImageOutcome:
  """An image's segmentation as the page shows it.

  Attributes:
    result: the `reseg_tf.Segmentation`.
    model_name: the model's name.
    seconds: the time `segment` took.
    note: how the upload was downscaled, or "".
  """
  result: object
  model_name: str
  seconds: float
  note: str = ""

  def legend_html(self) -> str:
    return legend_html(self.result.class_names, self.result.colors,
                       self.result.pixel_shares())

  def summary(self) -> str:
    height, width = self.result.classes.shape
    return (f"**{self.model_name}** segmented {width}x{height} pixels in "
            f"{1000 * self.seconds:.0f} ms." + (f" {self.note}" if self.note else ""))


def segment_image(models: Models, choice: str, path: str, limits: Limits,
                  name: Optional[str] = None) -> ImageOutcome:
  """Reads the upload `path` (`read_image`) and segments it with `choice`.

  Raises:
    InputError: the model is not offered, or the upload cannot be read.
  """
  model = models.get(choice)
  image, note = read_image(path, limits, name)
  start = time.perf_counter()
  result = model.segment(image)
  return ImageOutcome(result=result, model_name=model.name,
                      seconds=time.perf_counter() - start, note=note)


def legend_html(class_names: Sequence[str], colors: np.ndarray, shares: dict) -> str:
  """A table of the classes: colour, name and share of the pixels, in class order."""
  rows = "".join(
      f'<tr><td><span class="reseg-swatch" style="background:rgb({r},{g},{b})">'
      f"</span></td><td>{html.escape(name)}</td>"
      f'<td class="reseg-share">{100 * shares.get(name, 0.0):.1f}%</td></tr>'
      for name, (r, g, b) in zip(class_names, np.asarray(colors).tolist()))
  return (f'<table class="reseg-legend"><thead><tr><th></th><th>class</th>'
          f"<th>pixels</th></tr></thead><tbody>{rows}</tbody></table>")


@dataclasses.dataclass
class VideoOutcome:
  """A video's segmentation: the `video.VideoReport` and the model's name."""
  report: video.VideoReport
  model_name: str

  def summary(self) -> str:
    report, info = self.report, self.report.info
    return (f"**{self.model_name}** segmented {report.frames} frames of "
            f"{info.width}x{info.height} ({float(info.fps):.2f} fps) in "
            f"{report.seconds:.1f} s, {report.frames / max(report.model_seconds, 1e-9):.1f} "
            "frames per second in the model.")


def segment_video(models: Models, choice: str, path: str, output_dir: str,
                  limits: Limits, layout: str = "blend", name: Optional[str] = None,
                  on_frames: Optional[Callable[[int, int], None]] = None) -> VideoOutcome:
  """Segments the uploaded video `path` into `<a new folder in
  output_dir>/<stem>_<layout>.mp4`.

  Raises:
    InputError: the model is not offered, or the upload is not a readable
      video, or it has more than `limits.max_video_frames` frames.
  """
  model = models.get(choice)
  name = name or os.path.basename(path)
  stem = os.path.splitext(os.path.basename(path))[0]
  output = os.path.join(tempfile.mkdtemp(dir=output_dir), f"{stem}_{layout}.mp4")

  segment_model = video.model_segment_fn(model)

  def segment(frames: np.ndarray) -> np.ndarray:
    """The model sees frames of at most `max_video_side`; the class maps are
    scaled back (nearest) to the frames' size."""
    height, width = frames.shape[1:3]
    scale = limits.max_video_side / max(height, width)
    if scale >= 1:
      return segment_model(frames)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = np.stack([np.asarray(Image.fromarray(f).resize(size, Image.BILINEAR))
                      for f in frames])
    return np.stack([np.asarray(Image.fromarray(c.astype(np.uint8)).resize(
        (width, height), Image.NEAREST)) for c in segment_model(small)])

  try:
    report = video.segment_video(path, output, segment, model.colors, layout=layout,
                                 max_frames=limits.max_video_frames, on_frames=on_frames)
  except InputError as e:
    raise InputError(name, e.problem) from e  # The upload's name, not its temp path.
  return VideoOutcome(report=report, model_name=model.name)
