"""Pascal VOC 2012 segmentation, in the `VOCdevkit/VOC2012` layout.

  JPEGImages/<id>.jpg
  SegmentationClass/<id>.png       palette PNGs whose *index* is the class
                                   (0 background, 1..20), 255 the boundary band
  ImageSets/Segmentation/{train,val}.txt
  with `augmented`: SegmentationClassAug/<id>.png (the SBD augmented labels,
  grey class ids) and optionally ImageSets/Segmentation/train_aug.txt

`data_dir` is the VOC2012 folder or one above it (holding VOC2012/ or
VOCdevkit/VOC2012/). train and val are the official lists (1,464 and 1,449
images; trainval.txt is their union and is not written). With `augmented`,
train is DeepLab's "train_aug" instead: the stems of train_aug.txt (else every
PNG in SegmentationClassAug/) minus the val stems, 10,582 images labelled
from SegmentationClassAug/; val stays the official one. VOC 2012 publishes no
test labels (the evaluation server keeps them): there is no test split.
"""

import glob
import os

from data_prep import images, split_lists
from data_prep.dataset import (
  BadInputError,
  DatasetInfo,
  ExampleRef,
  LoadedExample,
  Plan,
  require_folders,
)
from reseg_tf.common import palette

INFO = DatasetInfo(
    name="voc",
    class_names=("background", "aeroplane", "bicycle", "bird", "boat", "bottle",
                 "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
                 "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
                 "train", "tvmonitor"),
    class_colors=tuple(palette.voc_palette(21)),  # The VOC palette.
)
AUG_LABEL_DIR = "SegmentationClassAug"
AUG_LIST = "train_aug.txt"
TEST_ABSENT = ("Pascal VOC 2012 test labels are not public (the evaluation "
               "server keeps them)")


def find_root(data_dir: str) -> str:
  """The VOC2012 folder: data_dir itself, data_dir/VOC2012 or data_dir/VOCdevkit/VOC2012."""
  for root in (data_dir, os.path.join(data_dir, "VOC2012"),
               os.path.join(data_dir, "VOCdevkit", "VOC2012")):
    if os.path.isdir(os.path.join(root, "JPEGImages")):
      return root
  raise BadInputError(os.path.join(data_dir, "JPEGImages"), "folder does not exist, "
                      "nor VOC2012/JPEGImages or VOCdevkit/VOC2012/JPEGImages "
                      "(expected the Pascal VOC 2012 layout)")


def plan(data_dir: str, augmented: bool = False) -> Plan:
  """Lists VOC's train and val examples; see the module docstring."""
  root = find_root(data_dir)
  list_dir = os.path.join(root, "ImageSets", "Segmentation")
  require_folders(os.path.join(root, "SegmentationClass"), list_dir,
                  layout="Pascal VOC 2012")
  lists = split_lists.read_disjoint(
      {split: os.path.join(list_dir, f"{split}.txt") for split in ("train", "val")})
  description = {"method": "official",
                 "how": "ImageSets/Segmentation/train.txt and val.txt",
                 "train_labels": "SegmentationClass"}
  # Per split: (stems with their list line numbers, label folder, list name).
  sources = {split: (stems, "SegmentationClass", f"{split}.txt")
             for split, stems in lists.items()}
  if augmented:
    stems, description["train_labels"] = _augmented_train(root, lists["val"])
    sources["train"] = (stems, AUG_LABEL_DIR, AUG_LIST)

  unpaired, splits = [], {}
  for split, (stems, label_dir, list_name) in sources.items():
    splits[split] = []
    for stem, line_number in stems:
      ref = ExampleRef(name=stem + ".jpg",
                       image_path=os.path.join(root, "JPEGImages", stem + ".jpg"),
                       label_path=os.path.join(root, label_dir, stem + ".png"))
      missing = [p for p in (ref.image_path, ref.label_path) if not os.path.exists(p)]
      if not missing:
        splits[split].append(ref)
      elif line_number:
        unpaired.append({"path": missing[0], "problem": f"listed in {list_name} "
                         f"line {line_number} but missing"})
      else:  # No list: the label exists, its image does not.
        unpaired.append({"path": missing[0], "problem": f"missing (its label "
                         f"{ref.label_path} exists)"})
  return Plan(info=INFO, splits=splits, load=_load, split_description=description,
              absent_splits={"test": TEST_ABSENT}, unpaired=unpaired,
              source={"layout": "voc2012", "data_dir": data_dir, "root": root,
                      "augmented": augmented})


def _augmented_train(root: str, val: list[tuple[str, int]]
                     ) -> tuple[list[tuple[str, int]], dict]:
  """The SBD augmented train stems (val removed) and how they were chosen."""
  label_dir = os.path.join(root, AUG_LABEL_DIR)
  require_folders(label_dir, layout=f"SBD augmented VOC ({AUG_LABEL_DIR}/, "
                  "the flag --voc_augmented)")
  list_path = os.path.join(root, "ImageSets", "Segmentation", AUG_LIST)
  if os.path.exists(list_path):
    stems, source = split_lists.read_stems(list_path), AUG_LIST
  else:
    stems = [(os.path.basename(p)[:-len(".png")], 0)
             for p in sorted(glob.glob(os.path.join(label_dir, "*.png")))]
    source = f"every PNG in {AUG_LABEL_DIR}/"
    if not stems:
      raise BadInputError(label_dir, "no PNG labels found")
  val_stems = {stem for stem, _ in val}
  train = [(stem, line) for stem, line in stems if stem not in val_stems]
  return train, {"labels": AUG_LABEL_DIR, "list": source,
                 "val_stems_removed": len(stems) - len(train)}


def _load(ref: ExampleRef) -> LoadedExample:
  label = images.read_single_channel(ref.label_path)  # Palette index or grey id.
  pixels, encoded, fmt = images.read_rgb(ref.image_path)
  return LoadedExample(pixels, label, encoded, fmt)
