"""The generic converter (--dataset=folder): images/ + masks/ + a class table."""

import json
import os

import numpy as np
import tensorflow as tf
from absl.testing import parameterized
from PIL import Image

from data_prep import class_table, splits
from reseg_tf.common import palette
from tests.data_prep import fixtures
from tests.data_prep.build_helpers import read_metadata, run_build

_RNG_SEED = 7


def _write_table(root, rows, kind="json"):
  """classes.json (a list of objects) or classes.csv (name,id[,color])."""
  if kind == "json":
    with open(os.path.join(root, "classes.json"), "w") as f:
      json.dump(rows, f)
    return
  columns = ["name", "id"] + (["color"] if "color" in rows[0] else [])
  with open(os.path.join(root, "classes.csv"), "w") as f:
    f.write(",".join(columns) + "\n")
    for row in rows:
      f.write(",".join(f'"{row[c]}"' if c == "color" else str(row[c])
                       for c in columns) + "\n")


def _save_palette(path, index):
  image = Image.fromarray(index.astype(np.uint8), mode="P")
  image.putpalette([v for c in palette.voc_palette(256) for v in c])
  os.makedirs(os.path.dirname(path), exist_ok=True)
  image.save(path)


def _decoded(path):
  """What a reader gets from a stored image: TF's decoding of the source file
  (JPEG bytes are stored untouched), as RGB."""
  return tf.io.decode_image(tf.io.read_file(path), channels=3).numpy()


