r"""Times the train input pipeline alone (no model): images per second.

COMMAND:
  python -m data_prep.build --dataset=camvid --data_dir=../shared/data/camvid \
      --output_dir=data/camvid
  python benchmarks/input_pipeline.py --records_dir=data/camvid    # ~2 min

For each variant of `InputOptions` it builds `make_train_dataset` (batch 5,
repeat forever), pulls --warmup batches (the shuffle buffer fills, AUTOTUNE
settles), then times --batches batches, --repeats times, and reports the
median. Variants: "none" (the paper: decode only), "flip_crop" (random
crop/pad to the full size + flip: cheap ops), "geometric" (adds scale,
rotation, shear and the elastic warp), "all" (adds photometric jitter).
The machine's other load counts: run it on an idle machine for figures.
Writes JSON to --output.
"""

import os
import platform
import statistics
import sys
import time

from absl import app
from absl import flags

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)

import bench_output  # pylint: disable=wrong-import-position

import tensorflow as tf  # pylint: disable=wrong-import-position

from reseg_tf import augment, input_pipeline, records  # pylint: disable=wrong-import-position

flags.DEFINE_string("records_dir", "data/camvid", "Records to read (train split).")
flags.DEFINE_string("output", "benchmarks/results/input_pipeline.json",
                    "Where to write the JSON results.")
flags.DEFINE_integer("batch_size", 5, "Global batch size (paper: 5).")
flags.DEFINE_integer("warmup", 5, "Batches pulled before timing.")
flags.DEFINE_integer("batches", 30, "Batches per timed run.")
flags.DEFINE_integer("repeats", 3, "Timed runs per variant (median).")
flags.DEFINE_list("variants", ["none", "flip_crop", "geometric", "all"], "Variants to time.")
FLAGS = flags.FLAGS


def _variants(size):
  flip_crop = dict(crop_size=size, random_crop=True, flip=True)
  geometric = dict(flip_crop, scale_range=(0.75, 1.33), max_rotation_degrees=10,
                   max_shear_degrees=5, elastic_alpha=4.0, elastic_spacing=32)
  everything = dict(geometric, brightness=0.1, contrast=0.2, saturation=0.2, gamma=0.2)
  return {"none": {}, "flip_crop": flip_crop, "geometric": geometric, "all": everything}


def _images_per_second(dataset, batch_size):
  iterator = iter(dataset)
  for _ in range(FLAGS.warmup):
    next(iterator)
  rates = []
  for _ in range(FLAGS.repeats):
    start = time.perf_counter()
    for _ in range(FLAGS.batches):
      next(iterator)
    rates.append(FLAGS.batches * batch_size / (time.perf_counter() - start))
  return statistics.median(rates), rates


def main(argv):
  del argv
  metadata = records.load_metadata(FLAGS.records_dir)
  sizes = metadata["splits"]["train"]["image_size"]
  size = (sizes["height"]["max"], sizes["width"]["max"])
  results = {"records_dir": FLAGS.records_dir, "dataset": metadata.get("dataset"),
             "image_size": size, "batch_size": FLAGS.batch_size,
             "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
             "tensorflow": tf.__version__, "python": platform.python_version(),
             "variants": {}}
  for name in FLAGS.variants:
    kwargs = _variants(size)[name]
    options = input_pipeline.InputOptions(augment=augment.AugmentOptions(**kwargs))
    dataset = input_pipeline.make_train_dataset(FLAGS.records_dir, "train",
                                                FLAGS.batch_size, options, seed=0)
    median, rates = _images_per_second(dataset, FLAGS.batch_size)
    results["variants"][name] = {"options": kwargs, "images_per_second": median,
                                 "runs": rates}
    print(f"{name:10s} {median:7.1f} images/s  (runs: "
          + ", ".join(f"{r:.1f}" for r in rates) + ")", flush=True)
  results["load_average_after"] = os.getloadavg()
  if FLAGS.output:
    bench_output.write_json(FLAGS.output, results)


if __name__ == "__main__":
  app.run(main)
