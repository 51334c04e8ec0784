"""Per-split statistics and the metadata.json they go into."""

import collections
import dataclasses
from typing import Optional

import numpy as np

from data_prep.dataset import Plan
from reseg_tf.data import records

METADATA_VERSION = 1


@dataclasses.dataclass
class SplitStats:
  """What the writer counts while it writes one split."""
  num_classes: int
  num_examples: int = 0
  num_shards: int = 0
  num_bytes: int = 0
  sizes: list = dataclasses.field(default_factory=list)  # (H, W) per example.
  # Pixels of each class over the split, and pixels of the images that
  # contain each class: the two terms of median-frequency balancing.
  class_pixels: np.ndarray = None
  pixels_of_images_with_class: np.ndarray = None
  void_pixels: int = 0
  # Void pixels per source mask value, when the converter reports them.
  void_values: collections.Counter = dataclasses.field(default_factory=collections.Counter)

  def __post_init__(self):
    self.class_pixels = np.zeros(self.num_classes, np.int64)
    self.pixels_of_images_with_class = np.zeros(self.num_classes, np.int64)

  def add(self, height: int, width: int, counts: np.ndarray, num_bytes: int,
          void_values: Optional[dict[str, int]] = None):
    """Adds one example; `counts` holds its pixels per label value [256],
    `void_values` its void pixels per mask value (LoadedExample)."""
    self.num_examples += 1
    self.num_bytes += num_bytes
    self.sizes.append((height, width))
    class_counts = counts[:self.num_classes]
    self.class_pixels += class_counts
    # Labelled pixels only: void says nothing about any class's frequency.
    labelled = int(class_counts.sum())
    self.pixels_of_images_with_class += np.where(class_counts > 0, labelled, 0)
    self.void_pixels += int(counts[records.IGNORE_LABEL])
    self.void_values.update(void_values or {})


def median_frequency_weights(class_pixels: np.ndarray,
                             pixels_of_images_with_class: np.ndarray
                             ) -> tuple[list[float], list[float]]:
  """Median-frequency class balancing (Eigen & Fergus 2015; docs/protocol.md).

  freq(c) = pixels of class c / pixels of the images that contain c, and
  w(c) = median(freq) / freq(c). A class absent from the split gets weight 0
  (it never appears in the loss) and stays out of the median.

  Returns:
    `(frequencies, weights)`, one value per class.
  """
  present = pixels_of_images_with_class > 0
  freq = np.zeros(len(class_pixels))
  freq[present] = class_pixels[present] / pixels_of_images_with_class[present]
  weights = np.zeros(len(class_pixels))
  if present.any():
    weights[present] = np.median(freq[present]) / freq[present]
  return freq.tolist(), weights.tolist()


def _size_statistics(sizes: list) -> dict:
  if not sizes:
    return {}
  array = np.asarray(sizes)
  distinct, counts = np.unique(array, axis=0, return_counts=True)
  order = np.argsort(-counts)[:10]
  return {
      "height": {"min": int(array[:, 0].min()), "max": int(array[:, 0].max()),
                 "mean": float(array[:, 0].mean())},
      "width": {"min": int(array[:, 1].min()), "max": int(array[:, 1].max()),
                "mean": float(array[:, 1].mean())},
      "num_distinct_sizes": int(len(distinct)),
      "most_common_sizes": [{"height": int(distinct[i][0]), "width": int(distinct[i][1]),
                             "count": int(counts[i])} for i in order],
  }


def metadata(plan: Plan, split_stats: dict[str, SplitStats],
             skipped: list[dict], build: dict) -> dict:
  """The contents of metadata.json (see docs/data.md, "The record format")."""
  info = plan.info
  result = {
      "format_version": METADATA_VERSION,
      "dataset": info.name,
      "num_classes": info.num_classes,
      "class_names": list(info.class_names),
      "class_colors": [list(c) for c in info.class_colors],
      "ignore_label": records.IGNORE_LABEL,
      "splits": {
          split: {"num_examples": s.num_examples, "num_shards": s.num_shards,
                  "num_bytes": s.num_bytes,
                  "files": records.shard_filename(split, 0, s.num_shards).replace(
                      "-00000-of-", "-*-of-"),
                  "image_size": _size_statistics(s.sizes)}
          for split, s in split_stats.items()},
      "absent_splits": plan.absent_splits,
      "split": plan.split_description,
      "source": plan.source,
      "skipped": skipped,
      "build": build,
  }
  train = split_stats.get("train")
  if train is not None:
    freq, weights = median_frequency_weights(train.class_pixels,
                                             train.pixels_of_images_with_class)
    result.update(
        train_class_pixel_counts=train.class_pixels.tolist(),
        train_void_pixel_count=train.void_pixels,
        train_class_frequencies=freq,
        median_frequency_weights=weights)
    if train.void_values:  # The 20 values of most void pixels.
      result["train_void_pixels_by_mask_value"] = dict(train.void_values.most_common(20))
  return result
