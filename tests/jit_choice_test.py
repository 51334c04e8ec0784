"""The trainer's measured choice of the outer XLA function, and its cache."""

import json
import os
from unittest import mock

import numpy as np
import tensorflow as tf

from reseg_tf import configurables
from reseg_tf.common import machine
from reseg_tf.model import reseg as model_lib
from reseg_tf.training import jit_choice, train_step
from tests import fixtures


class FakeMeasure:
  """Seconds per step by variant, counting the calls."""

  def __init__(self, xla, no_xla):
    self.seconds = {True: xla, False: no_xla}
    self.calls = []

  def __call__(self, jit_compile):
    self.calls.append(jit_compile)
    return self.seconds[jit_compile]


def recording_decide():
  """`(decide, decisions)`: `jit_choice.decide`, appending each answer."""
  decisions = []
  decide = jit_choice.decide

  def recording(*args, **kwargs):
    decisions.append(decide(*args, **kwargs))
    return decisions[-1]
  return recording, decisions


def tiny_model():
  tf.random.set_seed(0)
  return model_lib.ReSeg(num_classes=3, use_vgg=False, renet_patch_sizes=((2, 2),),
                         renet_units=(4,), upsample_filters=(4,), upsample_size=(2, 2))


class ChooseTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.path = os.path.join(self.get_temp_dir(), "cache", jit_choice.CACHE_FILENAME)
    if os.path.exists(self.path):
      os.remove(self.path)

  def test_keeps_the_faster_variant_and_caches_it(self):
    faster_with_xla = FakeMeasure(xla=0.8, no_xla=1.0)
    result = jit_choice.choose(faster_with_xla, "machine A", self.path)
    self.assertTrue(result["jit_compile"])
    self.assertFalse(result["cached"])
    self.assertCountEqual(faster_with_xla.calls, [True, False])
    self.assertEqual(result["seconds_per_step"], {"xla": 0.8, "no_xla": 1.0})

    again = FakeMeasure(xla=5.0, no_xla=0.1)  # Must not be asked.
    cached = jit_choice.choose(again, "machine A", self.path)
    self.assertTrue(cached["jit_compile"])
    self.assertTrue(cached["cached"])
    self.assertEqual(again.calls, [])

    faster_without = FakeMeasure(xla=1.3, no_xla=1.2)
    other = jit_choice.choose(faster_without, "machine B", self.path)
    self.assertFalse(other["jit_compile"])
    with open(self.path) as f:
      cache = json.load(f)
    self.assertEqual({k: v["jit_compile"] for k, v in cache.items()},
                     {"machine A": True, "machine B": False})

  def test_damaged_cache_is_measured_again_and_rewritten(self):
    os.makedirs(os.path.dirname(self.path))
    with open(self.path, "w") as f:
      f.write('{"machine A": {"jit_compile": tru')  # A write cut short.
    measure = FakeMeasure(xla=2.0, no_xla=1.0)
    self.assertFalse(jit_choice.choose(measure, "machine A", self.path)["jit_compile"])
    self.assertLen(measure.calls, 2)
    with open(self.path) as f:
      self.assertFalse(json.load(f)["machine A"]["jit_compile"])

  def test_cache_key_names_the_cpu_and_depends_on_the_batch_shape(self):
    model = tiny_model()
    labels = tf.zeros([2, 8, 8], tf.uint8)
    small = jit_choice.cache_key(model.trainable_variables, tf.zeros([2, 8, 8, 3]), labels)
    large = jit_choice.cache_key(model.trainable_variables, tf.zeros([2, 16, 16, 3]),
                                 tf.zeros([2, 16, 16], tf.uint8))
    self.assertIn(machine.cpu_model(), small)
    self.assertIn(tf.__version__, small)
    self.assertNotEqual(small, large)
    self.assertEqual(small, jit_choice.cache_key(model.trainable_variables,
                                                 tf.zeros([2, 8, 8, 3]), labels))