class FolderIdMasksTest(tf.test.TestCase):
  """Class-id masks (grey and palette), split lists, JSON and CSV tables."""

  def setUp(self):
    super().setUp()
    self.raw = self.create_tempdir("mine").full_path
    self.out = os.path.join(self.create_tempdir().full_path, "records")
    self.rng = np.random.default_rng(_RNG_SEED)

  def _build(self, *extra):
    status, stdout, stderr = run_build("--dataset=folder", f"--data_dir={self.raw}",
                                       f"--output_dir={self.out}", *extra)
    self.assertEqual(status, 0, stderr)
    return stdout

  def _mask(self, values, height=6, width=8):
    return self.rng.choice(values, size=(height, width)).astype(np.uint8)

  def test_formats_lists_and_exact_labels(self):
    _write_table(self.raw, [{"name": "background", "id": 0}, {"name": "cat", "id": 1},
                            {"name": "dog", "id": 2}])
    image_dir, mask_dir = (os.path.join(self.raw, d) for d in ("images", "masks"))
    rgb = fixtures.random_image(self.rng, 6, 8)
    # One image per format the converter accepts; each turns into RGB.
    fixtures.save(os.path.join(image_dir, "a.png"), rgb)                       # RGB PNG
    fixtures.save(os.path.join(image_dir, "b.jpg"), rgb, quality=90)           # JPEG
    fixtures.save(os.path.join(image_dir, "c.png"), rgb[..., 0])               # grey
    fixtures.save(os.path.join(image_dir, "d.png"),
                  np.dstack([rgb, np.full((6, 8), 9, np.uint8)]))             # RGBA
    _save_palette(os.path.join(image_dir, "e.png"), self._mask([0, 5, 200]))  # palette
    fixtures.save(os.path.join(image_dir, "unlisted.png"), rgb)
    masks = {}
    for stem in "abcd":
      masks[stem] = self._mask([0, 1, 2, 255])
      fixtures.save(os.path.join(mask_dir, stem + ".png"), masks[stem])
    masks["e"] = self._mask([0, 2, 255])
    _save_palette(os.path.join(mask_dir, "e.png"), masks["e"])  # Index = class.
    fixtures.save(os.path.join(mask_dir, "unlisted.png"), self._mask([0]))
    os.makedirs(os.path.join(self.raw, "splits"))
    with open(os.path.join(self.raw, "splits", "train.txt"), "w") as f:
      f.write("a\nb.jpg\n\nc\n")  # A file name and a blank line are fine.
    with open(os.path.join(self.raw, "splits", "val.txt"), "w") as f:
      f.write("d\ne\n")

    stdout = self._build("--num_shards=2")

    got = {**fixtures.read_records(self.out, "train"), **fixtures.read_records(self.out, "val")}
    self.assertCountEqual(got, ["a.png", "b.jpg", "c.png", "d.png", "e.png"])
    for name, (image, label) in got.items():
      stem = name[0]
      self.assertAllEqual(label, masks[stem])
      expected = np.asarray(Image.open(os.path.join(image_dir, name)).convert("RGB"))
      if name.endswith(".jpg"):
        expected = _decoded(os.path.join(image_dir, name))  # Bytes kept as they are.
      self.assertAllEqual(image, expected)
    metadata = read_metadata(self.out)
    self.assertEqual(metadata["dataset"], "folder")
    self.assertEqual(metadata["class_names"], ["background", "cat", "dog"])
    self.assertEqual(metadata["class_colors"], [[0, 0, 0], [128, 0, 0], [0, 128, 0]])
    self.assertEqual(metadata["split"]["method"], "lists")
    self.assertEqual(metadata["split"]["names"],
                     {"train": ["a.png", "b.jpg", "c.png"], "val": ["d.png", "e.png"],
                      "test": []})
    self.assertEqual(metadata["absent_splits"],
                     {"test": "no splits/test.txt, or none of its examples has both files"})
    train_masks = np.stack([masks[s] for s in "abc"])
    self.assertEqual(metadata["train_class_pixel_counts"],
                     [int((train_masks == c).sum()) for c in range(3)])
    self.assertEqual(metadata["train_void_pixel_count"], int((train_masks == 255).sum()))
    self.assertLen(metadata["median_frequency_weights"], 3)
    self.assertRegex(stdout, r"train\s+3\s+2\s+[\d.]+ MB\s+0")
    self.assertRegex(stdout, r"val\s+2\s+2\s+[\d.]+ MB\s+0")
    self.assertIn("test: not written (no splits/test.txt", stdout)

  def test_sparse_ids_csv_table_and_map_to_ignore(self):
    # Masks use 0 for "unlabelled" and ids 1, 2, 5: the records number the
    # classes 0..2 in id order, 0 and 255 become void.
    _write_table(self.raw, [{"name": "road", "id": 5}, {"name": "sky", "id": 1},
                            {"name": "tree", "id": 2}], kind="csv")
    raw_masks = {}
    for i in range(5):
      raw_masks[f"x{i}"] = self._mask([0, 1, 2, 5, 255])
      fixtures.save(os.path.join(self.raw, "masks", f"x{i}.png"), raw_masks[f"x{i}"])
      fixtures.save(os.path.join(self.raw, "images", f"x{i}.png"),
                    fixtures.random_image(self.rng, 6, 8))
    self._build("--map_to_ignore=0", "--split_fractions=1,0,0")
    lut = np.full(256, 255, np.uint8)
    lut[[1, 2, 5]] = [0, 1, 2]
    got = fixtures.read_records(self.out, "train")
    self.assertLen(got, 5)
    for name, (_, label) in got.items():
      self.assertAllEqual(label, lut[raw_masks[name[:-4]]])
    metadata = read_metadata(self.out)
    self.assertEqual(metadata["class_names"], ["sky", "tree", "road"])
    self.assertEqual(metadata["source"]["class_ids"], [1, 2, 5])
    self.assertEqual(metadata["source"]["map_to_ignore"], [0])
    self.assertEqual(metadata["absent_splits"], {"val": "empty with these split fractions",
                                                 "test": "empty with these split fractions"})

  def test_seeded_split_is_the_shared_one(self):
    _write_table(self.raw, [{"name": "bg", "id": 0}, {"name": "fg", "id": 1}])
    for i in range(10):
      fixtures.save(os.path.join(self.raw, "images", f"img{i}.jpg"),
                    fixtures.random_image(self.rng, 6, 8))
      fixtures.save(os.path.join(self.raw, "masks", f"img{i}.png"), self._mask([0, 1]))
    self._build("--split_seed=4")
    metadata = read_metadata(self.out)
    expected, _ = splits.seeded_split([f"img{i}.jpg" for i in range(10)], (0.6, 0.2, 0.2), 4)
    self.assertEqual(metadata["split"]["method"], "seeded_random")
    self.assertEqual(metadata["split"]["seed"], 4)
    self.assertEqual(metadata["split"]["names"], expected)
    for split, names in expected.items():
      self.assertCountEqual(fixtures.read_records(self.out, split), names)

  def test_unknown_id_names_file_value_position_and_count(self):
    _write_table(self.raw, [{"name": "bg", "id": 0}, {"name": "fg", "id": 1}])
    mask = np.zeros((6, 8), np.uint8)
    mask[0, 0] = 1  # A pixel of each class: no class is empty.
    mask[2, 3:5] = 7
    mask[4, 0:2] = 7
    mask[5, 7] = 9
    mask_path = os.path.join(self.raw, "masks", "m.png")
    fixtures.save(mask_path, mask)
    fixtures.save(os.path.join(self.raw, "images", "m.png"), fixtures.random_image(self.rng, 6, 8))
    status, _, stderr = run_build("--dataset=folder", f"--data_dir={self.raw}",
                                  f"--output_dir={self.out}", "--split_fractions=1,0,0")
    self.assertEqual(status, 1)
    self.assertIn(f"error: {mask_path}: mask value 7 is not a class id in classes.json "
                  "nor the ignore value 255 (first at row 2, column 3; 4 pixels; and "
                  "1 other unknown id); pass --unknown_to_ignore", stderr)
    self.assertFalse(os.path.exists(self.out))

    self._build("--split_fractions=1,0,0", "--unknown_to_ignore")
    expected = np.where(mask > 1, 255, mask)
    self.assertAllEqual(fixtures.read_records(self.out, "train")["m.png"][1], expected)


