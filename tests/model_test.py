"""Tests of the ReSeg model: shapes, parameter counts, head modules, tracing."""

import os

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from reseg_tf.model import reseg as model_lib
from reseg_tf.model import vgg

# Tiny sizes keep the tests fast; the CamVid sizes are tested once.
TINY = dict(renet_units=(4, 4), upsample_filters=(3, 3), vgg_weights="random")
TINY_NO_VGG = dict(use_vgg=False, renet_units=(4, 3),
                   renet_patch_sizes=((2, 2), (2, 2)), upsample_filters=(5, 3))


def _count(variables):
  return sum(int(np.prod(v.shape)) for v in variables)


def _gru(c, u):
  """Parameters of one GRU direction with one bias per gate."""
  return 3 * (c * u + u * u + u)


class TransposedConvTest(tf.test.TestCase):

  def test_equals_conv2d_transpose(self):
    # (2, 3): the general rearrangement; (2, 2) and (3, 3): depth_to_space.
    for fh, fw in ((2, 3), (2, 2), (3, 3)):
      layer = model_lib.TransposedConv(5, 4, (fh, fw), relu=False)
      layer.b.assign(tf.random.normal([4]))
      x = tf.random.normal([2, 3, 4, 5])
      expected = tf.nn.conv2d_transpose(
          x, layer.w, output_shape=[2, 3 * fh, 4 * fw, 4], strides=(fh, fw),
          padding="VALID") + layer.b
      self.assertAllClose(layer(x), expected, atol=1e-5, msg=f"{(fh, fw)}")
    self.assertAllClose(model_lib.TransposedConv(5, 4, (2, 3))(x) >= 0,
                        tf.ones([2, 6, 12, 4], tf.bool))

  def test_parameters_and_names(self):
    layer = model_lib.TransposedConv(200, 50, (2, 2), name="up")
    self.assertEqual(_count(layer.trainable_variables), 2 * 2 * 200 * 50 + 50)
    self.assertEqual(layer.w.name, "up/w:0")


class Conv1x1Test(tf.test.TestCase):

  def test_equals_conv2d(self):
    layer = model_lib.Conv1x1(6, 3)
    layer.b.assign([1.0, -2.0, 0.5])
    x = tf.random.normal([2, 5, 7, 6])
    expected = tf.nn.conv2d(x, layer.w[None, None], 1, "VALID") + layer.b
    self.assertAllClose(layer(x), expected, atol=1e-5)


class HeadTest(tf.test.TestCase):

  def test_pixel_list_head_equals_layer_by_layer_convolutions(self):
    # Two upsampling layers with non-square blocks: the head's one placement
    # of the blocks at the end must put every logit where
    # conv2d_transpose -> ReLU -> conv2d_transpose -> ReLU -> 1x1 conv would.
    net = model_lib.ReSeg(num_classes=3, use_vgg=False, renet_units=(4, 4),
                          renet_patch_sizes=((2, 3), (2, 3)),
                          upsample_filters=(6, 5), upsample_size=(2, 3))
    for variable in net.trainable_variables:
      variable.assign(tf.random.normal(variable.shape))
    features = tf.random.normal([2, 3, 4, 8])  # What the ReNet layers would give.
    x = features
    for layer in net.upsample_layers:
      b, h, w, _ = x.shape
      x = tf.nn.relu(tf.nn.conv2d_transpose(
          x, layer.w, output_shape=[b, 2 * h, 3 * w, layer.filters], strides=(2, 3),
          padding="VALID") + layer.b)
    expected = tf.nn.conv2d(x, net.classifier.w[None, None], 1, "VALID") + net.classifier.b
    renet_layers, net.renet_layers = net.renet_layers, []  # The head past the ReNet.
    logits = net.head(features, (12, 36))
    net.renet_layers = renet_layers
    self.assertEqual(logits.shape, [2, 12, 36, 3])
    self.assertAllClose(logits, expected, atol=1e-4)


