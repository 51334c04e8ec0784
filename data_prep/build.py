r"""Converts a dataset release into sharded TFRecords plus metadata.json.

  python -m data_prep.build --dataset=camvid     # datasets/camvid -> data/camvid
  python -m data_prep.build --dataset=horse      # datasets/horse -> data/horse
  python -m data_prep.build --dataset=flowers    # datasets/flowers -> data/flowers
  python -m data_prep.build --dataset=synthetic  # generated -> data/synthetic
  python -m data_prep.build --dataset=voc        # datasets/voc -> data/voc
  python -m data_prep.build --dataset=cityscapes # datasets/cityscapes -> data/cityscapes
  python -m data_prep.build --dataset=folder --data_dir=my_data --output_dir=data/my_data

See the README ("Preparing data") for the expected layouts.
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
                                 _UNKNOWN_TO_IGNORE.value)
    return folder.plan(data_dir, options, _SPLIT_SEED.value, fractions)
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
        skip_bad=_SKIP_BAD.value, limit=_LIMIT.value, log=logging.info)
  except BadInputError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(summary_table(metadata))
  print(f"Wrote {output_dir} (metadata.json beside the shards).")
  return 0


if __name__ == "__main__":
  cli.run(main)
