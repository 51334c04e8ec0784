"""The Python API: load a trained ReSeg and segment images.

    import reseg_tf

    model = reseg_tf.load_model("horse_no_vgg")
    result = model.segment("photo.jpg")
    result.classes          # int32 [H, W]: class ids, at the photo's size
    result.overlay(pil=True).save("overlay.png")

`load_model` takes a published model's name (a folder under `models/`), a
published model's folder, a training run's folder, or an exported SavedModel,
and returns a `SegmentationModel`. Its `segment` takes image files, PIL
images or uint8 arrays of any size, one or a list, and returns a
`Segmentation` per image. The command-line `predict` goes through the same
`segment`.

Loading reads the model's configuration without leaving anything in gin's
global state (a caller's own gin configuration is kept as it was), and logs
nothing. Expected failures (an unknown model, an unreadable image, a
checkpoint that does not fit) raise `reseg_tf.ResegError` with the same
one-line message the command-line tools print.
"""

import dataclasses
import os
from typing import Optional, Sequence, Union

import numpy as np
import tensorflow as tf
from PIL import Image

from reseg_tf import configurables
from reseg_tf.common import image_files
from reseg_tf.common.errors import ResegError
from reseg_tf.evaluation import summaries
from reseg_tf.model import lowering
from reseg_tf.model.test_time_augmentation import NONE, TestTimeAugmentation
from reseg_tf.serving import segmenter as segmenter_lib

ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray]
DEFAULT_BATCH_SIZE = 8
_COMPUTE_DTYPES = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True, eq=False)
class Segmentation:
  """One image's segmentation, at the image's size.

  Attributes:
    image: uint8 `[H, W, 3]`, the image as segmented (RGB; an EXIF
      orientation applied unless `segment` was told not to).
    classes: int32 `[H, W]`, the most probable class of each pixel, in
      `0..C-1` (void is never predicted).
    probabilities: float32 `[H, W, C]`, the classes' probabilities.
    class_names: the `C` class names.
    colors: uint8 `[C, 3]`, the classes' RGB colours.
  """
  image: np.ndarray
  classes: np.ndarray
  probabilities: np.ndarray
  class_names: tuple
  colors: np.ndarray

  def color(self, pil: bool = False) -> Union[np.ndarray, Image.Image]:
    """The class map in the classes' colours: uint8 `[H, W, 3]` (or a PIL image)."""
    return _maybe_pil(summaries.colorize(self.classes, self.colors), pil)

  def overlay(self, alpha: float = 0.5, pil: bool = False) -> Union[np.ndarray, Image.Image]:
    """The colours blended over the image with opacity `alpha`: uint8
    `[H, W, 3]` (or a PIL image)."""
    return _maybe_pil(summaries.overlay(
        self.image, summaries.colorize(self.classes, self.colors), alpha), pil)

  def pixel_shares(self) -> dict:
    """`{class name: fraction of the image's pixels}`, in class order."""
    counts = np.bincount(self.classes.ravel(), minlength=len(self.class_names))
    return {name: float(count) / self.classes.size
            for name, count in zip(self.class_names, counts)}


class SegmentationModel:
  """A trained ReSeg that segments images (made by `load_model`).

  Attributes:
    name: the published model's, run's or export's name.
    class_names: the `C` class names.
    colors: uint8 `[C, 3]`, the classes' colours.
    dataset: the dataset the model was trained on ("" when unknown).
  """

  def __init__(self, segmenter, name: str):
    """Wraps `segmenter` (a `serving.segmenter.Segmenter`, or one loaded
    back from a SavedModel: anything with `serve_images` and the class table)."""
    self._segmenter = segmenter
    table = segmenter_lib.class_table(segmenter)
    self.name = name
    self.class_names = tuple(table["class_names"])
    self.colors = np.asarray(table["class_colors"], np.uint8)
    self.dataset = table["dataset"]

  def __repr__(self):
    return (f"SegmentationModel({self.name!r}, dataset={self.dataset!r}, "
            f"classes={list(self.class_names)})")

  def segment(self, images: Union[ImageLike, Sequence[ImageLike]], *,
              batch_size: int = DEFAULT_BATCH_SIZE,
              apply_exif_orientation: bool = True
              ) -> Union[Segmentation, list]:
    """Segments one image or a list of them.

    Args:
      images: an image file's path, a PIL image, or a uint8 array `[H, W, 3]`
        (`[H, W]` grayscale is copied to three channels); or a list (or
        tuple) of these, of any sizes.
      batch_size: at most this many images of one size go through the model
        together.
      apply_exif_orientation: turn photos (files and PIL images) as their
        EXIF orientation tag says, as viewers show them; False reads the
        pixels as stored.

    Returns:
      A `Segmentation` for one image; a list of them, in order, for a list.

    Raises:
      ResegError: an image cannot be read, or an array is not an image.
    """
    if batch_size < 1:
      raise ValueError(f"batch_size must be positive, got {batch_size}")
    single = not isinstance(images, (list, tuple))
    items = [images] if single else list(images)
    arrays = [_as_rgb(item, f"images[{i}]", apply_exif_orientation)
              for i, item in enumerate(items)]
    results = [None] * len(arrays)
    for batch in _batches_of_one_size(arrays, batch_size):
      outputs = self._segmenter.serve_images(tf.constant(np.stack([arrays[i] for i in batch])))
      classes = outputs[segmenter_lib.CLASSES_KEY].numpy()
      probabilities = outputs[segmenter_lib.PROBABILITIES_KEY].numpy()
      for row, i in enumerate(batch):
        results[i] = Segmentation(image=arrays[i], classes=classes[row],
                                  probabilities=probabilities[row],
                                  class_names=self.class_names, colors=self.colors)
    return results[0] if single else results


