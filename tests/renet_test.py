"""Tests for the ReNet layer and its lowerings (cells, sweep, renet, the
fused and compiled recurrences) against NumPy and against each other."""

import itertools
import os

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from reseg_tf.model import cells, compiled_sweep, lowering, renet, renet_fused, sweep

_MODES = ("independent", "stacked")
_ORDERS = ("horizontal_first", "vertical_first")


# ----------------------------------------------------------------------------
# NumPy float64 reference.


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def np_gru(x, w_x, w_h, b):
  """`[T, N, C]` -> `[T, N, U]`, GRU as in the original code."""
  u_size = w_h.shape[0]
  h = np.zeros([x.shape[1], u_size])
  out = []
  for x_t in x:
    gx, gh = x_t @ w_x + b, h @ w_h
    r = _sigmoid(gx[:, :u_size] + gh[:, :u_size])
    u = _sigmoid(gx[:, u_size:2 * u_size] + gh[:, u_size:2 * u_size])
    c = np.tanh(gx[:, 2 * u_size:] + r * gh[:, 2 * u_size:])
    h = (1 - u) * h + u * c
    out.append(h)
  return np.stack(out)


def np_lstm(x, w_x, w_h, b):
  """`[T, N, C]` -> `[T, N, U]`, LSTM with gate order (i, f, c, o)."""
  u_size = w_h.shape[0]
  h = np.zeros([x.shape[1], u_size])
  cell = np.zeros_like(h)
  out = []
  for x_t in x:
    i, f, c, o = np.split(x_t @ w_x + h @ w_h + b, 4, axis=-1)
    cell = _sigmoid(f) * cell + _sigmoid(i) * np.tanh(c)
    h = _sigmoid(o) * np.tanh(cell)
    out.append(h)
  return np.stack(out)


def np_sweep(x, axis, fw, bw, core, stacked):
  """`[B, H, W, C]` -> `[B, H, W, 2U]`, bidirectional along `axis`."""
  rnn = np_gru if core == "gru" else np_lstm
  xt = np.moveaxis(x, axis, 0)  # [T, B, L, C]
  t, b, lines, c = xt.shape
  xt = xt.reshape(t, b * lines, c)
  h_fw = rnn(xt, *fw)
  h_bw = rnn((h_fw if stacked else xt)[::-1], *bw)[::-1]
  out = np.concatenate([h_fw, h_bw], -1).reshape(t, b, lines, -1)
  return np.moveaxis(out, 0, axis)


