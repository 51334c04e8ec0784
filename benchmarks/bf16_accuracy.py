r"""bf16 vs fp32 on a short real-data run: validation metrics and wall time.

COMMAND:
  python -m data_prep.build --dataset=horse
  python benchmarks/bf16_accuracy.py            # ~15 min on 2 idle cores
  python benchmarks/bf16_accuracy.py --epochs=1 --input_scale=0.25  # smoke run, ~1 min

Trains gin/horse.gin (VGG front end frozen, ReNet, the Horse data in
data/horse) with Adam (lr 1e-3: Adadelta learns too slowly for a short run)
twice from the same initial weights and seed, for --epochs epochs, at
--input_scale: once in fp32, once with the bf16 option
(`ReSeg.compute_dtype` and `ReSeg.vgg_compute_dtype` = bfloat16: VGG and the
ReNet projections in bf16; variables, recurrences and the loss stay fp32).
Runs in one process, one after the other, and prints the best validation
mean IoU and global accuracy of each, their difference, and the training
wall-time ratio. The VGG weights are ImageNet's when the Keras cache has
them, else random (logged): either way both runs share them.
Writes JSON to --output (default benchmarks/results/bf16_accuracy.json).

The ReNet sweeps run in the compiled form where it loads (else the fused
XLA form); `RESEG_TF_COMPILED_SWEEP=0` forces the fused form, so running the
script twice compares the two (the JSON's "sweep" says which ran):
  python benchmarks/bf16_accuracy.py --dtypes=float32 --output=/tmp/compiled.json
  RESEG_TF_COMPILED_SWEEP=0 python benchmarks/bf16_accuracy.py --dtypes=float32 \
      --output=/tmp/fused.json
"""

import json
import os
import tempfile
import time

import bench_output
import tensorflow as tf
from absl import app, flags, logging

import gin
from reseg_tf import configurables
from reseg_tf.common import machine
from reseg_tf.model import compiled_sweep

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_RECORDS_DIR = flags.DEFINE_string(
    "records_dir", os.path.join(_ROOT, "data", "horse"),
    "The Horse records to train and validate on. Default: data/horse in the "
    "repository.")
_EPOCHS = flags.DEFINE_integer(
    "epochs", 8, "Training epochs of each run (default 8).")
_INPUT_SCALE = flags.DEFINE_float(
    "input_scale", 0.5, "`ReSeg.input_scale` of both runs (default 0.5).")
_DTYPES = flags.DEFINE_list(
    "dtypes", ["float32", "bfloat16"], "The runs' compute dtypes (default "
    "float32,bfloat16; the comparison needs both).")
_OUTPUT = flags.DEFINE_string(
    "output", os.path.join(_ROOT, "benchmarks", "results", "bf16_accuracy.json"),
    "Where to write the JSON results. Default: benchmarks/results/"
    "bf16_accuracy.json in the repository.")


def run(dtype: str, epochs: int, input_scale: float, records_dir: str, model_dir: str):
  gin.clear_config()
  gin.parse_config_files_and_bindings(
      [os.path.join(_ROOT, "gin", "horse.gin")],
      [f"train.records_dir = '{records_dir}'", f"Schedule.max_epochs = {epochs}",
       f"Schedule.min_epochs = {epochs}", "train.seed = 0",
       "make_optimizer.name = 'adam'", "make_optimizer.learning_rate = 0.001",
       f"ReSeg.input_scale = {input_scale}", f"ReSeg.compute_dtype = '{dtype}'",
       f"ReSeg.vgg_compute_dtype = '{dtype}'"])
  start = time.monotonic()
  result = configurables.train(model_dir=model_dir)
  seconds = time.monotonic() - start
  validation = result["last_validation"]
  return {"seconds": seconds, "best_mean_iou": result["best_mean_iou"],
          "last_mean_iou": validation["mean_iou"],
          "last_global_accuracy": validation["global_accuracy"],
          "last_foreground_iou": validation.get("foreground_iou")}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)  # The trainer's progress lines.
  results = {"epochs": _EPOCHS.value, "input_scale": _INPUT_SCALE.value,
             "load_average": os.getloadavg(), "cpu": machine.cpu_model(),
             "sweep": "compiled" if compiled_sweep.available() else "fused"}
  with tempfile.TemporaryDirectory() as root:
    for dtype in _DTYPES.value:
      tf.random.set_seed(0)
      results[dtype] = run(dtype, _EPOCHS.value, _INPUT_SCALE.value, _RECORDS_DIR.value,
                           os.path.join(root, dtype))
      print(f"{dtype}: {json.dumps(results[dtype])}", flush=True)
  if set(_DTYPES.value) != {"float32", "bfloat16"}:
    return bench_output.write_json(_OUTPUT.value, results)
  fp32, bf16 = results["float32"], results["bfloat16"]
  results["speedup"] = fp32["seconds"] / bf16["seconds"]
  results["mean_iou_difference_points"] = 100 * (bf16["best_mean_iou"] - fp32["best_mean_iou"])
  print(f"bf16 over fp32: {results['speedup']:.2f}x faster, best validation mean IoU "
        f"{100 * bf16['best_mean_iou']:.1f} vs {100 * fp32['best_mean_iou']:.1f} "
        f"({results['mean_iou_difference_points']:+.1f} points)")
  bench_output.write_json(_OUTPUT.value, results)


if __name__ == "__main__":
  app.run(main)
