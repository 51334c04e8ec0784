"""CamVid, in the SegNet layout or the original Cambridge release.

SegNet layout (what the SegNet tutorial ships; 480x360):
  train/ trainannot/ val/ valannot/ test/ testannot/   PNGs, labels 0..11
  train.txt val.txt test.txt   optional lists "/SegNet/CamVid/train/x.png
                               /SegNet/CamVid/trainannot/x.png", re-rooted here
Labels 0..10 are kept and 11 (void) becomes 255.

Cambridge release (960x720):
  label_colors.txt             "R G B Name" for the 32 classes
  .../<frame>.png              images, anywhere below data_dir
  .../<frame>_L.png            colour-coded labels
The 32 classes merge into SegNet's 11 as in docs/protocol.md; other classes and
unknown colours become 255. There is no official split: list files
`{split}.txt` in data_dir (either list format) pick the frames of each split,
else a seeded split is drawn.

Either layout: `holdout_prefixes` (e.g. "0006R0") move every train frame whose
file name starts with one of them into the split "holdout", so that recipes
can be selected on drives the model never saw; the class weights in
metadata.json are then those of the remaining train frames.
"""

import glob
import os
from typing import Optional, Sequence

import numpy as np

from data_prep import class_table, images
from data_prep import splits as splits_lib
from data_prep.dataset import (
  HOLDOUT_SPLIT,
  SPLITS,
  BadInputError,
  DatasetInfo,
  ExampleRef,
  LoadedExample,
  Plan,
)
from reseg_tf.data.records import IGNORE_LABEL

INFO = DatasetInfo(
    name="camvid",
    class_names=("Sky", "Building", "Pole", "Road", "Sidewalk", "Tree",
                 "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist"),
    class_colors=((128, 128, 128), (128, 0, 0), (192, 192, 128),
                  (128, 64, 128), (0, 0, 192), (128, 128, 0), (192, 128, 128),
                  (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192)),
)
SEGNET_VOID = 11

# Cambridge class -> SegNet class (docs/protocol.md); absent names are void.
CAMBRIDGE_TO_SEGNET = {
    "Sky": "Sky",
    "Building": "Building", "Wall": "Building", "Bridge": "Building",
    "Column_Pole": "Pole",
    "Road": "Road", "LaneMkgsDriv": "Road", "LaneMkgsNonDriv": "Road",
    "RoadShoulder": "Road",
    "Sidewalk": "Sidewalk", "ParkingBlock": "Sidewalk",
    "Tree": "Tree", "VegetationMisc": "Tree",
    "SignSymbol": "SignSymbol", "TrafficLight": "SignSymbol",
    "TrafficCone": "SignSymbol",
    "Fence": "Fence",
    "Car": "Car", "Truck_Bus": "Car", "SUVPickupTruck": "Car",
    "OtherMoving": "Car", "CartLuggagePram": "Car",
    "Pedestrian": "Pedestrian", "Child": "Pedestrian",
    "Bicyclist": "Bicyclist", "MotorcycleScooter": "Bicyclist",
}
CAMBRIDGE_COLORS_FILE = "label_colors.txt"


def detect_layout(data_dir: str) -> str:
  """'cambridge' when data_dir holds label_colors.txt, else 'segnet'."""
  if os.path.exists(os.path.join(data_dir, CAMBRIDGE_COLORS_FILE)):
    return "cambridge"
  return "segnet"


def plan(data_dir: str, layout: str = "auto", split_seed: int = 0,
         split_fractions: Sequence[float] = (0.6, 0.2, 0.2),
         holdout_prefixes: Sequence[str] = ()) -> Plan:
  """Lists CamVid's examples per split; see the module docstring."""
  if not os.path.isdir(data_dir):
    raise BadInputError(data_dir, "CamVid folder does not exist (unpack the "
                        "dataset there or pass --data_dir)")
  if layout == "auto":
    layout = detect_layout(data_dir)
  if layout == "segnet":
    result = _plan_segnet(data_dir)
  elif layout == "cambridge":
    result = _plan_cambridge(data_dir, split_seed, split_fractions)
  else:
    raise ValueError(f"unknown CamVid layout {layout!r}: auto, segnet or cambridge")
  return hold_out(result, holdout_prefixes, data_dir)


def drive(name: str) -> str:
  """The drive (sequence) of a frame name: "0006R0_f02910.png" -> "0006R0"."""
  return name.split("_")[0]


