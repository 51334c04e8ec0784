"""gin/custom.gin, gin/voc.gin and gin/cityscapes.gin: they parse, agree with
their converters and build their models; custom.gin trains on folder records."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized
from PIL import Image

import gin
from data_prep import cityscapes, voc
from reseg_tf import configurables
from tests.data_prep import fixtures
from tests.data_prep.build_helpers import read_metadata

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# File -> (classes, uses VGG, records_dir, training crop, input scale).
_EXPECTED = {
    "custom.gin": (2, False, "data/custom", (256, 256), 0.5),
    "voc.gin": (voc.INFO.num_classes, True, "data/voc", (320, 320), 1.0),
    "cityscapes.gin": (cityscapes.INFO.num_classes, True, "data/cityscapes",
                       (512, 1024), 0.5),
}
# Random VGG (no weight file on test machines) and a tiny ReNet / head.
_TINY = ["ReSeg.vgg_weights = 'random'", "ReSeg.renet_units = (4, 3)",
         "ReSeg.upsample_filters = (3, 2)"]


class DatasetGinTest(parameterized.TestCase, tf.test.TestCase):

  def setUp(self):
    super().setUp()
    gin.clear_config()

  def tearDown(self):
    gin.clear_config()
    super().tearDown()

  @parameterized.named_parameters((n[:-4], n) for n in sorted(_EXPECTED))
  def test_gin_file_builds_its_model(self, name):
    classes, uses_vgg, records_dir, crop, scale = _EXPECTED[name]
    path = os.path.join(_ROOT, "gin", name)
    with open(path) as f:
      self.assertStartsWith(f.readline(), "# ")
    gin.parse_config_files_and_bindings([path], _TINY)
    self.assertEqual(gin.query_parameter("train.records_dir"), records_dir)
    self.assertEqual(configurables.AugmentOptions().crop_size, crop)
    net = configurables.ReSeg()
    self.assertEqual((net.num_outputs, net.void_as_class), (classes, False))
    self.assertEqual(net.vgg is not None, uses_vgg)
    self.assertEqual(net.input_scale, scale)
    logits = net(tf.random.uniform([1, 13, 18, 3], 0, 255))
    self.assertEqual(logits.shape, (1, 13, 18, classes))


def _folder_dataset(root):
  """Six 24x32 images, squares of class 1 or 2 on class 0, 255 on a border."""
  rng = np.random.default_rng(9)
  os.makedirs(root)
  with open(os.path.join(root, "classes.csv"), "w") as f:
    f.write("name,id,color\nground,0,#000000\nred,1,#ff0000\nblue,2,#0000ff\n")
  for i in range(6):
    image = rng.integers(90, 110, size=(24, 32, 3), dtype=np.uint8)
    mask = np.zeros((24, 32), np.uint8)
    top, left, cls = 4 + i, 6 + i, 1 + i % 2
    mask[top:top + 10, left:left + 12] = cls
    image[mask == cls] = (220, 30, 30) if cls == 1 else (30, 30, 220)
    mask[0, :] = 255
    fixtures.save(os.path.join(root, "images", f"photo{i}.jpg"), image, quality=95)
    fixtures.save(os.path.join(root, "masks", f"photo{i}.png"), mask)


@pytest.mark.slow
class OwnDataCommandsTest(tf.test.TestCase):
  """The "Train on your own data" commands of docs/data.md, in fresh processes."""

  def _run(self, module, *args, cwd):
    env = dict(os.environ, PYTHONPATH=_ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=900)
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    return result

  def test_build_train_predict(self):
    cwd = self.create_tempdir().full_path
    data = os.path.join(cwd, "my_data")
    _folder_dataset(data)
    self._run("data_prep.build", "--dataset=folder", f"--data_dir={data}",
              "--output_dir=data/my_data", "--split_fractions=0.5,0.5,0", cwd=cwd)
    self.assertEqual(read_metadata(os.path.join(cwd, "data", "my_data"))["num_classes"], 3)
    self._run("reseg_tf.train", f"--gin_file={os.path.join(_ROOT, 'gin', 'custom.gin')}",
              "--model_dir=runs/my_data",
              "--gin_bindings=train.records_dir = 'data/my_data'",
              "--gin_bindings=ReSeg.num_classes = 3",
              "--gin_bindings=AugmentOptions.crop_size = (24, 32)",
              "--gin_bindings=ReSeg.renet_units = (4, 4)",
              "--gin_bindings=ReSeg.upsample_filters = (4, 4)",
              "--gin_bindings=train.batch_size = 3",
              "--gin_bindings=Schedule.max_steps = 2", cwd=cwd)
    self.assertTrue(os.path.exists(os.path.join(cwd, "runs", "my_data", "operative_config.gin")))
    self._run("reseg_tf.predict", "--model_dir=runs/my_data", "--checkpoint=latest",
              f"--input={os.path.join(data, 'images')}", "--output_dir=predictions",
              "--contact_sheet_rows=0", cwd=cwd)
    classes = np.asarray(Image.open(os.path.join(cwd, "predictions", "photo0_classes.png")))
    self.assertEqual(classes.shape, (24, 32))
    self.assertLessEqual(set(np.unique(classes)), {0, 1, 2})


if __name__ == "__main__":
  tf.test.main()
