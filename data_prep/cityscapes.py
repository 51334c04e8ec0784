"""Cityscapes, fine annotations, mapped to the 19 standard training classes.

  leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
  gtFine/{train,val,test}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

The labelIds maps hold the 34 label ids 0..33 of cityscapesScripts'
`helpers/labels.py`; the 19 classes with a trainId keep it (road 0 .. bicycle
18) and every other id becomes void (255), as in that file. License plate
(id -1) is never drawn in the maps (its pixels carry the car's id); a -1 in
a wider-than-8-bit map is void too. Images are 2048x1024 PNGs, stored
untouched. The benchmark withholds the test labels (gtFine/test holds
placeholder maps), so test is not written.
"""

import glob
import os

import numpy as np

from data_prep import images
from data_prep.dataset import (
  BadInputError,
  DatasetInfo,
  ExampleRef,
  LoadedExample,
  Plan,
  require_folders,
)
from reseg_tf.data.records import IGNORE_LABEL

# (name, labelId, trainId, colour), as cityscapesScripts' labels.py defines
# them; trainId 255 (and -1 for license plate) is void.
LABELS = (
    ("unlabeled", 0, 255, (0, 0, 0)),
    ("ego vehicle", 1, 255, (0, 0, 0)),
    ("rectification border", 2, 255, (0, 0, 0)),
    ("out of roi", 3, 255, (0, 0, 0)),
    ("static", 4, 255, (0, 0, 0)),
    ("dynamic", 5, 255, (111, 74, 0)),
    ("ground", 6, 255, (81, 0, 81)),
    ("road", 7, 0, (128, 64, 128)),
    ("sidewalk", 8, 1, (244, 35, 232)),
    ("parking", 9, 255, (250, 170, 160)),
    ("rail track", 10, 255, (230, 150, 140)),
    ("building", 11, 2, (70, 70, 70)),
    ("wall", 12, 3, (102, 102, 156)),
    ("fence", 13, 4, (190, 153, 153)),
    ("guard rail", 14, 255, (180, 165, 180)),
    ("bridge", 15, 255, (150, 100, 100)),
    ("tunnel", 16, 255, (150, 120, 90)),
    ("pole", 17, 5, (153, 153, 153)),
    ("polegroup", 18, 255, (153, 153, 153)),
    ("traffic light", 19, 6, (250, 170, 30)),
    ("traffic sign", 20, 7, (220, 220, 0)),
    ("vegetation", 21, 8, (107, 142, 35)),
    ("terrain", 22, 9, (152, 251, 152)),
    ("sky", 23, 10, (70, 130, 180)),
    ("person", 24, 11, (220, 20, 60)),
    ("rider", 25, 12, (255, 0, 0)),
    ("car", 26, 13, (0, 0, 142)),
    ("truck", 27, 14, (0, 0, 70)),
    ("bus", 28, 15, (0, 60, 100)),
    ("caravan", 29, 255, (0, 0, 90)),
    ("trailer", 30, 255, (0, 0, 110)),
    ("train", 31, 16, (0, 80, 100)),
    ("motorcycle", 32, 17, (0, 0, 230)),
    ("bicycle", 33, 18, (119, 11, 32)),
    ("license plate", -1, -1, (0, 0, 142)),
)
_TRAINED = sorted((train_id, name, color) for name, _, train_id, color in LABELS
                  if 0 <= train_id < IGNORE_LABEL)
INFO = DatasetInfo(name="cityscapes", class_names=tuple(n for _, n, _ in _TRAINED),
                   class_colors=tuple(c for _, _, c in _TRAINED))
MIN_ID, MAX_ID = -1, 33
# _TRAIN_IDS[label_id - MIN_ID] is the record's class id of a labelId.
_TRAIN_IDS = np.full(MAX_ID - MIN_ID + 1, IGNORE_LABEL, np.uint8)
for _, _label_id, _train_id, _ in LABELS:
  if 0 <= _train_id < IGNORE_LABEL:
    _TRAIN_IDS[_label_id - MIN_ID] = _train_id

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
TEST_ABSENT = ("the Cityscapes benchmark withholds the test labels (gtFine/test "
               "holds placeholders)")


