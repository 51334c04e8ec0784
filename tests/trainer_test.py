"""The trainer end to end on small synthetic records (random init, CPU)."""

import glob
import inspect
import json
import os
import signal
import subprocess
import types
from unittest import mock

import tensorflow as tf

import gin
from reseg_tf import configurables, plot_curves
from reseg_tf.common import machine
from reseg_tf.common.errors import InputError
from reseg_tf.data import eval_pipeline
from reseg_tf.evaluation import metrics, summaries
from reseg_tf.model import reseg as model_lib
from reseg_tf.training import trainer
from tests import fixtures


def mean_iou(model, records_dir):
  confusion = 0
  for batch in eval_pipeline.make_eval_dataset(records_dir, "val", 8):
    predictions = tf.argmax(model(batch["image"]), axis=-1)
    confusion += metrics.confusion_matrix(batch["label"], predictions, 4,
                                          example_mask=batch["mask"]).numpy()
  return metrics.scores(confusion)["mean_iou"]


def event_tags(folder):
  tags = set()
  for event in summaries.read_events(folder):
    tags.update(value.tag for value in event.summary.value)
  return tags


class QuickstartTrainingTest(tf.test.TestCase):
  """One short quickstart run, inspected from several sides."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    root = tf.compat.v1.test.get_temp_dir()
    cls.records = fixtures.build_synthetic(os.path.join(root, "synthetic"))
    cls.model_dir = os.path.join(root, "quickstart")
    fixtures.parse_quickstart(cls.records, "Schedule.max_steps = 96",
                     "Schedule.validate_every_steps = 48", "Schedule.steps_per_loop = 16")
    cls.result = configurables.train(model_dir=cls.model_dir)
    fixtures.parse_quickstart(cls.records)
    cls.untrained_miou = mean_iou(configurables.ReSeg(), cls.records)

  def test_learns_well_above_chance(self):
    # 4 classes, background ~75% of the pixels: an untrained model scores
    # ~0.2 mean IoU; 96 steps of the quickstart reach ~0.9.
    self.assertGreater(self.result["best_mean_iou"], 0.6)
    self.assertLess(self.untrained_miou, 0.45)
    self.assertEqual(self.result["step"], 96)
    self.assertEqual(self.result["best_step"], 96)

  def test_tensorboard_has_scalars_images_and_config(self):
    train_tags = event_tags(os.path.join(self.model_dir, "train"))
    self.assertLessEqual({"loss", "images_per_second", "learning_rate",
                          "operative_config"}, train_tags)
    validation_tags = event_tags(os.path.join(self.model_dir, "validation"))
    self.assertLessEqual({
        "metrics/mean_iou", "metrics/global_accuracy", "metrics/class_average_accuracy",
        "per_class_iou/00_background", "per_class_iou/03_triangle",
        "per_class_accuracy/01_circle", "input_truth_prediction"}, validation_tags)

  def test_operative_config_and_checkpoints_are_written(self):
    with open(os.path.join(self.model_dir, "operative_config.gin")) as f:
      config = f.read()
    self.assertIn("ReSeg.renet_units = (24, 24)", config)
    self.assertIn("Schedule.max_steps = 96", config)
    self.assertEqual(tf.train.latest_checkpoint(os.path.join(self.model_dir, "checkpoints")),
                     os.path.join(self.model_dir, "checkpoints", "ckpt-96"))
    self.assertIsNotNone(tf.train.latest_checkpoint(os.path.join(self.model_dir, "best")))
    with open(os.path.join(self.model_dir, "train_result.json")) as f:
      self.assertEqual(json.load(f)["step"], 96)


class ResumeTest(tf.test.TestCase):

  def test_stopped_and_resumed_run_equals_uninterrupted_run(self):
    root = self.create_tempdir().full_path
    records = fixtures.build_synthetic(os.path.join(root, "synthetic"), sizes=(40, 8, 0))
    bindings = ("Schedule.validate_every_steps = 5", "Schedule.steps_per_loop = 2",
                "train.batch_size = 8", "train.deterministic = True",
                "Schedule.learning_rate_drop_epochs = (1, 2)",
                "Schedule.learning_rate_drop_factor = 0.5")
    # 40 images / 8 = 5 steps per epoch: stop mid-epoch, at step 7, after
    # the first learning-rate drop.
    fixtures.parse_quickstart(records, "Schedule.max_steps = 12", *bindings)
    configurables.train(model_dir=os.path.join(root, "straight"))
    fixtures.parse_quickstart(records, "Schedule.max_steps = 7", *bindings)
    configurables.train(model_dir=os.path.join(root, "resumed"))
    fixtures.parse_quickstart(records, "Schedule.max_steps = 12", *bindings)
    result = configurables.train(model_dir=os.path.join(root, "resumed"))
    self.assertEqual(result["step"], 12)
    straight = fixtures.checkpoint_values(os.path.join(root, "straight", "checkpoints", "ckpt-12"))
    resumed = fixtures.checkpoint_values(os.path.join(root, "resumed", "checkpoints", "ckpt-12"))
    self.assertCountEqual(straight, resumed)
    for name in straight:  # Weights, Adam slots, iterations, early-stopping state.
      self.assertAllEqual(straight[name], resumed[name], msg=name)
    # The quickstart's Adam 0.005, halved from epoch 1 (step 5) and again from
    # epoch 2 (step 10); each value is logged at the end of its loop of steps.
    for run in ("straight", "resumed"):
      logged = dict(plot_curves.read_scalars(os.path.join(root, run, "train"),
                                             "learning_rate"))
      self.assertEqual(sorted(logged), [2, 4, 5, 7, 9, 10, 12])
      for step, rate in logged.items():
        expected = 0.005 if step <= 5 else 0.0025 if step <= 10 else 0.00125
        self.assertAlmostEqual(rate, expected, places=9, msg=(run, step))


class FailureTest(tf.test.TestCase):

  def test_non_finite_loss_stops_with_a_clear_error(self):
    root = self.create_tempdir().full_path
    records = fixtures.build_synthetic(os.path.join(root, "synthetic"), sizes=(16, 8, 0))
    fixtures.parse_quickstart(records, "Schedule.max_steps = 4", "Schedule.steps_per_loop = 2",
                     "Optimisation.class_weighting = 'explicit'",
                     "Optimisation.explicit_class_weights = (1e400, 1.0, 1.0, 1.0)")
    with self.assertRaisesRegex(trainer.NonFiniteLossError, "loss is (nan|inf) at step 2"):
      configurables.train(model_dir=os.path.join(root, "run"))
    self.assertNotEmpty(glob.glob(os.path.join(root, "run", "nonfinite", "state*")))

  def test_sigterm_writes_a_checkpoint_and_exits_cleanly(self):
    root = self.create_tempdir().full_path
    records = fixtures.build_synthetic(os.path.join(root, "synthetic"), sizes=(16, 8, 0))
    model_dir = os.path.join(root, "run")
    process = fixtures.start_training(
        records, model_dir, "Schedule.steps_per_loop = 1",
        "Checkpointing.log_every_seconds = 0", stderr=subprocess.PIPE)
    try:
      for line in process.stderr:  # Wait until training is under way.
        if "step: 3/" in line:
          break
      process.send_signal(signal.SIGTERM)
      _, stderr = process.communicate(timeout=120)
    finally:
      process.kill()
    self.assertEqual(process.returncode, 0, stderr)
    self.assertIn("SIGTERM received: wrote a checkpoint", stderr)
    with open(os.path.join(model_dir, "train_result.json")) as f:
      result = json.load(f)
    self.assertEqual(result["interrupted_by"], "SIGTERM")
    self.assertEqual(tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")),
                     os.path.join(model_dir, "checkpoints", f"ckpt-{result['step']}"))


class InitFromTest(tf.test.TestCase):
  """`train.init_from`: a new run starts from another run's weights."""

  def test_new_run_starts_from_the_weights_and_a_rerun_resumes(self):
    root = self.create_tempdir().full_path
    records = fixtures.build_synthetic(os.path.join(root, "synthetic"), sizes=(16, 8, 0))
    bindings = ("Schedule.validate_every_steps = 2", "Schedule.steps_per_loop = 2",
                "train.deterministic = True")
    source = os.path.join(root, "source")
    fixtures.parse_quickstart(records, "Schedule.max_steps = 4", *bindings)
    configurables.train(model_dir=source)
    trained = model_weights(os.path.join(source, "checkpoints", "ckpt-4"))

    # A learning rate of 0 leaves the weights read from `source` as they are.
    tuned = os.path.join(root, "tuned")
    fixtures.parse_quickstart(records, "Schedule.max_steps = 2", *bindings,
                              f"train.init_from = '{source}'",
                              "make_optimizer.learning_rate = 0.0")
    result = configurables.train(model_dir=tuned)
    self.assertEqual(result["step"], 2)  # The step starts afresh.
    started = model_weights(os.path.join(tuned, "checkpoints", "ckpt-2"))
    self.assertNotEmpty(trained)
    self.assertCountEqual(trained, started)
    for name in trained:
      self.assertAllEqual(trained[name], started[name], msg=name)
    with open(os.path.join(tuned, "model_info.json")) as f:
      self.assertEqual(json.load(f)["init_from"], source)

    # Once the run has a checkpoint, init_from is not read again: a rerun
    # resumes at step 2 even though the source is gone.
    fixtures.parse_quickstart(records, "Schedule.max_steps = 4", *bindings,
                              f"train.init_from = '{root}/gone'")
    self.assertEqual(configurables.train(model_dir=tuned)["step"], 4)

  def test_a_union_of_splits_is_one_epoch_of_both(self):
    root = self.create_tempdir().full_path
    records = fixtures.build_synthetic(os.path.join(root, "synthetic"), sizes=(16, 8, 0))
    # Batch 8: one epoch of train+val (24 images) is 3 steps, of train alone 2.
    fixtures.parse_quickstart(records, "Schedule.max_steps = None", "Schedule.max_epochs = 1",
                              "Schedule.steps_per_loop = 1", "train.validation_split = None",
                              "train.train_split = 'train+val'")
    self.assertEqual(configurables.train(model_dir=os.path.join(root, "both"))["step"], 3)
    fixtures.parse_quickstart(records, "train.train_split = 'train+test'")
    with self.assertRaisesRegex(InputError, "no 'test' split"):
      configurables.train(model_dir=os.path.join(root, "missing"))

  def test_missing_or_unfitting_weights_are_clear_errors(self):
    root = self.create_tempdir().full_path
    records = fixtures.build_synthetic(os.path.join(root, "synthetic"), sizes=(16, 8, 0))
    source = os.path.join(root, "source")
    fixtures.parse_quickstart(records, "Schedule.max_steps = 2")
    configurables.train(model_dir=source)
    fixtures.parse_quickstart(records, "Schedule.max_steps = 2",
                              f"train.init_from = '{root}/gone/ckpt-3'")
    with self.assertRaisesRegex(InputError, "gone/ckpt-3: no checkpoint"):
      configurables.train(model_dir=os.path.join(root, "a"))
    fixtures.parse_quickstart(records, "Schedule.max_steps = 2",
                              f"train.init_from = '{source}'", "ReSeg.renet_units = (16, 16)")
    with self.assertRaisesRegex(InputError, "ckpt-2: does not fit the configured model"):
      configurables.train(model_dir=os.path.join(root, "b"))


