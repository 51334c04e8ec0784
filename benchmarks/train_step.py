r"""Times the CamVid train step (360x480, batch 5) and its input pipeline.

  python benchmarks/train_step.py [--records_dir=data/camvid] [--loops=6]
  python benchmarks/train_step.py --loops=1 --steps_per_loop=1   # smoke run

In one run, on this machine:
  * the FLOP floor (flop_floor.py): oneDNN's rates on a 2048^3 matmul and
    on a VGG conv3 layer (3x3, 256 channels, 90x120), fp32 and bf16; a
    step's floor is its FLOPs at the faster of the two rates of its dtype;
  * the full train step (frozen VGG + ReNet + head, forward and backward,
    Adadelta) fed from memory, fp32, with the trainable part under the
    trainer's outer `jit_compile` (the ReNet sweeps then run as fused XLA
    loops) and without it (the compiled sweep, where it loads), then the
    bf16 option (VGG, the ReNet projections and the compiled sweep's
    recurrent GEMMs in bf16; variables, recurrent state and loss in fp32);
  * the same step fed by the real tf.data pipeline from --records_dir
    (when present), and that pipeline alone;
  * the step fed with the VGG features a `train.cache_features` run reads
    from its cache (reseg_tf/data/feature_cache.py), fp32 and bf16, from
    memory: the speedup of the cache is the full step over this one.
FLOPs: VGG forward + 3x the trainable part's forward (forward, then the
gradients w.r.t. inputs and weights), matmuls and convolutions only.
Random VGG weights (speed does not depend on them). Writes JSON to
--output (default benchmarks/results/train_step.json).
"""

import os
import statistics
import time

import bench_output
import flop_floor
import numpy as np
import tensorflow as tf
from absl import app, flags

from reseg_tf.data import input_pipeline
from reseg_tf.model import lowering
from reseg_tf.model import reseg as model_lib
from reseg_tf.training import optimizers, train_step

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_RECORDS_DIR = flags.DEFINE_string(
    "records_dir", os.path.join(_ROOT, "data", "camvid"),
    "CamVid records for the real-pipeline measurements, skipped when the "
    "folder is absent. Default: data/camvid in the repository.")
_LOOPS = flags.DEFINE_integer(
    "loops", 6, "Timed loops of --steps_per_loop steps per measurement, of "
    "which the median is reported (default 6).")
_STEPS_PER_LOOP = flags.DEFINE_integer(
    "steps_per_loop", 5, "Train steps in each timed loop (default 5); "
    "--loops=1 --steps_per_loop=1 is a smoke run.")
_OUTPUT = flags.DEFINE_string(
    "output", os.path.join(_ROOT, "benchmarks", "results", "train_step.json"),
    "Where to write the JSON results. Default: benchmarks/results/"
    "train_step.json in the repository.")

BATCH, HEIGHT, WIDTH = 5, 360, 480
CAMVID = dict(num_classes=11, void_as_class=True, vgg_weights="random")


def random_batch(height=HEIGHT, width=WIDTH, seed=0) -> dict:
  """A CamVid-shaped batch of random pixels and labels (12 values: the 11
  classes and void), every example real."""
  rng = np.random.default_rng(seed)
  return {"image": rng.integers(0, 256, (BATCH, height, width, 3)).astype(np.uint8),
          "label": rng.integers(0, 12, (BATCH, height, width)).astype(np.uint8),
          "mask": np.ones(BATCH, bool)}


def time_steps(loop, iterator, loops, steps_per_loop=5):
  loop(iterator, tf.constant(1))  # Compile.
  times = []
  for _ in range(loops):
    start = time.perf_counter()
    float(loop(iterator, tf.constant(steps_per_loop)))
    times.append((time.perf_counter() - start) / steps_per_loop)
  return statistics.median(times)


