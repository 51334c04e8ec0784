r"""Serving latency, throughput and size of the exported CamVid ReSeg.

COMMAND:
  python benchmarks/serving.py          # ~3-4 min on 2 cores
  python benchmarks/serving.py --batch_sizes=1 --warmup=0 --repeats=1  # smoke run

Builds the CamVid model of gin/model/camvid.gin (U = 100, 360x480 input, 11
classes + void trained as a class; random VGG weights: timing does not depend
on the values), exports it with `export_saved_model` of
reseg_tf/serving/segmenter.py exactly as `python -m reseg_tf.export` does,
loads it back with `tf.saved_model.load` and times its signatures on this CPU:

  * serving_default, uint8 [B, 360, 480, 3], B = 1 and B = 8;
  * serving_bytes, one 360x480 JPEG (decoding included);
  * for reference, the in-memory evaluation path of the trainer (front end
    with oneDNN, ReNet + head compiled with XLA, fused GRU loops), which the
    SavedModel cannot use (TF Serving runs XLA only behind an experimental
    flag).

Each case: --warmup calls, then --repeats timed calls; the median latency
and batch / median as throughput. Also reports the SavedModel's size on disk.
The machine's other load counts: run it on an idle machine for figures.
Prints and writes JSON to --output.
"""

import io
import os
import tempfile
import time

import bench_output
import numpy as np
import tensorflow as tf
from absl import app, flags
from PIL import Image

import gin
from data_prep import camvid
from reseg_tf import configurables
from reseg_tf.common import machine
from reseg_tf.serving import segmenter as segmenter_lib

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_OUTPUT = flags.DEFINE_string(
    "output", "benchmarks/results/serving.json", "Where the JSON goes "
    "(relative to the working folder).")
_EXPORT_DIR = flags.DEFINE_string(
    "export_dir", None, "Where the SavedModel is written. Default: a temporary "
    "folder, deleted at the end.")
_BATCH_SIZES = flags.DEFINE_list(
    "batch_sizes", ["1", "8"], "Batch sizes for serving_default and the "
    "reference path (default 1,8).")
_HEIGHT = flags.DEFINE_integer("height", 360, "Image height (default 360, CamVid's).")
_WIDTH = flags.DEFINE_integer("width", 480, "Image width (default 480, CamVid's).")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed calls before each case (default 2).")
_REPEATS = flags.DEFINE_integer(
    "repeats", 7, "Timed calls per case, of which the median is reported "
    "(default 7).")
_REFERENCE = flags.DEFINE_bool(
    "reference", True, "Also time the in-memory XLA evaluation path (default "
    "true).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  gin.clear_config()
  gin.parse_config_files_and_bindings(
      [os.path.join(_ROOT, "gin", "model", "camvid.gin")], ["ReSeg.vgg_weights = 'random'"])
  model = configurables.ReSeg()
  segmenter = segmenter_lib.Segmenter(model, camvid.INFO.class_names,
                                      camvid.INFO.class_colors, "camvid")
  temp = None
  export_dir = _EXPORT_DIR.value
  if not export_dir:
    temp = tempfile.TemporaryDirectory()
    export_dir = temp.name
  start = time.perf_counter()
  path = segmenter_lib.export_saved_model(segmenter, export_dir,
                                          segmenter_lib.next_version(export_dir))
  export_seconds = time.perf_counter() - start
  size = {"total_bytes": bench_output.folder_bytes(path),
          "variables_bytes": bench_output.folder_bytes(os.path.join(path, "variables")),
          "saved_model_pb_bytes": os.path.getsize(os.path.join(path, "saved_model.pb"))}
  print(f"SavedModel {path}: {size['total_bytes'] / 2**20:.2f} MiB "
        f"(variables {size['variables_bytes'] / 2**20:.2f} MiB, graph "
        f"{size['saved_model_pb_bytes'] / 2**20:.2f} MiB); export took {export_seconds:.1f} s")

  start = time.perf_counter()
  loaded = tf.saved_model.load(path)
  load_seconds = time.perf_counter() - start
  h, w = _HEIGHT.value, _WIDTH.value
  rng = np.random.default_rng(0)
  cases = {}

  def record(name, batch, fn):
    median, times = bench_output.median_time(fn, _WARMUP.value, _REPEATS.value)
    cases[f"{name}, batch {batch}"] = {"batch_size": batch, "median_latency_s": median,
                                       "images_per_second": batch / median,
                                       "latencies_s": times}
    print(f"{name:<40} batch {batch}: median {1000 * median:8.1f} ms, "
          f"{batch / median:6.2f} images/s")

  serve_images = loaded.signatures[segmenter_lib.DEFAULT_SIGNATURE]
  for batch in (int(b) for b in _BATCH_SIZES.value):
    images = tf.constant(rng.integers(0, 256, (batch, h, w, 3), np.uint8))
    record("serving_default", batch,
           lambda images=images: serve_images(images=images)["classes"].numpy())
  buffer = io.BytesIO()
  Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8)).save(buffer, "JPEG", quality=90)
  jpeg = tf.constant([buffer.getvalue()])
  serve_bytes = loaded.signatures[segmenter_lib.BYTES_SIGNATURE]
  record("serving_bytes (JPEG)", 1,
         lambda: serve_bytes(image_bytes=jpeg)["classes"].numpy())
  if _REFERENCE.value:
    head = tf.function(model.head, jit_compile=True)
    features = tf.function(model.features)
    for batch in (int(b) for b in _BATCH_SIZES.value):
      images = tf.constant(rng.integers(0, 256, (batch, h, w, 3), np.uint8))
      record("reference: in-memory, XLA head", batch,
             lambda images=images: tf.argmax(head(features(images), (h, w)), -1).numpy())

  result = {
      "machine": {"cores": os.cpu_count(), "cpu": machine.cpu_model(),
                  "tensorflow": tf.__version__},
      "model": "gin/model/camvid.gin (U=100, 11 classes + void as class, random VGG)",
      "image_size": [h, w], "warmup": _WARMUP.value, "repeats": _REPEATS.value,
      "saved_model": size, "export_seconds": export_seconds, "load_seconds": load_seconds,
      "cases": cases,
  }
  bench_output.write_json(_OUTPUT.value, result)
  if temp:
    temp.cleanup()


if __name__ == "__main__":
  app.run(main)