def model_weights(checkpoint):
  """The model's variables of a training checkpoint (no optimizer slots)."""
  return {name: value for name, value in fixtures.checkpoint_values(checkpoint).items()
          if name.startswith("model/")}


def _tiny_renet_units():
  """Tiny `ReSeg.renet_units` for as many ReNet layers as the parsed gin
  files configure."""
  try:
    patch_sizes = gin.query_parameter("ReSeg.renet_patch_sizes")
  except ValueError:  # Not bound: ReSeg's default.
    patch_sizes = inspect.signature(
        model_lib.ReSeg).parameters["renet_patch_sizes"].default
  return (4,) + (3,) * (len(patch_sizes) - 1)


class GinFilesTest(tf.test.TestCase):

  def test_every_training_gin_file_parses_and_builds_its_model(self):
    for path in sorted(glob.glob(os.path.join(fixtures.ROOT, "gin", "*.gin"))):
      with self.subTest(os.path.basename(path)):
        gin.clear_config()
        gin.parse_config_files_and_bindings([path], ["ReSeg.vgg_weights = 'random'"])
        with gin.unlock_config():
          gin.bind_parameter("ReSeg.renet_units", _tiny_renet_units())
          if gin.query_parameter("ReSeg.num_classes") is None:  # From the records.
            gin.bind_parameter("ReSeg.num_classes", 3)
        model = configurables.ReSeg()
        self.assertEqual(model(tf.zeros([1, 16, 24, 3])).shape[:3], (1, 16, 24))
        self.assertTrue(gin.query_parameter("train.records_dir").startswith("data/"))


