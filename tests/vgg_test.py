"""Tests of the VGG-16 front end: Keras parity, weight files, errors."""

import os
import shutil
import tempfile
from unittest import mock

import h5py
import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from reseg_tf.model import vgg, vgg_weights

FROZEN_PARAMS = 1_735_488  # conv1_1 .. conv3_3 kernels and biases.


def _write_legacy_h5(path, weights, name_format):
  """Writes the legacy Keras layout by hand, as the downloaded file has it.

  Args:
    path: output file.
    weights: layer name -> (kernel, bias).
    name_format: dataset names given the layer name: `'{}_W_1:0'`-style
      (Keras 1, the real `vgg16_..._notop.h5`) or `'{}/kernel:0'`-style.
  """
  kernel_fmt, bias_fmt = name_format
  names = ["input_1"] + list(weights) + ["block3_pool"]
  with h5py.File(path, "w") as f:
    f.attrs["layer_names"] = [n.encode("utf8") for n in names]
    for name in names:
      g = f.create_group(name)
      if name not in weights:
        g.attrs["weight_names"] = np.array([], dtype="S1")
        continue
      w_names = [kernel_fmt.format(name), bias_fmt.format(name)]
      g.attrs["weight_names"] = [n.encode("utf8") for n in w_names]
      for n, value in zip(w_names, weights[name]):
        g.create_dataset(n, data=value)


