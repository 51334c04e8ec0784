r"""Segments image files with a trained ReSeg and draws the results.

  python -m reseg_tf.predict --model=camvid_no_vgg_cycle4 --input=photo.jpg
  python -m reseg_tf.predict --model_dir=runs/camvid --input=photos/ \
      --output_dir=predictions
  python -m reseg_tf.predict --saved_model=exports/camvid \
      --input='photos/**/*.jpg' --labels=photos_labels/

For each image (any size): `<stem>_classes.png` (class ids), `<stem>_color.png`
(the dataset's colours) and `<stem>_overlay.png`; for a folder or glob also
contact sheets (input | prediction | ground truth when --labels has
`<stem>.png`). Unreadable files are named and skipped; the exit status is
then 1.

With --model (a published model under models/) or --model_dir (a training
run) the model is rebuilt from its gin configuration and weights, the colours
read from its model_info.json (or the records' metadata.json); with
--saved_model (an export) everything comes from the SavedModel. The images
go through the Python API's `SegmentationModel.segment`
(`reseg_tf/segmentation.py`), so both give the same classes.

A video (--input=drive.mp4; also .mov, .mkv, .avi, .webm, ...; the `video`
extra) gives `<stem>_overlay.mp4`: the same frame count, frame rate and size,
the colours blended over each frame or (--video_layout=side_by_side) the
frame and its colour map side by side; with --video_classes also each
frame's class map, `<stem>_classes/000000.png`, ... (lossless); with
--video_sheet=N a picture of N frames and their class colours,
`<stem>_frames.png`. Frames go through the model --video_batch_size at a
time (`serving/video.py`).
"""

import os
import sys

from absl import app, flags, logging
from PIL import Image

from reseg_tf import cli, segmentation
from reseg_tf.serving import prediction, video
from reseg_tf.serving import segmenter as segmenter_lib

_MODEL = cli.define_model_flags(
    "Records whose metadata.json gives the class colours. Default: the "
    "model's own class table (model_info.json).")
_SAVED_MODEL = flags.DEFINE_string(
    "saved_model", None, "An exported SavedModel: a version folder, or the export "
    "folder (its highest version is used). Instead of --model or --model_dir.")
_INPUT = flags.DEFINE_string(
    "input", None, "An image file, a folder of images (not recursive) or a glob "
    "(quote it; ** recurses); or a video file. Required.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "predictions",
                                  "Where the pictures are written (created).")
_LABELS = flags.DEFINE_string(
    "labels", None, "Optional folder of ground-truth label maps <stem>.png "
    "(class ids, 255 void) drawn in the contact sheet. Default: none.")
_OVERLAY_ALPHA = flags.DEFINE_float("overlay_alpha", 0.5,
                                    "Opacity of the class colours in the overlay.")
_CONTACT_SHEET_ROWS = flags.DEFINE_integer(
    "contact_sheet_rows", 64, "Images per contact sheet (for a folder or glob); "
    "0: no contact sheet.")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show a progress bar for a folder or glob.")
_AUGMENTATION = cli.define_augmentation_flags()
_EXIF_ORIENTATION = flags.DEFINE_bool(
    "exif_orientation", True, "Turn photos as their EXIF orientation tag says (as "
    "viewers show them), so the outputs match the photo as seen; false: read the "
    "pixels as stored.")
# A video as --input (see the module docstring).
_VIDEO_LAYOUT = flags.DEFINE_enum(
    "video_layout", "blend", video.LAYOUTS, "For a video: 'blend' (the class colours "
    "over each frame, --overlay_alpha opaque) or 'side_by_side' (frame | colour map).")
_VIDEO_CLASSES = flags.DEFINE_bool(
    "video_classes", False, "For a video: also write each frame's class map, "
    "<stem>_classes/<frame>.png (class ids, lossless).")
_VIDEO_SHEET = flags.DEFINE_integer(
    "video_sheet", 0, "For a video: also write <stem>_frames.png, this many evenly "
    "spaced frames beside their class colours (0: none).")
_VIDEO_BATCH_SIZE = flags.DEFINE_integer(
    "video_batch_size", video.DEFAULT_BATCH_SIZE, "For a video: frames per batch "
    "through the model.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _MODEL.given() == bool(_SAVED_MODEL.value):
    raise app.UsageError("give one of --model, --model_dir and --saved_model")
  if not _INPUT.value:
    raise app.UsageError("give --input: an image, a folder or a glob")
  try:
    paths, is_collection = prediction.find_inputs(_INPUT.value)
  except FileNotFoundError as e:
    raise app.UsageError(str(e)) from None

  augmentation = _AUGMENTATION.value()
  if _SAVED_MODEL.value:
    if not augmentation.is_identity:
      raise app.UsageError("--tta_scales/--tta_flip apply to --model and --model_dir: "
                           "a SavedModel runs as exported")
    model = segmentation.SegmentationModel(
        segmenter_lib.load_saved_model(_SAVED_MODEL.value), _SAVED_MODEL.value)
  else:
    restored = cli.load_model(_MODEL)
    logging.info("Class colours from %s",
                 restored.class_table(_MODEL.records_dir.value)["source"])
    model = segmentation.from_restored(restored, _MODEL.records_dir.value, augmentation)

  if not is_collection and video.is_video(paths[0]):
    return _predict_video(model, paths[0])
  report = prediction.predict_files(
      model, paths, _OUTPUT_DIR.value, labels_dir=_LABELS.value,
      alpha=_OVERLAY_ALPHA.value,
      rows_per_sheet=_CONTACT_SHEET_ROWS.value if is_collection else 0,
      progress=_PROGRESS.value and is_collection,
      apply_exif_orientation=_EXIF_ORIENTATION.value)
  print(f"Segmented {len(report.written)} of {len(paths)} images into {_OUTPUT_DIR.value}"
        + (f"; contact sheets: {', '.join(report.contact_sheets)}"
           if report.contact_sheets else ""))
  if report.failed:
    print(f"{len(report.failed)} file(s) could not be read and were skipped:",
          file=sys.stderr)
    for path, reason in report.failed.items():
      print(f"  {path}: {reason}", file=sys.stderr)
    return 1
  return 0


def _predict_video(model, path: str) -> int:
  """Segments the video `path` into --output_dir (the module docstring)."""
  stem = os.path.splitext(os.path.basename(path))[0]
  classes_dir = (os.path.join(_OUTPUT_DIR.value, f"{stem}_classes")
                 if _VIDEO_CLASSES.value else None)
  report = video.segment_video(
      path, os.path.join(_OUTPUT_DIR.value, f"{stem}_overlay.mp4"),
      video.model_segment_fn(model), model.colors, layout=_VIDEO_LAYOUT.value,
      alpha=_OVERLAY_ALPHA.value, batch_size=_VIDEO_BATCH_SIZE.value,
      classes_dir=classes_dir, progress=_PROGRESS.value, keep_frames=_VIDEO_SHEET.value)
  sheet = os.path.join(_OUTPUT_DIR.value, f"{stem}_frames.png") if report.kept else None
  if sheet:
    Image.fromarray(video.frame_sheet(report, model.colors)).save(sheet)
  print(f"Segmented {report.frames} frames of {path} in {report.seconds:.1f} s "
        f"({report.frames_per_second:.2f} frames/s; the model alone "
        f"{report.frames / max(report.model_seconds, 1e-9):.2f}) into {report.output}"
        + (f"; class maps in {classes_dir}" if classes_dir else "")
        + (f"; frames in {sheet}" if sheet else ""))
  return 0


if __name__ == "__main__":
  cli.run(main)
