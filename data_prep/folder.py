"""Your own data: `images/` and `masks/` paired by file stem, plus a class table.

  data_dir/
    classes.json or classes.csv   name, id and optional colour per class
                                  (class_table.py)
    images/<stem>.png|.jpg|.jpeg  any size; grey, RGBA and palette become RGB
    masks/<stem>.png              class ids, or colours (below)
    splits/{train,val,test}.txt   optional: the stems of each split

Nested folders pair by relative path: `images/<city>/x.jpg` with
`masks/<city>/x.png` (labelling tools' and Cityscapes-like exports). The
records name each example by its file name, so two stems that are equal in
different folders stop the build naming both files. Folders whose names
start with "." and `__MACOSX` (zip debris) are not read.

Splits: the lists in `splits/` when any exists (unlisted files are left out;
a line names a stem, a file name or a relative path); else the subfolders
`images/{train,val,test}/` with `masks/{train,val,test}/`; else a seeded
split of `images/`, recorded in metadata.json as for Horse.

Photos: the EXIF orientation tag that phones write is applied, so that the
pixels are the photo as a viewer (and the labelling tool) shows it; a mask
applies its own tag, if it has one. `apply_exif_orientation=False`
(--exif_orientation=false) reads every file as stored.

Masks: grey and palette PNGs hold class ids (a palette PNG's *index*, not its
colour); RGB(A) masks hold colours when the table gives colours, else they must
be grey (R = G = B). Each id or colour becomes its class (0..K-1 in id order),
`ignore_value` and the `map_to_ignore` ids or colours become void (255). Any
other value stops the build naming the mask, the value, its first pixel and
its pixel count, or becomes void with `unknown_to_ignore`. `mask_values`
first replaces mask ids by others (`255:1` reads binary 0/255 masks with a
class of id 1; it overrides `ignore_value`).
"""

import dataclasses
import os
import posixpath
from typing import Optional, Sequence, Union

import numpy as np
from PIL import Image

from data_prep import class_table, images, split_lists
from data_prep import splits as splits_lib
from data_prep.dataset import (
  SPLITS,
  BadInputError,
  DatasetInfo,
  ExampleRef,
  LoadedExample,
  Plan,
  refs_per_split,
  require_folders,
)
from reseg_tf.common import palette
from reseg_tf.data.records import IGNORE_LABEL

NAME = "folder"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
MASK_EXTENSIONS = (".png",)


@dataclasses.dataclass(frozen=True)
class MaskOptions:
  """How mask values become classes."""
  ignore_value: int = IGNORE_LABEL  # The mask id that means void.
  # More mask ids (ints) or colours ((r, g, b)) that mean void.
  map_to_ignore: tuple[Union[int, tuple[int, int, int]], ...] = ()
  unknown_to_ignore: bool = False  # Unknown values become void, not an error.
  # (mask id, id it stands for) pairs applied before the class table, e.g.
  # ((255, 1),) for binary masks saved as 0/255.
  mask_values: tuple[tuple[int, int], ...] = ()