def np_patches(x, ph, pw):
  b, h, w, c = x.shape
  hp, wp = -(-h // ph), -(-w // pw)
  x = np.pad(x, [(0, 0), (0, hp * ph - h), (0, wp * pw - w), (0, 0)])
  x = x.reshape(b, hp, ph, wp, pw, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, hp, wp, ph * pw * c)


def np_weights(sweep):
  return [[v.numpy().astype(np.float64) for v in core.weights]
          for core in (sweep.forward, sweep.backward)]


def np_renet(layer, x, core, order, mode):
  x = np_patches(x.astype(np.float64), *layer.patch_size)
  axes = (2, 1) if order == "horizontal_first" else (1, 2)
  for renet_sweep, axis in zip((layer.first_sweep, layer.second_sweep), axes):
    x = np_sweep(x, axis, *np_weights(renet_sweep), core, mode == "stacked")
  return x


# ----------------------------------------------------------------------------


def _randomize(module, seed, scale=0.5):
  """Replaces every variable by N(0, scale^2) values (biases included)."""
  rng = np.random.default_rng(seed)
  for v in module.variables:
    v.assign(rng.normal(0.0, scale, v.shape).astype(np.float32))


def _run(fn, execution, *args):
  if execution == "eager":
    return fn(*args)
  return tf.function(fn, jit_compile=execution == "jit")(*args)


def _layer_cases(cores=("gru", "lstm")):
  return [dict(testcase_name=f"{c}_{m}_{o}_{p[0]}x{p[1]}", core=c, mode=m,
               order=o, patch=p)
          for c, m, o, p in itertools.product(cores, _MODES, _ORDERS,
                                              ((1, 1), (2, 2)))]


class ReNetLayerTest(tf.test.TestCase, parameterized.TestCase):

  def setUp(self):
    super().setUp()
    tf.random.set_seed(0)

  def _layer(self, core="gru", mode="stacked", order="horizontal_first",
             patch=(1, 1), channels=3, units=4, **kwargs):
    layer = renet.ReNetLayer(channels, units, patch_size=patch, core=core,
                             sweep_order=order, bidirectional_mode=mode,
                             **kwargs)
    _randomize(layer, seed=1)
    return layer

  @parameterized.named_parameters(*_layer_cases())
  def test_layer_matches_numpy(self, core, mode, order, patch):
    layer = self._layer(core, mode, order, patch)
    x = np.random.default_rng(2).normal(size=[2, 5, 3, 3]).astype(np.float32)
    want = np_renet(layer, x, core, order, mode)
    self.assertEqual(want.shape, (2, 5 // patch[0] + (5 % patch[0] > 0),
                                  3 // patch[1] + (3 % patch[1] > 0), 8))
    forms = ("scan", "fused") if core == "gru" else ("scan",)
    cases = [*itertools.product(forms, ("eager", "function", "jit")),
             ("unrolled", "function"),  # The export form: traced once, never compiled.
             ("auto", "eager"), ("auto", "jit")]  # Compiled (where it loads), then fused.
    if core == "gru" and compiled_sweep.available():
      cases += [("compiled", "eager"), ("compiled", "function")]  # XLA cannot run it.
    for form, execution in cases:
      got = _run(lambda t, form=form: layer(t, form), execution, tf.constant(x))
      self.assertEqual(got.dtype, tf.float32)
      self.assertLess(np.abs(got.numpy() - want).max(), 1e-5,
                      msg=f"{form} {execution}")

  def test_gru_matches_keras_with_negated_update_gate(self):
    c, u, t, n = 3, 5, 7, 4
    core = renet.GRUCore(c, u)
    _randomize(core, seed=3)
    x = np.random.default_rng(4).normal(size=[n, t, c]).astype(np.float32)
    w_x, w_h, b = (v.numpy() for v in core.weights)
    keras_gru = keras.layers.GRU(u, reset_after=True, return_sequences=True)
    keras_gru.build((None, t, c))

    def keras_order(w):  # Ours (r, u, c) -> Keras (z, r, h) with z = -u.
      r_part, u_part, c_part = np.split(w, 3, axis=-1)
      return np.concatenate([-u_part, r_part, c_part], axis=-1)

    keras_gru.set_weights([keras_order(w_x), keras_order(w_h),
                           np.stack([keras_order(b), np.zeros_like(b)])])
    want = keras_gru(x).numpy()  # [N, T, U]
    gx = cells.project(tf.transpose(x, [1, 0, 2]), core.w_x) + core.b
    got = lowering.tf_scan("gru", gx[:, None], core.w_h[None])[:, 0]
    self.assertAllClose(tf.transpose(got, [1, 0, 2]), want, atol=1e-5)

  @parameterized.product(mode=_MODES, order=_ORDERS, form=("scan", "fused"))
  def test_xla_gradients_match_uncompiled(self, mode, order, form):
    layer = self._layer("gru", mode, order, patch=(2, 2))
    x = tf.random.normal([2, 5, 3, 3])
    w = tf.random.normal([2, 3, 2, 8])

    def grads(x):
      with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x, form) * w)
      return tape.gradient(loss, [x] + list(layer.trainable_variables))

    want = tf.function(grads)(x)
    got = tf.function(grads, jit_compile=True)(x)
    for g_want, g_got in zip(want, got):
      self.assertAllClose(g_got, g_want, atol=1e-5, rtol=1e-5)

  @parameterized.product(core_form=(("gru", "fused"), ("gru", "scan"),
                                    ("lstm", "scan")),
                         mode=_MODES, axis=(1, 2))
  def test_sweep_gradients_match_finite_differences(self, core_form, mode,
                                                    axis):
    core, form = core_form
    rng = np.random.default_rng(5)
    c, u = 2, 3
    g = (3 if core == "gru" else 4) * u
    c_bw = u if mode == "stacked" else c
    args = [rng.normal(size=s) for s in ([1, 2, 3, c], [c, g], [u, g], [g],
                                         [c_bw, g], [u, g], [g])]
    recurrence = (lowering.recurrence("scan", core, tf.zeros([1, 2, 3, c]))
                  if form == "scan" else renet_fused.recurrence)

    def f(x, *weights):
      out = sweep.bidirectional(x, axis, weights[:3], weights[3:], core,
                                mode == "stacked", recurrence)
      return tf.reduce_sum(tf.sin(out))  # A non-linear read of every output.

    # The scan form is traced once (the finite differences call it twice per
    # input entry); the fused form runs eagerly, as its gradient is defined for
    # eager execution and XLA, not for a graph outside XLA.
    theoretical, numerical = tf.test.compute_gradient(
        tf.function(f) if form == "scan" else f,
        [tf.constant(a, tf.float64) for a in args], delta=1e-6)
    for t, n in zip(theoretical, numerical):
      self.assertAllClose(t, n, atol=1e-7, rtol=1e-6)

  @parameterized.product(mode=_MODES, order=_ORDERS)
  def test_fused_gradients_match_scan(self, mode, order):
    layer = self._layer("gru", mode, order, patch=(2, 2))
    x = tf.random.normal([2, 5, 3, 3])
    w = tf.random.normal([2, 3, 2, 8])

    def grads(x, form):
      with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x, form) * w)
      return tape.gradient(loss, [x] + list(layer.trainable_variables))

    for g_fused, g_scan in zip(grads(x, "fused"), grads(x, "scan")):
      self.assertAllClose(g_fused, g_scan, atol=1e-5, rtol=1e-5)

  def test_unknown_batch_size(self):
    layer = self._layer("gru", "independent")
    x = tf.random.normal([2, 5, 3, 3])
    fn = tf.function(layer, input_signature=[
        tf.TensorSpec([None, 5, 3, 3], tf.float32)])
    self.assertAllClose(fn(x), layer(x), atol=1e-6)

  def test_patches_at_unknown_spatial_size(self):
    # Export signatures leave height and width unknown: 2x2 patches must
    # still pad and fold, with the same result as at a known size.
    x = tf.random.normal([1, 5, 7, 3])
    fn = tf.function(lambda t: sweep.extract_patches(t, (2, 2)), input_signature=[
        tf.TensorSpec([None, None, None, 3], tf.float32)])
    got = fn(x)
    self.assertEqual(got.shape, (1, 3, 4, 12))
    self.assertAllEqual(got, sweep.extract_patches(x, (2, 2)))

  @parameterized.product(mode=_MODES, order=_ORDERS,
                         core_form=(("gru", "auto"), ("gru", "fused"), ("gru", "scan"),
                                    ("lstm", "scan")))
  def test_every_output_depends_on_input_pixel_0_0(self, mode, order,
                                                  core_form):
    core, form = core_form
    layer = self._layer(core, mode, order)
    h, w = 3, 4
    # Batch element k probes output position k: images are independent, so
    # one backward pass gives d out[k, i_k, j_k] / d x[k, 0, 0] for every k.
    x = tf.random.normal([h * w, h, w, 3])
    probe = tf.reshape(tf.eye(h * w), [h * w, h, w, 1])
    probe *= tf.random.uniform([1, 1, 1, 8], 0.5, 1.0)
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = tf.reduce_sum(layer(x, form) * probe)
    grad_0_0 = tape.gradient(loss, x)[:, 0, 0, :]  # [H*W, C]
    self.assertAllGreater(tf.reduce_max(tf.abs(grad_0_0), axis=-1), 1e-6)

  def test_orthogonal_init_is_orthogonal_per_gate(self):
    for core, gates in (("gru", 3), ("lstm", 4)):
      layer = renet.ReNetLayer(3, 6, core=core, init="orthogonal")
      for w_h in [v for v in layer.variables if "w_h" in v.name]:
        for block in np.split(w_h.numpy(), gates, axis=1):
          self.assertAllClose(block.T @ block, np.eye(6), atol=1e-5)

  def test_orthogonal_init_keeps_its_random_stream(self):
    # Seeded runs (the published recipes) must start from the weights they
    # always started from: one normal draw a gate block, QR, sign fix.
    tf.random.set_seed(3)
    got = renet._recurrent_init("orthogonal", 5, 3)
    tf.random.set_seed(3)
    want = []
    for _ in range(3):
      q, r = np.linalg.qr(tf.random.normal([5, 5]).numpy())
      want.append(q * np.sign(np.diag(r))[None, :])
    self.assertAllClose(got, np.concatenate(want, axis=1), atol=1e-5)

  def test_normal_init_statistics(self):
    layer = renet.ReNetLayer(256, 100)
    w = layer.first_sweep.forward.w_x.numpy()
    self.assertNear(w.std(), 0.1, 0.002)
    self.assertAllEqual(layer.first_sweep.forward.b, np.zeros(300))

  def test_camvid_parameter_count_matches_original_code(self):
    # Original code: GRU with one bias per gate, stacked directions.
    layer1 = renet.ReNetLayer(256, 100)
    layer2 = renet.ReNetLayer(200, 100)
    def count(module):
      return sum(int(np.prod(v.shape)) for v in module.trainable_variables)
    self.assertEqual(count(layer1), 318_000)
    self.assertEqual(count(layer2), 301_200)
    # + 2x2 transposed convs 200->50, 50->50 and a 1x1 conv 50->12.
    head = (4 * 200 * 50 + 50) + (4 * 50 * 50 + 50) + (50 * 12 + 12)
    self.assertEqual(count(layer1) + count(layer2) + head, 669_912)
    self.assertEqual(layer1.output_channels, 200)
    self.assertEqual(layer1.first_sweep.backward.w_x.shape, (100, 300))
    independent = renet.ReNetLayer(256, 100, bidirectional_mode="independent")
    self.assertEqual(independent.first_sweep.backward.w_x.shape, (256, 300))

  def test_variable_names_are_short(self):
    layer = renet.ReNetLayer(3, 4, name="renet1")
    names = sorted(v.name for v in layer.variables)
    self.assertIn("renet1/first_sweep/forward/w_x:0", names)
    self.assertIn("renet1/second_sweep/backward/b:0", names)
    self.assertLen(names, 12)

  def test_checkpoint_round_trip(self):
    layer = self._layer(mode="independent")
    x = tf.random.normal([1, 3, 4, 3])
    path = tf.train.Checkpoint(layer=layer).write(
        os.path.join(self.get_temp_dir(), "ckpt"))
    other = renet.ReNetLayer(3, 4, bidirectional_mode="independent")
    self.assertNotAllClose(other(x), layer(x))
    tf.train.Checkpoint(layer=other).read(path).assert_consumed()
    for a, b in zip(layer.variables, other.variables):
      self.assertAllEqual(a, b)
    self.assertAllEqual(other(x), layer(x))

  @parameterized.parameters(*_MODES)
  def test_bfloat16_projections_stay_close_to_float32(self, mode):
    kwargs = dict(channels=16, units=8, mode=mode)
    layers = [self._layer(compute_dtype=dtype, **kwargs)
              for dtype in (tf.float32, tf.bfloat16)]  # Same weights.
    x = tf.random.normal([2, 6, 5, 16])
    outputs, grads = [], []
    for layer in layers:
      with tf.GradientTape() as tape:
        tape.watch(x)
        outputs.append(layer(x))
        loss = tf.reduce_sum(tf.sin(outputs[-1]))
      grads.append(tape.gradient(loss, [x] + list(layer.trainable_variables)))
    self.assertEqual(outputs[1].dtype, tf.float32)
    error = float(tf.reduce_max(tf.abs(outputs[1] - outputs[0])))
    self.assertBetween(error, 1e-6, 5e-2)  # bf16 really is used.
    for g32, g16 in zip(*grads):
      self.assertLess(float(tf.norm(g16 - g32) / tf.norm(g32)), 3e-2)

  def test_invalid_arguments_raise(self):
    with self.assertRaisesRegex(ValueError, "core"):
      renet.ReNetLayer(3, 4, core="rnn")
    with self.assertRaisesRegex(ValueError, "sweep_order"):
      renet.ReNetLayer(3, 4, sweep_order="diagonal")
    with self.assertRaisesRegex(ValueError, "bidirectional_mode"):
      renet.ReNetLayer(3, 4, bidirectional_mode="both")
    with self.assertRaisesRegex(ValueError, "init"):
      renet.ReNetLayer(3, 4, init="zeros")


if __name__ == "__main__":
  tf.test.main()
