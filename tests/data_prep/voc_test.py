"""Pascal VOC 2012 conversion from a tiny VOCdevkit tree (real names and palette)."""

import os

import numpy as np
import tensorflow as tf
from PIL import Image

from data_prep import voc
from tests.data_prep import fixtures
from tests.data_prep.build_helpers import read_metadata, run_build

# The palette of VOC's SegmentationClass PNGs: entry i is the colour of class
# i, 255 the boundary band (as the devkit's labelcolormap / DeepLab's).
_VOC_PALETTE = {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 3: (128, 128, 0),
                7: (128, 128, 128), 15: (192, 128, 128), 20: (0, 64, 128),
                255: (224, 224, 192)}
_TRAIN, _VAL = ["2007_000032", "2007_000039"], ["2007_000033", "2007_000042"]
_SBD_ONLY = ["2008_000002"]


def _save_index_png(path, index, palette=True):
  image = Image.fromarray(index, mode="P" if palette else "L")
  if palette:
    image.putpalette([v for c in voc.INFO.class_colors for v in c] + [0] * 3 * 234
                     + [224, 224, 192])
  os.makedirs(os.path.dirname(path), exist_ok=True)
  image.save(path)


def _voc_tree(base, augmented=False):
  """VOCdevkit/VOC2012 under `base`; returns {stem: label} of what it wrote."""
  root = os.path.join(base, "VOCdevkit", "VOC2012")
  rng = np.random.default_rng(5)
  labels, aug_labels = {}, {}
  for stem in _TRAIN + _VAL + _SBD_ONLY:
    fixtures.save(os.path.join(root, "JPEGImages", stem + ".jpg"),
                  fixtures.random_image(rng, 10, 12), quality=90)
    index = rng.choice([0, 1, 7, 15, 20], size=(10, 12)).astype(np.uint8)
    index[0, :] = 255  # A boundary band.
    if stem not in _SBD_ONLY:
      _save_index_png(os.path.join(root, "SegmentationClass", stem + ".png"), index)
      labels[stem] = index
    if augmented:  # SBD's labels are grey class ids, and differ from VOC's.
      aug = np.where(index == 255, 0, index).astype(np.uint8)
      _save_index_png(os.path.join(root, "SegmentationClassAug", stem + ".png"), aug,
                      palette=False)
      aug_labels[stem] = aug
  lists = os.path.join(root, "ImageSets", "Segmentation")
  os.makedirs(lists)
  for name, stems in (("train", _TRAIN), ("val", _VAL), ("trainval", _TRAIN + _VAL)):
    with open(os.path.join(lists, name + ".txt"), "w") as f:
      f.writelines(s + "\n" for s in stems)
  if augmented:  # DeepLab-style lines; one val image that must be dropped.
    with open(os.path.join(lists, "train_aug.txt"), "w") as f:
      f.writelines(f"/JPEGImages/{s}.jpg /SegmentationClassAug/{s}.png\n"
                   for s in _TRAIN + _SBD_ONLY + _VAL[:1])
  return root, labels, aug_labels


class VocTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.base = self.create_tempdir("voc").full_path
    self.out = os.path.join(self.create_tempdir().full_path, "records")

  def _build(self, data_dir, *extra):
    status, stdout, stderr = run_build("--dataset=voc", f"--data_dir={data_dir}",
                                       f"--output_dir={self.out}", *extra)
    self.assertEqual(status, 0, stderr)
    return stdout

  def test_palette_indices_are_the_classes(self):
    root, labels, _ = _voc_tree(self.base)
    stdout = self._build(self.base)  # The folder above VOCdevkit.
    for split, stems in (("train", _TRAIN), ("val", _VAL)):
      got = fixtures.read_records(self.out, split)
      self.assertCountEqual(got, [s + ".jpg" for s in stems])
      for stem in stems:
        image, label = got[stem + ".jpg"]
        self.assertAllEqual(label, labels[stem])  # Index, 255 kept as void.
        jpeg = tf.io.read_file(os.path.join(root, "JPEGImages", stem + ".jpg"))
        self.assertAllEqual(image, tf.io.decode_jpeg(jpeg))  # Stored untouched.
    metadata = read_metadata(self.out)
    self.assertEqual(metadata["num_classes"], 21)
    self.assertEqual(metadata["class_names"][15], "person")
    self.assertEqual(metadata["class_names"][20], "tvmonitor")
    for index, colour in _VOC_PALETTE.items():
      if index < 21:
        self.assertEqual(metadata["class_colors"][index], list(colour))
    self.assertEqual(list(metadata["splits"]), ["train", "val"])
    self.assertIn("test", metadata["absent_splits"])
    self.assertIn("test: not written (Pascal VOC 2012 test labels are not public", stdout)
    train = np.stack([labels[s] for s in _TRAIN])
    self.assertEqual(metadata["train_class_pixel_counts"],
                     [int((train == c).sum()) for c in range(21)])
    self._build(root, "--overwrite")  # data_dir may be VOC2012 itself.
    self.assertEqual(read_metadata(self.out)["source"]["root"], root)

  def test_augmented_train_leaves_val_out(self):
    root, labels, aug_labels = _voc_tree(self.base, augmented=True)
    self._build(self.base, "--voc_augmented")
    train = fixtures.read_records(self.out, "train")
    self.assertCountEqual(train, [s + ".jpg" for s in _TRAIN + _SBD_ONLY])
    for stem in _TRAIN + _SBD_ONLY:
      self.assertAllEqual(train[stem + ".jpg"][1], aug_labels[stem])
    val = fixtures.read_records(self.out, "val")
    for stem in _VAL:  # Val keeps the official labels.
      self.assertAllEqual(val[stem + ".jpg"][1], labels[stem])
    description = read_metadata(self.out)["split"]["train_labels"]
    self.assertEqual(description, {"labels": "SegmentationClassAug",
                                   "list": "train_aug.txt", "val_stems_removed": 1})
    os.remove(os.path.join(root, "ImageSets", "Segmentation", "train_aug.txt"))
    self._build(self.base, "--voc_augmented", "--overwrite")  # Every Aug PNG, minus val.
    self.assertCountEqual(fixtures.read_records(self.out, "train"),
                          [s + ".jpg" for s in _TRAIN + _SBD_ONLY])
    self.assertEqual(read_metadata(self.out)["split"]["train_labels"]["val_stems_removed"], 2)

  def test_errors_name_the_file(self):
    root, _, _ = _voc_tree(self.base)
    status, _, stderr = run_build("--dataset=voc", f"--data_dir={self.base}",
                                  f"--output_dir={self.out}", "--voc_augmented")
    self.assertEqual(status, 1)
    self.assertIn(os.path.join(root, "SegmentationClassAug"), stderr)
    bad = os.path.join(root, "SegmentationClass", _VAL[1] + ".png")
    _save_index_png(bad, np.full((10, 12), 21, np.uint8))
    os.remove(os.path.join(root, "JPEGImages", _TRAIN[1] + ".jpg"))
    status, _, stderr = run_build("--dataset=voc", f"--data_dir={self.base}",
                                  f"--output_dir={self.out}")
    self.assertEqual(status, 1)
    self.assertIn(f"{os.path.join(root, 'JPEGImages', _TRAIN[1] + '.jpg')}: listed in "
                  "train.txt line 2 but missing", stderr)
    status, _, stderr = run_build("--dataset=voc", f"--data_dir={self.base}",
                                  f"--output_dir={self.out}", "--skip_bad")
    self.assertEqual(status, 0, stderr)
    skipped = read_metadata(self.out)["skipped"]
    self.assertEqual([s["path"] for s in skipped],
                     [os.path.join(root, "JPEGImages", _TRAIN[1] + ".jpg"), bad])
    self.assertEqual(skipped[1]["problem"], "label values outside 0..20 and 255: [21]")
    self.assertEqual(read_metadata(self.out)["splits"]["val"]["num_examples"], 1)
    status, _, stderr = run_build("--dataset=voc", f"--data_dir={self.out}x",
                                  f"--output_dir={self.out}x/records")
    self.assertEqual(status, 1)
    self.assertIn(f"{self.out}x/JPEGImages: folder does not exist", stderr)


if __name__ == "__main__":
  tf.test.main()
