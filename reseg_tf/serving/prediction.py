"""Segmenting image files and drawing the results.

`predict_files` runs a model (a `reseg_tf.segmentation.SegmentationModel`:
a published model, a run or a SavedModel) over image files of any size, one
at a time, and writes for each `<stem>` of the input:

  <stem>_classes.png   8-bit single-channel PNG of class ids 0..K-1
  <stem>_color.png     the class map in the dataset's colours
  <stem>_overlay.png   the colours blended over the image

and, for a folder or glob, contact sheets (`contact_sheet.png`, then
`contact_sheet-2.png`, ... of `rows_per_sheet` images each): per image a row
"input | prediction | ground truth" (the last when a label map with the same
stem is found in `labels_dir`), scaled to a common height.

Images are read by `common.image_files.read_rgb`: any format Pillow reads,
as RGB, turned as their EXIF orientation tag says (as viewers show them)
unless told otherwise. A file that cannot be read is reported by name and
skipped; the caller decides the exit status.
"""

import dataclasses
import glob
import os
import sys
from typing import Callable, Optional, Sequence

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw

from reseg_tf.common.errors import ResegError
from reseg_tf.common.progress import ProgressBar
from reseg_tf.evaluation import summaries

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff",
                    ".webp", ".ppm", ".pgm")
THUMBNAIL_HEIGHT = 160  # Pixels per contact-sheet row (images are scaled).
_GAP = 4  # Pixels between contact-sheet panels.
_CAPTION = 14  # Pixels of the file-name band above each row.
_MISSING = (128, 128, 128)  # The ground-truth panel when there is none.


@dataclasses.dataclass
class Report:
  """What `predict_files` did.

  Attributes:
    written: `{input path: [output files]}` of the images segmented.
    failed: `{input path: reason}` of the files skipped.
    contact_sheets: the contact sheets written.
  """
  written: dict = dataclasses.field(default_factory=dict)
  failed: dict = dataclasses.field(default_factory=dict)
  contact_sheets: list = dataclasses.field(default_factory=list)


def find_inputs(spec: str) -> tuple[list, bool]:
  """Expands `--input`: a file, a folder or a glob.

  A folder gives its files with an image extension (`IMAGE_EXTENSIONS`,
  any case; not recursive); a glob gives every file it matches (`**`
  recurses), whatever its extension.

  Returns:
    `(sorted paths, is_collection)`; `is_collection` is False for one file.

  Raises:
    FileNotFoundError: nothing matches.
  """
  if os.path.isfile(spec):
    return [spec], False
  if os.path.isdir(spec):
    paths = [os.path.join(spec, n) for n in os.listdir(spec)
             if n.lower().endswith(IMAGE_EXTENSIONS)
             and os.path.isfile(os.path.join(spec, n))]
  else:
    paths = [p for p in glob.glob(spec, recursive=True) if os.path.isfile(p)]
  if not paths:
    raise FileNotFoundError(f"no images found for --input={spec}")
  return sorted(paths), True


def read_label(path: str) -> np.ndarray:
  """A label map of class ids (single channel, 255 = void) as uint8 `[H, W]`."""
  with Image.open(path) as label:
    array = np.asarray(label)
  if array.ndim != 2:
    raise ResegError(path, f"expected a single-channel label map of class ids, "
                     f"got shape {array.shape}")
  return array.astype(np.uint8)


def contact_sheet(rows: Sequence[tuple], height: int = THUMBNAIL_HEIGHT) -> np.ndarray:
  """One picture: each row `(caption, [panels])`, panels scaled to `height`.

  Panels are uint8 `[H, W, 3]` arrays (None draws a grey box of the first
  panel's size: "no ground truth"); rows are left-aligned on white.
  """
  rendered = []
  for caption, panels in rows:
    first = next(p for p in panels if p is not None)
    scaled = [_thumbnail(p if p is not None else np.full_like(first, _MISSING), height,
                         nearest=i > 0) for i, p in enumerate(panels)]
    row = Image.new("RGB", (sum(p.width for p in scaled) + _GAP * (len(scaled) - 1),
                            height + _CAPTION), "white")
    ImageDraw.Draw(row).text((2, 1), caption, fill="black")
    x = 0
    for panel in scaled:
      row.paste(panel, (x, _CAPTION))
      x += panel.width + _GAP
    rendered.append(row)
  sheet = Image.new("RGB", (max(r.width for r in rendered),
                            sum(r.height for r in rendered) + _GAP * (len(rendered) - 1)),
                    "white")
  y = 0
  for row in rendered:
    sheet.paste(row, (0, y))
    y += row.height + _GAP
  return np.asarray(sheet)