class FolderColourMasksTest(tf.test.TestCase):
  """RGB colour masks through the table's colours, split subfolders."""

  def setUp(self):
    super().setUp()
    self.raw = self.create_tempdir("colours").full_path
    self.out = os.path.join(self.create_tempdir().full_path, "records")
    self.rng = np.random.default_rng(_RNG_SEED)
    _write_table(self.raw, [{"name": "road", "id": 0, "color": [128, 64, 128]},
                            {"name": "car", "id": 1, "color": "#00008e"},
                            {"name": "sky", "id": 2, "color": "70 130 180"}])
    self.palette = np.array([[128, 64, 128], [0, 0, 142], [70, 130, 180],
                             [0, 0, 0], [255, 255, 255]], np.uint8)
    self.ids = np.array([0, 1, 2, 255, 255], np.uint8)  # Black, white: void.
    self.choices = {}
    for split, stems in (("train", ["t0", "t1", "t2"]), ("val", ["v0"])):
      for stem in stems:
        choice = self.rng.integers(0, 5, size=(5, 7))
        self.choices[stem] = choice
        colour = self.palette[choice]
        if stem == "t2":  # RGBA masks lose their alpha.
          colour = np.dstack([colour, np.full((5, 7), 128, np.uint8)])
        fixtures.save(os.path.join(self.raw, "masks", split, stem + ".png"), colour)
        fixtures.save(os.path.join(self.raw, "images", split, stem + ".png"),
                      fixtures.random_image(self.rng, 5, 7))

  def _build(self, *extra):
    return run_build("--dataset=folder", f"--data_dir={self.raw}",
                     f"--output_dir={self.out}", "--map_to_ignore=#000000,#ffffff", *extra)

  def test_colours_map_to_classes_and_subfolders_make_the_splits(self):
    status, _, stderr = self._build()
    self.assertEqual(status, 0, stderr)
    for split, stems in (("train", ["t0", "t1", "t2"]), ("val", ["v0"])):
      got = fixtures.read_records(self.out, split)
      self.assertCountEqual(got, [s + ".png" for s in stems])
      for stem in stems:
        self.assertAllEqual(got[stem + ".png"][1], self.ids[self.choices[stem]])
    metadata = read_metadata(self.out)
    self.assertEqual(metadata["class_colors"], [[128, 64, 128], [0, 0, 142], [70, 130, 180]])
    self.assertEqual(metadata["split"]["method"], "folders")
    self.assertEqual(metadata["absent_splits"],
                     {"test": "no images/test/ folder, or no image in it has its mask"})
    train = np.stack([self.choices[s] for s in ("t0", "t1", "t2")])
    self.assertEqual(metadata["train_class_pixel_counts"],
                     [int((train == c).sum()) for c in range(3)])

  def test_unknown_colour_is_an_error_or_void(self):
    path = os.path.join(self.raw, "masks", "val", "v0.png")
    colour = self.palette[self.choices["v0"]]
    colour[1, 2] = (1, 2, 3)
    fixtures.save(path, colour)
    status, _, stderr = self._build()
    self.assertEqual(status, 1)
    self.assertIn(f"{path}: colour (1, 2, 3) (#010203) is not a class colour in "
                  "classes.json (first at row 1, column 2; 1 pixel)", stderr)
    status, _, stderr = self._build("--unknown_to_ignore")
    self.assertEqual(status, 0, stderr)
    self.assertEqual(fixtures.read_records(self.out, "val")["v0.png"][1][1, 2], 255)


