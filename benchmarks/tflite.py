r"""Size and latency of the CamVid no-VGG ReSeg: SavedModel against LiteRT.

COMMAND:
  nice -n 5 python benchmarks/tflite.py          # ~4 min on 2 cores
  python benchmarks/tflite.py --repeats=2 --warmup=1 --threads=1 --noscan_reference  # smoke

Builds the model of gin/camvid_no_vgg.gin (no VGG, 2x2 ReNet patches, U =
100, input_scale 0.5, 11 classes; random weights: timing does not depend on
the values) at CamVid's 360x480 and times, at batch 1 on uint8 images:

  * the SavedModel's serving_default, exported with `export_saved_model` as
    `python -m reseg_tf.export` does, loaded back (TensorFlow's runtime, the
    `tf.scan` sweeps);
  * the .tflite models of `python -m reseg_tf.export --format=tflite`
    (reseg_tf/serving/tflite_export.py): float32 and dynamic-range
    quantized, in `TFLiteSegmenter` (ai-edge-litert when installed, with its
    default XNNPACK delegate) with each of --threads;
  * with --scan_reference, the rejected form: the same export with
    ReNetLayer's `tf.scan` sweeps (WHILE loops) instead of the unrolled ones
    (`lowering.FIXED_SIZE` with `sweep="scan"`);
  * with --onnx, the .onnx model of `--format=onnx` in onnxruntime
    (reseg_tf/serving/onnx_export.py; its conversion takes ~1.5 min and ~2 GB).

Each case: --warmup calls, then --repeats timed calls, the median reported.
Also the files' sizes, the conversion times, and the share of pixels whose
class agrees with the SavedModel's on --images random images (with random
weights the classes are near ties, so this is a lower bound of what a
trained model gives). The machine's other load counts: the JSON records the
load average. Prints a table and writes JSON to --output.
"""

import dataclasses
import os
import tempfile
import time

import bench_output
import numpy as np
import tensorflow as tf
from absl import app, flags, logging

import gin
from data_prep import camvid
from reseg_tf import configurables
from reseg_tf.common import machine
from reseg_tf.model import lowering
from reseg_tf.serving import segmenter as segmenter_lib
from reseg_tf.serving import tflite_export

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_OUTPUT = flags.DEFINE_string(
    "output", "benchmarks/results/tflite.json", "Where the JSON goes (relative to "
    "the working folder).")
_GIN_FILE = flags.DEFINE_string(
    "gin_file", "gin/camvid_no_vgg.gin", "The model's configuration (relative to the "
    "repository; default gin/camvid_no_vgg.gin).")
_HEIGHT = flags.DEFINE_integer("height", 360, "Image height (default 360, CamVid's).")
_WIDTH = flags.DEFINE_integer("width", 480, "Image width (default 480, CamVid's).")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed calls before each case (default 3).")
_REPEATS = flags.DEFINE_integer(
    "repeats", 15, "Timed calls per case, of which the median is reported (default 15).")
_THREADS = flags.DEFINE_list(
    "threads", ["1", "2"], "LiteRT interpreter threads to time (default 1,2).")
_IMAGES = flags.DEFINE_integer(
    "images", 4, "Random images on which the classes are compared (default 4).")
_SCAN_REFERENCE = flags.DEFINE_bool(
    "scan_reference", True, "Also convert and time the tf.scan form of the sweeps "
    "(default true).")
_ONNX = flags.DEFINE_bool(
    "onnx", False, "Also convert to ONNX and time it in onnxruntime (default false).")


