r"""Converts a dataset release into sharded TFRecords plus metadata.json.

  python -m data_prep.build --dataset=camvid     # datasets/camvid -> data/camvid
  python -m data_prep.build --dataset=horse      # datasets/horse -> data/horse
  python -m data_prep.build --dataset=flowers    # datasets/flowers -> data/flowers
  python -m data_prep.build --dataset=synthetic  # generated -> data/synthetic
  python -m data_prep.build --dataset=voc        # datasets/voc -> data/voc
  python -m data_prep.build --dataset=cityscapes # datasets/cityscapes -> data/cityscapes
  python -m data_prep.build --dataset=folder --data_dir=my_data --output_dir=data/my_data

See docs/data.md ("Preparing data" in the manual) for the expected layouts.
"""

import os
import sys

from absl import app, flags, logging

# First: it loads TensorFlow quietly, before the converters import it.
from reseg_tf import cli  # isort: split

from data_prep import (
  camvid,
  cityscapes,
  class_table,
  flowers,
  folder,
  horse,
  splits,
  synthetic,
  voc,
  writer,
)
from data_prep.dataset import BadInputError, Plan

DATASETS = ("camvid", "horse", "flowers", "synthetic", "voc", "cityscapes", "folder")

_DATASET = flags.DEFINE_enum("dataset", "synthetic", DATASETS, "Dataset to convert.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Where the release is unpacked. Default: datasets/<dataset>.")
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "Where records go (the gin configs read them there). "
    "Default: data/<dataset>.")
_NUM_SHARDS = flags.DEFINE_integer(
    "num_shards", 8, "Shards per split (fewer when a split has fewer examples).",
    lower_bound=1)
_NUM_WORKERS = flags.DEFINE_integer(
    "num_workers", os.cpu_count() or 1,
    "Threads that decode and encode images. Default: number of cores.", lower_bound=1)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing output folder.")
_SKIP_BAD = flags.DEFINE_bool(
    "skip_bad", False, "Skip bad or unpaired examples (listed in the summary "
    "and metadata.json) instead of stopping at the first one.")
_LIMIT = flags.DEFINE_integer(
    "limit", None, "Convert at most this many examples per split (smoke tests).",
    lower_bound=1)
_SPLIT_SEED = flags.DEFINE_integer(
    "split_seed", 0, "Seed of the train/val/test split drawn for datasets "
    "without an official one (horse; flowers without datasplits.mat; "
    "camvid's Cambridge release without split lists; folder without splits/ "
    "lists or split subfolders).")
_SPLIT_FRACTIONS = flags.DEFINE_string(
    "split_fractions", "0.6,0.2,0.2", "train,val,test fractions of that split.")
_CAMVID_LAYOUT = flags.DEFINE_enum(
    "camvid_layout", "auto", ("auto", "segnet", "cambridge"),
    "CamVid release: SegNet's folders, or the original Cambridge colour labels. "
    "auto: cambridge when data_dir holds label_colors.txt.")
_CAMVID_HOLDOUT_PREFIXES = flags.DEFINE_list(
    "camvid_holdout_prefixes", [],
    "Move every train frame whose file name starts with one of these drive "
    "prefixes (e.g. 0006R0) into a split named 'holdout', for choosing a recipe "
    "on drives the model never saw (train.validation_split = 'holdout').")
_VOC_AUGMENTED = flags.DEFINE_bool(
    "voc_augmented", False,
    "VOC: train on the SBD augmented set (SegmentationClassAug/ and "
    "ImageSets/Segmentation/train_aug.txt, minus val) instead of the 1,464 "
    "official train images.")
_IGNORE_VALUE = flags.DEFINE_integer(
    "ignore_value", 255, "folder: the mask id that means void (written as 255).",
    lower_bound=0)
_MAP_TO_IGNORE = flags.DEFINE_list(
    "map_to_ignore", [], "folder: more mask ids (e.g. 0) or colours (#rrggbb) "
    "that mean void.")
_UNKNOWN_TO_IGNORE = flags.DEFINE_bool(
    "unknown_to_ignore", False, "folder: make mask ids or colours that are not "
    "in the class table void instead of stopping with an error.")
_MASK_VALUES = flags.DEFINE_list(
    "mask_values", [], "folder: FROM:TO pairs of mask ids (comma-separated): "
    "pixels of value FROM count as the class whose id in the class table is TO "
    "(or as void when TO is a void value), before anything else; FROM may be "
    "the --ignore_value. E.g. --mask_values=255:1 reads binary masks saved as "
    "0/255 with 'background,0' and 'horse,1' in classes.csv. Mask ids only, "
    "not colours.")
_EXIF_ORIENTATION = flags.DEFINE_bool(
    "exif_orientation", True, "folder: turn each photo as its EXIF orientation "
    "tag says, as phones, viewers and labelling tools show it, so that a mask "
    "drawn on the shown photo fits it (a mask with a tag of its own is turned "
    "by it too). false: read every file as stored, for masks drawn on the "
    "stored pixels. The benchmark datasets are always read as stored.")
