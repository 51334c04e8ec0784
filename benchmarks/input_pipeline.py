r"""Times the train input pipeline alone (no model): images per second.

COMMAND:
  python -m data_prep.build --dataset=camvid --data_dir=../shared/data/camvid \
      --output_dir=data/camvid
  python benchmarks/input_pipeline.py --records_dir=data/camvid    # ~2 min
  python benchmarks/input_pipeline.py --warmup=1 --batches=2 --repeats=1  # smoke run

For each variant of `InputOptions` it builds `make_train_dataset` (batch 5,
repeat forever), pulls --warmup batches (the shuffle buffer and the parallel map
fill), then times --batches batches, --repeats times, and reports the
median. Variants: "none" (the paper: decode only), "flip_crop" (random
crop/pad to the full size + flip: cheap ops), "geometric" (adds scale,
rotation, shear and the elastic warp), "all" (adds photometric jitter).
The machine's other load counts: run it on an idle machine for figures.
Writes JSON to --output.
"""

import os
import platform
import statistics
import time

import bench_output
import tensorflow as tf
from absl import app, flags

from reseg_tf.data import augment, input_pipeline, records

_RECORDS_DIR = flags.DEFINE_string(
    "records_dir", "data/camvid", "Records to read (the train split). Default: "
    "data/camvid, relative to the working folder.")
_OUTPUT = flags.DEFINE_string(
    "output", "benchmarks/results/input_pipeline.json", "Where to write the "
    "JSON results (relative to the working folder); empty: not written.")
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", 5, "Global batch size (default 5, the paper's).")
_WARMUP = flags.DEFINE_integer(
    "warmup", 5, "Batches pulled before timing (default 5).")
_BATCHES = flags.DEFINE_integer(
    "batches", 30, "Batches per timed run (default 30).")
_REPEATS = flags.DEFINE_integer(
    "repeats", 3, "Timed runs per variant, of which the median is reported "
    "(default 3).")
_VARIANTS = flags.DEFINE_list(
    "variants", ["none", "flip_crop", "geometric", "all"],
    "Variants to time (default: all four, none,flip_crop,geometric,all).")


def _variants(size):
  flip_crop = dict(crop_size=size, random_crop=True, flip=True)
  geometric = dict(flip_crop, scale_range=(0.75, 1.33), max_rotation_degrees=10,
                   max_shear_degrees=5, elastic_alpha=4.0, elastic_spacing=32)
  everything = dict(geometric, brightness=0.1, contrast=0.2, saturation=0.2, gamma=0.2)
  return {"none": {}, "flip_crop": flip_crop, "geometric": geometric, "all": everything}


def _images_per_second(dataset, batch_size):
  iterator = iter(dataset)
  for _ in range(_WARMUP.value):
    next(iterator)
  rates = []
  for _ in range(_REPEATS.value):
    start = time.perf_counter()
    for _ in range(_BATCHES.value):
      next(iterator)
    rates.append(_BATCHES.value * batch_size / (time.perf_counter() - start))
  return statistics.median(rates), rates


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  metadata = records.load_metadata(_RECORDS_DIR.value)
  sizes = metadata["splits"]["train"]["image_size"]
  size = (sizes["height"]["max"], sizes["width"]["max"])
  results = {"records_dir": _RECORDS_DIR.value, "dataset": metadata.get("dataset"),
             "image_size": size, "batch_size": _BATCH_SIZE.value,
             "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
             "tensorflow": tf.__version__, "python": platform.python_version(),
             "variants": {}}
  for name in _VARIANTS.value:
    kwargs = _variants(size)[name]
    options = input_pipeline.InputOptions(augment=augment.AugmentOptions(**kwargs))
    dataset = input_pipeline.make_train_dataset(_RECORDS_DIR.value, "train",
                                                _BATCH_SIZE.value, options, seed=0)
    median, rates = _images_per_second(dataset, _BATCH_SIZE.value)
    results["variants"][name] = {"options": kwargs, "images_per_second": median,
                                 "runs": rates}
    print(f"{name:10s} {median:7.1f} images/s  (runs: "
          + ", ".join(f"{r:.1f}" for r in rates) + ")", flush=True)
  results["load_average_after"] = os.getloadavg()
  if _OUTPUT.value:
    bench_output.write_json(_OUTPUT.value, results)


if __name__ == "__main__":
  app.run(main)
