"""Segmenting video files: an overlay video and, optionally, per-frame class maps.

`segment_video` reads a video's frames, sends them in batches through a
segmentation function (uint8 frames `[B, H, W, 3]` -> class ids `[B, H, W]`;
`model_segment_fn` makes one of a `reseg_tf.SegmentationModel`) and writes

  - a video of the same frame count, frame rate and frame size (twice the
    width for the side-by-side layout): the class colours blended over each
    frame (`layout="blend"`), or the frame and its colour map side by side
    (`layout="side_by_side"`);
  - optionally, each frame's class map as a lossless 8-bit PNG of class ids,
    `<classes_dir>/000000.png`, `000001.png`, ... (the video itself is
    compressed, so these are what to compare or post-process).

Reading and writing go through the ffmpeg executable that the `imageio-ffmpeg`
package ships (the `video` extra), so any container and codec that ffmpeg
reads works: .mp4, .mov, .mkv, .avi, .webm, ... A rotated phone video is
turned upright as players show it. Frames are passed through one to one (no
frame is dropped or repeated to even out a variable frame rate); the output
plays at the input's average frame rate. The output is H.264 in an .mp4, .mov,
.mkv or .avi file, VP9 in a .webm; frames of even height and width are stored
as 4:2:0 (what every player plays), others as 4:4:4, so that the size is kept.

Audio is not copied.
"""

import dataclasses
import os
import re
import time
from fractions import Fraction
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
from PIL import Image

from reseg_tf.common import extras
from reseg_tf.common.errors import InputError
from reseg_tf.common.progress import ProgressBar
from reseg_tf.evaluation import summaries
from reseg_tf.serving import prediction

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg",
                    ".wmv", ".flv", ".ogv", ".3gp", ".ts", ".mts")
OUTPUT_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm")
LAYOUTS = ("blend", "side_by_side")
DEFAULT_BATCH_SIZE = 8
# H.264 quality: imageio-ffmpeg's 1..10 scale; 8 is x264's CRF 10, which keeps
# the class colours' edges crisp at about 3x the size of the default (5).
_QUALITY = 8
# Frame rates that ffmpeg prints rounded (29.97) but that are ratios.
_NTSC_RATES = (Fraction(24000, 1001), Fraction(30000, 1001), Fraction(60000, 1001))

_LOG_PREFIX = re.compile(r"^(\[[^\]]*\]\s*)+")

SegmentFn = Callable[[np.ndarray], np.ndarray]


def _ffmpeg():
  return extras.require("imageio_ffmpeg", "video", "reading and writing video")


def is_video(path: str) -> bool:
  """Whether `path`'s extension is one of `VIDEO_EXTENSIONS` (any case)."""
  return path.lower().endswith(VIDEO_EXTENSIONS)


@dataclasses.dataclass(frozen=True)
class VideoInfo:
  """What ffmpeg says about a video's first video stream.

  Attributes:
    width, height: of the frames as read (after rotation).
    fps: the average frame rate, exact for the NTSC rates (30000/1001 ...).
    frames: the number of frames, counted by decoding the whole stream.
    codec: e.g. "h264".
  """
  width: int
  height: int
  fps: Fraction
  frames: int
  codec: str

  @property
  def seconds(self) -> float:
    return float(self.frames / self.fps) if self.fps else 0.0


def _rate(fps: float) -> Fraction:
  """ffmpeg's rounded frame rate as a ratio (29.97 -> 30000/1001)."""
  for rate in _NTSC_RATES:
    if abs(float(rate) - fps) < 0.006:
      return rate
  return Fraction(fps).limit_denominator(1001)


def _first_line(error: Exception) -> str:
  """The line of ffmpeg's log that says what went wrong, without its
  `[component @ 0x...]` prefixes."""
  lines = [_LOG_PREFIX.sub("", line).strip() for line in str(error).splitlines()]
  lines = [line for line in lines if line and not line.startswith(("=", "FFMPEG"))]
  for marker in ("moov atom not found", "Decoding error", "Invalid data found",
                 "does not contain any stream", "No such file", "Error", "error"):
    for line in lines:
      if marker in line:
        return line
  return lines[-1] if lines else type(error).__name__


def _unreadable(path: str, error: Exception) -> InputError:
  return InputError(path, f"ffmpeg cannot read it as a video: {_first_line(error)}")


