r"""The PyTorch peer of our CamVid train step: same network, weights and step.

  python benchmarks/torch_peer.py                 # agreement checks, then timing
  python benchmarks/torch_peer.py --nocheck       # the timing table only
  python benchmarks/torch_peer.py --notime        # the agreement checks only
  python benchmarks/torch_peer.py --nocheck --height=48 --width=64 \
      --loops=2 --steps_per_loop=1                # smoke run

The network is `torch_reseg.ReSeg`, written as a PyTorch user would (VGG-16
conv1_1..conv3_3 as nn.Conv2d/ReLU/MaxPool2d, frozen; ReNet sweeps of
nn.GRU in our `stacked` bidirectional mode and `horizontal_first` order;
nn.ConvTranspose2d + ReLU twice and a 1x1 nn.Conv2d), built from our
`ReSeg` and holding its weights (the exact mapping is in torch_reseg.py).

--check: builds our model from gin (gin/model/*.gin, random VGG) and its
torch copy, and compares the forward passes on the same images: the max
abs difference of the logits (and relative to their largest value), the
fraction of pixels with the same argmax, and the same for the ReNet stack
fed N(0, 1) features. Small first (1x40x48, units (8, 6)) for camvid.gin,
camvid_paper.gin (independent mode, vertical first) and horse_no_vgg.gin
(no VGG, 2x2 patches); then camvid.gin as configured at batch 1, 360x480
(--check_camvid).

--time: in one run, round-robin (A B C A B C ...: load from other processes
hits all alike), --loops loops of --steps_per_loop train steps each, median
reported:
  * ours fp32: `train_step.build` (the step of benchmarks/train_step.py:
    frozen VGG outside XLA, the compiled ReNet sweep, Adadelta; no outer XLA
    function, the CPU default, unless --outer_jit), fed from memory;
  * ours fp32 XLA sweep (with --xla_sweep): the same with the ReNet sweeps
    as fused XLA loops (`renet_fused`, the form before the compiled sweep);
  * torch fp32: forward, loss, `backward()`, Adadelta (lr 1.0, rho 0.95,
    eps 1e-6) on the same batch; also timed alone first (--torch_alone_steps),
    before any of our steps has run, and "ours fp32 / torch fp32 alone" printed
    beside the round-robin's ratio;
  * torch bf16: the same under `torch.autocast('cpu', dtype=torch.bfloat16)`
    (loss in fp32). Autocast also runs the GRU's recurrence in bf16 (its
    output differs from fp32 by ~5e-3), where ours keeps it in fp32;
  * ours bf16 (VGG, ReNet projections and the compiled sweep's recurrent
    GEMMs, `compute_dtype`) with --ours_bf16 (and its XLA-sweep variant with
    --xla_sweep).
Also the FLOP floor (flop_floor.probe_runners: oneDNN matmul and convolution
rates, fp32 and bf16, timed in the same rounds as the variants) and each
variant's fraction of its dtype's floor (flop_floor.step_flops: VGG forward
+ 3x the trainable part). Batch 5 (train_step.BATCH; its loss divides by it), --height x --width,
random images and labels 0..11 (void trained as class 11, as gin/camvid.gin
does: `ReSeg.void_as_class = True`). The torch models start from our fp32
model's weights: the first step's losses must agree, and so must the
weights after one Adadelta step (printed), to rounding: the first step
moves a weight by up to sqrt(eps / (1 - rho)) = 4.5e-3, and by about its
gradient where that is smaller, so gradient rounding shows as ~1e-5. Prints s/step, the ratios
ours/torch, the CPU model and whether it has AMX; writes JSON to --output
(default benchmarks/results/torch_peer.json). --loops, --steps_per_loop and
--output are train_step.py's flags (--records_dir, also defined there, is
not used).

torch is optional: without it the script says how to install it and exits 0.
"""

import copy
import os
import time

import bench_output
import flop_floor
import numpy as np
import tensorflow as tf
import train_step
from absl import app, flags

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

flags.FLAGS.set_default(
    "output", os.path.join(_ROOT, "benchmarks", "results", "torch_peer.json"))
_CHECK = flags.DEFINE_bool(
    "check", True, "Compare the forward passes of ours and the torch copy "
    "(default true).")
