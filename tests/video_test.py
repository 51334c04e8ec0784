"""Segmenting video: frames, rate and size kept, class maps equal to the
single-image prediction, bad files named in one line."""

import os
import unittest
from fractions import Fraction

import numpy as np
import tensorflow as tf
from PIL import Image

import reseg_tf
from reseg_tf.common.errors import InputError
from reseg_tf.evaluation import summaries
from tests import fixtures

try:
  import imageio_ffmpeg  # noqa: F401

  from reseg_tf.serving import video
except ImportError:  # pragma: no cover
  video = None

FRAMES, FPS, HEIGHT, WIDTH = 8, 10, 48, 64


def clip_frames() -> np.ndarray:
  """`[FRAMES, HEIGHT, WIDTH, 3]`: a bright square moving over a gradient."""
  frames = np.zeros((FRAMES, HEIGHT, WIDTH, 3), np.uint8)
  frames[..., 1] = np.linspace(40, 200, WIDTH, dtype=np.uint8)[None, None]
  frames[..., 2] = 90
  for i in range(FRAMES):
    frames[i, 10:34, 4 + 5 * i:28 + 5 * i] = (230, 200, 60)
  return frames


def write_clip(path, frames=None, fps=FPS) -> str:
  frames = clip_frames() if frames is None else frames
  with video.VideoWriter(path, frames.shape[2], frames.shape[1], Fraction(fps)) as writer:
    for frame in frames:
      writer.write(frame)
  return path


