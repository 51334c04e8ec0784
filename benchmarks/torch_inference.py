r"""Inference speed of our model against the PyTorch peer.

  python benchmarks/torch_inference.py            # CamVid size, 360x480, VGG
  python benchmarks/torch_inference.py --gin_file=models/camvid_no_vgg_cycle4/config.gin
  python benchmarks/torch_inference.py --form=saved_model   # the exported SavedModel
  python benchmarks/torch_inference.py --height=48 --width=64 --repeats=1  # smoke run

One network, --gin_file (default gin/model/camvid.gin, the VGG
configuration; a published model's config.gin for its architecture) with
random weights (timing does not depend on the values), in four variants
holding the same weights, each mapping uint8 RGB images [B, H, W, 3] to
classes [B, H, W], the argmax over the real classes (void, when trained as a
class, excluded, as our serving does):
  * ours fp32: with --form=in_process (default) the `Segmenter` of
    reseg_tf/serving/segmenter.py in its `IN_PROCESS` lowering (what
    `python -m reseg_tf.predict` runs: the compiled ReNet sweep where it
    loads), called directly; with --form=saved_model exported exactly as
    `python -m reseg_tf.export` does (into a temporary folder), loaded with
    `tf.saved_model.load`, its serving_default signature (the ReNet sweeps
    run as `tf.scan`). Both also return the probabilities, a softmax the
    torch variants skip;
  * ours bf16: the same, built with `ReSeg.compute_dtype` and
    `ReSeg.vgg_compute_dtype` = 'bfloat16' (VGG, the ReNet projections and
    recurrent GEMMs of the compiled sweep, and the head in bf16; variables,
    the recurrent state and logits stay fp32), holding the fp32 model's
    weights (copied in);
  * torch fp32: `torch_reseg.build_from(ours fp32)` (the peer of
    torch_peer.py), `eval()`, under `torch.inference_mode()`, uint8 input;
  * torch bf16 autocast: the same under `torch.autocast('cpu',
    dtype=torch.bfloat16)`, which also runs the GRU recurrences in bf16.

First the agreement on one batch-1 image: the fraction of pixels with the
same class, ours fp32 vs torch fp32 (~100%), ours bf16 vs ours fp32 and torch
bf16 vs torch fp32. Then two cases: latency at batch 1 (median seconds per
call) and throughput at batch --batch (images/s = batch / median seconds per
call). In each, --warmup calls of every variant, then --repeats rounds, the
variants timed in turn (A B C D A B C D ...: load from other processes hits
all alike). Ratios ours / torch (fp32 vs fp32, bf16 vs bf16 autocast) are of
seconds per call at batch 1 and of seconds per image at --batch: below 1 we
are faster. Then the FLOP floor (flop_floor.probe_runners: oneDNN's
matmul/convolution rate per dtype, its kernels timed in the same rounds as
the variants, so a drift of the machine's speed hits both) and each
variant's fraction of it (flop_floor.forward_flops: VGG and the trainable
part's matmuls and convolutions), and the "floor-bound" ratio: the ratio
ours would reach at 100% of its dtype's floor against the torch time just
measured, a lower bound on what any optimisation of ours can achieve. Prints
the CPU (AMX, AVX512-BF16), threads and load average, and writes JSON to
--output. Run it on an idle machine for figures: torch's
threads suffer most from other load (see --torch_threads).

torch is optional: without it the script says how to install it and exits 0.
"""

import os
import tempfile

import bench_output
import flop_floor
import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from data_prep import camvid
from reseg_tf.model import lowering
from reseg_tf.serving import segmenter as segmenter_lib

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BF16 = ("ReSeg.compute_dtype = 'bfloat16'", "ReSeg.vgg_compute_dtype = 'bfloat16'")

_GIN_FILE = flags.DEFINE_string(
    "gin_file", "gin/model/camvid.gin", "The network, relative to the repository "
    "(default gin/model/camvid.gin: VGG, ReNet, head).")
_FORM = flags.DEFINE_enum(
    "form", "in_process", ["in_process", "saved_model"], "Ours as `predict` runs "
    "it (in_process, the default) or as the exported SavedModel (saved_model).")
_HEIGHT = flags.DEFINE_integer("height", 360, "Image height (default 360, CamVid's).")
_WIDTH = flags.DEFINE_integer("width", 480, "Image width (default 480, CamVid's).")
_BATCH = flags.DEFINE_integer("batch", 8, "Batch of the throughput case (default 8).")
_THREADS = flags.DEFINE_integer(
    "threads", 2, "TensorFlow intra-op threads and torch threads (default 2).")