def open_video(path: str) -> tuple[VideoInfo, Iterator[np.ndarray]]:
  """Opens a video for reading.

  Returns:
    `(info, frames)`: `frames` yields uint8 RGB `[H, W, 3]` arrays; close it
    (or exhaust it) to end the ffmpeg process.

  Raises:
    InputError: the file is missing, empty, truncated or not a video.
  """
  ffmpeg = _ffmpeg()
  if not os.path.isfile(path):
    raise InputError(path, "no such file")
  if os.path.getsize(path) == 0:
    raise InputError(path, "the file is empty")
  try:
    frame_count, _ = ffmpeg.count_frames_and_secs(path)
    reader = ffmpeg.read_frames(path, output_params=["-fps_mode", "passthrough"])
    meta = next(reader)
  except (OSError, RuntimeError, IndexError, ValueError, StopIteration) as e:
    # IndexError: ffmpeg opened the file but found no video stream in it.
    raise _unreadable(path, e) from e
  if frame_count < 1:
    reader.close()
    raise InputError(path, "the video has no frames")
  width, height = meta["size"]
  info = VideoInfo(width=width, height=height, fps=_rate(meta["fps"] or 25.0),
                   frames=frame_count, codec=meta.get("codec", ""))
  return info, _frames(path, reader, info)


def _frames(path: str, reader, info: VideoInfo) -> Iterator[np.ndarray]:
  try:
    for data in reader:
      yield np.frombuffer(data, np.uint8).reshape(info.height, info.width, 3)
  except RuntimeError as e:  # A frame cut short: a truncated file.
    raise _unreadable(path, e) from e
  finally:
    reader.close()


class VideoWriter:
  """Writes uint8 RGB frames of one size to a video file (module docstring).

  A context manager: the file is complete when the block ends, and removed
  when the block raises.
  """

  def __init__(self, path: str, width: int, height: int, fps: Fraction):
    extension = os.path.splitext(path)[1].lower()
    if extension not in OUTPUT_EXTENSIONS:
      raise InputError(path, f"cannot write {extension or 'this'} video: use one of "
                       f"{', '.join(OUTPUT_EXTENSIONS)}")
    ffmpeg = _ffmpeg()
    even = width % 2 == 0 and height % 2 == 0
    output_params = ["-movflags", "+faststart"] if extension in (".mp4", ".mov") else []
    self.path, self.size = path, (width, height)
    self.frames = 0
    self._writer = ffmpeg.write_frames(
        path, (width, height), fps=fps, quality=_QUALITY,
        codec="libvpx-vp9" if extension == ".webm" else "libx264",
        pix_fmt_out="yuv420p" if even else "yuv444p",
        macro_block_size=2 if even else 1, ffmpeg_log_level="error",
        output_params=output_params)
    self._writer.send(None)

  def write(self, frame: np.ndarray):
    if frame.shape != (self.size[1], self.size[0], 3) or frame.dtype != np.uint8:
      raise ValueError(f"expected a uint8 frame of {self.size[1]}x{self.size[0]}x3, "
                       f"got {frame.dtype} {frame.shape}")
    self._writer.send(np.ascontiguousarray(frame))
    self.frames += 1

  def close(self):
    self._writer.close()
    if not os.path.exists(self.path) or os.path.getsize(self.path) == 0:
      raise InputError(self.path, "ffmpeg wrote no video")

  def __enter__(self):
    return self

  def __exit__(self, exc_type, *_):
    if exc_type is None:
      self.close()
      return
    # Failed midway: end ffmpeg and leave no half-written video behind.
    self._writer.close()
    if os.path.exists(self.path):
      os.remove(self.path)


@dataclasses.dataclass
class VideoReport:
  """What `segment_video` did.

  Attributes:
    input: the input video.
    output: the video written.
    classes_dir: the folder of per-frame class maps, or None.
    info: the input's `VideoInfo`.
    frames: the frames segmented and written.
    model_seconds: the time spent in the segmentation function.
    seconds: the whole run's time (reading, the model, drawing, writing).
    kept: `{frame index: (frame, class map)}` of the frames `keep_frames`
      asked for.
  """
  input: str
  output: str
  classes_dir: Optional[str]
  info: VideoInfo
  frames: int
  model_seconds: float
  seconds: float
  kept: dict = dataclasses.field(default_factory=dict)

  @property
  def frames_per_second(self) -> float:
    return self.frames / max(self.seconds, 1e-9)


def draw(frames: np.ndarray, classes: np.ndarray, colors: np.ndarray,
         layout: str = "blend", alpha: float = 0.5) -> np.ndarray:
  """The output frames of `frames` uint8 `[B, H, W, 3]` and their `classes`
  `[B, H, W]`: blended `[B, H, W, 3]` or side by side `[B, H, 2W, 3]`."""
  color = summaries.colorize(classes, colors)
  if layout == "blend":
    return summaries.overlay(frames, color, alpha)
  if layout == "side_by_side":
    return np.concatenate([frames, color], axis=2)
  raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")


def model_segment_fn(model) -> SegmentFn:
  """`segment_video`'s function for a `reseg_tf.SegmentationModel`: the
  frames of a batch go through its `segment` together."""

  def segment(frames: np.ndarray) -> np.ndarray:
    return np.stack([r.classes for r in model.segment(list(frames), batch_size=len(frames))])

  return segment