class ReSegTest(tf.test.TestCase, parameterized.TestCase):

  def test_camvid_shapes_and_parameter_counts(self):
    net = model_lib.ReSeg(num_classes=11, void_as_class=True,
                          vgg_weights="random")
    images = tf.random.uniform([1, 360, 480, 3], 0, 256, tf.int32)
    logits = net(tf.cast(images, tf.uint8))
    self.assertEqual(logits.shape, (1, 360, 480, 12))
    self.assertEqual(logits.dtype, tf.float32)
    self.assertTrue(np.isfinite(logits.numpy()).all())
    # ReNet layer 1 (C = 256, U = 100, stacked: the backward GRUs read U):
    #   sweep 1: 107,100 + 60,300, sweep 2 (C = 200): 90,300 + 60,300.
    # ReNet layer 2 (C = 200): 2 * (90,300 + 60,300). ReNet: 619,200.
    # Upsampling: (2*2*200*50 + 50) + (2*2*50*50 + 50) = 50,100.
    # Classifier: 50 * 12 + 12 = 612. Total 669,912 (docs/model.md).
    renet = (_gru(256, 100) + _gru(100, 100) + 3 * _gru(200, 100) +
             3 * _gru(100, 100))
    self.assertEqual(renet, 619_200)
    self.assertEqual(_count(net.trainable_variables), 669_912)
    frozen = [v for v in net.variables if not v.trainable]
    self.assertEqual(_count(frozen), 1_735_488)
    self.assertCountEqual([v.ref() for v in frozen],
                          [v.ref() for v in net.vgg.variables])

  def test_paper_variant_parameter_count(self):
    net = model_lib.ReSeg(num_classes=11, void_as_class=True,
                          vgg_weights="random", sweep_order="vertical_first",
                          bidirectional_mode="independent",
                          renet_init="orthogonal")
    # Independent: both directions read the input, so every backward GRU has
    # the forward one's size: 2 * (107,100 + 90,300) + 4 * 90,300 = 756,000.
    renet = 2 * (_gru(256, 100) + _gru(200, 100)) + 4 * _gru(200, 100)
    self.assertEqual(renet, 756_000)
    self.assertEqual(_count(net.trainable_variables), renet + 50_100 + 612)

  def test_fine_tuned_vgg_is_trainable(self):
    net = model_lib.ReSeg(num_classes=2, vgg_trainable=True, **TINY)
    self.assertEqual(_count(net.trainable_variables),
                     _count(net.variables))
    self.assertGreater(_count(net.trainable_variables), 1_735_488)

  @parameterized.named_parameters(
      ("vgg", TINY), ("no_vgg", TINY_NO_VGG))
  def test_odd_input_size_gives_logits_of_that_size(self, config):
    net = model_lib.ReSeg(num_classes=3, **config)
    images = tf.random.uniform([2, 97, 131, 3], 0, 255)
    self.assertEqual(net(images).shape, (2, 97, 131, 3))
    self.assertEqual(net.stride, (4, 4))

  @parameterized.named_parameters(
      ("vgg", TINY), ("no_vgg", TINY_NO_VGG))
  def test_odd_size_equals_mean_padded_then_cropped(self, config):
    net = model_lib.ReSeg(num_classes=2, **config)
    images = tf.random.uniform([1, 21, 30, 3], 0, 255)
    mean_rgb = tf.constant(vgg.CAFFE_MEAN_BGR[::-1])
    padded = tf.pad(images - mean_rgb, [[0, 0], [0, 3], [0, 2], [0, 0]])
    padded += mean_rgb  # [1, 24, 32, 3]: padding = the mean colour.
    self.assertAllClose(net(images), net(padded)[:, :21, :30], atol=1e-4)

  @parameterized.named_parameters(("void_as_class", True, 4),
                                  ("void_ignored", False, 3))
  def test_void_choice_sets_number_of_outputs(self, void_as_class, k):
    net = model_lib.ReSeg(num_classes=3, void_as_class=void_as_class,
                          **TINY_NO_VGG)
    self.assertEqual(net.num_outputs, k)
    self.assertEqual(net(tf.zeros([1, 8, 8, 3])).shape, (1, 8, 8, k))

  def test_features_and_head_equal_call(self):
    net = model_lib.ReSeg(num_classes=2, **TINY)
    images = tf.random.uniform([2, 18, 23, 3], 0, 255)
    features = net.features(images)
    self.assertEqual(features.shape, (2, 5, 6, 256))  # Padded to 20x24.
    self.assertAllClose(net.head(features, (18, 23)), net(images))

  def test_every_output_pixel_sees_every_input_pixel(self):
    net = model_lib.ReSeg(num_classes=2, **TINY_NO_VGG)
    images = tf.random.uniform([1, 12, 16, 3], 0, 255)
    with tf.GradientTape() as tape:
      tape.watch(images)
      corner = tf.reduce_sum(net(images)[0, -1, -1])
    grad = tf.reduce_sum(tf.abs(tape.gradient(corner, images)), -1)
    self.assertAllGreater(grad, 0.0)

  def test_stride_mismatch_is_an_error(self):
    with self.assertRaisesRegex(ValueError, r"upsample by \(2, 2\).*\(4, 4\)"):
      model_lib.ReSeg(num_classes=2, upsample_filters=(8,), **{
          k: v for k, v in TINY.items() if k != "upsample_filters"})
    with self.assertRaisesRegex(ValueError, "same length"):
      model_lib.ReSeg(num_classes=2, use_vgg=False, renet_units=(4,),
                      renet_patch_sizes=((2, 2), (2, 2)))

  def test_checkpoint_round_trips_every_variable(self):
    net = model_lib.ReSeg(num_classes=2, **TINY)
    path = tf.train.Checkpoint(model=net).write(
        os.path.join(self.get_temp_dir(), "ckpt"))
    other = model_lib.ReSeg(num_classes=2, **TINY)  # New random values.
    self.assertNotAllClose(other.vgg.convs[0].w, net.vgg.convs[0].w)
    tf.train.Checkpoint(model=other).read(path).assert_consumed()
    self.assertLen(other.variables, len(net.variables))
    for a, b in zip(net.variables, other.variables):
      self.assertEqual(a.name, b.name)
      self.assertAllEqual(a, b)
    images = tf.random.uniform([1, 8, 12, 3], 0, 255)
    self.assertAllEqual(net(images), other(images))

  def test_tf_function_and_xla_head_match_eager(self):
    net = model_lib.ReSeg(num_classes=2, **TINY)
    images = tf.random.uniform([2, 13, 18, 3], 0, 255)
    features = tf.function(net.features)(images)
    head = tf.function(net.head, jit_compile=True)
    self.assertAllClose(head(features, (13, 18)), net(images), atol=1e-4)
    self.assertAllClose(tf.function(net)(images), net(images), atol=1e-4)

  def test_xla_gradients_reach_exactly_the_trainable_variables(self):
    net = model_lib.ReSeg(num_classes=2, **TINY)
    features = net.features(tf.random.uniform([2, 8, 12, 3], 0, 255))

    def loss_and_grads(features):
      with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(net.head(features, (8, 12))))
      return loss, tape.gradient(loss, net.trainable_variables)

    _, grads = tf.function(loss_and_grads, jit_compile=True)(features)
    _, expected = loss_and_grads(features)
    self.assertLen(grads, len(net.trainable_variables))
    for g, e in zip(grads, expected):
      self.assertAllClose(g, e, atol=1e-5, rtol=1e-4)

  # Export traces with unknown batch and spatial sizes.
  def test_unknown_spatial_size_under_tf_function(self):
    net = model_lib.ReSeg(num_classes=2, **TINY)
    fn = tf.function(net, input_signature=[
        tf.TensorSpec([None, None, None, 3], tf.uint8)])
    images = tf.cast(tf.random.uniform([1, 13, 18, 3], 0, 255), tf.uint8)
    self.assertAllClose(fn(images), net(images), atol=1e-4)

  def test_tf_global_seed_makes_every_initial_value_repeatable(self):
    def build(seed):
      tf.random.set_seed(seed)
      return model_lib.ReSeg(num_classes=2, **TINY)
    first, again, other = build(3), build(3), build(4)
    for a, b in zip(first.variables, again.variables):
      self.assertAllEqual(a, b, msg=a.name)
    kernels = [(a, c) for a, c in zip(first.variables, other.variables) if len(a.shape) > 1]
    self.assertTrue(all(np.any(a.numpy() != c.numpy()) for a, c in kernels))
    self.assertIn("vgg", " ".join(a.name for a, _ in kernels))

  def test_bfloat16_compute_returns_float32_logits(self):
    net = model_lib.ReSeg(num_classes=2, compute_dtype="bfloat16",
                          vgg_compute_dtype="bfloat16", **TINY)
    logits = net(tf.random.uniform([1, 8, 12, 3], 0, 255))
    self.assertEqual(logits.dtype, tf.float32)
    self.assertTrue(np.isfinite(logits.numpy()).all())
    self.assertTrue(all(v.dtype == tf.float32 for v in net.variables))


