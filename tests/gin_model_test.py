"""Every model gin file parses and builds its model (tiny overrides)."""

import glob
import os

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

import gin
from reseg_tf import configurables
from reseg_tf.model import reseg as model_lib
from tests.fixtures import EmptyGinConfig

GIN_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "gin",
                       "model")
# File -> (outputs, uses VGG, sweep order, bidirectional mode).
EXPECTED = {
    "camvid.gin": (12, True, "horizontal_first", "stacked"),
    "camvid_paper.gin": (12, True, "vertical_first", "independent"),
    "horse.gin": (2, True, "horizontal_first", "stacked"),
    "horse_no_vgg.gin": (2, False, "horizontal_first", "stacked"),
    "flowers.gin": (2, True, "horizontal_first", "stacked"),
}
# Random VGG (no weight file on test machines) and tiny ReNet / head.
TINY_BINDINGS = [
    "ReSeg.vgg_weights = 'random'",
    "ReSeg.renet_units = (4, 3)",
    "ReSeg.upsample_filters = (3, 2)",
]


def _count(variables):
  return sum(int(np.prod(v.shape)) for v in variables)


class GinModelTest(EmptyGinConfig, tf.test.TestCase, parameterized.TestCase):

  def _parse(self, name, bindings):
    gin.parse_config_files_and_bindings([os.path.join(GIN_DIR, name)],
                                        bindings)

  def test_every_gin_file_is_tested(self):
    found = {os.path.basename(p) for p in glob.glob(f"{GIN_DIR}/*.gin")}
    self.assertEqual(found, set(EXPECTED))

  @parameterized.named_parameters((n[:-4], n) for n in sorted(EXPECTED))
  def test_gin_file_opens_with_a_comment(self, name):
    with open(os.path.join(GIN_DIR, name)) as f:
      self.assertStartsWith(f.readline(), "# ")

  @parameterized.named_parameters((n[:-4], n) for n in sorted(EXPECTED))
  def test_gin_file_builds_its_model(self, name):
    outputs, uses_vgg, sweep_order, mode = EXPECTED[name]
    self._parse(name, TINY_BINDINGS)
    net = configurables.ReSeg()
    self.assertIsInstance(net, model_lib.ReSeg)
    self.assertEqual(net.num_outputs, outputs)
    self.assertEqual(net.vgg is not None, uses_vgg)
    self.assertEqual(net.renet_layers[0].sweep_order, sweep_order)
    self.assertEqual(
        net.renet_layers[0].first_sweep.backward_reads_forward,
        mode == "stacked")
    logits = net(tf.random.uniform([1, 13, 18, 3], 0, 255))
    self.assertEqual(logits.shape, (1, 13, 18, outputs))
    self.assertIn("ReSeg.num_classes", gin.operative_config_str())

  def test_real_camvid_gin_parameter_counts(self):
    self._parse("camvid.gin", ["ReSeg.vgg_weights = 'random'"])
    net = configurables.ReSeg()
    self.assertEqual(_count(net.trainable_variables), 669_912)
    self.assertEqual(_count([v for v in net.variables if not v.trainable]),
                     1_735_488)

  @parameterized.named_parameters(
      ("camvid_paper", "model/camvid_paper.gin", 806_712),
      ("horse", "model/horse.gin", 669_912 - 10 * 51),
      ("horse_no_vgg", "model/horse_no_vgg.gin", 776_202),
      ("flowers", "model/flowers.gin", 669_912 - 10 * 51),
      # CamVid without VGG: 776,661 in two ReNet layers of 100 units.
      ("camvid_deeper", "camvid_holdout_deeper_crops.gin", 1_077_861),
      ("camvid_wider", "camvid_holdout_wider_crops.gin", 1_777_861),
      ("camvid_stem", "camvid_holdout_stem_crops.gin", 821_605),
      ("flowers_stem", "flowers_no_vgg_stem.gin", 821_146))
  def test_parameter_counts_stated_in_gin_files(self, path, expected):
    # horse/flowers: the classifier has 2 outputs instead of 12, 51 each.
    gin.parse_config_files_and_bindings(
        [os.path.join(os.path.dirname(GIN_DIR), path)],
        ["ReSeg.vgg_weights = 'random'"])
    self.assertEqual(_count(configurables.ReSeg().trainable_variables),
                     expected)

  def test_dtypes_can_be_given_as_strings(self):
    self._parse("horse_no_vgg.gin",
                TINY_BINDINGS + ["ReSeg.compute_dtype = 'bfloat16'"])
    net = configurables.ReSeg()
    self.assertEqual(net.compute_dtype, tf.bfloat16)


if __name__ == "__main__":
  tf.test.main()