_ALLOW_EMPTY_CLASSES = flags.DEFINE_bool(
    "allow_empty_classes", False, "Write the records even when a class has no "
    "pixels in the train masks or void covers most of them; they are then "
    "warnings in the summary and metadata.json. Without it a folder build "
    "stops, as this usually means that the mask values do not match the class "
    "table (e.g. 0/255 masks: see --mask_values).")
_FLOWERS_FOREGROUND_INDEX = flags.DEFINE_integer(
    "flowers_foreground_index", flowers.OFFICIAL_FOREGROUND_INDEX,
    "Trimap palette index of the flower class (38 in the official release; "
    "1 in the 256x256 copy in shared/data).")
_FLOWERS_EXCLUDE_IDS = flags.DEFINE_list(
    "flowers_exclude_ids", [str(i) for i in flowers.PAPER_EXCLUDED_IDS],
    "Flowers image ids to leave out (the paper's loader dropped 1269 and 1270, "
    "whose masks are single-valued). Pass an empty value to keep them.")
_FLOWERS_DATASPLIT = flags.DEFINE_integer(
    "flowers_datasplit", 1, "Which of datasplits.mat's splits (trnK/valK/tstK) to use.",
    lower_bound=1, upper_bound=3)
_SYNTHETIC_SEED = flags.DEFINE_integer("synthetic_seed", 0, "Seed of the generated images.")
_SYNTHETIC_SPLIT_SIZES = flags.DEFINE_list(
    "synthetic_split_sizes", ["200", "50", "50"], "train,val,test example counts.")
_SYNTHETIC_IMAGE_SIZE = flags.DEFINE_list(
    "synthetic_image_size", ["64", "80"], "height,width of the generated images.")


def default_data_dir(dataset: str) -> str:
  return os.path.join("datasets", dataset)


def default_output_dir(dataset: str) -> str:
  return os.path.join("data", dataset)


def _ints(flag) -> list[int]:
  try:
    return [int(v) for v in flag.value]
  except ValueError:
    raise app.UsageError(f"--{flag.name} takes whole numbers, got {flag.value}") from None


def _map_to_ignore() -> tuple:
  """--map_to_ignore as mask ids (ints) and colours ((r, g, b))."""
  values = []
  for item in _MAP_TO_IGNORE.value:
    try:
      values.append(int(item) if item.strip().isdigit() else class_table.parse_color(item))
    except ValueError as e:
      raise app.UsageError(f"--map_to_ignore: {e}") from None
  return tuple(values)


def _mask_values() -> tuple[tuple[int, int], ...]:
  """--mask_values as (from, to) pairs of whole numbers."""
  pairs = []
  for item in _MASK_VALUES.value:
    parts = item.split(":")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
      raise app.UsageError(f"--mask_values: {item!r} is not FROM:TO (two mask ids, "
                           "e.g. 255:1)")
    pairs.append((int(parts[0]), int(parts[1])))
  sources = [source for source, _ in pairs]
  if len(set(sources)) != len(sources):
    raise app.UsageError(f"--mask_values: a value is remapped twice: {_MASK_VALUES.value}")
  return tuple(pairs)


def make_plan() -> Plan:
  """The converter's plan for the flags' dataset and options."""
  dataset = _DATASET.value
  data_dir = _DATA_DIR.value or default_data_dir(dataset)
  try:
    fractions = splits.parse_fractions(_SPLIT_FRACTIONS.value)
  except ValueError as e:
    raise app.UsageError(f"--split_fractions: {e}") from None
  if dataset == "camvid":
    return camvid.plan(data_dir, _CAMVID_LAYOUT.value, _SPLIT_SEED.value, fractions,
                       _CAMVID_HOLDOUT_PREFIXES.value)
  if dataset == "voc":
    return voc.plan(data_dir, _VOC_AUGMENTED.value)
  if dataset == "cityscapes":
    return cityscapes.plan(data_dir)
  if dataset == "folder":
    options = folder.MaskOptions(_IGNORE_VALUE.value, _map_to_ignore(),
                                 _UNKNOWN_TO_IGNORE.value, _mask_values())
    return folder.plan(data_dir, options, _SPLIT_SEED.value, fractions,
                       _EXIF_ORIENTATION.value)
  if dataset == "horse":
    return horse.plan(data_dir, _SPLIT_SEED.value, fractions)
  if dataset == "flowers":
    return flowers.plan(data_dir, _FLOWERS_FOREGROUND_INDEX.value,
                        _ints(_FLOWERS_EXCLUDE_IDS), _FLOWERS_DATASPLIT.value,
                        _SPLIT_SEED.value, fractions)
  sizes, image_size = _ints(_SYNTHETIC_SPLIT_SIZES), _ints(_SYNTHETIC_IMAGE_SIZE)
  if len(sizes) != 3 or len(image_size) != 2:
    raise app.UsageError("--synthetic_split_sizes takes 3 counts and "
                         "--synthetic_image_size takes height,width")
  return synthetic.plan(_SYNTHETIC_SEED.value, sizes, image_size)