def segment_video(path: str, output_path: str, segment: SegmentFn,
                  colors: Sequence[Sequence[int]], *, layout: str = "blend",
                  alpha: float = 0.5, batch_size: int = DEFAULT_BATCH_SIZE,
                  classes_dir: Optional[str] = None, max_frames: Optional[int] = None,
                  progress: bool = False,
                  on_frames: Optional[Callable[[int, int], None]] = None,
                  keep_frames: int = 0) -> VideoReport:
  """Segments every frame of the video `path` and writes `output_path`.

  Args:
    path: the input video.
    output_path: the video to write (its folder is created); its extension
      picks the container (`OUTPUT_EXTENSIONS`).
    segment: uint8 frames `[B, H, W, 3]` -> integer class ids `[B, H, W]`.
    colors: the classes' RGB colours, `[C, 3]`.
    layout: "blend" (colours over the frame, `alpha` opaque) or
      "side_by_side" (frame | colour map).
    alpha: opacity of the colours in the blend.
    batch_size: frames per call of `segment`.
    classes_dir: when given, each frame's class map is written there as
      `<frame index, 6 digits>.png` (8-bit class ids).
    max_frames: refuse videos with more frames than this (None: any).
    progress: draw a progress bar with the ETA on stderr.
    on_frames: called with `(frames done, frames in all)` after each batch.
    keep_frames: keep this many evenly spaced frames and their class maps in
      the report (for `frame_sheet`).

  Returns:
    A `VideoReport`.

  Raises:
    InputError: the input is not a readable video, or has more than
      `max_frames` frames; the output's extension is not one ffmpeg writes
      here.
    ValueError: `layout` or `batch_size` is invalid, or `segment` returned
      class maps of another shape.
  """
  if layout not in LAYOUTS:
    raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
  if batch_size < 1:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  colors = np.asarray(colors, np.uint8)
  start = time.monotonic()
  info, frames = open_video(path)
  try:
    if max_frames is not None and info.frames > max_frames:
      raise InputError(path, f"{info.frames} frames ({info.seconds:.1f} s): at most "
                       f"{max_frames} are segmented here; cut the video shorter")
    if os.path.dirname(output_path):
      os.makedirs(os.path.dirname(output_path), exist_ok=True)
    if classes_dir:
      os.makedirs(classes_dir, exist_ok=True)
    width = info.width * (2 if layout == "side_by_side" else 1)
    bar = ProgressBar(info.frames, unit="frames") if progress else None
    model_seconds, done, kept = 0.0, 0, {}
    keep = set(np.linspace(0, info.frames - 1, keep_frames).round().astype(int).tolist())
    with VideoWriter(output_path, width, info.height, info.fps) as writer:
      for batch in _batches(frames, batch_size):
        tick = time.monotonic()
        classes = np.asarray(segment(batch))
        model_seconds += time.monotonic() - tick
        if classes.shape != batch.shape[:3]:
          raise ValueError(f"segment returned class maps of shape {classes.shape} "
                           f"for frames of shape {batch.shape}")
        for frame in draw(batch, classes, colors, layout, alpha):
          writer.write(frame)
        for i in keep.intersection(range(done, done + len(batch))):
          kept[i] = (batch[i - done], classes[i - done])
        if classes_dir:
          for i, class_map in enumerate(classes):
            Image.fromarray(class_map.astype(np.uint8)).save(
                os.path.join(classes_dir, f"{done + i:06d}.png"))
        done += len(batch)
        if bar:
          bar.update(len(batch))
        if on_frames:
          on_frames(done, info.frames)
  finally:
    frames.close()
  return VideoReport(input=path, output=output_path, classes_dir=classes_dir, info=info,
                     frames=done, model_seconds=model_seconds,
                     seconds=time.monotonic() - start, kept=kept)


def frame_sheet(report: VideoReport, colors: Sequence[Sequence[int]],
                height: int = 180) -> np.ndarray:
  """One picture of the report's kept frames: per frame a row "frame i (t s)"
  with the frame and its class colours, scaled to `height`."""
  fps = report.info.fps or 1
  rows = [(f"{os.path.basename(report.input)}: frame {i} ({float(i / fps):.2f} s)",
           [frame, summaries.colorize(classes, colors)])
          for i, (frame, classes) in sorted(report.kept.items())]
  return prediction.contact_sheet(rows, height)


def _batches(frames: Iterator[np.ndarray], batch_size: int) -> Iterator[np.ndarray]:
  """`[B, H, W, 3]` stacks of at most `batch_size` consecutive frames."""
  batch = []
  for frame in frames:
    batch.append(frame)
    if len(batch) == batch_size:
      yield np.stack(batch)
      batch = []
  if batch:
    yield np.stack(batch)