def _one_pair(root, mask=None, table=None):
  _write_table(root, table or [{"name": "bg", "id": 0}, {"name": "fg", "id": 1}])
  fixtures.save(os.path.join(root, "images", "a.png"), np.zeros((4, 5, 3), np.uint8))
  if mask is None:
    mask = np.zeros((4, 5), np.uint8)
    mask[0, 0] = 1  # No class is empty.
  fixtures.save(os.path.join(root, "masks", "a.png"), mask)


# Each case breaks a one-image tree: (setup(root) -> the path the error names,
# the problem it states).
_BREAKAGES = {
    "no_class_table": (lambda r: (_one_pair(r), os.remove(os.path.join(r, "classes.json")),
                                  os.path.join(r, "classes.json"))[-1],
                       "class table is missing"),
    "image_without_mask": (lambda r: (_one_pair(r), fixtures.save(
        os.path.join(r, "images", "b.jpg"), np.zeros((4, 5, 3), np.uint8)),
                                      os.path.join(r, "images", "b.jpg"))[-1],
                           "image has no mask b.png in .*; pass --skip_bad"),
    "rgb_mask_without_colours": (lambda r: (_one_pair(r, np.full((4, 5, 3), (9, 0, 0), np.uint8)),
                                            os.path.join(r, "masks", "a.png"))[-1],
                                 "is an RGB colour mask but classes.json gives no class colours"),
    "mask_size": (lambda r: (_one_pair(r, np.zeros((3, 5), np.uint8)),
                             os.path.join(r, "masks", "a.png"))[-1],
                  r"label is 3x5 \(HxW\) but its image is 4x5"),
    "class_id_is_the_ignore_value": (
        lambda r: (_one_pair(r, table=[{"name": "bg", "id": 0}, {"name": "x", "id": 255}]),
                   os.path.join(r, "classes.json"))[-1],
        r"class 'x' has the id that --ignore_value makes void: mask value 255\. To keep "
        r"255 as 'x', pass --ignore_value=254 \(any value no mask uses\); or, for binary "
        r"masks saved as 0/255, give 'x' the id 1 in classes.json and pass "
        r"--mask_values=255:1"),
    "duplicate_table_id": (
        lambda r: (_one_pair(r, table=[{"name": "bg", "id": 0}, {"name": "x", "id": 0}]),
                   os.path.join(r, "classes.json"))[-1],
        "id 0 is given to two classes"),
    "stem_in_two_lists": (lambda r: (_one_pair(r), os.makedirs(os.path.join(r, "splits")),
                                     open(os.path.join(r, "splits", "train.txt"), "w").write("a\n"),
                                     open(os.path.join(r, "splits", "val.txt"), "w").write("a\n"),
                                     os.path.join(r, "splits", "val.txt"))[-1],
                          "line 1: a is also in the train list"),
    "listed_stem_missing": (lambda r: (_one_pair(r), os.makedirs(os.path.join(r, "splits")),
                                       open(os.path.join(r, "splits", "train.txt"), "w").write("a\nzz\n"),
                                       os.path.join(r, "splits", "train.txt"))[-1],
                            "line 2: zz has no image in .* and no mask in"),
    "two_images_one_stem": (lambda r: (_one_pair(r), fixtures.save(
        os.path.join(r, "images", "a.jpg"), np.zeros((4, 5, 3), np.uint8)),
                                       os.path.join(r, "images", "a.png"))[-1],
                            "two files with the stem 'a'"),
}


