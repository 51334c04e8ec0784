"""Tests for reseg_tf.keras.ReNet2D: equal to renet.ReNetLayer, and Keras-ready.

ReNet2D is checked against ReNetLayer on copied weights (forward, and the
gradients w.r.t. the input and every weight), then as a Keras layer: model
training with `fit`, `.keras` save and load, `get_config`, and (when JAX is
installed) the JAX backend in a subprocess.
"""

import importlib.util
import itertools
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from reseg_tf.keras import ReNet2D, renet2d, set_weights_from_renet_layer
from reseg_tf.model import renet

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Every core x mode x order; patch sizes vary (square, non-square, none) and
# the odd 5x7 input leaves partial patches to zero-pad; eager and graph
# execution alternate (XLA: see test_forward_under_xla_matches).
_PATCHES = ((1, 1), (2, 3), (2, 2), (3, 1))
_EXECUTIONS = ("eager", "function")
_CASES = [
    dict(testcase_name=f"{c}_{m}_{o}_{p[0]}x{p[1]}_{e}", core=c, mode=m,
         order=o, patch=p, execution=e)
    for (c, m, o), p, e in zip(
        itertools.product(("gru", "lstm"), ("stacked", "independent"),
                          ("horizontal_first", "vertical_first")),
        itertools.cycle(_PATCHES), itertools.cycle(_EXECUTIONS))]


def _renet_layer(core="gru", mode="stacked", order="horizontal_first",
                 patch=(1, 1), channels=3, units=4, seed=1, **kwargs):
  """A ReNetLayer whose variables are all N(0, 0.5^2), biases included."""
  layer = renet.ReNetLayer(channels, units, patch_size=patch, core=core,
                           sweep_order=order, bidirectional_mode=mode,
                           **kwargs)
  rng = np.random.default_rng(seed)
  for v in layer.variables:
    # Larger than the init and with non-zero biases, so every gate matters.
    v.assign(rng.normal(0.0, 0.5, v.shape).astype(np.float32))
  return layer


def _renet_name(keras_weight):
  """`first_sweep_forward_w_x` -> `first_sweep/forward/w_x`."""
  name = keras_weight.name
  for sweep in renet2d.SWEEPS:
    for direction in renet2d.DIRECTIONS:
      prefix = f"{sweep}_{direction}_"
      if name.startswith(prefix):
        return f"{sweep}/{direction}/{name[len(prefix):]}"
  raise ValueError(name)


def _renet_variables_by_name(layer):
  """`{'first_sweep/forward/w_x': variable, ...}` of a ReNetLayer."""
  return {"/".join(v.name.split(":")[0].split("/")[1:]): v
          for v in layer.variables}


def _segmentation_data(num_images, seed):
  """`[N, 16, 16, 3]` images of 4x4 flat-colour blocks; label: argmax RGB."""
  rng = np.random.default_rng(seed)
  colours = rng.uniform(0.0, 1.0, [num_images, 4, 4, 3]).astype(np.float32)
  images = np.repeat(np.repeat(colours, 4, axis=1), 4, axis=2)
  return images, np.argmax(images, axis=-1)  # [N, 16, 16, 3], [N, 16, 16]