@unittest.skipIf(video is None, "needs the video extra: pip install -e '.[video]'")
class VideoTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = os.path.join(tf.compat.v1.test.get_temp_dir(), "video")
    os.makedirs(cls.root, exist_ok=True)
    cls.clip = write_clip(os.path.join(cls.root, "drive.mp4"))
    cls.model = reseg_tf.load_model("horse_no_vgg")

  def segment(self, frames):
    return video.model_segment_fn(self.model)(frames)

  def decoded(self, path):
    info, frames = video.open_video(path)
    return info, np.stack(list(frames))

  def test_frame_count_rate_and_size_are_kept(self):
    for layout, width in (("blend", WIDTH), ("side_by_side", 2 * WIDTH)):
      output = os.path.join(self.root, f"out_{layout}.mp4")
      report = video.segment_video(self.clip, output, self.segment, self.model.colors,
                                   layout=layout, batch_size=3)
      self.assertEqual(report.frames, FRAMES)
      info, frames = self.decoded(output)
      self.assertEqual((info.frames, info.fps, info.width, info.height),
                       (FRAMES, Fraction(FPS), width, HEIGHT))
      self.assertEqual(frames.shape, (FRAMES, HEIGHT, width, 3))

  def test_other_containers_and_odd_sizes_and_ntsc_rates(self):
    frames = clip_frames()[:5, :45, :61]  # Odd height and width: stored 4:4:4.
    for extension in (".mkv", ".avi", ".mov"):
      clip = write_clip(os.path.join(self.root, f"odd{extension}"), frames,
                        fps=Fraction(30000, 1001))
      output = os.path.join(self.root, f"odd_out{extension}")
      video.segment_video(clip, output, self.segment, self.model.colors)
      info, decoded = self.decoded(output)
      self.assertEqual((info.frames, info.fps, info.width, info.height),
                       (5, Fraction(30000, 1001), 61, 45), extension)
      self.assertEqual(decoded.shape, frames.shape)

  def test_class_maps_equal_the_single_image_prediction_of_each_frame(self):
    classes_dir = os.path.join(self.root, "classes")
    video.segment_video(self.clip, os.path.join(self.root, "maps.mp4"), self.segment,
                        self.model.colors, batch_size=4, classes_dir=classes_dir)
    self.assertEqual(sorted(os.listdir(classes_dir)),
                     [f"{i:06d}.png" for i in range(FRAMES)])
    _, frames = self.decoded(self.clip)  # The frames the model saw.
    written = [np.asarray(Image.open(os.path.join(classes_dir, f"{i:06d}.png")))
               for i in range(FRAMES)]
    for i in (0, 5, 7):  # First, middle of the second batch, the last (short) batch.
      single = self.model.segment(frames[i]).classes
      self.assertAllEqual(written[i], single)
    # The square (horse-coloured or not) changes the map as it moves.
    self.assertNotAllEqual(written[0], written[7])

  def test_blended_frames_are_the_overlay_within_codec_error(self):
    output = os.path.join(self.root, "blend.mp4")
    classes_dir = os.path.join(self.root, "blend_classes")
    video.segment_video(self.clip, output, self.segment, self.model.colors, alpha=0.6,
                        classes_dir=classes_dir)
    _, frames = self.decoded(self.clip)
    _, blended = self.decoded(output)
    for i in (0, 4):
      classes = np.asarray(Image.open(os.path.join(classes_dir, f"{i:06d}.png")))
      expected = (0.4 * frames[i] + 0.6 * summaries.colorize(classes, self.model.colors))
      error = np.abs(blended[i].astype(float) - expected)
      self.assertLess(error.mean(), 4.0)

  def test_progress_counts_frames_with_an_eta(self):
    done = []
    video.segment_video(self.clip, os.path.join(self.root, "progress.mp4"), self.segment,
                        self.model.colors, batch_size=3,
                        on_frames=lambda n, total: done.append((n, total)))
    self.assertEqual(done, [(3, FRAMES), (6, FRAMES), (8, FRAMES)])

  def test_bad_files_raise_one_line_naming_them(self):
    with open(self.clip, "rb") as f:
      data = f.read()
    cases = {"truncated.mp4": data[:len(data) // 2], "notes.mp4": b"not a video\n",
             "empty.mp4": b""}
    for name, content in cases.items():
      path = os.path.join(self.root, name)
      with open(path, "wb") as f:
        f.write(content)
      with self.assertRaises(InputError, msg=name) as raised:
        video.segment_video(path, os.path.join(self.root, "never.mp4"), self.segment,
                            self.model.colors)
      self.assertEqual(raised.exception.path, path)
      self.assertNotIn("\n", str(raised.exception))
      self.assertLess(len(str(raised.exception)), 300)
    self.assertFalse(os.path.exists(os.path.join(self.root, "never.mp4")))

  def test_a_failure_midway_leaves_no_half_written_video(self):
    calls = []

    def fails_on_the_second_batch(frames):
      calls.append(len(frames))
      if len(calls) == 2:
        raise RuntimeError("out of memory")
      return self.segment(frames)

    output = os.path.join(self.root, "half.mp4")
    with self.assertRaisesRegex(RuntimeError, "out of memory"):
      video.segment_video(self.clip, output, fails_on_the_second_batch, self.model.colors,
                          batch_size=3)
    self.assertEqual(calls, [3, 3])
    self.assertFalse(os.path.exists(output))

  def test_refuses_videos_longer_than_max_frames(self):
    with self.assertRaisesRegex(InputError, "8 frames .* at most 5"):
      video.segment_video(self.clip, os.path.join(self.root, "long.mp4"), self.segment,
                          self.model.colors, max_frames=5)

  def test_refuses_output_containers_it_cannot_write(self):
    with self.assertRaisesRegex(InputError, "cannot write .gif video"):
      video.segment_video(self.clip, os.path.join(self.root, "out.gif"), self.segment,
                          self.model.colors)


@unittest.skipIf(video is None, "needs the video extra: pip install -e '.[video]'")
class PredictVideoTest(tf.test.TestCase):
  """`python -m reseg_tf.predict --input=<video>`."""

  def test_writes_the_overlay_video_and_the_class_maps(self):
    root = os.path.join(tf.compat.v1.test.get_temp_dir(), "predict_video")
    os.makedirs(root, exist_ok=True)
    clip = write_clip(os.path.join(root, "drive.mov"))
    output = os.path.join(root, "out")
    process = fixtures.run_module(
        "reseg_tf.predict", "--model=horse_no_vgg", f"--input={clip}",
        f"--output_dir={output}", "--video_layout=side_by_side", "--video_classes",
        "--video_batch_size=3", "--video_sheet=3")
    self.assertEqual(process.returncode, 0, process.stderr)
    self.assertIn(f"Segmented {FRAMES} frames of {clip}", process.stdout)
    self.assertIn(f"{FRAMES}/{FRAMES} frames", process.stderr)  # The progress bar.
    self.assertEqual(sorted(os.listdir(output)),
                     ["drive_classes", "drive_frames.png", "drive_overlay.mp4"])
    # Frames 0, 4 and 7, each a row of 180 pixels (and its caption): frame | colours.
    sheet = np.asarray(Image.open(os.path.join(output, "drive_frames.png")))
    self.assertEqual(sheet.shape, (3 * (180 + 14) + 2 * 4, 2 * 240 + 4, 3))
    info, _ = video.open_video(os.path.join(output, "drive_overlay.mp4"))
    self.assertEqual((info.frames, info.fps, info.width, info.height),
                     (FRAMES, Fraction(FPS), 2 * WIDTH, HEIGHT))
    classes = np.asarray(Image.open(os.path.join(output, "drive_classes", "000004.png")))
    _, frames = video.open_video(clip)
    frame = list(frames)[4]
    self.assertAllEqual(classes, reseg_tf.load_model("horse_no_vgg").segment(frame).classes)


if __name__ == "__main__":
  tf.test.main()