def build(dtype, jit_compile, sweep="auto"):
  strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
  with strategy.scope():
    net = model_lib.ReSeg(**CAMVID, compute_dtype=dtype, vgg_compute_dtype=dtype)
    optimizer = optimizers.make_optimizer()
    optimizer.build(net.trainable_variables)
  loop = train_step.make_train_loop(strategy, net, optimizer,
                                    train_step.LossOptions(global_batch_size=BATCH),
                                    jit_compile=jit_compile,
                                    lowering=lowering.Lowering(sweep=sweep))
  return strategy, net, loop


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  tf.config.threading.set_intra_op_parallelism_threads(2)
  batch = random_batch()
  results = {"load_average": os.getloadavg(), "floor_gflops": flop_floor.floor_rates()}
  print(flop_floor.format_rates(results["floor_gflops"]))
  records = os.path.isdir(_RECORDS_DIR.value)
  for name, dtype, jit in (("fp32, outer jit", "float32", True),
                           ("fp32, no outer jit", "float32", False),
                           ("bf16, no outer jit", "bfloat16", False)):
    strategy, net, loop = build(dtype, jit)
    memory = iter(strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors(batch).repeat()))
    seconds = time_steps(loop, memory, _LOOPS.value, _STEPS_PER_LOOP.value)
    flops = flop_floor.step_flops(net, HEIGHT, WIDTH, BATCH)
    entry = {"step_seconds_in_memory": seconds, "images_per_second": BATCH / seconds,
             "gflop_per_step": flops / 1e9,
             "fraction_of_floor": flop_floor.floor_fraction(
                 flops, seconds, results["floor_gflops"], dtype)}
    line = (f"{name:20} {seconds:6.3f} s/step  {BATCH / seconds:5.2f} images/s  "
            f"{100 * entry['fraction_of_floor']:4.0f}% of the {dtype} floor")
    if records:
      real = iter(strategy.distribute_datasets_from_function(
          lambda context: input_pipeline.make_train_dataset(
              _RECORDS_DIR.value, "train", BATCH, input_context=context)))
      entry["step_seconds_real_pipeline"] = time_steps(loop, real, _LOOPS.value,
                                                     _STEPS_PER_LOOP.value)
      entry["real_over_memory"] = entry["step_seconds_real_pipeline"] / seconds
      line += f"  real pipeline {entry['real_over_memory']:.3f}x"
    if not jit:
      features = net.features(batch["image"])
      cached = iter(strategy.experimental_distribute_dataset(
          tf.data.Dataset.from_tensors({"features": features, "label": batch["label"],
                                        "mask": batch["mask"]}).repeat()))
      entry["step_seconds_cached_features"] = time_steps(loop, cached, _LOOPS.value,
                                                         _STEPS_PER_LOOP.value)
      entry["cache_speedup"] = seconds / entry["step_seconds_cached_features"]
      line += f"  cached features {entry['cache_speedup']:.2f}x faster"
    results[name] = entry
    print(line, flush=True)
  if records:
    dataset = input_pipeline.make_train_dataset(_RECORDS_DIR.value, "train", BATCH)
    iterator = iter(dataset)
    for _ in range(5):
      next(iterator)
    start, count = time.perf_counter(), 0
    for _ in range(40):
      count += next(iterator)["image"].shape[0]
    results["pipeline_images_per_second"] = count / (time.perf_counter() - start)
    ratio = results["pipeline_images_per_second"] / results["fp32, no outer jit"]["images_per_second"]
    results["pipeline_over_fp32_step"] = ratio
    print(f"input pipeline alone: {results['pipeline_images_per_second']:.0f} images/s "
          f"({ratio:.0f}x the fp32 step)")
  fp32 = min(results["fp32, outer jit"]["step_seconds_in_memory"],
             results["fp32, no outer jit"]["step_seconds_in_memory"])
  results["bf16_speedup_over_best_fp32"] = fp32 / results["bf16, no outer jit"]["step_seconds_in_memory"]
  print(f"bf16 speedup over the best fp32 step: {results['bf16_speedup_over_best_fp32']:.2f}x")
  bench_output.write_json(_OUTPUT.value, results)


if __name__ == "__main__":
  app.run(main)