class ReNet2DMatchesReNetLayerTest(tf.test.TestCase, parameterized.TestCase):

  def _assert_matches(self, source, layer, x, execution="eager"):
    """Outputs and gradients (input, every weight) of both layers agree."""
    rng = np.random.default_rng(2)
    # A random linear read of the output: every output gets its own weight.
    probe = tf.constant(
        rng.normal(size=source(x).shape).astype(np.float32))
    renet_vars = _renet_variables_by_name(source)

    def outputs_and_grads(fn, variables):
      # Closes over the variables: as tf.function arguments, Keras variables
      # would become tensors (with no gradient path to the variables).
      def run(x):
        with tf.GradientTape() as tape:
          tape.watch(x)
          out = fn(x)
          loss = tf.reduce_sum(out * probe)
        return out, tape.gradient(loss, [x] + variables)

      return run(x) if execution == "eager" else tf.function(run)(x)

    want, want_grads = outputs_and_grads(
        source, [renet_vars[_renet_name(w)] for w in layer.trainable_weights])
    got, got_grads = outputs_and_grads(layer, layer.trainable_weights)
    self.assertEqual(got.shape, want.shape)
    self.assertAllClose(got, want, atol=1e-5, rtol=1e-5)
    self.assertLen(got_grads, 13)
    names = ["x"] + [w.name for w in layer.trainable_weights]
    for name, g_got, g_want in zip(names, got_grads, want_grads):
      # Every gradient is far from zero, so the comparison means something.
      self.assertGreater(float(tf.reduce_max(tf.abs(g_want))), 1e-3, msg=name)
      self.assertAllClose(g_got, g_want, atol=1e-5, rtol=1e-5, msg=name)

  @parameterized.named_parameters(*_CASES)
  def test_forward_and_gradients_match(self, core, mode, order, patch,
                                       execution):
    source = _renet_layer(core, mode, order, patch)
    layer = ReNet2D.from_renet_layer(source)
    x = tf.random.stateless_normal([2, 5, 7, 3], seed=(1, 2))
    self.assertEqual(layer(x).shape,
                     (2, -(-5 // patch[0]), -(-7 // patch[1]), 8))
    self._assert_matches(source, layer, x, execution)

  def test_matches_at_other_sizes(self):
    source = _renet_layer("gru", "independent", "vertical_first", (2, 2),
                          channels=5, units=7)
    layer = ReNet2D(7, patch_size=(2, 2), bidirectional_mode="independent",
                    sweep_order="vertical_first")
    set_weights_from_renet_layer(layer, source)
    x = tf.random.stateless_normal([3, 6, 5, 5], seed=(3, 4))
    self._assert_matches(source, layer, x)

  def test_forward_under_xla_matches(self):
    for core in ("gru", "lstm"):
      source = _renet_layer(core, "independent", "vertical_first", (2, 2))
      layer = ReNet2D.from_renet_layer(source)
      x = tf.random.stateless_normal([2, 5, 7, 3], seed=(1, 2))
      got = tf.function(layer, jit_compile=True)(x)
      self.assertAllClose(got, source(x), atol=1e-5, rtol=1e-5, msg=core)

  def test_weight_names_shapes_and_order_follow_renet_layer(self):
    for mode in ("stacked", "independent"):
      source = renet.ReNetLayer(6, 5, patch_size=(2, 3), core="lstm",
                                bidirectional_mode=mode)
      layer = ReNet2D(5, patch_size=(2, 3), core="lstm",
                      bidirectional_mode=mode)
      layer.build((None, None, None, 6))
      renet_vars = _renet_variables_by_name(source)
      names = [_renet_name(w) for w in layer.weights]
      self.assertCountEqual(names, renet_vars)
      self.assertEqual(names[:4], ["first_sweep/forward/w_x",
                                   "first_sweep/forward/w_h",
                                   "first_sweep/forward/b",
                                   "first_sweep/backward/w_x"])
      for w in layer.weights:
        self.assertEqual(tuple(w.shape),
                         tuple(renet_vars[_renet_name(w)].shape), msg=w.name)

  def test_camvid_parameter_counts_match_renet_layer(self):
    # renet_test: the original code's layer sizes, 256 -> 200 -> 200 channels.
    for channels, count in ((256, 318_000), (200, 301_200)):
      layer = ReNet2D(100)
      layer.build((None, None, None, channels))
      self.assertEqual(layer.count_params(), count)
      self.assertLen(layer.trainable_weights, 12)

  def test_weight_copy_rejects_a_different_layer(self):
    source = _renet_layer("gru", "stacked", "horizontal_first", (2, 2))
    for kwargs in (dict(units=5), dict(core="lstm"),
                   dict(bidirectional_mode="independent"),
                   dict(sweep_order="vertical_first"),
                   dict(patch_size=(2, 1))):
      options = {**dict(units=4, patch_size=(2, 2)), **kwargs}
      with self.assertRaisesRegex(ValueError, "options differ", msg=kwargs):
        set_weights_from_renet_layer(ReNet2D(**options), source)
    built = ReNet2D(4, patch_size=(2, 2))
    built.build((None, None, None, 4))  # The source reads 3 channels.
    with self.assertRaisesRegex(ValueError, "shape"):
      set_weights_from_renet_layer(built, source)


class ReNet2DInitTest(tf.test.TestCase):

  def test_normal_init_statistics(self):
    keras.utils.set_random_seed(0)
    layer = ReNet2D(100)
    layer.build((None, None, None, 256))
    for w in layer.weights:
      if w.name.endswith("_b"):
        self.assertAllEqual(w, np.zeros(w.shape), msg=w.name)
      else:
        self.assertNear(float(np.std(w)), 0.1, 0.003, msg=w.name)
    # Each weight draws its own values.
    self.assertNotAllClose(layer.first_sweep_forward_w_h,
                           layer.first_sweep_backward_w_h)

  def test_orthogonal_init_is_orthogonal_per_gate(self):
    for core, gates in (("gru", 3), ("lstm", 4)):
      layer = ReNet2D(6, core=core, init="orthogonal")
      layer.build((None, None, None, 3))
      recurrent = [w for w in layer.weights if w.name.endswith("_w_h")]
      self.assertLen(recurrent, 4)
      for w in recurrent:
        blocks = np.split(np.asarray(w), gates, axis=1)
        for block in blocks:
          self.assertAllClose(block.T @ block, np.eye(6), atol=1e-5)
        self.assertNotAllClose(blocks[0], blocks[1])  # Not one block reused.

  def test_invalid_arguments_raise(self):
    for kwargs, message in ((dict(core="rnn"), "core"),
                            (dict(sweep_order="diagonal"), "sweep_order"),
                            (dict(bidirectional_mode="both"),
                             "bidirectional_mode"),
                            (dict(init="zeros"), "init"),
                            (dict(patch_size=(2,)), "patch_size"),
                            (dict(patch_size=(0, 2)), "patch_size")):
      with self.assertRaisesRegex(ValueError, message):
        ReNet2D(4, **kwargs)
    with self.assertRaisesRegex(ValueError, "channels"):
      ReNet2D(4).build((None, 8, 8, None))


class ReNet2DKerasTest(tf.test.TestCase):

  def test_fit_learns_colour_segmentation(self):
    keras.utils.set_random_seed(0)
    images, labels = _segmentation_data(8, seed=0)
    model = keras.Sequential([
        keras.Input((16, 16, 3)),
        ReNet2D(8, patch_size=(4, 4)),  # [B, 4, 4, 16]
        keras.layers.Conv2DTranspose(8, 4, strides=4, activation="relu"),
        keras.layers.Conv2D(3, 1),  # Logits, [B, 16, 16, 3].
    ])
    model.compile(
        keras.optimizers.Adam(3e-2),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"])
    # One batch an epoch: each history entry is the loss before that epoch's
    # update, so loss[0] is the initial loss (about ln 3 = 1.1).
    history = model.fit(images, labels, batch_size=8, epochs=25,
                        verbose=0).history
    self.assertNear(history["loss"][0], np.log(3), 0.1)
    # At seed 0 the loss ends near 0.05 (20x down); 5x leaves room for
    # other TensorFlow builds' numerics.
    self.assertLess(history["loss"][-1], history["loss"][0] / 5)
    self.assertGreater(history["accuracy"][-1], 0.9)

  def test_tensorflow_training_does_not_use_xla(self):
    # XLA cannot compile the gradient of ops.scan's TensorFlow loop, and
    # model.fit would turn XLA on by default on a GPU: the layer opts out.
    model = keras.Sequential([keras.Input((4, 4, 3)), ReNet2D(2)])
    with self.assertWarnsRegex(UserWarning, "doesn't support"):
      model.compile("sgd", "mse", jit_compile=True)
    self.assertFalse(model.jit_compile)

  def _model(self):
    """A functional model of unknown image size around a ReNet2D."""
    source = _renet_layer("lstm", "independent", "vertical_first", (2, 2))
    inputs = keras.Input((None, None, 3))
    features = ReNet2D.from_renet_layer(source, name="renet")(inputs)
    logits = keras.layers.Conv2D(2, 1, name="logits")(features)
    return keras.Model(inputs, logits), source

  def test_functional_model_with_unknown_image_size(self):
    model, source = self._model()
    self.assertEqual(model.output_shape, (None, None, None, 2))
    for shape in ([1, 5, 7, 3], [2, 6, 4, 3]):  # Padded, and not.
      x = tf.random.stateless_normal(shape, seed=(5, 6))
      want = source(x)
      self.assertAllClose(model.get_layer("renet")(x), want, atol=1e-5)
      self.assertEqual(model.predict(x, verbose=0).shape,
                       tuple(want.shape[:3]) + (2,))

  def test_keras_file_round_trip(self):
    model, _ = self._model()
    path = os.path.join(self.get_temp_dir(), "renet.keras")
    model.save(path)
    # No custom_objects: the registration must be enough.
    loaded = keras.models.load_model(path)
    layer = loaded.get_layer("renet")
    self.assertIsInstance(layer, ReNet2D)
    self.assertEqual(layer.get_config(), model.get_layer("renet").get_config())
    x = tf.random.stateless_normal([2, 5, 7, 3], seed=(7, 8))
    self.assertAllEqual(loaded(x), model(x))
    for a, b in zip(loaded.weights, model.weights):
      self.assertEqual(a.path, b.path)
      self.assertAllEqual(a, b)

  def test_get_config_round_trip(self):
    layer = ReNet2D(6, patch_size=(3, 2), core="lstm",
                    sweep_order="vertical_first",
                    bidirectional_mode="independent", init="orthogonal",
                    name="renet_x")
    config = layer.get_config()
    self.assertEqual(
        {k: config[k] for k in ("units", "patch_size", "core", "sweep_order",
                                "bidirectional_mode", "init", "name")},
        dict(units=6, patch_size=[3, 2], core="lstm",
             sweep_order="vertical_first", bidirectional_mode="independent",
             init="orthogonal", name="renet_x"))
    self.assertEqual(ReNet2D.from_config(config).get_config(), config)
    serialized = keras.layers.serialize(layer)
    self.assertEqual(serialized["registered_name"], "reseg_tf>ReNet2D")
    restored = keras.layers.deserialize(serialized)
    self.assertIsInstance(restored, ReNet2D)
    self.assertEqual(restored.get_config(), config)
    self.assertEqual(restored.compute_output_shape((None, 7, 4, 3)),
                     (None, 3, 2, 12))


# Run with KERAS_BACKEND=jax: loads the TensorFlow-saved model, writes its
# output, the gradients w.r.t. the input and the ReNet2D weights, and the
# losses of a short `fit` (compiled by JAX).
_JAX_SCRIPT = textwrap.dedent("""
    import sys
    import jax
    import jax.numpy as jnp
    import keras
    import numpy as np
    import reseg_tf.keras  # Registers ReNet2D.

    assert keras.backend.backend() == 'jax', keras.backend.backend()
    directory = sys.argv[1]
    model = keras.models.load_model(directory + '/model.keras')
    data = np.load(directory + '/inputs.npz')
    x, probe = jnp.asarray(data['x']), jnp.asarray(data['probe'])
    layer = model.get_layer('renet')
    trainable = [v.value for v in layer.trainable_variables]

    def loss(x, trainable):
      out, _ = layer.stateless_call(trainable, [], x)
      return jnp.sum(out * probe), out

    # One compiled function for the output and the gradients.
    (_, out), (grad_x, grad_w) = jax.jit(jax.value_and_grad(
        loss, argnums=(0, 1), has_aux=True))(x, trainable)
    grads = {f'grad_{v.name}': np.asarray(g)
             for v, g in zip(layer.trainable_variables, grad_w)}
    # Last, as it changes the weights.
    model.compile('adam', keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    history = model.fit(x, data['labels'], epochs=2, verbose=0).history
    np.savez(directory + '/jax.npz', out=np.asarray(out),
             grad_x=np.asarray(grad_x), loss=np.asarray(history['loss']),
             jit=model.jit_compile, **grads)
""")


class ReNet2DJaxBackendTest(tf.test.TestCase):

  def test_jax_backend_matches_tensorflow(self):
    if importlib.util.find_spec("jax") is None:
      self.skipTest("JAX is not installed (it is optional).")
    model, _ = self._tf_model()
    layer = model.get_layer("renet")
    directory = self.get_temp_dir()
    model.save(os.path.join(directory, "model.keras"))
    rng = np.random.default_rng(9)
    x = rng.normal(size=[2, 5, 7, 3]).astype(np.float32)
    probe = rng.normal(size=[2, 3, 4, 8]).astype(np.float32)
    labels = rng.integers(0, 2, size=[2, 3, 4])
    np.savez(os.path.join(directory, "inputs.npz"), x=x, probe=probe,
             labels=labels)
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-c", _JAX_SCRIPT, directory], cwd=_ROOT, env=env,
        capture_output=True, text=True, timeout=300, check=False)
    self.assertEqual(result.returncode, 0, msg=result.stderr[-3000:])
    jax_out = np.load(os.path.join(directory, "jax.npz"))

    x = tf.constant(x)
    with tf.GradientTape() as tape:
      tape.watch(x)
      out = layer(x)
      loss = tf.reduce_sum(out * probe)
    grads = tape.gradient(loss, [x] + layer.trainable_weights)
    self.assertAllClose(jax_out["out"], out, atol=1e-5, rtol=1e-5)
    self.assertAllClose(jax_out["grad_x"], grads[0], atol=1e-5, rtol=1e-5)
    for w, g in zip(layer.trainable_weights, grads[1:]):
      self.assertAllClose(jax_out[f"grad_{w.name}"], g, atol=1e-5, rtol=1e-5,
                          msg=w.name)
    self.assertTrue(jax_out["jit"])  # fit compiled the step with JAX.
    self.assertLen(jax_out["loss"], 2)
    self.assertTrue(np.all(np.isfinite(jax_out["loss"])))

  def _tf_model(self):
    # GRU (the other core is covered by the TensorFlow tests), stacked, with
    # a partial patch; the head has 2 classes for the fit.
    source = _renet_layer("gru", "stacked", "vertical_first", (2, 2))
    inputs = keras.Input((None, None, 3))
    features = ReNet2D.from_renet_layer(source, name="renet")(inputs)
    logits = keras.layers.Conv2D(2, 1, name="logits")(features)
    return keras.Model(inputs, logits), source


if __name__ == "__main__":
  tf.test.main()