_TORCH_THREADS = flags.DEFINE_integer(
    "torch_threads", None, "torch threads, if not --threads (default: "
    "--threads). torch's OpenMP threads wait for each other at every op: on "
    "cores shared with other processes 2 threads can be tens of times slower "
    "than 1; time on an idle machine.")
_WARMUP = flags.DEFINE_integer(
    "warmup", 2, "Untimed calls of each variant before each case (default 2).")
_REPEATS = flags.DEFINE_integer(
    "repeats", 7, "Timed round-robin rounds per case, of which the median is "
    "reported (default 7).")
_BF16 = flags.DEFINE_bool(
    "bf16", True, "Also the bf16 variants, ours and torch autocast (default true; "
    "on a CPU without AMX or AVX512-BF16 both run bf16 in software).")
_OUTPUT = flags.DEFINE_string(
    "output", os.path.join(_ROOT, "benchmarks", "results", "torch_inference.json"),
    "Where to write the JSON results. Default: benchmarks/results/"
    "torch_inference.json in the repository.")


def copy_weights(source, target):
  """Assigns `source`'s variables to `target`'s (the same architecture)."""
  for a, b in zip(source.variables, target.variables, strict=True):
    if a.name != b.name or a.shape != b.shape:
      raise ValueError(f"variables differ: {a.name} {a.shape}, {b.name} {b.shape}")
    b.assign(a)


def _class_table(model):
  names = list(camvid.INFO.class_names)[:model.num_classes]
  names += [f"class {i}" for i in range(len(names), model.num_classes)]
  return names, [[0, 0, 0]] * model.num_classes


def in_process(model):
  """`classify(uint8 tf images) -> np classes` of `model` in a `Segmenter`
  in its IN_PROCESS lowering, as `python -m reseg_tf.predict` runs it."""
  segmenter = segmenter_lib.Segmenter(model, *_class_table(model), "camvid",
                                      lowering=lowering.IN_PROCESS)
  return lambda images: segmenter.serve_images(images)[segmenter_lib.CLASSES_KEY].numpy()


def exported(model, export_dir):
  """`model` exported as `python -m reseg_tf.export` does and loaded back:
  `classify(uint8 tf images) -> np classes` of its serving_default."""
  segmenter = segmenter_lib.Segmenter(model, *_class_table(model), "camvid")
  path = segmenter_lib.export_saved_model(segmenter, export_dir,
                                          segmenter_lib.next_version(export_dir))
  loaded = tf.saved_model.load(path)
  serve = loaded.signatures[segmenter_lib.DEFAULT_SIGNATURE]
  return lambda images, loaded=loaded: (  # `loaded` kept alive: its variables.
      serve(images=images)[segmenter_lib.CLASSES_KEY].numpy())