def plan(data_dir: str, options: MaskOptions = MaskOptions(), split_seed: int = 0,
         split_fractions: Sequence[float] = (0.6, 0.2, 0.2),
         apply_exif_orientation: bool = True) -> Plan:
  """Pairs images and masks, reads the class table and splits; see the module docstring."""
  image_dir, mask_dir = os.path.join(data_dir, "images"), os.path.join(data_dir, "masks")
  require_folders(data_dir, image_dir, mask_dir,
                  layout="folder images/ + masks/ + classes.json")
  table = class_table.read(class_table.find(data_dir))
  mapper = _MaskMapper(table, options, apply_exif_orientation)
  unpaired = []  # Filled by the split functions.
  list_paths = {split: os.path.join(data_dir, "splits", f"{split}.txt") for split in SPLITS}
  list_paths = {split: p for split, p in list_paths.items() if os.path.exists(p)}
  if list_paths:
    names, description, absent_reason = _split_by_lists(image_dir, mask_dir, list_paths,
                                                        unpaired)
  elif any(os.path.isdir(os.path.join(image_dir, split)) for split in SPLITS):
    names, description, absent_reason = _split_by_folders(image_dir, mask_dir, unpaired)
  else:
    names, description, absent_reason = _split_seeded(image_dir, mask_dir, split_seed,
                                                      split_fractions, unpaired)
  if not any(names.values()) and not unpaired:
    raise BadInputError(image_dir, "no images found (PNG or JPEG files whose "
                        "stems match PNG masks in masks/)")
  split_refs, absent = refs_per_split(
      names, lambda pair: ExampleRef(name=os.path.basename(pair[0]), image_path=pair[0],
                                     label_path=pair[1]), absent_reason)
  absent = {split: reason.format(split=split) for split, reason in absent.items()}

  def load(ref: ExampleRef) -> LoadedExample:
    label, void_values = mapper(ref.label_path)
    pixels, encoded, fmt = images.read_rgb(ref.image_path,
                                           apply_exif_orientation=apply_exif_orientation)
    return LoadedExample(pixels, label, encoded, fmt, void_values)

  colors = table.colors or tuple(palette.voc_palette(len(table.names)))
  return Plan(info=DatasetInfo(name=NAME, class_names=table.names, class_colors=colors),
              splits=split_refs, absent_splits=absent, load=load,
              split_description=description, unpaired=unpaired,
              source={"layout": "folder", "data_dir": data_dir,
                      "class_table": table.path, "class_ids": list(table.ids),
                      "class_colors_from_table": table.colors is not None,
                      "ignore_value": options.ignore_value,
                      "map_to_ignore": [v if isinstance(v, int) else list(v)
                                        for v in options.map_to_ignore],
                      "unknown_to_ignore": options.unknown_to_ignore,
                      "mask_values": [list(pair) for pair in options.mask_values],
                      "exif_orientation": apply_exif_orientation})


# Each split function returns `(names, description, absent_reason)`: the
# `(image, mask)` paths of each split, how the split was made (metadata.json),
# and why a split is empty; it appends incomplete pairs to `unpaired`.


def _split_by_lists(image_dir: str, mask_dir: str, list_paths: dict[str, str],
                    unpaired: list[dict]) -> tuple[dict, dict, str]:
  images_by_stem, masks_by_stem = _scan(image_dir, mask_dir)
  # A list names file stems (split_lists); _scan checked that each names one
  # relative path.
  key_of_stem = {posixpath.basename(key): key for key in {**images_by_stem, **masks_by_stem}}
  names = {split: [] for split in SPLITS}
  for split, stems in split_lists.read_disjoint(list_paths).items():
    keys = [(key_of_stem.get(stem, stem), line_number) for stem, line_number in stems]
    names[split] = _pair(images_by_stem, masks_by_stem, keys, unpaired, image_dir,
                         mask_dir, list_paths[split])
  description = {"method": "lists", "how": "stems in splits/{split}.txt",
                 "names": {split: [os.path.basename(image) for image, _ in pairs]
                           for split, pairs in names.items()}}
  return names, description, "no splits/{split}.txt, or none of its examples has both files"


def _split_by_folders(image_dir: str, mask_dir: str, unpaired: list[dict]
                      ) -> tuple[dict, dict, str]:
  names = {split: [] for split in SPLITS}
  for split in SPLITS:
    split_images, split_masks = os.path.join(image_dir, split), os.path.join(mask_dir, split)
    if os.path.isdir(split_images) or os.path.isdir(split_masks):
      require_folders(split_images, split_masks,
                      layout="folder images/{split}/ + masks/{split}/ (both or neither)")
      found = _scan(split_images, split_masks)
      names[split] = _pair(*found, _all_stems(*found), unpaired, split_images, split_masks)
  description = {"method": "folders", "how": "images/{split}/ + masks/{split}/"}
  return names, description, "no images/{split}/ folder, or no image in it has its mask"


def _split_seeded(image_dir: str, mask_dir: str, split_seed: int,
                  split_fractions: Sequence[float], unpaired: list[dict]
                  ) -> tuple[dict, dict, str]:
  found = _scan(image_dir, mask_dir)
  pairs = {os.path.basename(image): (image, mask) for image, mask in _pair(
      *found, _all_stems(*found), unpaired, image_dir, mask_dir)}
  drawn, description = splits_lib.seeded_split(sorted(pairs), split_fractions, split_seed)
  names = {split: [pairs[n] for n in drawn[split]] for split in SPLITS}
  return names, description, "empty with these split fractions"


def _scan(image_dir: str, mask_dir: str) -> tuple[dict[str, str], dict[str, str]]:
  """`({key: image path}, {key: mask path})`, a key being the path relative to
  `image_dir` / `mask_dir` without extension ("x" or "aachen/x")."""
  found = _by_stem(image_dir, IMAGE_EXTENSIONS), _by_stem(mask_dir, MASK_EXTENSIONS)
  _check_distinct_stems(*found)
  return found