class StemTest(tf.test.TestCase):
  """`stem_filters`: trained 3x3 convolutions between the pixels and ReNet."""

  def test_stem_is_a_chain_of_same_padded_convolutions_with_relu(self):
    net = model_lib.ReSeg(num_classes=2, stem_filters=(5, 4), **TINY_NO_VGG)
    x = tf.random.uniform([2, 9, 11, 3], -0.5, 0.5)
    expected = x
    for conv in net.stem:
      layer = tf.keras.layers.Conv2D(conv.w.shape[-1], 3, padding="same",
                                     activation="relu")
      layer.build(expected.shape)
      layer.set_weights([conv.w.numpy(), conv.b.numpy() + 0.1])
      conv.b.assign(conv.b + 0.1)
      expected = layer(expected)
    got = x
    for conv in net.stem:
      got = conv(got)
    self.assertEqual(got.shape, (2, 9, 11, 4))
    self.assertAllClose(got, expected, atol=1e-5)

  def test_stem_output_feeds_the_first_renet_layer(self):
    # A stem of one layer with kernel [I, -I] at the centre tap gives
    # [relu(x), relu(-x)]; a first ReNet layer reading it with input weights
    # [W; -W] (per patch pixel) sees W x, as the stem-less network does.
    plain = model_lib.ReSeg(num_classes=3, bidirectional_mode="independent", **TINY_NO_VGG)
    stemmed = model_lib.ReSeg(num_classes=3, bidirectional_mode="independent",
                              stem_filters=(6,), **TINY_NO_VGG)
    kernel = np.zeros([3, 3, 3, 6], np.float32)
    kernel[1, 1] = np.concatenate([np.eye(3), -np.eye(3)], axis=1)
    stemmed.stem[0].w.assign(kernel)
    others = [v for v in stemmed.variables if "stem" not in v.name]
    self.assertLen(others, len(plain.variables))
    widened = 0
    for mine, theirs in zip(others, plain.variables):
      self.assertEqual(mine.name, theirs.name)
      value = theirs.numpy()
      if mine.shape != theirs.shape:  # The input weights of renet0's first sweep.
        value = value.reshape([4, 3, -1])  # [patch pixels (2x2), C, gates]
        value = np.concatenate([value, -value], axis=1).reshape(mine.shape)
        widened += 1
      mine.assign(value)
    self.assertEqual(widened, 2)  # Forward and backward directions.
    images = tf.random.uniform([2, 12, 17, 3], 0, 255)
    self.assertAllClose(stemmed(images), plain(images), atol=1e-5)

  def test_he_normal_initial_scale(self):
    net = model_lib.ReSeg(num_classes=2, stem_filters=(64, 64), **TINY_NO_VGG)
    for conv, fan_in in zip(net.stem, (27, 576)):
      self.assertAllClose(np.std(conv.w.numpy()), np.sqrt(2.0 / fan_in), rtol=0.1)
      self.assertTrue(conv.w.trainable)

  def test_stem_parameters_and_gradients(self):
    net = model_lib.ReSeg(num_classes=2, stem_filters=(5,), **TINY_NO_VGG)
    plain = model_lib.ReSeg(num_classes=2, **TINY_NO_VGG)
    # The stem's kernel and bias; renet0 reads 2x2x5 instead of 2x2x3 values.
    self.assertEqual(_count(net.trainable_variables) - _count(plain.trainable_variables),
                     3 * 3 * 3 * 5 + 5 + 3 * (2 * 2 * (5 - 3) * 4))
    features = net.features(tf.random.uniform([1, 8, 12, 3], 0, 255))
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(tf.square(net.head(features, (8, 12))))
    for grad in tape.gradient(loss, [c.w for c in net.stem]):
      self.assertGreater(float(tf.reduce_sum(tf.abs(grad))), 0.0)

  def test_stem_with_vgg_is_an_error(self):
    with self.assertRaisesRegex(ValueError, "stem_filters .* without VGG"):
      model_lib.ReSeg(num_classes=2, stem_filters=(8,), **TINY)


