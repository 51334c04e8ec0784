"""What every dataset converter hands to the shard writer.

A converter module (`camvid`, `horse`, `flowers`, `synthetic`, `voc`,
`cityscapes`, `folder`) knows one raw layout. Its `plan(...)` function lists
the examples of each split without decoding anything (so layout errors
surface before any work is done) and returns a `Plan`; `Plan.load(ref)` then
decodes one example into NumPy arrays. Loading runs in worker threads, so it
must not touch shared state.
"""

import dataclasses
import os
from typing import Any, Callable, Optional

import numpy as np

from reseg_tf.common.errors import InputError

SPLITS = ("train", "val", "test")
# Frames moved out of train for recipe selection (camvid's holdout prefixes).
# The writer and reseg_tf's readers take any split name: metadata.json lists
# the splits written, e.g. `train.validation_split = 'holdout'` then works.
HOLDOUT_SPLIT = "holdout"


class BadInputError(InputError):
  """A problem with the user's data, reported with the file it concerns."""


def require_folders(*folders: str, layout: str):
  """Raises BadInputError naming the first of `folders` that is missing."""
  for folder in folders:
    if not os.path.isdir(folder):
      raise BadInputError(folder, f"folder does not exist (expected the {layout} layout)")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """Static description of a dataset's classes."""
  name: str
  class_names: tuple[str, ...]
  class_colors: tuple[tuple[int, int, int], ...]  # RGB, for drawing.

  @property
  def num_classes(self) -> int:
    return len(self.class_names)


@dataclasses.dataclass(frozen=True)
class ExampleRef:
  """One example to convert: where it comes from, not yet decoded."""
  name: str  # Stored as image/filename.
  image_path: Optional[str] = None
  label_path: Optional[str] = None
  index: int = 0  # For generated data: the example's seed offset.


@dataclasses.dataclass
class LoadedExample:
  """One decoded example, ready to be written."""
  image: np.ndarray  # uint8 [H, W, 3]
  label: np.ndarray  # uint8 [H, W], class ids 0..K-1 and 255.
  # The source file's bytes when they can be stored untouched (same pixels,
  # no resize, RGB PNG or JPEG); None makes the writer encode `image` as PNG.
  image_encoded: Optional[bytes] = None
  image_format: Optional[str] = None
  # The mask values that became void, {value: pixels} (keys as metadata.json
  # writes them: "255", "#ffffff"), when the converter knows them (folder):
  # the build's summary tells which raw values cost a class its pixels.
  void_values: Optional[dict[str, int]] = None


@dataclasses.dataclass
class Plan:
  """Everything the writer needs to convert one dataset."""
  info: DatasetInfo
  splits: dict[str, list[ExampleRef]]
  load: Callable[[ExampleRef], LoadedExample]
  # How the split was made, recorded in metadata.json.
  split_description: dict
  # Splits the layout does not have, with the reason (e.g. no test/ folder).
  absent_splits: dict[str, str] = dataclasses.field(default_factory=dict)
  # Pairs found broken while planning (e.g. an image without its label);
  # an error unless --skip_bad. Each entry: {"path": ..., "problem": ...}.
  unpaired: list[dict] = dataclasses.field(default_factory=list)
  source: dict = dataclasses.field(default_factory=dict)


def refs_per_split(names: dict[str, list[Any]], make_ref: Callable[[Any], ExampleRef],
                   empty_reason: str) -> tuple[dict[str, list[ExampleRef]], dict[str, str]]:
  """`(splits, absent_splits)` for a Plan: refs of the non-empty splits, and
  `empty_reason` for each empty one."""
  splits = {split: [make_ref(n) for n in split_names]
            for split, split_names in names.items() if split_names}
  absent = {split: empty_reason for split, split_names in names.items() if not split_names}
  return splits, absent
