"""The FLOP floor: how fast this machine can run the FLOPs of a ReSeg step.

A variant's *fraction of the floor* is its FLOPs (matmuls and convolutions
only) divided by its time and by the fastest rate oneDNN reaches on this
machine, in the same run, for its dtype: the better of a 2048^3 matmul and a
VGG conv3 layer at CamVid size. torch_peer.py and torch_inference.py time
those two kernels in the same round-robin rounds as the variants and take
the median, as for the variants (`probe_runners`); train_step.py takes the
best of five calls before its variants (`floor_rates`). The fraction shows
how much headroom a variant has left; a variant whose convolutions run
better than the probe's (larger images, better oneDNN kernels) can pass
100%. Shared by train_step.py, torch_peer.py and torch_inference.py (no
flags here, so any benchmark can import it).
"""

import time

import bench_output
import numpy as np
import tensorflow as tf

from reseg_tf.model import vgg_weights

_MATMUL_FLOPS = 2 * 2048**3
_CONV_FLOPS = 2 * 90 * 120 * 9 * 256 * 256


def _matmul_probe(dtype):
  """`(fn, x)`: a 2048^3 matmul in `dtype` (`_MATMUL_FLOPS` a call)."""
  a = tf.cast(tf.random.normal([2048, 2048]), dtype)
  return tf.function(lambda x: tf.matmul(x, x)), a


def _conv_probe(dtype):
  """`(fn, x)`: a VGG conv3 layer at CamVid size (3x3, 256 -> 256 channels,
  one 90x120 image) in `dtype` (`_CONV_FLOPS` a call)."""
  x = tf.cast(tf.random.normal([1, 90, 120, 256]), dtype)
  kernel = tf.cast(tf.random.normal([3, 3, 256, 256]), dtype)
  conv = tf.function(lambda x: tf.nn.conv2d(x, kernel, 1, "SAME"))
  return conv, x


_PROBES = {"matmul": _matmul_probe, "conv": _conv_probe}
_PROBE_FLOPS = {"matmul": _MATMUL_FLOPS, "conv": _CONV_FLOPS}
_DTYPES = ("float32", "bfloat16")
# Calls per timed step of a probe runner: a probe call takes 10-100 ms, a
# variant's step about a second, so one call alone would be timed too noisily.
_PROBE_CALLS = 4


def _best_gflops(fn, x, flops, repeats):
  bench_output.one_value(fn(x))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    bench_output.one_value(fn(x))
    times.append(time.perf_counter() - start)
  return flops / min(times) / 1e9


def matmul_gflops(dtype="float32", repeats=5):
  """oneDNN's rate on a 2048^3 matmul in `dtype` (best of `repeats`)."""
  return _best_gflops(*_matmul_probe(dtype), _MATMUL_FLOPS, repeats)


def conv_gflops(dtype="float32", repeats=5):
  """oneDNN's rate on a VGG conv3 layer at CamVid size in `dtype` (best of
  `repeats`)."""
  return _best_gflops(*_conv_probe(dtype), _CONV_FLOPS, repeats)


def _with_floor(rates):
  for r in rates.values():
    r["floor"] = max(r["matmul"], r["conv"])
  return rates


def floor_rates():
  """GFLOP/s of the fastest of matmul and convolution, per dtype: the FLOP
  floor of a step is its FLOPs at this rate. Timed now, apart from the
  variants: see `probe_runners` for the floor timed in the same rounds."""
  return _with_floor({dtype: {"matmul": matmul_gflops(dtype), "conv": conv_gflops(dtype)}
                      for dtype in _DTYPES})


def probe_runners():
  """name -> `run(steps)`: the floor's kernels as runners for
  `bench_output.time_round_robin`, beside the variants. A shared machine's
  speed drifts by up to 2x within minutes, so a floor timed before or after
  the variants can put the same code at 70% or 100% of it; timed in the same
  rounds, drift hits the floor and the variants alike."""
  runners = {}
  for dtype in _DTYPES:
    for kind, probe in _PROBES.items():
      fn, x = probe(dtype)
      bench_output.one_value(fn(x))  # Traced and warmed outside the timed rounds.
      runners[f"floor {dtype} {kind}"] = (
          lambda steps, fn=fn, x=x: [bench_output.one_value(fn(x))
                                     for _ in range(steps * _PROBE_CALLS)][-1])
  return runners


def rates_from_seconds(seconds):
  """The floor rates (as `floor_rates`) from the median seconds per step of
  `probe_runners`' runners, and `seconds` without them."""
  rates = {dtype: {kind: _PROBE_FLOPS[kind] * _PROBE_CALLS / seconds[f"floor {dtype} {kind}"] / 1e9
                   for kind in _PROBES} for dtype in _DTYPES}
  variants = {name: s for name, s in seconds.items() if not name.startswith("floor ")}
  return _with_floor(rates), variants


def format_rates(rates):
  return "; ".join(f"{dtype} matmul {r['matmul']:.0f}, conv {r['conv']:.0f} GFLOP/s"
                   for dtype, r in rates.items())


def floor_fraction(flops, seconds, rates, dtype):
  """The fraction of the `dtype` FLOP floor a step of `flops` in `seconds` reaches."""
  return flops / 1e9 / seconds / rates[dtype]["floor"]


def _kernel(layer):
  return next(v for v in layer.trainable_variables if len(v.shape) > 1)


def _front_end(height, width):
  """`(flops, h, w)`: the VGG front end's forward FLOPs on one image and the
  size of its output."""
  h, w, flops = height, width, 0
  for spec in vgg_weights.ARCHITECTURE:  # (name, c_in, c_out), None for a max-pool.
    if spec is None:
      h, w = h // 2, w // 2
    else:
      flops += 2 * h * w * 9 * spec[1] * spec[2]
  return flops, h, w


def vgg_flops(height, width):
  """FLOPs of the VGG front end's forward pass on one image."""
  return _front_end(height, width)[0]


def trainable_flops(net, height, width):
  """FLOPs of the trainable part's forward pass (ReNet, head) on one image:
  each ReNet layer on its own patch grid (the front end's output cut into
  its patches), the head from the last grid back to the image."""
  h, w = _front_end(height, width)[1:] if net.vgg else (height, width)
  flops = 0
  for layer in net.renet_layers:
    h, w = -(-h // layer.patch_size[0]), -(-w // layer.patch_size[1])
    for v in layer.trainable_variables:
      if len(v.shape) == 2:  # w_x [C, 3U] and w_h [U, 3U]: one matmul each per cell.
        flops += 2 * h * w * v.shape[0] * v.shape[1]
  pixels = h * w
  for layer in net.upsample_layers:
    # Stride = filter size: every input pixel meets the whole kernel once.
    kernel = _kernel(layer)
    flops += 2 * pixels * int(np.prod(kernel.shape))
    pixels *= kernel.shape[0] * kernel.shape[1]
  return flops + 2 * height * width * int(np.prod(_kernel(net.classifier).shape))


def front_end_flops(net, height, width):
  """The frozen VGG's forward FLOPs on one image; 0 without a VGG."""
  return vgg_flops(height, width) if net.vgg else 0


def forward_flops(net, height, width):
  """FLOPs of the whole forward pass (inference) on one image."""
  return front_end_flops(net, height, width) + trainable_flops(net, height, width)


def step_flops(net, height, width, batch):
  """FLOPs of one train step on `batch` images: the forward pass, then the
  trainable part twice more (gradients w.r.t. its inputs and its weights);
  the frozen VGG only forward."""
  return batch * (front_end_flops(net, height, width) + 3 * trainable_flops(net, height, width))