class _Recorder:
  """Stands in for a layer: records what it is given, then runs the layer."""

  def __init__(self, layer):
    self.layer, self.inputs = layer, []

  def __call__(self, x, *args):
    self.inputs.append(x)
    return self.layer(x, *args)

  def __getattr__(self, name):  # `size`, `pixel_blocks`, ... of the layer.
    return getattr(self.layer, name)


class DropoutTest(tf.test.TestCase):
  """`dropout_rate`: each ReNet layer's outputs, in training only."""

  def _recorded(self, rate):
    tf.random.set_seed(3)
    net = model_lib.ReSeg(num_classes=3, dropout_rate=rate, **TINY_NO_VGG)
    second = _Recorder(net.renet_layers[1])
    net.renet_layers[1] = second
    upsample = _Recorder(net.upsample_layers[0])
    upsample.pixel_blocks = _Recorder(net.upsample_layers[0].pixel_blocks)
    net.upsample_layers[0] = upsample
    return net, second, upsample.pixel_blocks

  def test_outputs_are_dropped_and_rescaled_in_training_only(self):
    rate = 0.4
    net, second, head_input = self._recorded(rate)
    features = tf.random.uniform([2, 16, 24, 3], -0.5, 0.5, seed=1)
    inference = net.head(features, (16, 24))
    trained = net.head(features, (16, 24), training=True)
    # What each ReNet layer passed on, without dropout and with it: the
    # second layer's inputs, and the head's input (the last layer's output
    # on the dropped input, as its pixels).
    first_clean, first_dropped = second.inputs
    last_at_inference = second.layer(first_clean)
    self.assertAllEqual(tf.reshape(head_input.inputs[0], last_at_inference.shape),
                        last_at_inference)  # Inference: nothing dropped.
    last_clean = second.layer(first_dropped)
    last_dropped = tf.reshape(head_input.inputs[1], last_clean.shape)
    for clean, dropped in ((first_clean, first_dropped), (last_clean, last_dropped)):
      clean, dropped = clean.numpy(), dropped.numpy()
      kept = dropped != 0
      self.assertAllClose(dropped[kept], clean[kept] / (1 - rate), rtol=1e-5)
      # Binomial: at p = 0.4 over >= 288 draws (these seeds fix them), a
      # share outside 0.4 +- 0.12 has odds of about 1e-5.
      self.assertNear(1 - kept.mean(), rate, 0.12)
    self.assertGreater(float(tf.reduce_max(tf.abs(trained - inference))), 1e-4)

  def test_without_training_the_rate_changes_nothing(self):
    tf.random.set_seed(3)
    plain = model_lib.ReSeg(num_classes=3, **TINY_NO_VGG)
    tf.random.set_seed(3)
    dropping = model_lib.ReSeg(num_classes=3, dropout_rate=0.5, **TINY_NO_VGG)
    images = tf.random.uniform([1, 16, 24, 3], 0, 255, seed=2)
    self.assertAllEqual(dropping(images), plain(images))
    # And a rate of 0 (the default) changes nothing in training either.
    self.assertAllEqual(plain.head(plain.features(images), (16, 24), training=True),
                        plain(images))

  def test_rate_outside_zero_to_one_is_refused(self):
    for rate in (-0.1, 1.0):
      with self.assertRaisesRegex(ValueError, "dropout_rate must be in"):
        model_lib.ReSeg(num_classes=3, dropout_rate=rate, **TINY_NO_VGG)