def load_model(name_or_path: Union[str, os.PathLike], *, checkpoint: str = "best",
               compute_dtype: Optional[str] = None,
               augmentation: TestTimeAugmentation = NONE) -> SegmentationModel:
  """Loads a trained ReSeg for `SegmentationModel.segment`.

  Args:
    name_or_path: a published model's name, e.g. "camvid_no_vgg_cycle4" (a
      folder under `models/`), or the path of such a folder; or a training
      run's folder (`--model_dir` of `reseg_tf.train`); or an exported
      SavedModel, a version folder or the export folder (its highest
      version).
    checkpoint: for a training run: "best" (best validation mean IoU),
      "latest", or a checkpoint path.
    compute_dtype: "float32" or "bfloat16" to run the model's layers in
      that precision; None keeps the model's own. Not for a SavedModel,
      whose graph is fixed.
    augmentation: test-time augmentation, e.g.
      `TestTimeAugmentation(scales=(0.75, 1, 1.25), flip=True)`: the class
      probabilities averaged over those views (one forward pass each). Not
      for a SavedModel, which runs as exported.

  Returns:
    The model, run in its fastest in-process form (the compiled sweep
      where it loads); a SavedModel runs as exported.

  Raises:
    ResegError: no such model, or its files are missing or do not fit.
  """
  path = os.fspath(name_or_path)
  if compute_dtype is not None and compute_dtype not in _COMPUTE_DTYPES:
    raise ValueError(f"compute_dtype must be one of {_COMPUTE_DTYPES} or None, "
                     f"got {compute_dtype!r}")
  if _is_saved_model(path):
    if compute_dtype is not None or not augmentation.is_identity:
      raise ResegError(path, "an exported SavedModel runs as exported: compute_dtype "
                       "and augmentation apply to published models and training runs")
    return SegmentationModel(segmenter_lib.load_saved_model(path),
                             _export_name(path))
  bindings = [f"ReSeg.compute_dtype = '{compute_dtype}'"] if compute_dtype else []
  restored = configurables.load_run_or_published(path, checkpoint, gin_bindings=bindings)
  return from_restored(restored, augmentation=augmentation)


def from_restored(restored, records_dir: Optional[str] = None,
                  augmentation: TestTimeAugmentation = NONE) -> SegmentationModel:
  """The `SegmentationModel` of a restored model (`serving.restore.Restored`),
  its class table from `records_dir`'s metadata when given, else its own;
  `augmentation` as in `load_model`."""
  table = restored.class_table(records_dir)
  segmenter = segmenter_lib.Segmenter(
      restored.model, table["class_names"], table["class_colors"], table["dataset"],
      lowering=lowering.IN_PROCESS,  # Runs here only, never saved.
      augmentation=augmentation, trace_now=False)
  return SegmentationModel(segmenter, restored.name)


def _is_saved_model(path: str) -> bool:
  """A SavedModel folder, or an export folder with one in a version folder."""
  if not os.path.isdir(path):
    return False
  if os.path.exists(os.path.join(path, "saved_model.pb")):
    return True
  return any(name.isdigit() and os.path.exists(os.path.join(path, name, "saved_model.pb"))
             for name in os.listdir(path))


def _export_name(path: str) -> str:
  """`exports/camvid/3` -> "camvid", `exports/camvid` -> "camvid"."""
  parts = os.path.normpath(os.path.abspath(path)).split(os.sep)
  return parts[-2] if parts[-1].isdigit() and len(parts) > 1 else parts[-1]


def _as_rgb(image: ImageLike, where: str, apply_exif_orientation: bool) -> np.ndarray:
  """uint8 `[H, W, 3]` of a path, a PIL image or an array."""
  if isinstance(image, (str, os.PathLike)):
    return image_files.read_rgb(os.fspath(image), apply_exif_orientation)
  if isinstance(image, Image.Image):
    return image_files.pil_to_rgb(image, apply_exif_orientation)
  if isinstance(image, np.ndarray):
    if image.dtype != np.uint8:
      raise ResegError(where, f"expected a uint8 array, got {image.dtype}")
    if image.ndim == 2:
      image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] != 3:
      raise ResegError(where, f"expected an [H, W, 3] RGB array, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
      raise ResegError(where, f"the image has no pixels (shape {image.shape})")
    return image
  raise TypeError(f"{where}: expected a path, a PIL image or a numpy array, "
                  f"got {type(image).__name__}")


def _batches_of_one_size(arrays: Sequence[np.ndarray], batch_size: int) -> list:
  """Indices of `arrays` in batches of equal `[H, W]`, each at most
  `batch_size` long, in order of first appearance."""
  by_size = {}
  for i, array in enumerate(arrays):
    by_size.setdefault(array.shape[:2], []).append(i)
  return [indices[start:start + batch_size] for indices in by_size.values()
          for start in range(0, len(indices), batch_size)]


def _maybe_pil(array: np.ndarray, pil: bool):
  return Image.fromarray(array) if pil else array
