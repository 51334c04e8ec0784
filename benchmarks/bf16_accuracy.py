r"""bf16 vs fp32 on a short real-data run: validation metrics and wall time.

COMMAND:
  python -m data_prep.build --dataset=horse
  python benchmarks/bf16_accuracy.py            # ~15 min on 2 idle cores

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
Writes benchmarks/results/bf16_accuracy.json.
"""

import argparse
import json
import os
import sys
import tempfile
import time

from absl import logging
import gin
import tensorflow as tf

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)

import bench_output  # pylint: disable=wrong-import-position

from reseg_tf import configurables  # pylint: disable=wrong-import-position


def run(dtype: str, epochs: int, input_scale: float, records_dir: str, model_dir: str):
  gin.clear_config()
  gin.parse_config_files_and_bindings(
      [os.path.join(_ROOT, "gin", "horse.gin")],
      [f"train.records_dir = '{records_dir}'", f"train.max_epochs = {epochs}",
       f"train.min_epochs = {epochs}", "train.seed = 0",
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


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--records_dir", default=os.path.join(_ROOT, "data", "horse"))
  parser.add_argument("--epochs", type=int, default=8)
  parser.add_argument("--input_scale", type=float, default=0.5)
  parser.add_argument("--output", default=os.path.join(_ROOT, "benchmarks", "results",
                                                      "bf16_accuracy.json"))
  args = parser.parse_args()
  logging.set_verbosity(logging.INFO)  # The trainer's progress lines.
  results = {"epochs": args.epochs, "input_scale": args.input_scale,
             "load_average": os.getloadavg()}
  with tempfile.TemporaryDirectory() as root:
    for dtype in ("float32", "bfloat16"):
      tf.random.set_seed(0)
      results[dtype] = run(dtype, args.epochs, args.input_scale, args.records_dir,
                           os.path.join(root, dtype))
      print(f"{dtype}: {json.dumps(results[dtype])}", flush=True)
  fp32, bf16 = results["float32"], results["bfloat16"]
  results["speedup"] = fp32["seconds"] / bf16["seconds"]
  results["mean_iou_difference_points"] = 100 * (bf16["best_mean_iou"] - fp32["best_mean_iou"])
  print(f"bf16 over fp32: {results['speedup']:.2f}x faster, best validation mean IoU "
        f"{100 * bf16['best_mean_iou']:.1f} vs {100 * fp32['best_mean_iou']:.1f} "
        f"({results['mean_iou_difference_points']:+.1f} points)")
  bench_output.write_json(args.output, results)


if __name__ == "__main__":
  main()
