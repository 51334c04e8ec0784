r"""Times one ReNet layer (GRU, horizontal_first) against Keras and PyTorch.

COMMAND:
  python benchmarks/renet_sweep.py                 # full run, ~10-15 min
  python benchmarks/renet_sweep.py --quick         # smoke run, ~1 min

For each shape (CamVid: batch 5, 90x120x256, U = 100; small: batch 8,
64x64x64, U = 64) it times the forward pass and forward+backward (gradients
w.r.t. the input and every weight) of:
  * ours: `reseg_tf.model.renet.ReNetLayer`, both bidirectional modes, each
    sweep form of --forms ('compiled': the C++ sweep kernel, big matmuls in
    oneDNN; 'fused': custom-gradient loops compiled by XLA, big matmuls in
    oneDNN; 'scan': autodiff through tf.scan, the whole step compiled by
    XLA), float32 and bf16 (`compute_dtype`);
  * keras: two `Bidirectional(GRU(reset_after=True, return_sequences=True))`
    on folded tensors (rows, then columns), in a tf.function;
  * torch: two `torch.nn.GRU(bidirectional=True)`, when `import torch` works.
Inputs are fresh random tensors for every run. Each candidate runs once to
compile (compile time = first call - median); then all candidates of a shape
run in turn, --repeats rounds, so that load from other processes on the
machine hits them alike; the median is reported. The FLOP floor is the layer's matmul FLOPs divided by the fp32 matmul
rate measured in the same run (oneDNN, 2048^3). Keras and torch read the input
in both directions (our 'independent' mode): compare against that row.
Writes JSON to --output.

The machine's 2 cores may be shared: the JSON records the load average, and a
floor fraction above 100% means the matmul rate was measured while another
process was running. torch suffers most from such load (its threads spin).
"""

import functools
import json
import os
import platform
import statistics
import time

from absl import app, flags

_OUTPUT = flags.DEFINE_string(
    "output", "benchmarks/results/renet_sweep.json", "Where to write the JSON "
    "results (relative to the working folder).")
_QUICK = flags.DEFINE_bool(
    "quick", False, "Smoke run: 3 repeats, the small shape only (default "
    "false).")
_REPEATS = flags.DEFINE_integer(
    "repeats", 10, "Timed runs per measurement, of which the median is "
    "reported (default 10; 3 with --quick).")
_INTRA_THREADS = flags.DEFINE_integer(
    "intra_threads", 2, "TF intra-op threads, and torch's (default 2).")
_INTER_THREADS = flags.DEFINE_integer(
    "inter_threads", 2, "TF inter-op threads (default 2).")
_SHAPES = flags.DEFINE_list(
    "shapes", ["camvid", "small"], "Shapes to time (default camvid,small; "
    "small only with --quick).")
_MODES = flags.DEFINE_list(
    "modes", ["independent", "stacked"], "Bidirectional modes (default "
    "independent,stacked).")
_FORMS = flags.DEFINE_list(
    "forms", ["compiled", "fused", "scan"], "Our sweep forms (default "
    "compiled,fused,scan).")
_DTYPES = flags.DEFINE_list(
    "dtypes", ["float32", "bfloat16"], "Our compute dtypes (default "
    "float32,bfloat16).")
_KERAS = flags.DEFINE_bool(
    "keras", True, "Time the Keras baseline (default true).")
_TORCH = flags.DEFINE_bool(
    "torch", True, "Time the torch baseline if `import torch` works (default "
    "true).")

# name: (batch, height, width, channels, units)
SHAPES = {"camvid": (5, 90, 120, 256, 100), "small": (8, 64, 64, 64, 64)}


def layer_flops(b, h, w, c, u, mode):
  """Forward matmul FLOPs of one GRU ReNet layer (2 sweeps, 2 directions)."""
  pixels, g = b * h * w, 3 * u
  total = 0
  for c_in in (c, 2 * u):
    backward_in = u if mode == "stacked" else c_in
    total += 2 * pixels * g * (c_in + backward_in)  # Input projections.
    total += 2 * 2 * pixels * g * u  # h @ w_h, both directions.
  return total


def median_time(fn, make_inputs, repeats):
  """(median seconds, first-call seconds) with fresh inputs every call."""
  timer = Timer(fn, make_inputs)
  for _ in range(repeats):
    timer.run()
  return timer.median, timer.first


class Timer:
  """Times `fn(*make_inputs())`; the first call (compilation) apart."""

  def __init__(self, fn, make_inputs):
    self.fn, self.make_inputs = fn, make_inputs
    self.first = self._once()
    self.times = []

  def _once(self):
    inputs = self.make_inputs()
    start = time.perf_counter()
    self.fn(*inputs)
    return time.perf_counter() - start

  def run(self):
    self.times.append(self._once())

  @property
  def median(self):
    return statistics.median(self.times)


