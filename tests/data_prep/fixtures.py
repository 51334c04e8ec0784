"""Tiny raw dataset trees, generated in a temporary folder for the tests.

Each builder writes a few small images in a release's layout and returns what
the records must contain after conversion: {split: {name: (image, label)}},
where `label` is already mapped to class ids 0..K-1 and 255.
"""

import os

import numpy as np
import scipy.io
import tensorflow as tf
from PIL import Image

from data_prep import camvid
from reseg_tf.data import records

# The 32 classes of the Cambridge release's label_colors.txt.
CAMBRIDGE_COLORS = """64 128 64\tAnimal
192 0 128\tArchway
0 128 192\tBicyclist
0 128 64\tBridge
128 0 0\tBuilding
64 0 128\tCar
64 0 192\tCartLuggagePram
192 128 64\tChild
192 192 128\tColumn_Pole
64 64 128\tFence
128 0 192\tLaneMkgsDriv
192 0 64\tLaneMkgsNonDriv
128 128 64\tMisc_Text
192 0 192\tMotorcycleScooter
128 64 64\tOtherMoving
64 192 128\tParkingBlock
64 64 0\tPedestrian
128 64 128\tRoad
128 128 192\tRoadShoulder
0 0 192\tSidewalk
192 128 128\tSignSymbol
128 128 128\tSky
64 128 192\tSUVPickupTruck
0 0 64\tTrafficCone
0 64 64\tTrafficLight
192 64 128\tTrain
128 128 0\tTree
192 128 192\tTruck_Bus
64 0 64\tTunnel
192 192 0\tVegetationMisc
0 0 0\tVoid
64 192 0\tWall
"""


def save(path: str, array: np.ndarray, **kwargs):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(array).save(path, **kwargs)


def random_image(rng, height, width):
  return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def camvid_segnet(root: str, with_lists: bool = True, sizes=(3, 2, 0),
                  height=12, width=16) -> dict:
  """SegNet layout; train listed in train.txt, val paired by file name."""
  rng = np.random.default_rng(1)
  expected = {}
  for split, count in zip(("train", "val", "test"), sizes):
    if not count:
      continue
    lines, expected[split] = [], {}
    for i in range(count):
      name = f"0001TP_{i:06d}.png"
      image = random_image(rng, height, width)
      raw = rng.integers(0, 12, size=(height, width), dtype=np.uint8)
      raw[0, 0] = 11  # Every map has some void.
      save(os.path.join(root, split, name), image)
      save(os.path.join(root, split + "annot", name), raw)
      lines.append(f"/SegNet/CamVid/{split}/{name} /SegNet/CamVid/{split}annot/{name}\n")
      expected[split][name] = (image, np.where(raw == 11, 255, raw).astype(np.uint8))
    if with_lists and split == "train":
      with open(os.path.join(root, split + ".txt"), "w") as f:
        f.writelines(lines)
  return expected


def camvid_cambridge(root: str, num_frames=5, height=9, width=11,
                     lists: dict = None) -> dict:
  """Cambridge layout: colour labels *_L.png and label_colors.txt.

  Returns {name: (image, mapped label)}; the split is up to the converter.
  """
  rng = np.random.default_rng(2)
  os.makedirs(root, exist_ok=True)
  with open(os.path.join(root, camvid.CAMBRIDGE_COLORS_FILE), "w") as f:
    f.write(CAMBRIDGE_COLORS)
  colors = camvid.read_label_colors(os.path.join(root, camvid.CAMBRIDGE_COLORS_FILE))
  palette = list(colors.items())
  class_ids = {n: i for i, n in enumerate(camvid.INFO.class_names)}
  expected = {}
  for i in range(num_frames):
    name = f"0016E5_{i:05d}"
    image = random_image(rng, height, width)
    choice = rng.integers(0, len(palette), size=(height, width))
    choice[0, 0] = 0  # Animal: a class that maps to void.
    colour = np.array([c for c, _ in palette], np.uint8)[choice]
    colour[0, 1] = (1, 2, 3)  # A colour not in label_colors.txt.
    label = np.array([class_ids.get(camvid.CAMBRIDGE_TO_SEGNET.get(n), 255)
                      for _, n in palette], np.uint8)[choice]
    label[0, 1] = 255
    save(os.path.join(root, "701_StillsRaw_full", name + ".png"), image)
    save(os.path.join(root, "LabeledApproved_full", name + "_L.png"), colour)
    expected[name + ".png"] = (image, label)
  for split, names in (lists or {}).items():
    with open(os.path.join(root, split + ".txt"), "w") as f:
      f.writelines(f"{n}\n" for n in names)
  return expected


def horse(root: str, num_images=6) -> dict:
  """rgb/ at twice the mask size, figure_ground/ greyscale JPEG masks."""
  rng = np.random.default_rng(3)
  expected = {}
  for i in range(1, num_images + 1):
    name = f"horse{i:03d}.jpg"
    mask = np.zeros((10, 14), np.uint8)
    mask[2:8, 3:11] = 255
    mask[0, 0] = 140  # Above the threshold after JPEG: horse.
    save(os.path.join(root, "rgb", name), random_image(rng, 20, 28), quality=95)
    save(os.path.join(root, "figure_ground", name), mask, quality=100)
    expected[name] = None  # Pixels come from a resize: checked separately.
  return expected


def flowers(root: str, ids=(1, 2, 3, 4, 5, 6, 1269, 1270), foreground=38,
            imlist: bool = False, datasplits: dict = None) -> dict:
  """jpg/ images twice the trimap size, palette trimaps, optional .mat files."""
  rng = np.random.default_rng(4)
  expected = {}
  palette = list(rng.integers(0, 256, size=256 * 3).astype(int))
  for image_id in ids:
    name = f"image_{image_id:04d}"
    save(os.path.join(root, "jpg", name + ".jpg"), random_image(rng, 16, 20), quality=95)
    index = rng.choice([0, 7, foreground, 200], size=(8, 10)).astype(np.uint8)
    trimap = Image.fromarray(index, mode="P")
    trimap.putpalette(palette)
    os.makedirs(os.path.join(root, "trimaps"), exist_ok=True)
    trimap.save(os.path.join(root, "trimaps", name + ".png"))
    expected[name + ".jpg"] = (index == foreground).astype(np.uint8)
  if imlist:
    scipy.io.savemat(os.path.join(root, "trimaps", "imlist.mat"),
                     {"imlist": np.array([list(ids)], np.float64)})
  if datasplits:
    scipy.io.savemat(os.path.join(root, "datasplits.mat"),
                     {k: np.array([v], np.float64) for k, v in datasplits.items()})
  return expected


def read_records(records_dir: str, split: str) -> dict:
  """Decodes every example of a split: {filename: (image, label)}."""
  files = sorted(tf.io.gfile.glob(records.shard_pattern(records_dir, split)))
  result = {}
  for serialized in tf.data.TFRecordDataset(files):
    example = records.decode_example(serialized)
    result[example["filename"].numpy().decode()] = (example["image"].numpy(),
                                                    example["label"].numpy())
  return result
