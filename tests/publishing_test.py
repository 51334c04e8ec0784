"""Tests of publishing a run as models/<name>/ and loading it by name."""

import json
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from reseg_tf import configurables
from reseg_tf.common import run_files
from reseg_tf.common.errors import InputError
from reseg_tf.evaluation import results
from reseg_tf.serving import publishing
from tests import fixtures


def _publish(model_dir, name, checkpoint, models_dir):
  """`publishing.publish` of a run, its model read from its operative config."""
  spec = configurables.read_model_spec(os.path.join(model_dir, run_files.OPERATIVE_CONFIG))
  return publishing.publish(model_dir, name, checkpoint, models_dir, spec=spec)


class PublishingTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    root = tf.compat.v1.test.get_temp_dir()
    cls.records, cls.model_dir, cls.train_result = fixtures.train_tiny_run(
        os.path.join(root, "publishing"))
    cls.models_dir = os.path.join(root, "models")
    cls.folder = _publish(cls.model_dir, "tiny", "best", cls.models_dir)

  def test_the_folder_holds_weights_config_info_and_card_only(self):
    self.assertCountEqual(os.listdir(self.folder), [
        "weights.index", "weights.data-00000-of-00001", "config.gin",
        "model_info.json", "README.md"])
    names = tf.train.list_variables(os.path.join(self.folder, "weights"))
    self.assertFalse([n for n, _ in names if "optimizer" in n], "no optimizer slots")
    rolling = os.path.join(self.model_dir, "checkpoints",
                           f"ckpt-{self.train_result['step']}.data-00000-of-00001")
    published = os.path.join(self.folder, "weights.data-00000-of-00001")
    # Adam keeps two slots per weight: the weights alone are about a third.
    self.assertLess(os.path.getsize(published), 0.4 * os.path.getsize(rolling))

  def test_published_model_equals_the_runs_best_checkpoint(self):
    from_run = configurables.load_run(self.model_dir, "best")
    from_folder = configurables.load_published(self.folder)
    images = tf.random.uniform([2, 32, 40, 3], 0, 255, seed=1)
    self.assertAllEqual(from_run.model(images), from_folder.model(images))
    self.assertEqual(from_folder.step, self.train_result["best_step"])
    self.assertEqual(from_folder.records_dir, self.records)
    self.assertEqual(from_folder.class_table()["class_names"],
                     ["background", "circle", "square", "triangle"])

  def test_info_states_the_parameter_count_and_budget(self):
    info = run_files.read_model_info(self.folder)
    model = configurables.load_published(self.folder).model
    self.assertEqual(info["trainable_parameters"],
                     sum(int(np.prod(v.shape)) for v in model.trainable_variables))
    self.assertEqual(info["training"]["trained_steps"], self.train_result["step"])
    self.assertEqual(info["ignore_label"], 255)
    with open(os.path.join(self.folder, "README.md")) as f:
      self.assertIn(f"Trainable parameters: {info['trainable_parameters']:,}", f.read())

  def test_card_states_how_the_checkpoint_was_chosen(self):
    with open(os.path.join(self.folder, "README.md")) as f:
      self.assertIn("checkpoint selected on `val`", f.read())
    latest = _publish(self.model_dir, "tiny_last", "latest", self.models_dir)
    info = run_files.read_model_info(latest)
    self.assertEqual((info["selection"], info["step"]), ("latest", self.train_result["step"]))
    with open(os.path.join(latest, "README.md")) as f:
      card = f.read()
    self.assertIn("the last checkpoint of a fixed budget", card)
    self.assertNotIn("selected on", card)

  def test_a_card_of_a_model_trained_on_val_too_says_val_does_not_measure_it(self):
    text = publishing._selection_text({"selection": "latest", "train_split": "train+val"})  # noqa: SLF001
    self.assertIn("train and val were both trained on", text)
    self.assertNotIn("every split but the training one", text)

  def test_an_unevaluated_card_points_test_at_records_that_have_one(self):
    own = publishing._not_evaluated_text(  # noqa: SLF001
        "tiny", {"splits": {"train": 8, "val": 2, "test": 2}, "records_dir": "data/x"})
    self.assertEqual(own, "Not evaluated yet: `python -m reseg_tf.evaluate --model=tiny "
                     "--split=test --results_file=docs/results.json`.")
    other = publishing._not_evaluated_text(  # noqa: SLF001
        "tiny", {"splits": {"train": 8, "val": 2}, "records_dir": "data/x"})
    self.assertIn("--model=tiny --records_dir=<records with a test split> --split=test", other)
    self.assertIn("its records, `data/x`, have no test split", other)
    empty = publishing._not_evaluated_text(  # noqa: SLF001
        "tiny", {"splits": {"train": 8, "val": 2, "test": 0}, "records_dir": "data/x"})
    self.assertEqual(empty, other)

  def test_a_fine_tuned_models_card_names_what_it_started_from(self):
    # A second run starting from the published `tiny`, published in turn.
    tuned_dir = os.path.join(self.create_tempdir().full_path, "tuned")
    fixtures.parse_quickstart(self.records, "Schedule.max_steps = 4",
                              "Schedule.validate_every_steps = 4",
                              f"train.init_from = '{self.folder}'")
    configurables.train(model_dir=tuned_dir)
    # The run, as a starting point itself, names what it started from.
    self.assertEqual(publishing.starting_point(tuned_dir)["started_from"]["name"], "tiny")
    tuned = _publish(tuned_dir, "tiny_tuned", "latest", self.models_dir)
    start = run_files.read_model_info(tuned)["training"]["started_from"]
    base = run_files.read_model_info(self.folder)["training"]
    self.assertEqual(start["name"], "tiny")
    self.assertEqual(start["trained_steps"], base["trained_steps"])
    self.assertEqual(start["epoch"], base["epoch"])
    with open(os.path.join(tuned, "README.md")) as f:
      self.assertIn(f"It started from the weights of `tiny` (epoch {base['epoch']:.0f}, "
                    f"{base['training_hours']:.2f} h of training).", f.read())

  def test_a_run_as_starting_point_gives_the_epoch_of_its_last_step(self):
    start = publishing.starting_point(self.model_dir)
    self.assertEqual(start["name"], self.model_dir)
    self.assertEqual(start["trained_steps"], self.train_result["step"])
    self.assertAlmostEqual(start["epoch"], self.train_result["step"]
                           / self.train_result["steps_per_epoch"])

  def test_publishing_again_needs_overwrite(self):
    with self.assertRaisesRegex(InputError, "exists"):
      _publish(self.model_dir, "tiny", "best", self.models_dir)

  def test_binaries_take_the_published_model(self):
    folder = self.create_tempdir().full_path
    results_file = os.path.join(folder, "results.json")
    process = fixtures.run_module(
        "reseg_tf.evaluate", f"--model={self.folder}", "--split=val",
        f"--output={folder}/val.json", f"--results_file={results_file}",
        "--results_name=tiny@val")
    self.assertEqual(process.returncode, 0, process.stderr)
    with open(results_file) as f:
      entry = json.load(f)["tiny@val"]
    self.assertAlmostEqual(entry["mean_iou"], self.train_result["best_mean_iou"], places=6)
    self.assertEqual(entry["trained_steps"], self.train_result["step"])
    # The card quotes the evaluation.
    # An evaluation with test-time augmentation is declared in its row.
    results.merge(results_file, "tiny@val_tta",
                  dict(entry, test_time_augmentation="scales 1 and their mirror images (2 views)"))
    card = publishing.write_card(self.folder, "tiny", results_file)
    with open(card) as f:
      text = f.read()
    self.assertIn(f"| val | {100 * entry['global_accuracy']:.1f} |", text)
    self.assertIn("| val, test-time augmentation: scales 1 and their mirror images (2 views) | "
                  f"{100 * entry['global_accuracy']:.1f} |", text)

    image = os.path.join(folder, "street.png")
    Image.fromarray(np.full((30, 44, 3), 120, np.uint8)).save(image)
    process = fixtures.run_module("reseg_tf.predict", f"--model={self.folder}",
                                  f"--input={image}", f"--output_dir={folder}/out")
    self.assertEqual(process.returncode, 0, process.stderr)
    for suffix in ("classes", "color", "overlay"):
      with Image.open(os.path.join(folder, "out", f"street_{suffix}.png")) as picture:
        self.assertEqual(picture.size, (44, 30))


if __name__ == "__main__":
  tf.test.main()