def _by_stem(folder: str, extensions: tuple[str, ...]) -> dict[str, str]:
  """`{key: path}` of the files under `folder`, at any depth, with one of
  `extensions` (any case); see `_scan` for the keys."""
  found = {}
  for parent, folders, files in os.walk(folder):
    folders[:] = sorted(f for f in folders if not f.startswith(".") and f != "__MACOSX")
    relative = os.path.relpath(parent, folder)
    for name in sorted(files):
      stem, extension = os.path.splitext(name)
      if extension.lower() not in extensions or name.startswith("."):
        continue
      key = stem if relative == "." else posixpath.join(*relative.split(os.sep), stem)
      path = os.path.join(parent, name)
      if key in found:
        raise BadInputError(path, f"two files with the stem {stem!r} (also "
                            f"{os.path.basename(found[key])}): keep one")
      found[key] = path
  return found


def _check_distinct_stems(image_paths: dict[str, str], mask_paths: dict[str, str]):
  """Raises BadInputError when two keys in different folders have one file
  stem: the records (and split lists, predictions, extract) name examples
  by file name, so the two would collide."""
  seen = {}
  for key in sorted({**image_paths, **mask_paths}):
    stem = posixpath.basename(key)
    if stem in seen:
      first, path = (image_paths.get(k) or mask_paths.get(k) for k in (seen[stem], key))
      raise BadInputError(path, f"has the file name stem {stem!r} of {first} too: the "
                          "records name each example by its file name, so the two "
                          "would collide; rename one of them (and its mask)")
    seen[stem] = key


def _all_stems(image_paths: dict, mask_paths: dict) -> list[tuple[str, None]]:
  return [(stem, None) for stem in sorted(set(image_paths) | set(mask_paths))]


def _pair(image_paths: dict[str, str], mask_paths: dict[str, str],
          stems: list[tuple[str, Optional[int]]], unpaired: list[dict],
          image_dir: str, mask_dir: str, list_path: Optional[str] = None
          ) -> list[tuple[str, str]]:
  """`(image, mask)` paths of `stems` (with their list line numbers);
  appends the stems that lack a file to `unpaired`."""
  pairs = []
  for stem, line_number in stems:
    image, mask = image_paths.get(stem), mask_paths.get(stem)
    if image and mask:
      pairs.append((image, mask))
    elif image:
      unpaired.append({"path": image, "problem": f"image has no mask {stem}.png in {mask_dir}"})
    elif mask:
      unpaired.append({"path": mask, "problem": f"mask has no image {stem}.png/.jpg "
                       f"in {image_dir}"})
    else:
      unpaired.append({"path": list_path, "problem": f"line {line_number}: {stem} has "
                       f"no image in {image_dir} and no mask in {mask_dir}"})
  return pairs