class VGGTest(tf.test.TestCase, parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.dir = tempfile.mkdtemp()
    keras.utils.set_random_seed(0)
    net = keras.applications.VGG16(weights=None, include_top=False)
    # Known random values, non-zero biases included, for the layers we use.
    rng = np.random.default_rng(1)
    cls.weights = {}
    for name in vgg.LAYER_NAMES:
      layer = net.get_layer(name)
      k_shape, b_shape = (w.shape for w in layer.get_weights())
      fan_in = np.prod(k_shape[:3])
      kernel = rng.normal(0, np.sqrt(2 / fan_in), k_shape).astype(np.float32)
      bias = rng.normal(0, 0.5, b_shape).astype(np.float32)
      layer.set_weights([kernel, bias])
      cls.weights[name] = (kernel, bias)
    cls.files = {
        "keras3": os.path.join(cls.dir, "vgg16.weights.h5"),
        "keras_legacy_model": os.path.join(cls.dir, "vgg16_model.h5"),
        "keras1": os.path.join(cls.dir, vgg_weights.KERAS_FILE_NAME),
        "keras2": os.path.join(cls.dir, "vgg16_keras2.h5"),
    }
    net.save_weights(cls.files["keras3"])
    keras.saving.save_model(net, cls.files["keras_legacy_model"])
    _write_legacy_h5(cls.files["keras1"], cls.weights,
                     ("{}_W_1:0", "{}_b_1:0"))
    _write_legacy_h5(cls.files["keras2"], cls.weights,
                     ("{}/kernel:0", "{}/bias:0"))
    cls.rgb = rng.uniform(0, 255, (2, 20, 28, 3)).astype(np.float32)
    cls.preprocessed = keras.applications.vgg16.preprocess_input(
        cls.rgb.copy())
    block3 = keras.Model(net.input, net.get_layer("block3_conv3").output)
    cls.expected = block3(cls.preprocessed).numpy()  # [2, 5, 7, 256]

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.dir)
    super().tearDownClass()

  def test_caffe_preprocess_matches_keras(self):
    self.assertAllClose(vgg.caffe_preprocess(self.rgb), self.preprocessed,
                        rtol=0, atol=1e-5)
    uint8 = self.rgb.astype(np.uint8)
    self.assertAllClose(
        vgg.caffe_preprocess(uint8),
        keras.applications.vgg16.preprocess_input(uint8.astype(np.float32)),
        rtol=0, atol=1e-5)

  @parameterized.parameters("keras3", "keras_legacy_model", "keras1", "keras2")
  def test_output_equals_keras_block3_conv3(self, layout):
    front = vgg.VGGFrontEnd(weights=self.files[layout])
    y = front(vgg.caffe_preprocess(self.rgb))
    self.assertEqual(y.shape, (2, 5, 7, 256))
    self.assertAllClose(y, self.expected, rtol=1e-5, atol=1e-5 *
                        np.abs(self.expected).max())

  @parameterized.parameters("keras3", "keras_legacy_model", "keras1", "keras2")
  def test_load_weights_reads_every_layout(self, layout):
    loaded = vgg_weights.load_weights(self.files[layout])
    self.assertEqual(tuple(loaded), vgg.LAYER_NAMES)
    for name, (kernel, bias) in self.weights.items():
      self.assertAllEqual(loaded[name][0], kernel)
      self.assertAllEqual(loaded[name][1], bias)

  def test_npz_round_trip(self):
    npz = os.path.join(self.dir, "vgg16_block1-3.npz")
    vgg_weights.convert_h5_to_npz(self.files["keras1"], npz)
    with np.load(npz, allow_pickle=False) as f:
      self.assertCountEqual(
          f.files, [f"{n}/{k}" for n in vgg.LAYER_NAMES
                    for k in ("kernel", "bias")])
    loaded = vgg_weights.load_weights(npz)
    for name, (kernel, bias) in self.weights.items():
      self.assertAllEqual(loaded[name][0], kernel)
      self.assertAllEqual(loaded[name][1], bias)
    y = vgg.VGGFrontEnd(weights=npz)(self.preprocessed)
    self.assertAllClose(y, self.expected, rtol=1e-5,
                        atol=1e-5 * np.abs(self.expected).max())

  def test_missing_file_names_the_file(self):
    path = os.path.join(self.dir, "nowhere.h5")
    with self.assertRaisesRegex(FileNotFoundError, "nowhere.h5"):
      vgg.VGGFrontEnd(weights=path)

  @parameterized.parameters("h5", "npz")
  def test_unreadable_file_names_the_file(self, ext):
    path = os.path.join(self.dir, f"garbage.{ext}")
    with open(path, "wb") as f:
      f.write(b"not a weights file")
    with self.assertRaisesRegex(ValueError, f"garbage.{ext}"):
      vgg_weights.load_weights(path)

  @parameterized.parameters("h5", "npz")
  def test_missing_layer_names_file_and_layer(self, ext):
    weights = dict(self.weights)
    del weights["block2_conv2"]
    path = os.path.join(self.dir, f"no_block2_conv2.{ext}")
    if ext == "h5":
      _write_legacy_h5(path, weights, ("{}_W_1:0", "{}_b_1:0"))
    else:
      vgg_weights.save_npz(weights, path)
    with self.assertRaisesRegex(ValueError,
                                f"no_block2_conv2.{ext}.*'block2_conv2'"):
      vgg_weights.load_weights(path)

  @parameterized.parameters("h5", "npz")
  def test_wrong_shape_names_file_and_layer(self, ext):
    weights = dict(self.weights)
    weights["block3_conv1"] = (np.zeros([3, 3, 64, 256], np.float32),
                               np.zeros([256], np.float32))
    path = os.path.join(self.dir, f"bad_shape.{ext}")
    if ext == "h5":
      _write_legacy_h5(path, weights, ("{}_W_1:0", "{}_b_1:0"))
    else:
      vgg_weights.save_npz(weights, path)
    with self.assertRaisesRegex(
        ValueError, rf"bad_shape.{ext}.*'block3_conv1'.*\(3, 3, 64, 256\)"):
      vgg.VGGFrontEnd(weights=path)

  def test_missing_bias_names_file_and_layer(self):
    path = os.path.join(self.dir, "no_bias.npz")
    arrays = {f"{n}/kernel": k for n, (k, _) in self.weights.items()}
    with open(path, "wb") as f:
      np.savez(f, **arrays)
    with self.assertRaisesRegex(ValueError, r"no_bias.npz.*'block1_conv1'"):
      vgg_weights.load_weights(path)

  def test_auto_uses_keras_cache_when_present(self):
    home = os.path.join(self.dir, "keras_home")
    os.makedirs(os.path.join(home, "models"), exist_ok=True)
    shutil.copy(self.files["keras1"], os.path.join(home, "models"))
    with mock.patch.dict(os.environ, {"KERAS_HOME": home}):
      for weights in ("auto", "imagenet"):
        front = vgg.VGGFrontEnd(weights=weights)
        self.assertStartsWith(front.weights_source, "Keras cache")
        self.assertAllEqual(front.convs[-1].b, self.weights["block3_conv3"][1])

  def test_auto_falls_back_to_random_and_warns_without_cache(self):
    home = os.path.join(self.dir, "empty_keras_home")
    with mock.patch.dict(os.environ, {"KERAS_HOME": home}):
      with self.assertLogs("absl", level="WARNING") as logs:
        front = vgg.VGGFrontEnd(weights="auto")
      self.assertIn("random initialisation", "\n".join(logs.output))
      self.assertStartsWith(front.weights_source, "random")
      with self.assertRaisesRegex(FileNotFoundError, vgg_weights.KERAS_FILE_NAME):
        vgg.VGGFrontEnd(weights="imagenet")

  def test_random_init_is_he_normal_with_zero_bias(self):
    front = vgg.VGGFrontEnd(weights="random", seed=3)
    w = front.convs[6].w.numpy()  # block3_conv2, fan_in 3 * 3 * 256.
    self.assertNear(w.std(), np.sqrt(2 / (9 * 256)), 1e-3)
    self.assertAllEqual(front.convs[6].b, np.zeros([256]))
    again = vgg.VGGFrontEnd(weights="random", seed=3)
    self.assertAllEqual(again.convs[0].w, front.convs[0].w)

  def test_random_init_gives_features_of_order_one_on_pixels(self):
    # conv1_1 is scaled for caffe-preprocessed pixels (std ~58), so a random
    # VGG's features are of order 1 (He-normal alone would give order 60).
    front = vgg.VGGFrontEnd(weights="random", seed=3)
    w = front.convs[0].w.numpy()
    self.assertNear(w.std(), np.sqrt(2 / 27) / vgg_weights.PIXEL_STD, 2e-4)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 32, 40, 3))
    features = front(vgg.caffe_preprocess(images))
    rms = float(tf.sqrt(tf.reduce_mean(tf.square(features))))
    self.assertBetween(rms, 0.2, 5.0)

  @parameterized.named_parameters(("frozen", False), ("fine_tuned", True))
  def test_trainable_switch_and_parameter_count(self, trainable):
    front = vgg.VGGFrontEnd(weights="random", trainable=trainable)
    self.assertLen(front.variables, 14)
    self.assertEqual(sum(int(np.prod(v.shape)) for v in front.variables),
                     FROZEN_PARAMS)
    self.assertLen(front.trainable_variables, 14 if trainable else 0)
    self.assertEqual(front.convs[0].w.name, "vgg/block1_conv1/w:0")

  @parameterized.parameters((16, 24), (17, 23))
  def test_stride_four_and_256_channels(self, h, w):
    front = vgg.VGGFrontEnd(weights="random")
    y = front(tf.zeros([1, h, w, 3]))
    self.assertEqual(y.shape, (1, h // 4, w // 4, 256))

  def test_bfloat16_compute_is_close(self):
    x = self.preprocessed
    y32 = vgg.VGGFrontEnd(weights=self.files["keras1"])(x)
    front = vgg.VGGFrontEnd(weights=self.files["keras1"],
                            compute_dtype="bfloat16")
    y16 = front(x)
    self.assertEqual(y16.dtype, tf.bfloat16)
    self.assertEqual(front.convs[0].w.dtype, tf.float32)
    err = np.abs(tf.cast(y16, tf.float32) - y32).max()
    self.assertLess(err, 0.05 * np.abs(y32).max())


if __name__ == "__main__":
  tf.test.main()
