"""Weizmann Horse: `rgb/horseNNN.jpg` with `figure_ground/horseNNN.jpg` masks.

The rgb images are at their original sizes while the masks are smaller (same
aspect ratio within 2%), so each image is resized to its mask's size. Masks
are JPEG greyscale: thresholded at 128 (>= 128 is horse, class 1). There is no
official split: a seeded split is drawn and recorded in metadata.json.
"""

import glob
import os
from typing import Sequence

import numpy as np

from data_prep import images
from data_prep import splits as splits_lib
from data_prep.dataset import (
  BadInputError,
  DatasetInfo,
  ExampleRef,
  LoadedExample,
  Plan,
  refs_per_split,
  require_folders,
)

INFO = DatasetInfo(name="horse", class_names=("background", "horse"),
                   class_colors=((0, 0, 0), (192, 128, 64)))
MASK_THRESHOLD = 128


def plan(data_dir: str, split_seed: int = 0,
         split_fractions: Sequence[float] = (0.6, 0.2, 0.2)) -> Plan:
  """Pairs rgb/ and figure_ground/ by file name and splits them."""
  image_dir = os.path.join(data_dir, "rgb")
  mask_dir = os.path.join(data_dir, "figure_ground")
  require_folders(data_dir, image_dir, mask_dir,
                  layout="Weizmann Horse rgb/ + figure_ground/")
  image_names = {os.path.basename(p) for p in glob.glob(os.path.join(image_dir, "*.jpg"))}
  mask_names = {os.path.basename(p) for p in glob.glob(os.path.join(mask_dir, "*.jpg"))}
  if not image_names and not mask_names:
    raise BadInputError(image_dir, "no .jpg images found")
  unpaired = [{"path": os.path.join(image_dir, n), "problem": "image has no mask in figure_ground/"}
              for n in sorted(image_names - mask_names)]
  unpaired += [{"path": os.path.join(mask_dir, n), "problem": "mask has no image in rgb/"}
               for n in sorted(mask_names - image_names)]
  names, description = splits_lib.seeded_split(
      sorted(image_names & mask_names), split_fractions, split_seed)
  splits, absent = refs_per_split(
      names, lambda n: ExampleRef(name=n, image_path=os.path.join(image_dir, n),
                                  label_path=os.path.join(mask_dir, n)),
      "empty with these split fractions")
  return Plan(info=INFO, splits=splits, absent_splits=absent, load=_load,
              split_description=description, unpaired=unpaired,
              source={"layout": "weizmann_horse", "data_dir": data_dir})


def _load(ref: ExampleRef) -> LoadedExample:
  mask = images.read_single_channel(ref.label_path)
  pixels, encoded, fmt = images.read_rgb(ref.image_path, size=mask.shape[:2])
  label = (mask >= MASK_THRESHOLD).astype(np.uint8)
  return LoadedExample(pixels, label, encoded, fmt)