class Bf16WarningTest(tf.test.TestCase):
  """bf16 on a CPU that emulates it is slower than float32: one warning says so."""

  def warnings(self, cpu_flags, compute_dtype=tf.bfloat16, vgg_dtype=tf.float32):
    vgg = types.SimpleNamespace(compute_dtype=vgg_dtype)
    model = types.SimpleNamespace(compute_dtype=compute_dtype, vgg=vgg)
    with mock.patch.object(machine, "cpu_flags", return_value=set(cpu_flags)), \
         self.assertLogs("absl", level="WARNING") as logs:
      trainer._warn_if_bf16_in_software(model)
      trainer.logging.warning("end")  # assertLogs needs one record.
    return [line for line in logs.output if "bfloat16" in line]

  def test_warns_on_an_avx2_cpu_without_bf16_units(self):
    self.assertLen(self.warnings({"avx2", "fma"}), 1)
    self.assertLen(self.warnings({"avx2"}, tf.float32, vgg_dtype=tf.bfloat16), 1)

  def test_silent_with_bf16_units_or_in_float32(self):
    self.assertEmpty(self.warnings({"avx2", "avx512_bf16"}))
    self.assertEmpty(self.warnings({"avx2", "amx_bf16", "amx_tile"}))
    self.assertEmpty(self.warnings({"avx2"}, tf.float32))
    self.assertEmpty(self.warnings(set()))  # Flags unknown (not Linux x86): no claim.


