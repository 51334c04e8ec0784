"""--dataset=folder on data as users have it: phone photos with an EXIF
orientation, tables and lists saved by spreadsheet programs, nested folders
from labelling tools, and binary masks saved as 0/255."""

import json
import os

import numpy as np
import tensorflow as tf

from reseg_tf.common import image_files
from tests.data_prep import fixtures
from tests.data_prep.build_helpers import read_metadata, run_build
from tests.image_files_test import SHOWN, save_with_orientation


def _write_json_table(root, classes):
  os.makedirs(root, exist_ok=True)
  with open(os.path.join(root, "classes.json"), "w") as f:
    json.dump([{"name": n, "id": i} for n, i in classes], f)


class _FolderTestCase(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.raw = self.create_tempdir("raw").full_path
    self.out = os.path.join(self.create_tempdir().full_path, "records")
    self.rng = np.random.default_rng(11)

  def build(self, *extra):
    """(status, stdout, stderr) of a folder build of self.raw."""
    return run_build("--dataset=folder", f"--data_dir={self.raw}",
                     f"--output_dir={self.out}", *extra)

  def build_ok(self, *extra):
    status, stdout, stderr = self.build(*extra)
    self.assertEqual(status, 0, stderr)
    return stdout

  def mask(self, values, shape):
    return self.rng.choice(values, size=shape).astype(np.uint8)


class ExifOrientationTest(_FolderTestCase):
  """Masks drawn on the photo as shown pair with it."""

  def setUp(self):
    super().setUp()
    _write_json_table(self.raw, [("bg", 0), ("a", 1), ("b", 2)])
    self.stored = fixtures.random_image(self.rng, 4, 6)  # As the sensor wrote it.
    self.masks = {}
    # A PNG and a JPEG photo stored 4x6 and shown 6x4; their masks are
    # drawn on the shown photo and have no tag.
    for stem, orientation, kwargs in (("png6", 6, {}), ("jpg8", 8, {"quality": 95})):
      extension = ".jpg" if kwargs else ".png"
      save_with_orientation(os.path.join(self.raw, "images", stem + extension),
                            self.stored, orientation, **kwargs)
      self.masks[stem] = self.mask([0, 1, 2], (6, 4))
      fixtures.save(os.path.join(self.raw, "masks", stem + ".png"), self.masks[stem])
    # A photo and its mask both stored 4x6 with orientation 3 (the mask
    # written by a tool that kept the photo's tag): both are turned.
    save_with_orientation(os.path.join(self.raw, "images", "both3.png"), self.stored, 3)
    stored_mask = self.mask([0, 1, 2, 255], (4, 6))
    save_with_orientation(os.path.join(self.raw, "masks", "both3.png"), stored_mask, 3)
    self.masks["both3"] = SHOWN[3](stored_mask)
    # A photo without a tag stays as it is.
    fixtures.save(os.path.join(self.raw, "images", "plain.png"), self.stored)
    self.masks["plain"] = self.mask([0, 1, 2], (4, 6))
    fixtures.save(os.path.join(self.raw, "masks", "plain.png"), self.masks["plain"])

  def test_photos_and_masks_are_turned_as_shown(self):
    self.build_ok("--split_fractions=1,0,0")
    got = fixtures.read_records(self.out, "train")
    self.assertCountEqual(got, ["png6.png", "jpg8.jpg", "both3.png", "plain.png"])
    jpeg = image_files.read_rgb(os.path.join(self.raw, "images", "jpg8.jpg"),
                                apply_exif_orientation=False)  # Lossy: as decoded.
    expected_images = {"png6.png": SHOWN[6](self.stored), "jpg8.jpg": SHOWN[8](jpeg),
                       "both3.png": SHOWN[3](self.stored), "plain.png": self.stored}
    for name, (image, label) in got.items():
      self.assertAllEqual(image, expected_images[name])
      self.assertAllEqual(label, self.masks[os.path.splitext(name)[0]])
    self.assertTrue(read_metadata(self.out)["source"]["exif_orientation"])

  def test_flag_off_reads_pixels_as_stored(self):
    status, _, stderr = self.build("--split_fractions=1,0,0", "--exif_orientation=false")
    self.assertEqual(status, 1)
    self.assertIn(f"error: {os.path.join(self.raw, 'masks', 'jpg8.png')}: label is 6x4 "
                  "(HxW) but its image is 4x6", stderr)
    for stem in ("png6", "jpg8"):  # Masks drawn on the stored pixels instead.
      self.masks[stem] = self.masks[stem].T.copy()
      fixtures.save(os.path.join(self.raw, "masks", stem + ".png"), self.masks[stem])
    self.build_ok("--split_fractions=1,0,0", "--exif_orientation=false")
    got = fixtures.read_records(self.out, "train")
    self.assertAllEqual(got["png6.png"][0], self.stored)
    self.assertAllEqual(got["png6.png"][1], self.masks["png6"])
    # Stored as they are: the mask's own tag is not applied either.
    self.assertAllEqual(got["both3.png"][0], self.stored)
    self.assertAllEqual(got["both3.png"][1], SHOWN[3](self.masks["both3"]))
    self.assertFalse(read_metadata(self.out)["source"]["exif_orientation"])


class SpreadsheetFilesTest(_FolderTestCase):

  def test_bom_crlf_blank_lines_and_spaces_parse(self):
    with open(os.path.join(self.raw, "classes.csv"), "w", encoding="utf-8-sig",
              newline="") as f:  # As Excel's "CSV UTF-8" writes it.
      f.write("\r\n name , id , color ,\r\n\r\n sky , 3 , #87ceeb ,\r\n"
              "road,1, 128 64 128 ,\r\n , , ,\r\n\r\n")
    masks = {}
    for stem in ("a", "b", "c"):
      fixtures.save(os.path.join(self.raw, "images", stem + ".png"),
                    fixtures.random_image(self.rng, 5, 7))
      masks[stem] = self.mask([1, 3, 255], (5, 7))
      fixtures.save(os.path.join(self.raw, "masks", stem + ".png"), masks[stem])
    os.makedirs(os.path.join(self.raw, "splits"))
    for split, text in (("train", '\r\n a \r\n\r\n"b.png",b.png\r\n'), ("val", " c ; \r\n")):
      with open(os.path.join(self.raw, "splits", f"{split}.txt"), "w",
                encoding="utf-8-sig", newline="") as f:
        f.write(text)
    self.build_ok()
    metadata = read_metadata(self.out)
    self.assertEqual(metadata["class_names"], ["road", "sky"])  # Id order: 1, 3.
    self.assertEqual(metadata["class_colors"], [[128, 64, 128], [135, 206, 235]])
    self.assertEqual(metadata["split"]["names"],
                     {"train": ["a.png", "b.png"], "val": ["c.png"], "test": []})
    lut = np.full(256, 255, np.uint8)
    lut[[1, 3]] = [0, 1]
    for split, stems in (("train", "ab"), ("val", "c")):
      got = fixtures.read_records(self.out, split)
      for stem in stems:
        self.assertAllEqual(got[stem + ".png"][1], lut[masks[stem]])

  def test_semicolon_table_and_not_utf8(self):
    path = os.path.join(self.raw, "classes.csv")
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
      f.write("name;id\r\nbackground;0\r\nchâteau;1\r\n")
    fixtures.save(os.path.join(self.raw, "images", "x.png"), fixtures.random_image(self.rng, 3, 4))
    mask = np.array([[0, 1, 1, 0]] * 3, np.uint8)
    fixtures.save(os.path.join(self.raw, "masks", "x.png"), mask)
    self.build_ok("--split_fractions=1,0,0")
    self.assertEqual(read_metadata(self.out)["class_names"], ["background", "château"])
    self.assertAllEqual(fixtures.read_records(self.out, "train")["x.png"][1], mask)
    with open(path, "w", encoding="cp1252", newline="") as f:
      f.write("name,id\r\nbackground,0\r\nchâteau,1\r\n")
    status, _, stderr = self.build("--split_fractions=1,0,0", "--overwrite")
    self.assertEqual(status, 1)
    self.assertIn(f"error: {path}: is not UTF-8 text", stderr)
    self.assertIn("save it as UTF-8 (in a spreadsheet program: 'CSV UTF-8')", stderr)


class NestedFoldersTest(_FolderTestCase):
  """images/<city>/x.jpg pairs with masks/<city>/x.png."""

  def _pair(self, relative_stem, extension=".png"):
    image = fixtures.random_image(self.rng, 4, 5)
    mask = self.mask([0, 1], (4, 5))
    fixtures.save(os.path.join(self.raw, "images", relative_stem + extension), image)
    fixtures.save(os.path.join(self.raw, "masks", relative_stem + ".png"), mask)
    return image, mask

  def setUp(self):
    super().setUp()
    _write_json_table(self.raw, [("bg", 0), ("fg", 1)])

  def test_pairs_by_relative_path_at_any_depth(self):
    expected = {"top.png": self._pair("top"),
                "aachen_1.png": self._pair("aachen/aachen_1"),
                "bonn_1.png": self._pair("bonn/bonn_1"),
                "deep.png": self._pair("bonn/2024/deep")}
    # Zip and editor debris is not read.
    fixtures.save(os.path.join(self.raw, "images", "__MACOSX", "ghost.png"),
                  np.zeros((4, 5, 3), np.uint8))
    fixtures.save(os.path.join(self.raw, "masks", ".cache", "ghost.png"),
                  np.zeros((4, 5), np.uint8))
    os.makedirs(os.path.join(self.raw, "splits"))
    with open(os.path.join(self.raw, "splits", "train.txt"), "w") as f:
      f.write("top\naachen/aachen_1\nimages/bonn/bonn_1.png\n")  # Stems or paths.
    with open(os.path.join(self.raw, "splits", "val.txt"), "w") as f:
      f.write("deep\n")
    self.build_ok()
    got = {**fixtures.read_records(self.out, "train"), **fixtures.read_records(self.out, "val")}
    self.assertCountEqual(got, expected)
    for name, (image, label) in got.items():
      self.assertAllEqual(image, expected[name][0])
      self.assertAllEqual(label, expected[name][1])
    self.assertEqual(read_metadata(self.out)["split"]["names"]["train"],
                     ["top.png", "aachen_1.png", "bonn_1.png"])

  def test_split_folders_with_cities_and_a_missing_mask(self):
    expected = {"train": {"a.png": self._pair("train/aachen/a")},
                "val": {"f.png": self._pair("val/frankfurt/f")}}
    self._pair("train/bonn/b")
    os.remove(os.path.join(self.raw, "masks", "train", "bonn", "b.png"))
    status, _, stderr = self.build()
    self.assertEqual(status, 1)
    self.assertIn(f"error: {os.path.join(self.raw, 'images', 'train', 'bonn', 'b.png')}: "
                  f"image has no mask bonn/b.png in {os.path.join(self.raw, 'masks', 'train')}",
                  stderr)
    self.build_ok("--skip_bad")
    for split, pairs in expected.items():
      got = fixtures.read_records(self.out, split)
      self.assertCountEqual(got, pairs)
      for name, (image, label) in got.items():
        self.assertAllEqual(image, pairs[name][0])
        self.assertAllEqual(label, pairs[name][1])

  def test_one_stem_in_two_folders_is_an_error_naming_both(self):
    self._pair("aachen/frame_0001")
    self._pair("bonn/frame_0001", extension=".jpg")
    status, _, stderr = self.build("--split_fractions=1,0,0")
    self.assertEqual(status, 1)
    first = os.path.join(self.raw, "images", "aachen", "frame_0001.png")
    second = os.path.join(self.raw, "images", "bonn", "frame_0001.jpg")
    self.assertIn(f"error: {second}: has the file name stem 'frame_0001' of {first} too: "
                  "the records name each example by its file name, so the two would "
                  "collide; rename one of them (and its mask)", stderr)
    self.assertFalse(os.path.exists(self.out))


class BinaryMasksTest(_FolderTestCase):
  """Masks saved as 0/255, the most common two-class format."""

  def setUp(self):
    super().setUp()
    self.masks = {}
    for i in range(3):
      mask = np.zeros((6, 8), np.uint8)
      mask[1:4, 2 + i:6] = 255
      self.masks[f"m{i}"] = mask
      fixtures.save(os.path.join(self.raw, "images", f"m{i}.png"),
                    fixtures.random_image(self.rng, 6, 8))
      fixtures.save(os.path.join(self.raw, "masks", f"m{i}.png"), mask)
    self.white = sum(int((m == 255).sum()) for m in self.masks.values())
    self.table = os.path.join(self.raw, "classes.csv")

  def _table(self, text):
    with open(self.table, "w") as f:
      f.write(text)

  def test_an_empty_class_is_an_error_that_gives_the_remap(self):
    self._table("name,id\nbackground,0\nhorse,1\n")
    status, stdout, stderr = self.build("--split_fractions=1,0,0")
    self.assertEqual(status, 1)
    self.assertEqual(stdout, "")
    self.assertIn(
        f"error: {self.table}: class 'horse' has no pixels in the 3 train masks while "
        f"{self.white} pixels of mask value 255 are void: if 255 stands for 'horse' "
        "(e.g. binary masks saved as 0/255), pass --mask_values=255:1; pass "
        "--allow_empty_classes to write the records anyway", stderr)
    self.assertFalse(os.path.exists(self.out))

    self.build_ok("--split_fractions=1,0,0", "--mask_values=255:1")
    got = fixtures.read_records(self.out, "train")
    for name, (_, label) in got.items():
      self.assertAllEqual(label, self.masks[name[:-4]] // 255)
    metadata = read_metadata(self.out)
    self.assertEqual(metadata["train_class_pixel_counts"], [3 * 48 - self.white, self.white])
    self.assertEqual(metadata["train_void_pixel_count"], 0)
    self.assertEqual(metadata["source"]["mask_values"], [[255, 1]])
    self.assertNotIn("warnings", metadata)

  def test_allow_empty_classes_writes_with_a_warning(self):
    self._table("name,id\nbackground,0\nhorse,1\n")
    stdout = self.build_ok("--split_fractions=1,0,0", "--allow_empty_classes")
    metadata = read_metadata(self.out)
    self.assertEqual(metadata["train_class_pixel_counts"], [3 * 48 - self.white, 0])
    self.assertEqual(metadata["train_void_pixels_by_mask_value"], {"255": self.white})
    self.assertLen(metadata["warnings"], 1)
    self.assertStartsWith(metadata["warnings"][0], "class 'horse' has no pixels")
    self.assertIn(f"WARNING: {metadata['warnings'][0]}", stdout)

  def test_class_id_255_gives_the_flag_that_keeps_it(self):
    self._table("name,id\nbackground,0\nhorse,255\n")
    status, _, stderr = self.build("--split_fractions=1,0,0")
    self.assertEqual(status, 1)
    self.assertIn(
        f"error: {self.table}: class 'horse' has the id that --ignore_value makes void: "
        "mask value 255. To keep 255 as 'horse', pass --ignore_value=254 (any value "
        "no mask uses); or, for binary masks saved as 0/255, give 'horse' the id 1 in "
        "classes.csv and pass --mask_values=255:1", stderr)
    self.build_ok("--split_fractions=1,0,0", "--ignore_value=254")
    for name, (_, label) in fixtures.read_records(self.out, "train").items():
      self.assertAllEqual(label, self.masks[name[:-4]] // 255)

  def test_void_on_most_pixels_is_an_error(self):
    self._table("name,id\nbackground,0\nhorse,1\n")
    for name, mask in self.masks.items():  # Inverted, and one horse pixel each.
      mask = 255 - mask
      mask[0, 0] = 1
      fixtures.save(os.path.join(self.raw, "masks", name + ".png"), mask)
    status, _, stderr = self.build("--split_fractions=1,0,0")
    self.assertEqual(status, 1)
    void = 3 * 48 - self.white - 3
    self.assertIn(f"error: {self.table}: void covers {void / 144:.0%} of the train pixels "
                  f"({void} of 144): check which mask values --ignore_value, "
                  "--map_to_ignore and --unknown_to_ignore make void", stderr)

  def test_bad_remaps(self):
    self._table("name,id\nbackground,0\nhorse,1\n")
    status, _, stderr = self.build("--split_fractions=1,0,0", "--mask_values=255:7")
    self.assertEqual(status, 1)
    self.assertIn(f"error: {self.table}: --mask_values=255:7: 7 is not a class id in "
                  "classes.csv (0, 1) nor a void value", stderr)
    for value, problem in (("255-1", "'255-1' is not FROM:TO"),
                           ("255:1,255:0", "a value is remapped twice")):
      with self.assertRaisesRegex(Exception, f"--mask_values: {problem}"):
        self.build(f"--mask_values={value}")

  def test_unknown_value_suggests_the_remap(self):
    self._table("name,id\nbackground,0\nhorse,1\n")
    status, _, stderr = self.build("--split_fractions=1,0,0", "--ignore_value=254")
    self.assertEqual(status, 1)
    self.assertRegex(stderr, r"mask value 255 is not a class id in classes.csv nor the "
                     r"ignore value 254 .*; pass --unknown_to_ignore to make unknown "
                     r"values void, or --mask_values=255:ID if 255 stands for the class "
                     r"of id ID")


if __name__ == "__main__":
  tf.test.main()