def matmul_gflops(tf, dtype, n=2048, repeats=10):
  a = tf.cast(tf.random.normal([n, n]), dtype)
  bmat = tf.cast(tf.random.normal([n, n]), dtype)
  fn = tf.function(lambda a, b: tf.reduce_sum(tf.cast(tf.matmul(a, b),
                                                      tf.float32)))
  seconds, _ = median_time(fn, lambda: (a, bmat), repeats)
  return 2 * n**3 / seconds / 1e9


def tf_step(tf, layer_fn, variables, backward, jit):
  """Forward, or gradients w.r.t. input and variables, as a tf.function."""

  def forward(x):
    return layer_fn(x)

  def grads(x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = tf.reduce_sum(layer_fn(x))
    return tape.gradient(loss, [x] + list(variables))

  return tf.function(grads if backward else forward, jit_compile=jit)


def keras_layer_fn(tf, keras, c, u):
  """Both sweeps as Keras Bidirectional GRUs on folded tensors."""
  rnns = [keras.layers.Bidirectional(
      keras.layers.GRU(u, reset_after=True, return_sequences=True))
          for _ in range(2)]
  rnns[0].build((None, None, c))
  rnns[1].build((None, None, 2 * u))

  def fn(x):
    b, h, w, _ = x.shape
    y = rnns[0](tf.reshape(x, [b * h, w, c]))  # Rows: [B*H, W, 2U].
    y = tf.transpose(tf.reshape(y, [b, h, w, 2 * u]), [0, 2, 1, 3])
    y = rnns[1](tf.reshape(y, [b * w, h, 2 * u]))  # Columns: [B*W, H, 2U].
    return tf.transpose(tf.reshape(y, [b, w, h, 2 * u]), [0, 2, 1, 3])

  variables = rnns[0].trainable_variables + rnns[1].trainable_variables
  return fn, variables


def torch_steps(shape):
  """{'forward': (fn, make_inputs), 'forward_backward': ...}, or None."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  torch.set_num_threads(_INTRA_THREADS.value)
  b, h, w, c, u = shape
  rnn1 = torch.nn.GRU(c, u, batch_first=True, bidirectional=True)
  rnn2 = torch.nn.GRU(2 * u, u, batch_first=True, bidirectional=True)

  def layer(x):
    y, _ = rnn1(x.reshape(b * h, w, c))  # [B*H, W, 2U]
    y = y.reshape(b, h, w, 2 * u).permute(0, 2, 1, 3).reshape(b * w, h, 2 * u)
    y, _ = rnn2(y)  # [B*W, H, 2U]
    return y.reshape(b, w, h, 2 * u).permute(0, 2, 1, 3)

  def forward(x):
    with torch.no_grad():
      return layer(x)

  def forward_backward(x):
    layer(x).sum().backward()

  def make_inputs(requires_grad):
    return lambda: (torch.randn(b, h, w, c, requires_grad=requires_grad),)

  return dict(forward=(forward, make_inputs(False)),
              forward_backward=(forward_backward, make_inputs(True)),
              version=torch.__version__)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import keras  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from reseg_tf.model import renet  # pylint: disable=g-import-not-at-top

  tf.get_logger().setLevel("ERROR")  # Per-layer retracing warnings.
  tf.config.threading.set_intra_op_parallelism_threads(_INTRA_THREADS.value)
  tf.config.threading.set_inter_op_parallelism_threads(_INTER_THREADS.value)
  shapes = ["small"] if _QUICK.value else _SHAPES.value
  repeats = 3 if _QUICK.value else _REPEATS.value

  gflops = {d: matmul_gflops(tf, getattr(tf, d), repeats=repeats)
            for d in ("float32", "bfloat16")}
  print(f'matmul 2048^3: fp32 {gflops["float32"]:.0f} GFLOP/s, '
        f'bf16 {gflops["bfloat16"]:.0f} GFLOP/s', flush=True)
  results = []
  for shape_name in shapes:
    b, h, w, c, u = shape = SHAPES[shape_name]

    def make_x(b=b, h=h, w=w, c=c):
      return (tf.random.normal([b, h, w, c]),)

    # (row, fn, make_inputs): every candidate of a shape is timed in turn,
    # round after round, so that load from other processes hits all alike.
    candidates = []
    for mode in _MODES.value:
      outputs = {}
      for impl in _FORMS.value:
        for dtype in _DTYPES.value:
          tf.random.set_seed(0)
          layer = renet.ReNetLayer(c, u, bidirectional_mode=mode,
                                   compute_dtype=getattr(tf, dtype))
          jit = impl == "scan"  # The other forms compile (or are) their loops.
          layer_fn = functools.partial(layer, form=impl)
          x_check = tf.random.stateless_normal([b, h, w, c], [1, 2])
          outputs[impl, dtype] = tf.function(layer_fn, jit_compile=jit)(x_check)
          for backward in (False, True):
            candidates.append((
                dict(name=f"ours-{impl}", mode=mode, dtype=dtype,
                     backward=backward),
                tf_step(tf, layer_fn, layer.trainable_variables, backward, jit),
                make_x))
      for impl in _FORMS.value:
        if (impl, "bfloat16") in outputs and (impl, "float32") in outputs:
          ref = outputs[impl, "float32"]
          err = tf.abs(outputs[impl, "bfloat16"] - ref)
          results.append(dict(
              shape=shape_name, name=f"ours-{impl}", mode=mode,
              bf16_max_abs_error=float(tf.reduce_max(err)),
              bf16_rel_error=float(tf.norm(err) / tf.norm(ref))))
          print(f'{shape_name}: bf16 vs fp32 ({impl}, {mode}): max abs '
                f'{results[-1]["bf16_max_abs_error"]:.2e}, relative (L2) '
                f'{results[-1]["bf16_rel_error"]:.2e}', flush=True)
    if _KERAS.value:
      layer_fn, variables = keras_layer_fn(tf, keras, c, u)
      for jit in (False, True):
        for backward in (False, True):
          candidates.append((
              dict(name="keras-jit" if jit else "keras", mode="independent",
                   dtype="float32", backward=backward),
              tf_step(tf, layer_fn, variables, backward, jit), make_x))
    steps = torch_steps(shape) if _TORCH.value else None
    if _TORCH.value and steps is None:
      print("torch not importable: skipped")
    if steps:
      for backward in (False, True):
        fn, make_inputs = steps["forward_backward" if backward else "forward"]
        candidates.append((
            dict(name="torch", mode="independent", dtype="float32",
                 backward=backward, version=steps["version"]),
            fn, make_inputs))

    timers = []
    for _, fn, make_inputs in candidates:
      timers.append(Timer(fn, make_inputs))  # Warm-up: compiles.
    for _ in range(repeats):
      for timer in timers:
        timer.run()
    for (row, _, _), timer in zip(candidates, timers):
      row = dict(row)
      backward = row.pop("backward")
      flops = layer_flops(b, h, w, c, u, row["mode"]) * (3 if backward else 1)
      row.update(
          shape=shape_name, median_s=timer.median, first_call_s=timer.first,
          compile_s=max(timer.first - timer.median, 0.0),
          min_s=min(timer.times), max_s=max(timer.times),
          flops=flops,
          floor_fraction=flops / (gflops["float32"] * 1e9) / timer.median)
      row["pass"] = "forward_backward" if backward else "forward"
      results.append(row)
      print(f'{shape_name:7s} {row["name"]:10s} {row["mode"]:11s} '
            f'{row["dtype"]:8s} {row["pass"]:16s} {timer.median:7.3f} s '
            f'(min {row["min_s"]:.3f}, compile {row["compile_s"]:5.2f} s) '
            f'{100 * row["floor_fraction"]:5.1f}% of floor', flush=True)

  ratios = summarize(results)
  os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)), exist_ok=True)
  with open(_OUTPUT.value, "w") as f:
    json.dump(dict(
        machine=dict(platform=platform.platform(), cpus=os.cpu_count(),
                     load_average=os.getloadavg(),
                     tensorflow=tf.__version__, keras=keras.__version__,
                     intra_threads=_INTRA_THREADS.value,
                     inter_threads=_INTER_THREADS.value),
        matmul_gflops=gflops, repeats=repeats, results=results,
        ratios=ratios), f, indent=1)
  print(f"wrote {_OUTPUT.value}")


def summarize(results):
  """Ratios ours/keras and ours/torch (independent mode, the same maths)."""
  timed = {(r["shape"], r["name"], r["mode"], r["dtype"], r["pass"]):
           r["median_s"] for r in results if "median_s" in r}
  ratios = []
  for (shape, name, mode, dtype, pass_name), seconds in sorted(timed.items()):
    if not name.startswith("ours") or mode != "independent":
      continue
    row = dict(shape=shape, name=name, dtype=dtype, pass_=pass_name)
    keras_times = [timed.get((shape, k, "independent", "float32", pass_name))
                   for k in ("keras", "keras-jit")]
    keras_times = [t for t in keras_times if t]
    if keras_times:
      row["ours_over_keras"] = seconds / min(keras_times)
    torch_time = timed.get((shape, "torch", "independent", "float32",
                            pass_name))
    if torch_time:
      row["ours_over_torch"] = seconds / torch_time
    row["pass"] = row.pop("pass_")
    ratios.append(row)
    print(f"{shape:7s} {name:12s} {dtype:8s} {pass_name:16s} "
          + " ".join(f"{k} {v:.2f}" for k, v in row.items()
                     if k.startswith("ours_")))
  return ratios


if __name__ == "__main__":
  app.run(main)
