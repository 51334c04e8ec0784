"""gin/custom.gin, gin/voc.gin and gin/cityscapes.gin: they parse, agree with
their converters and build their models; custom.gin trains on folder records,
taking the number of classes from their metadata.json."""

import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized
from PIL import Image

import gin
from data_prep import cityscapes, voc
from reseg_tf import configurables
from reseg_tf.common import run_files
from reseg_tf.common.errors import InputError
from tests.data_prep import fixtures
from tests.data_prep.build_helpers import read_metadata, run_build
from tests.fixtures import EmptyGinConfig

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# File -> (classes, uses VGG, records_dir, training crop, input scale);
# None classes: from the records' metadata.json (3 bound here).
_EXPECTED = {
    "custom.gin": (None, False, "data/custom", (256, 256), 0.5),
    "voc.gin": (voc.INFO.num_classes, True, "data/voc", (320, 320), 1.0),
    "cityscapes.gin": (cityscapes.INFO.num_classes, True, "data/cityscapes",
                       (512, 1024), 0.5),
}
# Random VGG (no weight file on test machines) and a tiny ReNet / head.
_TINY = ["ReSeg.vgg_weights = 'random'", "ReSeg.renet_units = (4, 3)",
         "ReSeg.upsample_filters = (3, 2)"]


class DatasetGinTest(EmptyGinConfig, parameterized.TestCase, tf.test.TestCase):

  @parameterized.named_parameters((n[:-4], n) for n in sorted(_EXPECTED))
  def test_gin_file_builds_its_model(self, name):
    classes, uses_vgg, records_dir, crop, scale = _EXPECTED[name]
    path = os.path.join(_ROOT, "gin", name)
    with open(path) as f:
      self.assertStartsWith(f.readline(), "# ")
    gin.parse_config_files_and_bindings([path], _TINY)
    self.assertEqual(gin.query_parameter("ReSeg.num_classes"), classes)
    if classes is None:
      classes = 3
      with gin.unlock_config():
        gin.bind_parameter("ReSeg.num_classes", classes)
    self.assertEqual(gin.query_parameter("train.records_dir"), records_dir)
    self.assertEqual(configurables.AugmentOptions().crop_size, crop)
    net = configurables.ReSeg()
    self.assertEqual((net.num_outputs, net.void_as_class), (classes, False))
    self.assertEqual(net.vgg is not None, uses_vgg)
    self.assertEqual(net.input_scale, scale)
    logits = net(tf.random.uniform([1, 13, 18, 3], 0, 255))
    self.assertEqual(logits.shape, (1, 13, 18, classes))


def _folder_dataset(root):
  """Six 24x32 images, a square of class 1 or 2 and a small one of the other
  on class 0, 255 on a border."""
  rng = np.random.default_rng(9)
  os.makedirs(root)
  with open(os.path.join(root, "classes.csv"), "w") as f:
    f.write("name,id,color\nground,0,#000000\nred,1,#ff0000\nblue,2,#0000ff\n")
  for i in range(6):
    image = rng.integers(90, 110, size=(24, 32, 3), dtype=np.uint8)
    mask = np.zeros((24, 32), np.uint8)
    top, left, cls = 4 + i, 6 + i, 1 + i % 2
    mask[top:top + 10, left:left + 12] = cls
    mask[20:23, 27:30] = 3 - cls  # Each class in every image: any split has all.
    image[mask == 1] = (220, 30, 30)
    image[mask == 2] = (30, 30, 220)
    mask[0, :] = 255
    fixtures.save(os.path.join(root, "images", f"photo{i}.jpg"), image, quality=95)
    fixtures.save(os.path.join(root, "masks", f"photo{i}.png"), mask)


# A model gin file that leaves ReSeg.num_classes unbound, tiny for tests.
_UNBOUND_GIN = """
import reseg_tf.configurables
ReSeg.use_vgg = False
ReSeg.renet_units = (4, 4)
ReSeg.renet_patch_sizes = ((2, 2), (1, 1))
ReSeg.upsample_filters = (4,)
ReSeg.upsample_size = (2, 2)
train.model_fn = @ReSeg
train.records_dir = '{records_dir}'
train.batch_size = 1
train.jit_compile = False
Schedule.max_steps = 2   # Within the first epoch (3 images): no validation.
Optimisation.optimizer_fn = @make_optimizer
make_optimizer.name = 'adam'
"""


class NumClassesFromRecordsTest(EmptyGinConfig, tf.test.TestCase):
  """ReSeg.num_classes unbound (or None) comes from metadata.json."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    root = tempfile.mkdtemp(dir=tf.compat.v1.test.get_temp_dir())
    data, cls.records = os.path.join(root, "my_data"), os.path.join(root, "records")
    _folder_dataset(data)
    status, _, stderr = run_build("--dataset=folder", f"--data_dir={data}",
                                  f"--output_dir={cls.records}",
                                  "--split_fractions=0.5,0.5,0")
    assert status == 0, stderr

  def test_unbound_num_classes_trains_and_is_recorded(self):
    self.assertEqual(read_metadata(self.records)["num_classes"], 3)
    config = self.create_tempfile("unbound.gin",
                                  _UNBOUND_GIN.format(records_dir=self.records)).full_path
    model_dir = self.create_tempdir().full_path
    gin.parse_config_files_and_bindings([config], [])
    result = configurables.train(model_dir=model_dir)
    self.assertEqual(result["step"], 2)
    with open(os.path.join(model_dir, run_files.OPERATIVE_CONFIG)) as f:
      self.assertIn("ReSeg.num_classes = 3", f.read())
    self.assertEqual(run_files.read_model_info(model_dir)["class_names"],
                     ["ground", "red", "blue"])
    restored = configurables.load_run(model_dir, checkpoint="latest")
    self.assertEqual(restored.model.num_classes, 3)
    logits = restored.model(tf.zeros([1, 24, 32, 3]))
    self.assertEqual(logits.shape, (1, 24, 32, 3))

  def test_custom_gin_reads_it_and_a_different_number_is_an_error(self):
    custom = os.path.join(_ROOT, "gin", "custom.gin")
    records = f"train.records_dir = '{self.records}'"
    spec = configurables.read_model_spec(None, [custom], [records])
    self.assertEqual(spec.reseg_args["num_classes"], 3)
    # Without the records the spec leaves it to the caller.
    spec = configurables.read_model_spec(None, [custom])
    self.assertIsNone(spec.reseg_args["num_classes"])
    gin.parse_config_files_and_bindings(
        [custom], [records, "ReSeg.num_classes = 2", *_TINY, "train.jit_compile = False"])
    with self.assertRaises(InputError) as caught:
      configurables.train(model_dir=self.create_tempdir().full_path)
    self.assertEqual(caught.exception.path, os.path.join(self.records, "metadata.json"))
    self.assertEqual(caught.exception.problem,
                     "the records have 3 classes (ground, red, blue), but the model "
                     "predicts 2 (ReSeg.num_classes): remove that binding to take the "
                     "number from this file, or rebuild the records")


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
