"""Cityscapes conversion: labelIds -> the 19 trainIds, from a tiny tree."""

import os

import numpy as np
import tensorflow as tf

from data_prep import cityscapes
from tests.data_prep import fixtures
from tests.data_prep.build_helpers import read_metadata, run_build

# cityscapesScripts helpers/labels.py, written out again: labelId -> trainId
# for the 19 evaluated classes; every other labelId (0..33) and license plate
# (-1) is void.
_TRAIN_ID = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
             23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
_CLASSES = (
    ("road", (128, 64, 128)), ("sidewalk", (244, 35, 232)), ("building", (70, 70, 70)),
    ("wall", (102, 102, 156)), ("fence", (190, 153, 153)), ("pole", (153, 153, 153)),
    ("traffic light", (250, 170, 30)), ("traffic sign", (220, 220, 0)),
    ("vegetation", (107, 142, 35)), ("terrain", (152, 251, 152)), ("sky", (70, 130, 180)),
    ("person", (220, 20, 60)), ("rider", (255, 0, 0)), ("car", (0, 0, 142)),
    ("truck", (0, 0, 70)), ("bus", (0, 60, 100)), ("train", (0, 80, 100)),
    ("motorcycle", (0, 0, 230)), ("bicycle", (119, 11, 32)))
_FRAMES = {"train": ["aachen_000000_000019", "aachen_000001_000019", "bochum_000000_000313"],
           "val": ["frankfurt_000000_000294"], "test": ["berlin_000000_000019"]}


def _expected(label_ids):
  return np.vectorize(lambda i: _TRAIN_ID.get(int(i), 255))(label_ids).astype(np.uint8)


def _cityscapes_tree(root):
  """leftImg8bit/ + gtFine/ with the release's names; returns {name: labelIds}."""
  rng = np.random.default_rng(6)
  label_ids = {}
  for split, frames in _FRAMES.items():
    for frame in frames:
      city = frame.split("_")[0]
      ids = rng.integers(0, 34, size=(8, 16)).astype(np.uint8)
      name = frame + "_leftImg8bit.png"
      fixtures.save(os.path.join(root, "leftImg8bit", split, city, name),
                    fixtures.random_image(rng, 8, 16))
      gt = os.path.join(root, "gtFine", split, city, frame + "_gtFine_")
      fixtures.save(gt + "labelIds.png", ids)
      # The release's other files, which the converter must leave alone.
      fixtures.save(gt + "color.png", fixtures.random_image(rng, 8, 16))
      fixtures.save(gt + "instanceIds.png", ids.astype(np.uint16) * 1000)
      with open(gt + "polygons.json", "w") as f:
        f.write("{}")
      label_ids[name] = ids
  return label_ids


class CityscapesTest(tf.test.TestCase):

  def test_every_label_id_maps_to_its_train_id(self):
    ids = np.arange(-1, 34).reshape(5, 7)  # License plate (-1) and 0..33.
    mapped = cityscapes.to_train_ids(ids, "x.png")
    for label_id, train_id in zip(ids.ravel(), mapped.ravel()):
      self.assertEqual(train_id, _TRAIN_ID.get(label_id, 255), f"labelId {label_id}")
    self.assertEqual(sorted(_TRAIN_ID.values()), list(range(19)))
    with self.assertRaisesRegex(Exception, r"x.png: values outside the Cityscapes "
                                r"labelIds -1..33: \[34, 255\]"):
      cityscapes.to_train_ids(np.array([[0, 34, 255]]), "x.png")

  def test_class_names_and_colours_are_cityscapes_scripts(self):
    self.assertEqual(cityscapes.INFO.class_names, tuple(n for n, _ in _CLASSES))
    self.assertEqual(cityscapes.INFO.class_colors, tuple(c for _, c in _CLASSES))

  def test_records_hold_train_ids_and_test_is_not_written(self):
    root = self.create_tempdir("cityscapes").full_path
    label_ids = _cityscapes_tree(root)
    out = os.path.join(self.create_tempdir().full_path, "records")
    status, stdout, stderr = run_build("--dataset=cityscapes", f"--data_dir={root}",
                                       f"--output_dir={out}")
    self.assertEqual(status, 0, stderr)
    for split in ("train", "val"):
      got = fixtures.read_records(out, split)
      self.assertCountEqual(got, [f + "_leftImg8bit.png" for f in _FRAMES[split]])
      for name, (image, label) in got.items():
        city = name.split("_")[0]
        source = os.path.join(root, "leftImg8bit", split, city, name)
        self.assertAllEqual(image, tf.io.decode_png(tf.io.read_file(source)))
        self.assertAllEqual(label, _expected(label_ids[name]))
    metadata = read_metadata(out)
    self.assertEqual(list(metadata["splits"]), ["train", "val"])
    self.assertEqual(metadata["num_classes"], 19)
    self.assertIn("withholds the test labels", metadata["absent_splits"]["test"])
    self.assertIn("test: not written (the Cityscapes benchmark withholds", stdout)
    train = np.stack([_expected(label_ids[f + "_leftImg8bit.png"]) for f in _FRAMES["train"]])
    self.assertEqual(metadata["train_class_pixel_counts"],
                     [int((train == c).sum()) for c in range(19)])
    self.assertEqual(metadata["train_void_pixel_count"], int((train == 255).sum()))

  def test_unpaired_frames_and_missing_folders(self):
    root = self.create_tempdir("cityscapes").full_path
    _cityscapes_tree(root)
    lonely = os.path.join(root, "leftImg8bit", "val", "lindau", "lindau_000000_000019_leftImg8bit.png")
    fixtures.save(lonely, np.zeros((8, 16, 3), np.uint8))
    out = os.path.join(self.create_tempdir().full_path, "records")
    status, _, stderr = run_build("--dataset=cityscapes", f"--data_dir={root}",
                                  f"--output_dir={out}")
    self.assertEqual(status, 1)
    self.assertIn(f"{lonely}: image has no lindau_000000_000019_gtFine_labelIds.png", stderr)
    status, _, stderr = run_build("--dataset=cityscapes", f"--data_dir={root}/nothing",
                                  f"--output_dir={out}")
    self.assertEqual(status, 1)
    self.assertIn(f"{root}/nothing: folder does not exist", stderr)


if __name__ == "__main__":
  tf.test.main()