class FolderBadInputTest(parameterized.TestCase, tf.test.TestCase):

  @parameterized.named_parameters(*[(name, name) for name in _BREAKAGES])
  def test_bad_input_names_the_file_and_the_problem(self, case):
    raw = self.create_tempdir().full_path
    setup, message = _BREAKAGES[case]
    path = setup(raw)
    out = os.path.join(self.create_tempdir().full_path, "records")
    status, _, stderr = run_build("--dataset=folder", f"--data_dir={raw}",
                                  f"--output_dir={out}", "--split_fractions=1,0,0")
    self.assertEqual(status, 1)
    self.assertIn(f"error: {path}: ", stderr)
    self.assertRegex(stderr, message)
    self.assertFalse(os.path.exists(out))

  def test_skip_bad_and_overwrite(self):
    raw = self.create_tempdir().full_path
    unpaired = _BREAKAGES["image_without_mask"][0](raw)
    out = os.path.join(self.create_tempdir().full_path, "records")
    args = ("--dataset=folder", f"--data_dir={raw}", f"--output_dir={out}",
            "--split_fractions=1,0,0", "--skip_bad")
    status, stdout, stderr = run_build(*args)
    self.assertEqual(status, 0, stderr)
    self.assertEqual(read_metadata(out)["skipped"],
                     [{"path": unpaired, "problem": f"image has no mask b.png in "
                       f"{os.path.join(raw, 'masks')}"}])
    self.assertIn("unpaired files skipped: 1", stdout)
    status, _, stderr = run_build(*args)
    self.assertEqual(status, 1)
    self.assertIn("--overwrite", stderr)
    status, _, stderr = run_build(*args, "--overwrite")
    self.assertEqual(status, 0, stderr)

  def test_bad_map_to_ignore_is_a_usage_error(self):
    with self.assertRaisesRegex(Exception, "--map_to_ignore: 'blue' is not a colour"):
      run_build("--dataset=folder", f"--data_dir={self.create_tempdir().full_path}",
                f"--output_dir={self.create_tempdir().full_path}/out", "--map_to_ignore=blue")


class ClassTableTest(tf.test.TestCase):

  def test_colour_forms_and_default_palette(self):
    for value in ([128, 64, 128], "#804080", "128 64 128", "128,64,128"):
      self.assertEqual(class_table.parse_color(value), (128, 64, 128))
    with self.assertRaises(ValueError):
      class_table.parse_color([1, 2, 300])
    colors = palette.voc_palette(256)
    self.assertEqual(colors[:4], [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0)])
    self.assertEqual(colors[15], (192, 128, 128))  # VOC person.
    self.assertEqual(colors[255], (224, 224, 192))  # VOC boundary.


if __name__ == "__main__":
  tf.test.main()