_CHECK_CAMVID = flags.DEFINE_bool(
    "check_camvid", True, "With --check, also at the CamVid configuration, "
    "batch 1, 360x480 (default true).")
_TIME = flags.DEFINE_bool(
    "time", True, "Time the train steps round-robin (default true).")
_HEIGHT = flags.DEFINE_integer(
    "height", train_step.HEIGHT, "Timed image height (default 360).")
_WIDTH = flags.DEFINE_integer(
    "width", train_step.WIDTH, "Timed image width (default 480).")
_THREADS = flags.DEFINE_integer(
    "threads", 2, "TensorFlow intra-op threads and torch threads (default 2).")
_TORCH_THREADS = flags.DEFINE_integer(
    "torch_threads", None, "torch threads, if not --threads (default: "
    "--threads). torch's OpenMP threads wait for each other at every op: on "
    "cores shared with other processes 2 threads can be several times slower "
    "than 1; time on an idle machine.")
_OUTER_JIT = flags.DEFINE_bool(
    "outer_jit", False, "Our step with the trainer's outer XLA function "
    "(default false, the CPU default).")
_XLA_SWEEP = flags.DEFINE_bool(
    "xla_sweep", False, "Also time our step(s) with the fused XLA sweep instead of "
    "the compiled one (default false).")
_OURS_BF16 = flags.DEFINE_bool(
    "ours_bf16", False, "Also time our bf16 step (default false).")
_TORCH_ALONE_STEPS = flags.DEFINE_integer(
    "torch_alone_steps", 2, "Before any of our steps has run, time this many torch "
    "fp32 steps on their own (after one warm-up step), as a check of the "
    "round-robin's torch figure: 0 skips it (default 2).")
_TORCH_BF16 = flags.DEFINE_bool(
    "torch_bf16", True, "Also time PyTorch's bf16 autocast step (default true; on a "
    "CPU without AMX or AVX512-BF16 it runs in software, about 60 s a step on an "
    "AVX2-only AMD EPYC).")

# Model gin files checked small: (name, gin file).
SMALL_CHECKS = (
    ("camvid", "gin/model/camvid.gin"),
    ("camvid_paper (independent, vertical first)", "gin/model/camvid_paper.gin"),
    ("horse_no_vgg (no VGG, 2x2 patches)", "gin/model/horse_no_vgg.gin"),
)
SMALL_BINDINGS = ("ReSeg.renet_units = (8, 6)", "ReSeg.upsample_filters = (5, 4)")
SMALL_SHAPE = (1, 40, 48)
CAMVID_SHAPE = (1, 360, 480)


def check(torch_reseg, name, gin_file, bindings, shape, seed=0):
  """Forward agreement of our model and its torch copy (see the docstring)."""
  ours = bench_output.ours_from_gin(gin_file, bindings, seed)
  theirs = torch_reseg.build_from(ours)
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (*shape, 3)).astype(np.uint8)
  result = {"name": name, "gin_file": gin_file, "bindings": list(bindings)}
  result["logits"] = torch_reseg.compare_forward(ours, theirs, images)
  features = np.asarray(ours.features(images))
  result["renet_normal_input"] = torch_reseg.compare_renet(
      ours, theirs, rng.standard_normal(features.shape).astype(np.float32))
  logits, renet = result["logits"], result["renet_normal_input"]
  print(f"{name}, {'x'.join(map(str, logits['shape']))}: logits max abs "
        f"difference {logits['max_abs_difference']:.2e} (largest logit "
        f"{logits['max_abs_value']:.3g}, relative {logits['relative_difference']:.1e}), "
        f"argmax agreement {100 * logits['argmax_agreement']:.4f}%; ReNet stack on "
        f"N(0, 1) features: max abs difference {renet['max_abs_difference']:.2e} "
        f"(largest {renet['max_abs_value']:.3g})", flush=True)
  return result


def torch_runner(torch, torch_reseg, model, images, labels, void_class, bf16):
  """`run(steps) -> mean loss` of the torch train step (see the docstring)."""
  optimizer = torch_reseg.adadelta(model)
  model.train()

  def step():
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
      logits = model(images)
    loss = torch_reseg.pixel_cross_entropy(logits, labels, void_class)
    loss.backward()
    optimizer.step()
    return loss.item()

  return lambda steps: sum(step() for _ in range(steps)) / steps