# Void on more than this share of the train pixels is a problem of the masks.
_MOST_PIXELS = 0.5


def class_problems(metadata: dict) -> list[str]:
  """What the train split's pixel counts say is wrong with the masks: a class
  without pixels, or void on most pixels; with the flag that fixes the
  common cause, binary masks saved as 0/255 (folder), in exact values."""
  counts = metadata.get("train_class_pixel_counts")
  if counts is None:
    return []
  void, source = metadata["train_void_pixel_count"], metadata.get("source", {})
  total = void + sum(counts)
  num_masks = metadata["splits"]["train"]["num_examples"]
  # The mask value of most void pixels (folder), which may be a class.
  by_value = metadata.get("train_void_pixels_by_mask_value", {})
  suspect = max(by_value, key=by_value.get) if by_value else None
  problems = []
  for index, (name, count) in enumerate(zip(metadata["class_names"], counts)):
    if count:
      continue
    problem = f"class {name!r} has no pixels in the {num_masks} train masks"
    if suspect is not None and suspect.isdigit():
      problem += (f" while {by_value[suspect]} pixels of mask value {suspect} are "
                  f"void: if {suspect} stands for {name!r} (e.g. binary masks saved "
                  f"as 0/255), pass --mask_values={suspect}:{source['class_ids'][index]}")
    problems.append(problem)
  if total and void > _MOST_PIXELS * total:
    problem = (f"void covers {void / total:.0%} of the train pixels ({void} of "
               f"{total})")
    if source.get("layout") == "folder":
      problem += (": check which mask values --ignore_value, --map_to_ignore and "
                  "--unknown_to_ignore make void")
    problems.append(problem)
  return problems


def _check_classes(metadata: dict):
  """Stops a folder build whose masks look wrong (`class_problems`) unless
  --allow_empty_classes; otherwise records the problems as warnings (the
  benchmark releases are what they are, and --limit builds miss classes)."""
  problems = class_problems(metadata)
  if not problems:
    return
  if _DATASET.value == "folder" and not _ALLOW_EMPTY_CLASSES.value:
    source = metadata["source"]
    raise BadInputError(source.get("class_table") or source.get("data_dir", ""),
                        "; ".join(problems) + "; pass --allow_empty_classes to "
                        "write the records anyway")
  metadata["warnings"] = problems
  for problem in problems:
    logging.warning("%s", problem)


def summary_table(metadata: dict) -> str:
  """The closing table: split, examples, shards, bytes, skipped."""
  rows = [("split", "examples", "shards", "bytes", "skipped")]
  skipped_by_split = {}
  for entry in metadata["skipped"]:
    split = entry.get("split", "(unpaired)")
    skipped_by_split[split] = skipped_by_split.get(split, 0) + 1
  for split, s in metadata["splits"].items():
    rows.append((split, str(s["num_examples"]), str(s["num_shards"]),
                 f"{s['num_bytes'] / 1e6:.1f} MB", str(skipped_by_split.get(split, 0))))
  widths = [max(len(row[i]) for row in rows) for i in range(5)]
  lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                     for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
  for split, reason in metadata["absent_splits"].items():
    lines.append(f"{split}: not written ({reason})")
  if "(unpaired)" in skipped_by_split:
    lines.append(f"unpaired files skipped: {skipped_by_split['(unpaired)']}")
  for entry in metadata["skipped"][:20]:
    lines.append(f"  skipped {entry['path']}: {entry['problem']}")
  if len(metadata["skipped"]) > 20:
    lines.append(f"  ... {len(metadata['skipped']) - 20} more in metadata.json")
  for warning in metadata.get("warnings", []):
    lines.append(f"WARNING: {warning}")
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  output_dir = _OUTPUT_DIR.value or default_output_dir(_DATASET.value)
  try:
    writer.check_output_dir(output_dir, _OVERWRITE.value)  # Fail before work.
    plan = make_plan()
    logging.info("Converting %s: %s", _DATASET.value, ", ".join(
        f"{split} {len(refs)}" for split, refs in plan.splits.items()))
    metadata = writer.write_dataset(
        plan, output_dir, num_shards=_NUM_SHARDS.value,
        num_workers=_NUM_WORKERS.value, overwrite=_OVERWRITE.value,
        skip_bad=_SKIP_BAD.value, limit=_LIMIT.value, log=logging.info,
        check=_check_classes)
  except BadInputError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(summary_table(metadata))
  print(f"Wrote {output_dir} (metadata.json beside the shards).")
  return 0


if __name__ == "__main__":
  cli.run(main)
