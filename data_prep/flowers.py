"""Oxford Flowers 17, segmentation subset: `jpg/` images + `trimaps/` PNGs.

The labelled images are those listed in `trimaps/imlist.mat` (official
release), else the PNGs present in `trimaps/`. Splits come from
`datasplits.mat` (`trn{k}`, `val{k}`, `tst{k}`, intersected with the labelled
set) when present, else a seeded split is drawn. Trimaps are palette PNGs whose
*index* is the class: index `foreground_index` (38 in the official release) is
flower (class 1), everything else background (class 0). Images 1269 and 1270
are excluded by default, as in the paper's loader (their masks are
single-valued). Each image is resized to its trimap's size.
"""

import glob
import os
import re
from typing import Optional, Sequence

import numpy as np
import scipy.io

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

INFO = DatasetInfo(name="flowers", class_names=("background", "flower"),
                   class_colors=((0, 0, 0), (255, 0, 128)))
OFFICIAL_FOREGROUND_INDEX = 38
PAPER_EXCLUDED_IDS = (1269, 1270)
_SPLIT_KEYS = {"train": "trn", "val": "val", "test": "tst"}


def image_name(image_id: int) -> str:
  return f"image_{image_id:04d}"


def plan(data_dir: str, foreground_index: int = OFFICIAL_FOREGROUND_INDEX,
         excluded_ids: Sequence[int] = PAPER_EXCLUDED_IDS,
         official_split: int = 1, split_seed: int = 0,
         split_fractions: Sequence[float] = (0.6, 0.2, 0.2)) -> Plan:
  """Lists the labelled images per split; see the module docstring."""
  image_dir = os.path.join(data_dir, "jpg")
  trimap_dir = os.path.join(data_dir, "trimaps")
  require_folders(data_dir, image_dir, trimap_dir,
                  layout="Flowers 17 jpg/ + trimaps/")
  imlist_path = os.path.join(trimap_dir, "imlist.mat")
  if os.path.exists(imlist_path):
    labelled = set(_read_mat_ids(imlist_path, "imlist"))
    labelled_from = "trimaps/imlist.mat"
  else:
    labelled = {int(m.group(1)) for p in glob.glob(os.path.join(trimap_dir, "*.png"))
                if (m := re.fullmatch(r"image_(\d+)\.png", os.path.basename(p)))}
    labelled_from = "PNGs present in trimaps/"
  if not labelled:
    raise BadInputError(trimap_dir, "no labelled images (no image_NNNN.png "
                        "trimaps and no imlist.mat)")
  excluded = sorted(labelled & set(excluded_ids))
  labelled -= set(excluded_ids)

  unpaired = []
  for image_id in sorted(labelled):
    name = image_name(image_id)
    for path, what in ((os.path.join(trimap_dir, name + ".png"), "trimap"),
                       (os.path.join(image_dir, name + ".jpg"), "image")):
      if not os.path.exists(path):
        unpaired.append({"path": path, "problem": f"labelled {name} has no {what}"})
  labelled -= {int(re.search(r"image_(\d+)", u["path"]).group(1)) for u in unpaired}

  splits_path = _find_datasplits(data_dir)
  if splits_path:
    ids = {split: sorted(labelled & set(_read_mat_ids(
        splits_path, f"{key}{official_split}"))) for split, key in _SPLIT_KEYS.items()}
    description = {"method": "official", "how": f"{os.path.basename(splits_path)} "
                   f"trn{official_split}/val{official_split}/tst{official_split} "
                   "intersected with the labelled set", "ids": ids}
  else:
    names, description = splits_lib.seeded_split(
        [image_name(i) for i in labelled], split_fractions, split_seed)
    ids = {split: [int(n[len("image_"):]) for n in split_names]
           for split, split_names in names.items()}
  description.update(labelled_from=labelled_from, excluded_ids=excluded,
                     foreground_index=foreground_index)

  def load(ref: ExampleRef) -> LoadedExample:
    trimap = images.read_single_channel(ref.label_path)
    pixels, encoded, fmt = images.read_rgb(ref.image_path, size=trimap.shape[:2])
    return LoadedExample(pixels, (trimap == foreground_index).astype(np.uint8),
                         encoded, fmt)

  splits, absent = refs_per_split(
      ids, lambda i: ExampleRef(
          name=image_name(i) + ".jpg",
          image_path=os.path.join(image_dir, image_name(i) + ".jpg"),
          label_path=os.path.join(trimap_dir, image_name(i) + ".png")),
      "no labelled images in this split")
  return Plan(info=INFO, splits=splits, absent_splits=absent, load=load,
              split_description=description, unpaired=unpaired,
              source={"layout": "oxford_flowers17", "data_dir": data_dir})


def _find_datasplits(data_dir: str) -> Optional[str]:
  for folder in (data_dir, os.path.join(data_dir, "jpg"), os.path.join(data_dir, "trimaps")):
    path = os.path.join(folder, "datasplits.mat")
    if os.path.exists(path):
      return path
  return None


def _read_mat_ids(path: str, key: str) -> list[int]:
  """Reads a vector of 1-based image ids from a MATLAB file."""
  try:
    contents = scipy.io.loadmat(path)
  except Exception as e:  # scipy raises several types for a bad file.
    raise BadInputError(path, f"cannot read MATLAB file ({e})") from e
  if key not in contents:
    raise BadInputError(path, f"has no variable {key!r} "
                        f"(found {sorted(k for k in contents if not k.startswith('__'))})")
  return [int(v) for v in np.asarray(contents[key]).ravel()]