def hold_out(result: Plan, prefixes: Sequence[str], data_dir: str) -> Plan:
  """Moves the train frames whose names start with one of `prefixes` into
  the split HOLDOUT_SPLIT, recording it in the split description."""
  if not prefixes:
    return result
  train = result.splits.get("train", [])
  drives = sorted({drive(ref.name) for ref in train})
  for prefix in prefixes:
    if not any(ref.name.startswith(prefix) for ref in train):
      raise BadInputError(data_dir, f"no train frame starts with the holdout "
                          f"prefix {prefix!r} (train drives: {', '.join(drives)})")
  is_held = [ref.name.startswith(tuple(prefixes)) for ref in train]
  held = [ref for ref, h in zip(train, is_held) if h]
  if len(held) == len(train):
    raise BadInputError(data_dir, f"holding out {', '.join(prefixes)} would leave "
                        "no train frames")
  result.splits["train"] = [ref for ref, h in zip(train, is_held) if not h]
  result.splits[HOLDOUT_SPLIT] = held
  result.split_description[HOLDOUT_SPLIT] = {
      "from": "train", "prefixes": list(prefixes),
      "how": "train frames whose file names start with one of the prefixes",
      "names": [ref.name for ref in held]}
  return result


# SegNet layout ---------------------------------------------------------------


def _plan_segnet(data_dir: str) -> Plan:
  result = Plan(info=INFO, splits={}, load=_load_segnet,
                split_description={"method": "official",
                                   "how": "SegNet's train/val/test folders"},
                source={"layout": "segnet", "data_dir": data_dir})
  for split in SPLITS:
    image_dir = os.path.join(data_dir, split)
    label_dir = os.path.join(data_dir, split + "annot")
    if not os.path.isdir(image_dir) and not os.path.isdir(label_dir):
      result.absent_splits[split] = f"no {split}/ folder in {data_dir}"
      continue
    for folder in (image_dir, label_dir):
      if not os.path.isdir(folder):
        raise BadInputError(folder, "folder is missing (its partner "
                            f"{os.path.basename(image_dir if folder == label_dir else label_dir)}/ exists)")
    list_path = os.path.join(data_dir, split + ".txt")
    if os.path.exists(list_path):
      pairs = _read_segnet_list(list_path, data_dir)
    else:
      pairs = _pair_by_name(image_dir, label_dir, result.unpaired)
      if not pairs and not glob.glob(os.path.join(label_dir, "*.png")):
        raise BadInputError(image_dir, "no PNG images or labels found")
    result.splits[split] = [
        ExampleRef(name=os.path.basename(image), image_path=image,
                   label_path=label) for image, label in pairs]
  if not result.splits:
    raise BadInputError(data_dir, "no train/, val/ or test/ folder found: "
                        "is this the SegNet CamVid layout?")
  return result


def _read_segnet_list(list_path: str, data_dir: str) -> list[tuple[str, str]]:
  """Reads "image label" lines, re-rooting their absolute paths at data_dir."""
  pairs = []
  with open(list_path) as f:
    for line_number, line in enumerate(f, 1):
      fields = line.split()
      if not fields:
        continue
      if len(fields) != 2:
        raise BadInputError(list_path, f"line {line_number}: expected "
                            f"'image_path label_path', got {line.strip()!r}")
      # "/SegNet/CamVid/train/x.png" -> data_dir/train/x.png
      image, label = (os.path.join(data_dir, *path.replace("\\", "/").split("/")[-2:])
                      for path in fields)
      for path in (image, label):
        if not os.path.exists(path):
          raise BadInputError(path, f"listed in {list_path} line "
                              f"{line_number} but missing")
      pairs.append((image, label))
  if not pairs:
    raise BadInputError(list_path, "lists no examples")
  return pairs


def _pair_by_name(image_dir: str, label_dir: str,
                  unpaired: list[dict]) -> list[tuple[str, str]]:
  image_names = {os.path.basename(p) for p in glob.glob(os.path.join(image_dir, "*.png"))}
  label_names = {os.path.basename(p) for p in glob.glob(os.path.join(label_dir, "*.png"))}
  for name in sorted(image_names - label_names):
    unpaired.append({"path": os.path.join(image_dir, name),
                     "problem": f"image has no label in {label_dir}"})
  for name in sorted(label_names - image_names):
    unpaired.append({"path": os.path.join(label_dir, name),
                     "problem": f"label has no image in {image_dir}"})
  return [(os.path.join(image_dir, n), os.path.join(label_dir, n))
          for n in sorted(image_names & label_names)]