class _MaskMapper:
  """Reads a mask and maps its ids or colours to class indices and 255;
  also counts the mask values that became void (LoadedExample.void_values)."""

  def __init__(self, table: class_table.ClassTable, options: MaskOptions,
               apply_exif_orientation: bool = True):
    self._table, self._options = table, options
    self._exif = apply_exif_orientation
    remapped = {source for source, _ in options.mask_values}
    void_ids = [v for v in [options.ignore_value, *options.map_to_ignore]
                if isinstance(v, int) and v not in remapped]
    void_colors = [v for v in options.map_to_ignore if not isinstance(v, int)]
    self._ids = self._lookup(table.ids, void_ids, "id")
    self._colors = None
    if table.colors is not None:
      self._colors = self._lookup([class_table.color_code(c) for c in table.colors],
                                  [class_table.color_code(c) for c in void_colors], "colour")
    elif void_colors:
      raise BadInputError(table.path, f"--map_to_ignore names colours {void_colors} "
                          "but the table gives no class colours")

  def _lookup(self, class_values: Sequence[int], void_values: Sequence[int], what: str):
    mapping = dict(zip(class_values, range(len(class_values))))
    for value in void_values:
      if mapping.get(value, IGNORE_LABEL) != IGNORE_LABEL:
        raise BadInputError(self._table.path, self._void_class_problem(
            self._table.names[mapping[value]], value, what))
      mapping[value] = IGNORE_LABEL
    if what == "id":
      table_mapping = dict(mapping)  # Targets name the table's ids, not other sources.
      for source, target in self._options.mask_values:
        if target not in table_mapping:
          raise BadInputError(self._table.path, f"--mask_values={source}:{target}: "
                              f"{target} is not a class id in {self._table_name} "
                              f"({', '.join(map(str, class_values))}) nor a void value")
        mapping[source] = table_mapping[target]
    return class_table.sorted_lookup(mapping)

  @property
  def _table_name(self) -> str:
    return os.path.basename(self._table.path)

  def _void_class_problem(self, name: str, value: int, what: str) -> str:
    """Why class `name` cannot have `value`, and the flag that resolves it."""
    problem = f"class {name!r} has the {what} that "
    if what == "id" and value == self._options.ignore_value:
      taken = set(self._table.ids) | set(self._options.map_to_ignore)
      unused = max(v for v in range(255) if v not in taken)
      free = min(v for v in range(256) if v not in taken)
      return problem + (
          f"--ignore_value makes void: {_describe(value, what)}. To keep {value} as "
          f"{name!r}, pass --ignore_value={unused} (any value no mask uses); or, for "
          f"binary masks saved as 0/{value}, give {name!r} the id {free} in "
          f"{self._table_name} and pass --mask_values={value}:{free}")
    flag_value = value if what == "id" else f"#{value:06x}"
    return problem + (f"--map_to_ignore makes void: {_describe(value, what)}; remove "
                      f"{flag_value} from --map_to_ignore or give {name!r} another {what}")

  def __call__(self, path: str) -> tuple[np.ndarray, dict[str, int]]:
    if _mode(path) in ("RGB", "RGBA"):
      rgb = images.read_rgb_array(path, apply_exif_orientation=self._exif)
      if self._colors is not None:
        return self._map(class_table.color_codes(rgb), self._colors, path, "colour")
      if not np.all(rgb == rgb[..., :1]):
        raise BadInputError(path, "is an RGB colour mask but "
                            f"{self._table_name} gives no class "
                            "colours: add them, or save masks as single-channel class ids")
      values = rgb[..., 0]
    else:
      values = images.read_single_channel(path, apply_exif_orientation=self._exif)
    return self._map(values.astype(np.int64), self._ids, path, "id")

  def _map(self, values: np.ndarray, keys_targets, path: str, what: str
           ) -> tuple[np.ndarray, dict[str, int]]:
    mapped, known = class_table.lookup(values, *keys_targets)
    if not known.all() and self._options.unknown_to_ignore:
      mapped[~known] = IGNORE_LABEL
    if known.all() or self._options.unknown_to_ignore:
      sources, counts = np.unique(values[mapped == IGNORE_LABEL], return_counts=True)
      return mapped, {_metadata_key(int(v), what): int(c) for v, c in zip(sources, counts)}
    first = int(np.flatnonzero(~known)[0])
    row, column = divmod(first, values.shape[1])
    value = int(values.flat[first])
    unknown = values[~known]
    problem = (f"{_describe(value, what)} is not a class {what} in "
               f"{self._table_name}")
    if what == "id":
      problem += f" nor the ignore value {self._options.ignore_value}"
    count = int(np.sum(unknown == value))
    problem += (f" (first at row {row}, column {column}; {count} "
                f"pixel{'s' if count > 1 else ''}")
    others = len(np.unique(unknown)) - 1
    if others:
      problem += f"; and {others} other unknown {what}{'s' if others > 1 else ''}"
    problem += "); pass --unknown_to_ignore to make unknown values void"
    if what == "id":
      problem += f", or --mask_values={value}:ID if {value} stands for the class of id ID"
    raise BadInputError(path, problem)


def _metadata_key(value: int, what: str) -> str:
  """A mask id or colour code as metadata.json names it: "255", "#ffffff"."""
  return str(value) if what == "id" else f"#{value:06x}"


def _describe(value: int, what: str) -> str:
  if what == "id":
    return f"mask value {value}"
  rgb = (value >> 16, (value >> 8) & 255, value & 255)
  return f"colour {rgb} (#{value:06x})"


def _mode(path: str) -> Optional[str]:
  """The image mode from the file's header, or None (images.read_* then
  reports the problem)."""
  try:
    with Image.open(path) as image:
      return image.mode
  except Exception:  # pylint: disable=broad-except
    return None