class InputScaleTest(tf.test.TestCase, parameterized.TestCase):
  """`input_scale`: the network sees a resized image, logits come back."""

  # round(37 / 2) = 18 (banker's rounding of 18.5), round(51 / 2) = 26;
  # round(37 * 1.5) = 56 (of 55.5), round(51 * 1.5) = 76 (of 76.5).
  @parameterized.parameters((TINY, 0.5, (18, 26)), (TINY_NO_VGG, 0.5, (18, 26)),
                            (TINY_NO_VGG, 1.5, (56, 76)))
  def test_equals_resize_run_resize_back(self, config, scale, size):
    scaled = model_lib.ReSeg(num_classes=3, input_scale=scale, **config)
    full = model_lib.ReSeg(num_classes=3, **config)
    for a, b in zip(full.variables, scaled.variables):
      a.assign(b)
    images = tf.random.uniform([2, 37, 51, 3], 0, 255)
    self.assertEqual([model_lib.scaled_size(n, scale) for n in (37, 51)], list(size))
    resized = tf.image.resize(images, size, antialias=True)
    expected = tf.image.resize(full(resized), [37, 51])
    logits = scaled(images)
    self.assertEqual(logits.shape, (2, 37, 51, 3))
    self.assertAllClose(logits, expected, atol=1e-4)

  def test_features_are_smaller_by_the_scale(self):
    net = model_lib.ReSeg(num_classes=2, input_scale=0.25, **TINY_NO_VGG)
    features = net.features(tf.zeros([1, 64, 96, 3]))
    self.assertEqual(features.shape, (1, 16, 24, 3))

  def test_unknown_spatial_size_under_tf_function(self):
    net = model_lib.ReSeg(num_classes=2, input_scale=0.5, **TINY_NO_VGG)
    fn = tf.function(net, input_signature=[
        tf.TensorSpec([None, None, None, 3], tf.uint8)])
    images = tf.cast(tf.random.uniform([1, 29, 43, 3], 0, 255), tf.uint8)
    self.assertEqual(fn(images).shape, (1, 29, 43, 2))
    self.assertAllClose(fn(images), net(images), atol=1e-4)

  @parameterized.parameters(0.0, -0.5, 50.0)
  def test_scale_out_of_range_is_an_error(self, scale):
    with self.assertRaisesRegex(ValueError, "input_scale"):
      model_lib.ReSeg(num_classes=2, input_scale=scale, **TINY_NO_VGG)


if __name__ == "__main__":
  tf.test.main()