def time_torch_alone(run, steps):
  """Median s/step of `steps` torch steps (after a warm-up) while nothing of
  ours has run yet: were it much shorter than torch's step in the rounds,
  sharing the process with our steps would be slowing torch down (on the
  AMD EPYC with AVX2 the two agreed: docs/performance.md)."""
  if not steps:
    return None
  seconds, _ = bench_output.median_time(lambda: run(1), warmup=1, repeats=steps)
  print(f"torch fp32 alone, before any of our steps: {seconds:.3f} s/step "
        f"(median of {steps})", flush=True)
  return seconds


def ours_runner(loop, iterator):
  """`run(steps) -> mean loss` of our train loop (benchmarks/train_step.py)."""
  return lambda steps: float(loop(iterator, tf.constant(steps)))


OURS_FRONT_END, TORCH_FRONT_END = "ours front end fp32", "torch front end fp32"


def _torch_features(torch, model, images):
  with torch.inference_mode():
    return model.features(images).numel()


def timing(torch, torch_reseg):
  """The timing table (see the module docstring)."""
  batch, height, width = train_step.BATCH, _HEIGHT.value, _WIDTH.value
  data = train_step.random_batch(height, width)
  images, labels = data["image"], data["label"]

  runners, first_losses = {}, {}
  candidates = [("ours fp32", "float32", "auto")]
  if _OURS_BF16.value:
    candidates.append(("ours bf16", "bfloat16", "auto"))
  if _XLA_SWEEP.value:
    candidates += [(f"{name} XLA sweep", dtype, "fused") for name, dtype, _ in candidates]
  nets = {}
  for name, dtype, sweep in candidates:
    strategy, net, loop = train_step.build(dtype, _OUTER_JIT.value, sweep)
    iterator = iter(strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors(data).repeat()))
    nets[name] = net
    runners[name] = ours_runner(loop, iterator)
  ours = nets["ours fp32"]
  initial = torch_reseg.state_from_ours(ours)
  torch_fp32 = torch_reseg.build_from(ours)
  void_class = ours.num_classes if ours.void_as_class else None
  x, y = torch.from_numpy(images), torch.from_numpy(labels)
  runners["torch fp32"] = torch_runner(torch, torch_reseg, torch_fp32, x, y,
                                       void_class, bf16=False)
  torch_alone = time_torch_alone(  # On a copy: the agreement check needs fresh weights.
      torch_runner(torch, torch_reseg, copy.deepcopy(torch_fp32), x, y, void_class,
                   bf16=False), _TORCH_ALONE_STEPS.value)
  if _TORCH_BF16.value:
    runners["torch bf16 autocast"] = torch_runner(torch, torch_reseg,
                                                  copy.deepcopy(torch_fp32), x, y,
                                                  void_class, bf16=True)
  for name, run in runners.items():  # Warm-up (our compilation): one step each.
    start = time.perf_counter()
    first_losses[name] = run(1)
    print(f"{name}: first step {time.perf_counter() - start:.1f} s (warm-up), "
          f"loss {first_losses[name]:.6g}", flush=True)
  # The frozen front end alone (same VGG, same oneDNN convolutions in both
  # frameworks), timed in the same rounds: the part of each step that no
  # recurrent-loop work can change.
  ours_front_end = tf.function(ours.features)
  tf_images = tf.constant(images)
  runners[OURS_FRONT_END] = lambda steps: [
      bench_output.one_value(ours_front_end(tf_images)) for _ in range(steps)][-1]
  runners[TORCH_FRONT_END] = lambda steps: [
      _torch_features(torch, torch_fp32, x) for _ in range(steps)][-1]
  for name in (OURS_FRONT_END, TORCH_FRONT_END):
    runners[name](1)
  after = torch_reseg.parameter_differences(ours, torch_fp32)
  update = max(float((v - initial[k]).abs().max())
               for k, v in torch_reseg.state_from_ours(ours).items())
  loss_difference = abs(first_losses["ours fp32"] - first_losses["torch fp32"])
  worst = max(after, key=after.get)
  print(f"first step, ours fp32 vs torch fp32: loss relative difference "
        f"{loss_difference / abs(first_losses['ours fp32']):.1e}; after one Adadelta "
        f"step the weights differ by at most {after[worst]:.2e} ({worst}; "
        f"largest update {update:.2e})", flush=True)

  rates, seconds = flop_floor.rates_from_seconds(bench_output.time_round_robin(
      {**runners, **flop_floor.probe_runners()}, train_step._LOOPS.value,
      train_step._STEPS_PER_LOOP.value))
  print(f"FLOP floor in the same rounds: {flop_floor.format_rates(rates)}", flush=True)
  flops = flop_floor.step_flops(ours, height, width, batch)
  front_end_flops = batch * flop_floor.vgg_flops(height, width)
  floor = {name: flop_floor.floor_fraction(
               front_end_flops if "front end" in name else flops, s, rates,
               "bfloat16" if "bf16" in name else "float32")
           for name, s in seconds.items()}
  print(f"\nbatch {batch}, {height}x{width}, {flops / 1e9:.0f} GFLOP per step, median "
        f"of {train_step._LOOPS.value} round-robin loops of "
        f"{train_step._STEPS_PER_LOOP.value} steps:")
  print(f"{'variant':26} {'s/step':>8} {'images/s':>9} {'of floor':>9}")
  for name, s in seconds.items():
    print(f"{name:26} {s:8.3f} {batch / s:9.2f} {100 * floor[name]:8.0f}%")
  ratios = {"ours fp32 / torch fp32": seconds["ours fp32"] / seconds["torch fp32"]}
  if torch_alone:
    ratios["ours fp32 / torch fp32 alone"] = seconds["ours fp32"] / torch_alone
  for name in ("ours fp32", "ours bf16"):
    if name in seconds and "torch bf16 autocast" in seconds:
      ratios[f"{name} / torch bf16 autocast"] = (
          seconds[name] / seconds["torch bf16 autocast"])
  if "ours bf16" in seconds:
    ratios["ours bf16 speed-up over ours fp32"] = seconds["ours fp32"] / seconds["ours bf16"]
  for name in ("ours fp32", "ours bf16"):
    if f"{name} XLA sweep" in seconds:
      ratios[f"{name} XLA sweep / {name}"] = seconds[f"{name} XLA sweep"] / seconds[name]
  for name, r in ratios.items():
    print(f"{name}: {r:.2f}")
  shares = {"ours": seconds[OURS_FRONT_END] / seconds["ours fp32"],
            "torch": seconds[TORCH_FRONT_END] / seconds["torch fp32"]}
  print(f"frozen front end's share of the fp32 step: ours {100 * shares['ours']:.0f}%, "
        f"torch {100 * shares['torch']:.0f}%; with it, ours / torch fp32 cannot go "
        f"below {seconds[OURS_FRONT_END] / seconds['torch fp32']:.2f}")
  return {"batch": batch, "height": height, "width": width,
          "loops": train_step._LOOPS.value,
          "steps_per_loop": train_step._STEPS_PER_LOOP.value,
          "outer_jit": _OUTER_JIT.value, "first_step_loss": first_losses,
          "weights_after_one_step_max_abs_difference": after,
          "largest_first_update": update, "step_seconds": seconds,
          "ratios": ratios, "gflop_per_step": flops / 1e9, "floor_gflops": rates,
          "fraction_of_floor": floor, "front_end_share": shares,
          "torch_fp32_alone_seconds": torch_alone}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  torch = bench_output.import_torch()
  if torch is None:
    return
  import torch_reseg

  tf.get_logger().setLevel("ERROR")  # Retracing warnings of the fused loops.
  results = bench_output.set_threads(torch, _THREADS.value,
                                     _TORCH_THREADS.value or _THREADS.value)
  results["load_average"] = os.getloadavg()
  if _CHECK.value:
    results["checks"] = [
        check(torch_reseg, f"{name}, small", gin_file, SMALL_BINDINGS, SMALL_SHAPE)
        for name, gin_file in SMALL_CHECKS]
    if _CHECK_CAMVID.value:
      results["checks"].append(
          check(torch_reseg, "camvid", "gin/model/camvid.gin", (), CAMVID_SHAPE))
  if _TIME.value:
    results["timing"] = timing(torch, torch_reseg)
  bench_output.write_json(flags.FLAGS.output, results)


if __name__ == "__main__":
  app.run(main)