class LegacyConfigTest(tf.test.TestCase):
  """Configurations written before the trainer's option groups and the
  subpackages (flat `train.max_epochs`, `train.strategy`) still work."""

  def test_an_operative_config_from_before_the_move_builds_its_model(self):
    config = os.path.join(fixtures.ROOT, "tests", "testdata",
                          "operative_config_before_subpackages.gin")
    gin.clear_config()
    gin.parse_config_files_and_bindings([config], ["ReSeg.vgg_weights = 'random'"])
    self.assertEqual(gin.query_parameter("train.max_epochs"), 100)
    model = configurables.ReSeg()
    self.assertEqual(sum(int(tf.size(v)) for v in model.trainable_variables), 776_202)

  def test_an_operative_config_from_before_the_move_reads_as_a_model_spec(self):
    config = os.path.join(fixtures.ROOT, "tests", "testdata",
                          "operative_config_before_subpackages.gin")
    gin.clear_config()
    spec = configurables.read_model_spec(config)
    self.assertEqual((spec.reseg_args["num_classes"], spec.reseg_args["renet_units"]),
                     (2, (100, 100)))
    # What a run from before model_info.json tells of its records.
    self.assertEqual(spec.legacy_info(), {"records_dir": "data/horse", "batch_size": 5})
    self.assertEqual(spec.source, (config,))
    self.assertEqual(gin.config_str(), "")  # Parsed once, nothing left in gin.

  def test_flat_bindings_reach_their_option_group(self):
    root = self.create_tempdir().full_path
    records = fixtures.build_synthetic(os.path.join(root, "synthetic"), sizes=(16, 8, 0))
    fixtures.parse_quickstart(records, "train.max_steps = 3", "train.steps_per_loop = 1",
                              "train.validate_every_steps = 3", "train.strategy = 'auto'")
    result = configurables.train(model_dir=os.path.join(root, "run"))
    self.assertEqual(result["step"], 3)
    self.assertEqual(result["best_step"], 3)

  def test_an_unknown_flat_binding_is_an_error(self):
    root = self.create_tempdir().full_path
    records = fixtures.build_synthetic(os.path.join(root, "synthetic"), sizes=(16, 8, 0))
    fixtures.parse_quickstart(records, "train.max_epoch = 3")
    with self.assertRaisesRegex(TypeError, "max_epoch"):
      configurables.train(model_dir=os.path.join(root, "run"))


if __name__ == "__main__":
  tf.test.main()