class DecideTest(tf.test.TestCase):

  def test_short_run_takes_the_rule_without_reading_a_batch(self):
    def no_batch():
      raise AssertionError("a short run must not build an example batch")
    jit, why = jit_choice.decide(None, [], no_batch, jit_choice.MIN_STEPS_TO_CALIBRATE - 1)
    self.assertFalse(jit)
    self.assertIn("too few", why)

  def test_real_step_is_timed_both_ways_then_cached(self):
    model = tiny_model()
    options = train_step.LossOptions(global_batch_size=2)
    loss_and_gradients = train_step.make_loss_and_gradients(model, options)
    rng = np.random.default_rng(0)
    batch = {"image": tf.constant(rng.integers(0, 256, (2, 8, 12, 3)), tf.uint8),
             "label": tf.constant(rng.integers(0, 3, (2, 8, 12)), tf.uint8)}
    before = [v.numpy() for v in model.trainable_variables]
    served = []

    def example_batch():
      served.append(1)
      return train_step.step_inputs(model, batch)

    jit, why = jit_choice.decide(loss_and_gradients, model.trainable_variables,
                                 example_batch, jit_choice.MIN_STEPS_TO_CALIBRATE)
    self.assertIn("measured on", why)
    key = jit_choice.cache_key(model.trainable_variables,
                               *train_step.step_inputs(model, batch))
    with open(jit_choice.cache_path()) as f:  # conftest: a per-session folder.
      entry = json.load(f)[key]
    seconds = entry["seconds_per_step"]
    self.assertEqual(entry["jit_compile"], jit)
    self.assertEqual(jit, seconds["xla"] < seconds["no_xla"])
    self.assertIn(f"{seconds['xla']:.3f} s/step with the outer XLA", why)
    for b, v in zip(before, model.trainable_variables):  # Timing trains nothing.
      self.assertAllEqual(b, v.numpy())

    again, why_again = jit_choice.decide(loss_and_gradients, model.trainable_variables,
                                         example_batch, 10**6)
    self.assertEqual(again, jit)
    self.assertIn("cached on", why_again)

  def test_both_variants_compute_the_same_loss_and_gradients(self):
    model = tiny_model()
    fn = train_step.make_loss_and_gradients(model, train_step.LossOptions(global_batch_size=2))
    rng = np.random.default_rng(1)
    inputs = tf.constant(rng.integers(0, 256, (2, 8, 12, 3)), tf.uint8)
    labels = tf.constant(rng.integers(0, 3, (2, 8, 12)), tf.uint8)
    features = model.features(inputs)
    loss_a, grads_a = tf.function(fn, jit_compile=False)(features, labels)
    loss_b, grads_b = tf.function(fn, jit_compile=True)(features, labels)
    self.assertAllClose(loss_a, loss_b, rtol=1e-5)
    for a, b in zip(grads_a, grads_b):
      self.assertAllClose(a, b, rtol=1e-4, atol=1e-6)


class TrainerUsesTheChoiceTest(tf.test.TestCase):

  def test_a_long_enough_run_times_its_step_and_caches_the_choice(self):
    cache_dir = self.create_tempdir().full_path
    decide, decisions = recording_decide()
    with mock.patch.dict(os.environ, {jit_choice.CACHE_ENV: cache_dir}), \
         mock.patch.object(jit_choice, "MIN_STEPS_TO_CALIBRATE", 8), \
         mock.patch.object(jit_choice, "decide", decide):
      _, _, result = fixtures.train_tiny_run(self.create_tempdir().full_path, fresh=True)
    self.assertEqual(result["step"], 8)
    with open(os.path.join(cache_dir, jit_choice.CACHE_FILENAME)) as f:
      (entry,) = json.load(f).values()  # One model and batch shape.
    (jit, why), = decisions
    self.assertEqual(jit, entry["jit_compile"])
    self.assertIn("measured on", why)


class DeterministicTrainableFrontEndTest(tf.test.TestCase):

  def test_run_that_would_calibrate_takes_no_xla_and_trains(self):
    # Op determinism and a trainable VGG: XLA cannot compile the max-pool
    # gradient, so the automatic choice must not even try (calibrating would
    # compile it and fail). A calibration threshold of 1 step makes this
    # 2-step run one that would otherwise calibrate.
    root = self.create_tempdir().full_path
    records = fixtures.build_synthetic(os.path.join(root, "synthetic"), sizes=(8, 0, 0))
    fixtures.parse_quickstart(
        records, "Schedule.max_steps = 2", "Schedule.steps_per_loop = 1",
        "Schedule.validate_every_steps = 2", "train.validation_split = None",
        "train.batch_size = 4", "train.deterministic = True", "ReSeg.use_vgg = True",
        "ReSeg.vgg_weights = 'random'", "ReSeg.vgg_trainable = True",
        "ReSeg.renet_patch_sizes = ((1, 1), (1, 1))", "ReSeg.upsample_filters = (8, 8)")
    decide, decisions = recording_decide()
    with fixtures.op_determinism(), \
        mock.patch.object(jit_choice, "MIN_STEPS_TO_CALIBRATE", 1), \
        mock.patch.object(jit_choice, "decide", decide), \
        mock.patch.object(jit_choice, "choose", side_effect=AssertionError(
            "calibrated a step XLA cannot compile")):
      result = configurables.train(model_dir=os.path.join(root, "run"))
    (jit, why), = decisions
    self.assertFalse(jit)
    self.assertIn("op determinism with a trainable front end", why)
    self.assertEqual(result["step"], 2)
    trained = fixtures.checkpoint_values(os.path.join(root, "run", "checkpoints", "ckpt-2"))
    self.assertNotEmpty(trained)
    for name, value in trained.items():
      self.assertTrue(np.all(np.isfinite(value)), msg=name)