def _load_segnet(ref: ExampleRef) -> LoadedExample:
  pixels, encoded, fmt = images.read_rgb(ref.image_path)
  label = images.read_single_channel(ref.label_path)
  images.check_same_size(pixels, label, ref.label_path)
  bad = np.unique(label[label > SEGNET_VOID])
  if bad.size:
    raise BadInputError(ref.label_path, f"label values outside 0..{SEGNET_VOID}: "
                        f"{bad[:10].tolist()}")
  label = label.astype(np.uint8)
  label[label == SEGNET_VOID] = IGNORE_LABEL
  return LoadedExample(pixels, label, encoded, fmt)


# Cambridge release -----------------------------------------------------------


def read_label_colors(path: str) -> dict[tuple[int, int, int], str]:
  """Parses label_colors.txt ("R G B Name" lines) into colour -> name."""
  colors = {}
  with open(path) as f:
    for line_number, line in enumerate(f, 1):
      fields = line.split()
      if not fields:
        continue
      try:
        rgb = tuple(int(v) for v in fields[:3])
        name = fields[3]
      except (ValueError, IndexError):
        raise BadInputError(path, f"line {line_number}: expected 'R G B Name', "
                            f"got {line.strip()!r}") from None
      colors[rgb] = name
  if not colors:
    raise BadInputError(path, "no colours found")
  return colors


def colour_lookup(colors: dict[tuple[int, int, int], str]
                  ) -> tuple[np.ndarray, np.ndarray]:
  """Sorted colour codes and their SegNet class ids (255 for void classes)."""
  class_ids = {name: i for i, name in enumerate(INFO.class_names)}
  return class_table.sorted_lookup({
      class_table.color_code(rgb): class_ids.get(CAMBRIDGE_TO_SEGNET.get(name), IGNORE_LABEL)
      for rgb, name in colors.items()})


def map_colours(rgb: np.ndarray, codes: np.ndarray, ids: np.ndarray) -> np.ndarray:
  """Maps a colour label image `[H, W, 3]` to class ids; unknown -> 255."""
  mapped, known = class_table.lookup(class_table.color_codes(rgb), codes, ids)
  return np.where(known, mapped, IGNORE_LABEL).astype(np.uint8)


def _plan_cambridge(data_dir: str, split_seed: int,
                    split_fractions: Sequence[float]) -> Plan:
  codes, ids = colour_lookup(
      read_label_colors(os.path.join(data_dir, CAMBRIDGE_COLORS_FILE)))
  all_png = sorted(glob.glob(os.path.join(data_dir, "**", "*.png"), recursive=True))
  labels = {os.path.basename(p)[:-len("_L.png")]: p for p in all_png
            if p.endswith("_L.png")}
  frames = {os.path.splitext(os.path.basename(p))[0]: p for p in all_png
            if not p.endswith("_L.png")}
  if not labels:
    raise BadInputError(data_dir, "no *_L.png colour labels found below it")
  unpaired = [{"path": frames[n], "problem": "image has no <name>_L.png label"}
              for n in sorted(set(frames) - set(labels))]
  unpaired += [{"path": labels[n], "problem": "label has no image <name>.png"}
               for n in sorted(set(labels) - set(frames))]
  paired = sorted(set(frames) & set(labels))

  listed = _read_frame_lists(data_dir)
  if listed:
    names = {split: [n for n in listed.get(split, []) if n in paired]
             for split in SPLITS}
    description = {"method": "lists", "how": "frames named in {split}.txt in "
                   "data_dir", "names": names}
  else:
    names, description = splits_lib.seeded_split(paired, split_fractions,
                                                  split_seed)

  def load(ref: ExampleRef) -> LoadedExample:
    pixels, encoded, fmt = images.read_rgb(ref.image_path)
    label = map_colours(images.read_rgb_array(ref.label_path), codes, ids)
    images.check_same_size(pixels, label, ref.label_path)
    return LoadedExample(pixels, label, encoded, fmt)

  result = Plan(info=INFO, splits={}, load=load, split_description=description,
                unpaired=unpaired,
                source={"layout": "cambridge", "data_dir": data_dir})
  for split in SPLITS:
    if names.get(split):
      result.splits[split] = [
          ExampleRef(name=os.path.basename(frames[n]), image_path=frames[n],
                     label_path=labels[n]) for n in names[split]]
    else:
      result.absent_splits[split] = "no frames assigned to this split"
  return result


def _read_frame_lists(data_dir: str) -> Optional[dict[str, list[str]]]:
  """Frame names per split from {split}.txt, or None when there are none."""
  lists = {}
  for split in SPLITS:
    path = os.path.join(data_dir, split + ".txt")
    if os.path.exists(path):
      with open(path) as f:
        lists[split] = [
            os.path.splitext(os.path.basename(line.split()[0].replace("\\", "/")))[0]
            for line in f if line.strip()]
  return lists or None