# The rejected form: the export's sweeps as tf.scan (WHILE loops) instead of unrolled.
_SCAN_FORM = dataclasses.replace(lowering.FIXED_SIZE, sweep="scan")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # The converter's INFO lines on its temporary files.
  gin.clear_config()
  gin.parse_config_files_and_bindings([os.path.join(_ROOT, _GIN_FILE.value)], [])
  tf.random.set_seed(0)  # The same random weights in every run.
  model = configurables.ReSeg()
  h, w = _HEIGHT.value, _WIDTH.value
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (max(_IMAGES.value, 1), h, w, 3), np.uint8)
  temp = tempfile.TemporaryDirectory()
  rows, cases = [], {}
  runtime = None

  def record(name, size_bytes, fn, classes_fn, **extra):
    median, times = bench_output.median_time(fn, _WARMUP.value, _REPEATS.value)
    agreement = (None if classes_fn is None else
                 float(np.mean(np.concatenate([classes_fn(image[None]) for image in images])
                               == reference_classes)))
    cases[name] = dict(extra, bytes=size_bytes, median_latency_s=median, latencies_s=times,
                       class_agreement_with_saved_model=agreement)
    rows.append((name, size_bytes, median, agreement))
    print(f"{name:<38} {size_bytes / 2**20:7.2f} MiB {1000 * median:9.1f} ms", flush=True)

  segmenter = segmenter_lib.Segmenter(model, camvid.INFO.class_names,
                                      camvid.INFO.class_colors, "camvid")
  path = segmenter_lib.export_saved_model(segmenter, temp.name, 1)
  serve = tf.saved_model.load(path).signatures[segmenter_lib.DEFAULT_SIGNATURE]
  reference_classes = np.concatenate(
      [serve(images=tf.constant(image[None]))["classes"].numpy() for image in images])
  one = tf.constant(images[:1])
  record("SavedModel (TF runtime, tf.scan)", bench_output.folder_bytes(path),
         lambda: serve(images=one)["classes"].numpy(), None)

  conversions = {}
  forms = [("unrolled", tflite_export.VARIANTS)]
  if _SCAN_REFERENCE.value:
    forms.append(("scan", (tflite_export.FLOAT32,)))
  for form, variants in forms:
    for variant in variants:
      start = time.perf_counter()
      form_lowering = _SCAN_FORM if form == "scan" else lowering.FIXED_SIZE
      flatbuffer = tflite_export.convert(model, (h, w), 1, (variant,), form_lowering)[variant]
      seconds = time.perf_counter() - start
      conversions[f"{form} {variant}"] = seconds
      file = os.path.join(temp.name, f"{form}-{variant}.tflite")
      with open(file, "wb") as f:
        f.write(flatbuffer)
      print(f"converted {form} {variant} in {seconds:.1f} s (trace included)", flush=True)
      for threads in (int(t) for t in _THREADS.value):
        runner = tflite_export.TFLiteSegmenter(file, num_threads=threads)
        runtime = type(runner.interpreter).__module__
        record(f".tflite {variant}, {form}, {threads} thread{'s' if threads > 1 else ''}",
               len(flatbuffer), lambda runner=runner: runner(images[:1]),
               lambda x, runner=runner: runner(x)["classes"], threads=threads,
               form=form, variant=variant)

  if _ONNX.value:
    from reseg_tf.serving import onnx_export  # noqa: PLC0415 (needs the onnx extra)
    start = time.perf_counter()
    data = onnx_export.convert(model, (h, w), 1)
    conversions["onnx"] = time.perf_counter() - start
    print(f"converted to ONNX in {conversions['onnx']:.1f} s (trace included)", flush=True)
    file = os.path.join(temp.name, "model.onnx")
    with open(file, "wb") as f:
      f.write(data)
    for threads in (int(t) for t in _THREADS.value):
      runner = onnx_export.ONNXSegmenter(file, num_threads=threads)
      record(f".onnx float32, unrolled, onnxruntime, {threads} thread{'s' if threads > 1 else ''}",
             len(data), lambda runner=runner: runner(images[:1]),
             lambda x, runner=runner: runner(x)["classes"], threads=threads, form="unrolled",
             variant="onnx")

  print(f"\n{h}x{w}, batch 1, {machine.cpu_model()}, load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
  print("| model | size (MiB) | median latency (ms) | classes = SavedModel's |")
  print("|---|---|---|---|")
  for name, size_bytes, median, agreement in rows:
    agree = "-" if agreement is None else f"{agreement:.2%}"
    print(f"| {name} | {size_bytes / 2**20:.2f} | {1000 * median:.0f} | {agree} |")
  result = {
      "machine": {"cores": os.cpu_count(), "cpu": machine.cpu_model(), "tensorflow": tf.__version__,
                  "load_average": os.getloadavg(), "niceness": os.nice(0),
                  "interpreter": runtime},
      "model": f"{_GIN_FILE.value}, random weights", "image_size": [h, w], "batch_size": 1,
      "warmup": _WARMUP.value, "repeats": _REPEATS.value, "conversion_seconds": conversions,
      "cases": cases,
  }
  bench_output.write_json(_OUTPUT.value, result)
  temp.cleanup()


if __name__ == "__main__":
  app.run(main)
