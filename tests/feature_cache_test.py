"""The frozen front end's feature cache: contents, validity, training on it."""

import json
import os

import tensorflow as tf

import gin
from data_prep import synthetic, writer
from reseg_tf import configurables
from reseg_tf.data import augment, feature_cache, input_pipeline
from reseg_tf.model import reseg as model_lib

_TINY_VGG = dict(num_classes=4, vgg_weights="random", renet_units=(4, 4),
                 upsample_filters=(3, 3))
_CROP = augment.AugmentOptions(crop_size=(28, 36))  # Centre crop of 32x40.


def _quiet(_):
  pass


class FeatureCacheTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    root = tf.compat.v1.test.get_temp_dir()
    cls.records = os.path.join(root, "records")
    writer.write_dataset(synthetic.plan(0, (24, 8, 0), (32, 40)), cls.records,
                         num_shards=3, log=_quiet)

  def setUp(self):
    super().setUp()
    tf.random.set_seed(1)
    self.net = model_lib.ReSeg(**_TINY_VGG)
    self.cache = os.path.join(self.get_temp_dir(), "cache")

  def test_cached_examples_are_the_front_ends_output_on_the_cropped_images(self):
    info = feature_cache.ensure(self.net, self.records, "train", self.cache, _CROP, log=_quiet)
    self.assertEqual(info["num_examples"], 24)
    self.assertEqual(info["feature_shape"], [7, 9, 256])  # 28x36 / VGG's stride 4.
    options = input_pipeline.InputOptions(augment=_CROP, repeat=False)
    expected = input_pipeline.make_train_dataset(self.records, "train", 4, options, seed=3)
    cached = feature_cache.make_dataset(self.cache, info, 4, options, seed=3)
    count = 0
    for want, got in zip(expected, cached):
      self.assertAllEqual(got["label"], want["label"])  # Same examples, same order.
      self.assertAllClose(got["features"], self.net.features(want["image"]), atol=1e-5)
      count += 1
    self.assertEqual(count, 6)

  def test_reused_when_valid_rebuilt_when_the_weights_change(self):
    messages = []
    feature_cache.ensure(self.net, self.records, "train", self.cache, _CROP, log=_quiet)
    info_file = os.path.join(self.cache, feature_cache.INFO_FILE)
    with open(info_file) as f:
      first = json.load(f)["fingerprint"]
    feature_cache.ensure(self.net, self.records, "train", self.cache, _CROP,
                         log=messages.append)
    self.assertIn("reusing", messages[-1])
    kernel = self.net.vgg.variables[0]
    kernel.assign(kernel + 0.01)
    feature_cache.ensure(self.net, self.records, "train", self.cache, _CROP,
                         log=messages.append)
    self.assertTrue(any("rebuilding" in m for m in messages))
    with open(info_file) as f:
      self.assertNotEqual(json.load(f)["fingerprint"], first)
    self.assertFalse(os.path.exists(self.cache + ".partial"))

  def test_refuses_what_cannot_be_cached(self):
    cases = [
        (model_lib.ReSeg(**_TINY_VGG), augment.AugmentOptions(flip=True), "random augmentation"),
        (model_lib.ReSeg(**_TINY_VGG, vgg_trainable=True), _CROP, "trainable"),
        (model_lib.ReSeg(num_classes=4, use_vgg=False, renet_units=(4,),
                         renet_patch_sizes=((2, 2),), upsample_filters=(3,)),
         _CROP, "no VGG"),
    ]
    for net, options, reason in cases:
      self.assertIn(reason, feature_cache.unsupported_reason(net, options))
      with self.assertRaisesRegex(ValueError, reason):
        feature_cache.ensure(net, self.records, "train", self.cache, options, log=_quiet)
    self.assertIsNone(feature_cache.unsupported_reason(self.net, _CROP))

  def test_training_from_the_cache_equals_training_from_images(self):
    # Same seed, so the same initial weights (VGG's random ones included).
    final = {}
    for cache in (False, True):
      gin.clear_config()
      gin.parse_config_files_and_bindings([], [
          "import reseg_tf.configurables",
          *[f"ReSeg.{k} = {v!r}" for k, v in _TINY_VGG.items()],
          "train.model_fn = @ReSeg",
          f"train.records_dir = '{self.records}'",
          "train.batch_size = 4", "Schedule.max_steps = 8", "Schedule.steps_per_loop = 4",
          "Schedule.validate_every_steps = 8", "train.deterministic = True",
          "train.input_options = @InputOptions()",
          "InputOptions.augment = @AugmentOptions()",
          "AugmentOptions.crop_size = (28, 36)",
          f"train.cache_features = {cache}",
      ])
      model_dir = os.path.join(self.get_temp_dir(), f"run_cache_{cache}")
      result = configurables.train(model_dir=model_dir)
      reader = tf.train.load_checkpoint(os.path.join(model_dir, "checkpoints"))
      final[cache] = (result, {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()
                               if "renet" in n or "classifier" in n})
    gin.clear_config()
    self.assertTrue(os.path.exists(os.path.join(
        self.get_temp_dir(), "run_cache_True", "feature_cache", "train", "cache.json")))
    self.assertEqual(final[True][0]["step"], 8)
    self.assertAllClose(final[True][0]["best_mean_iou"], final[False][0]["best_mean_iou"],
                        atol=1e-4)
    self.assertNotEmpty(final[True][1])
    for name, value in final[False][1].items():
      self.assertAllClose(final[True][1][name], value, atol=1e-4, msg=name)


if __name__ == "__main__":
  tf.test.main()