def to_train_ids(label_ids: np.ndarray, path: str) -> np.ndarray:
  """Maps a labelIds map to the 19 trainIds and 255.

  Raises:
    BadInputError: a value that is no Cityscapes labelId (outside -1..33).
  """
  label_ids = label_ids.astype(np.int64)
  bad = (label_ids < MIN_ID) | (label_ids > MAX_ID)
  if bad.any():
    raise BadInputError(path, f"values outside the Cityscapes labelIds {MIN_ID}.."
                        f"{MAX_ID}: {np.unique(label_ids[bad])[:10].tolist()} "
                        "(is this a *_gtFine_labelIds.png map?)")
  return _TRAIN_IDS[label_ids - MIN_ID]


def plan(data_dir: str) -> Plan:
  """Pairs leftImg8bit/ images with gtFine/ labelIds maps for train and val."""
  image_root = os.path.join(data_dir, "leftImg8bit")
  label_root = os.path.join(data_dir, "gtFine")
  require_folders(data_dir, image_root, label_root,
                  layout="Cityscapes leftImg8bit/ + gtFine/")
  result = Plan(info=INFO, splits={}, load=_load,
                split_description={"method": "official", "how": "Cityscapes' "
                                   "leftImg8bit/{split}/ and gtFine/{split}/ folders"},
                absent_splits={"test": TEST_ABSENT},
                source={"layout": "cityscapes_gtFine", "data_dir": data_dir,
                        "labels": "labelIds mapped to trainIds (cityscapesScripts labels.py)"})
  for split in ("train", "val"):  # Test: see TEST_ABSENT.
    image_dir, label_dir = os.path.join(image_root, split), os.path.join(label_root, split)
    if not os.path.isdir(image_dir) and not os.path.isdir(label_dir):
      result.absent_splits[split] = f"no leftImg8bit/{split}/ folder"
      continue
    require_folders(image_dir, label_dir, layout="Cityscapes leftImg8bit/"
                    f"{split}/ + gtFine/{split}/ (both or neither)")
    frames = _frames(image_dir, IMAGE_SUFFIX)
    labels = _frames(label_dir, LABEL_SUFFIX)
    if not frames and not labels:
      raise BadInputError(image_dir, f"no <city>/*{IMAGE_SUFFIX} images found")
    for frame in sorted(set(frames) - set(labels)):
      result.unpaired.append({"path": frames[frame], "problem": "image has no "
                              f"{frame}{LABEL_SUFFIX} in {label_dir}/<city>/"})
    for frame in sorted(set(labels) - set(frames)):
      result.unpaired.append({"path": labels[frame], "problem": "label has no "
                              f"{frame}{IMAGE_SUFFIX} in {image_dir}/<city>/"})
    paired = sorted(set(frames) & set(labels))
    result.splits[split] = [ExampleRef(name=os.path.basename(frames[f]),
                                       image_path=frames[f], label_path=labels[f])
                            for f in paired]
  if not result.splits:
    raise BadInputError(image_root, "neither train/ nor val/ found")
  return result


def _frames(folder: str, suffix: str) -> dict[str, str]:
  """`{<city>_<seq>_<frame>: path}` of `folder/<city>/*<suffix>`."""
  paths = glob.glob(os.path.join(folder, "*", "*" + suffix))
  return {os.path.basename(p)[:-len(suffix)]: p for p in paths}


def _load(ref: ExampleRef) -> LoadedExample:
  label = to_train_ids(images.read_single_channel(ref.label_path), ref.label_path)
  pixels, encoded, fmt = images.read_rgb(ref.image_path)
  return LoadedExample(pixels, label, encoded, fmt)