def torch_classifier(torch, model, num_classes, bf16):
  """`classify(uint8 torch images) -> np classes` of the torch peer."""
  model.eval()

  def classify(images):
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                enabled=bf16):
      return model(images)[:, :num_classes].argmax(1).numpy()

  return classify


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  torch = bench_output.import_torch()
  if torch is None:
    return
  import torch_reseg

  logging.set_verbosity(logging.WARNING)  # The export's INFO lines.
  tf.get_logger().setLevel("ERROR")
  results = bench_output.set_threads(torch, _THREADS.value,
                                     _TORCH_THREADS.value or _THREADS.value)
  results.update(load_average_start=os.getloadavg(), gin_file=_GIN_FILE.value,
                 form=_FORM.value, height=_HEIGHT.value, width=_WIDTH.value,
                 warmup=_WARMUP.value, repeats=_REPEATS.value)

  ours = bench_output.ours_from_gin(_GIN_FILE.value)
  theirs = torch_reseg.build_from(ours)
  with tempfile.TemporaryDirectory() as root:
    if _FORM.value == "in_process":
      wrap = in_process
    else:
      def wrap(model):
        return exported(model, os.path.join(root, model.compute_dtype.name))
    classify = {
        "ours fp32": wrap(ours),
        "torch fp32": torch_classifier(torch, theirs, ours.num_classes, False),
    }
    if _BF16.value:
      ours_bf16 = bench_output.ours_from_gin(_GIN_FILE.value, BF16, seed=1)
      copy_weights(ours, ours_bf16)
      classify["ours bf16"] = wrap(ours_bf16)
      classify["torch bf16 autocast"] = torch_classifier(
          torch, theirs, ours.num_classes, True)

  def feed(name, images):
    return tf.constant(images) if name.startswith("ours") else torch.from_numpy(images)

  rng = np.random.default_rng(0)
  shape = (_HEIGHT.value, _WIDTH.value, 3)
  image = rng.integers(0, 256, (1, *shape), np.uint8)
  classes = {name: fn(feed(name, image)) for name, fn in classify.items()}
  results["equal_pixels"] = {
      f"{a} vs {b}": float(np.mean(classes[a] == classes[b]))
      for a, b in (("ours fp32", "torch fp32"), ("ours bf16", "ours fp32"),
                   ("torch bf16 autocast", "torch fp32")) if a in classes}
  for pair, fraction in results["equal_pixels"].items():
    print(f"equal pixels, {pair}: {100 * fraction:.4f}%", flush=True)

  seconds, rates = {}, {}
  probes = flop_floor.probe_runners()
  for batch in (1, _BATCH.value):
    images = rng.integers(0, 256, (batch, *shape), np.uint8)
    runners = {name: lambda steps, fn=fn, x=feed(name, images): [fn(x) for _ in range(steps)]
               for name, fn in classify.items()}
    for run in runners.values():
      run(_WARMUP.value)
    rates[batch], seconds[batch] = flop_floor.rates_from_seconds(
        bench_output.time_round_robin({**runners, **probes}, _REPEATS.value, 1))
  results["load_average_end"] = os.getloadavg()
  batch = _BATCH.value
  flops = flop_floor.forward_flops(ours, _HEIGHT.value, _WIDTH.value)
  dtype = {name: "bfloat16" if "bf16" in name else "float32" for name in classify}
  floor = {f"batch {b}": {name: flop_floor.floor_fraction(b * flops, s[name], rates[b], dtype[name])
                          for name in classify} for b, s in seconds.items()}
  results.update(gflop_per_image=flops / 1e9, fraction_of_floor=floor,
                 floor_gflops={f"batch {b}": r for b, r in rates.items()})
  print(f"\n{_HEIGHT.value}x{_WIDTH.value}, median of {_REPEATS.value} round-robin "
        f"rounds; load average now {results['load_average_end'][0]:.2f}")
  for b, r in rates.items():
    print(f"FLOP floor in the batch-{b} rounds: {flop_floor.format_rates(r)}")
  print(f"{flops / 1e9:.1f} GFLOP per image")
  print(f"{'variant':20} {'batch 1 ms':>10} {'of floor':>9} "
        f"{f'batch {batch} images/s':>18} {'of floor':>9}")
  for name in classify:
    print(f"{name:20} {1000 * seconds[1][name]:10.1f} {100 * floor['batch 1'][name]:8.0f}% "
          f"{batch / seconds[batch][name]:18.2f} {100 * floor[f'batch {batch}'][name]:8.0f}%")
  results["ratios"] = {}
  for a, b in (("ours fp32", "torch fp32"), ("ours bf16", "torch bf16 autocast")):
    if a not in classify:
      continue
    ratio = {"latency_batch_1": seconds[1][a] / seconds[1][b],
             f"time_per_image_batch_{batch}": seconds[batch][a] / seconds[batch][b]}
    # Ours at 100% of its floor: the best ratio any optimisation could give.
    bound = {"latency_batch_1": ratio["latency_batch_1"] * floor["batch 1"][a],
             f"time_per_image_batch_{batch}": (ratio[f"time_per_image_batch_{batch}"]
                                               * floor[f"batch {batch}"][a])}
    results["ratios"][f"{a} / {b}"] = ratio
    results["ratios"][f"{a} at its floor / {b}"] = bound
    print(f"{a} / {b}: batch 1 latency {ratio['latency_batch_1']:.2f} (floor-bound "
          f"{bound['latency_batch_1']:.2f}), batch {batch} time per image "
          f"{ratio[f'time_per_image_batch_{batch}']:.2f} (floor-bound "
          f"{bound[f'time_per_image_batch_{batch}']:.2f}); < 1: ours faster")
  results["seconds_per_call"] = {f"batch {b}": s for b, s in seconds.items()}
  bench_output.write_json(_OUTPUT.value, results)


if __name__ == "__main__":
  app.run(main)