def predict_files(model, paths: Sequence[str], output_dir: str,
                  labels_dir: Optional[str] = None, alpha: float = 0.5,
                  rows_per_sheet: int = 64, progress: bool = True,
                  log: Callable[[str], None] = None,
                  apply_exif_orientation: bool = True) -> Report:
  """Segments every file of `paths` and writes the pictures (module docstring).

  Args:
    model: a `reseg_tf.segmentation.SegmentationModel`.
    paths: input image files.
    output_dir: created if needed.
    labels_dir: folder of ground-truth label maps `<stem>.png`, or None.
    alpha: opacity of the colours in the overlay.
    rows_per_sheet: images per contact sheet; 0: no contact sheet.
    progress: draw a progress bar (on stderr).
    log: where messages go (default: the progress bar's stream).
    apply_exif_orientation: turn photos as their EXIF tag says.

  Returns:
    A `Report`; unreadable files are in `failed`, not raised.
  """
  os.makedirs(output_dir, exist_ok=True)
  colors = model.colors
  bar = ProgressBar(len(paths)) if progress else None
  log = log or (bar.message if bar else (lambda s: print(s, file=sys.stderr)))
  report = Report()
  stems = _unique_stems(paths)
  sheet_rows = []
  for path in paths:
    stem = stems[path]
    try:
      result = model.segment(path, apply_exif_orientation=apply_exif_orientation)
    except (ResegError, tf.errors.OpError) as e:
      report.failed[path] = (e.problem if isinstance(e, ResegError) else
                             str(e).strip().splitlines()[0] if str(e).strip() else repr(e))
      log(f"skipped {path}: {report.failed[path]}")
      if bar:
        bar.update()
      continue
    image, color = result.image, result.color()
    outputs = {f"{stem}_classes.png": result.classes.astype(np.uint8),
               f"{stem}_color.png": color, f"{stem}_overlay.png": result.overlay(alpha)}
    for name, array in outputs.items():
      Image.fromarray(array).save(os.path.join(output_dir, name))
    report.written[path] = [os.path.join(output_dir, n) for n in outputs]
    if rows_per_sheet > 0:
      truth = _ground_truth(labels_dir, path, image.shape[:2], colors, log)
      panels = [_thumbnail(image, THUMBNAIL_HEIGHT),
                _thumbnail(color, THUMBNAIL_HEIGHT, nearest=True),
                None if truth is None else _thumbnail(truth, THUMBNAIL_HEIGHT, nearest=True)]
      sheet_rows.append((os.path.basename(path), panels))
      if len(sheet_rows) == rows_per_sheet:
        report.contact_sheets.append(_write_sheet(sheet_rows, output_dir,
                                                  len(report.contact_sheets)))
        sheet_rows = []
    if bar:
      bar.update()
  if sheet_rows:
    report.contact_sheets.append(_write_sheet(sheet_rows, output_dir,
                                              len(report.contact_sheets)))
  return report


def _write_sheet(rows, output_dir: str, index: int) -> str:
  has_truth = any(panels[2] is not None for _, panels in rows)
  rows = [(c, [np.asarray(p) if p is not None else None
               for p in (panels if has_truth else panels[:2])]) for c, panels in rows]
  name = "contact_sheet.png" if index == 0 else f"contact_sheet-{index + 1}.png"
  path = os.path.join(output_dir, name)
  Image.fromarray(contact_sheet(rows)).save(path)
  return path


def _ground_truth(labels_dir, path, size, colors, log) -> Optional[np.ndarray]:
  if not labels_dir:
    return None
  label_path = os.path.join(labels_dir, os.path.splitext(os.path.basename(path))[0] + ".png")
  if not os.path.exists(label_path):
    return None
  try:
    label = read_label(label_path)
  except (OSError, ValueError) as e:
    log(f"ground truth {label_path} ignored: {e}")
    return None
  if label.shape != tuple(size):
    log(f"ground truth {label_path} ignored: size {label.shape} differs from the "
        f"image's {tuple(size)}")
    return None
  return summaries.colorize(label, colors)


def _thumbnail(array: np.ndarray, height: int, nearest: bool = False) -> Image.Image:
  image = array if isinstance(array, Image.Image) else Image.fromarray(np.asarray(array))
  if image.height == height:
    return image
  width = max(1, round(image.width * height / image.height))
  return image.resize((width, height), Image.NEAREST if nearest else Image.BILINEAR)


def _unique_stems(paths: Sequence[str]) -> dict:
  """`{path: output stem}`; equal stems (a glob over folders) get `-2`, `-3`..."""
  stems, used = {}, {}
  for path in paths:
    stem = os.path.splitext(os.path.basename(path))[0]
    used[stem] = used.get(stem, 0) + 1
    stems[path] = stem if used[stem] == 1 else f"{stem}-{used[stem]}"
  return stems
