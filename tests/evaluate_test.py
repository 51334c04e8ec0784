"""Evaluation of a quickstart checkpoint: the trainer's numbers, every image."""

import json
import os

import numpy as np
import tensorflow as tf

import gin
from reseg_tf import configurables, segmentation
from reseg_tf.common.errors import InputError
from reseg_tf.data import eval_pipeline, records
from reseg_tf.evaluation import evaluator
from reseg_tf.model import test_time_augmentation as tta
from reseg_tf.serving import restore
from tests import fixtures

_SCORE_KEYS = ("global_accuracy", "class_average_accuracy", "mean_iou",
               "per_class_accuracy", "per_class_iou", "num_pixels", "class_names")


class EvaluateQuickstartTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    root = tf.compat.v1.test.get_temp_dir()
    cls.records, cls.model_dir, cls.train_result = fixtures.train_tiny_run(
        os.path.join(root, "evaluate"))


  @classmethod
  def tearDownClass(cls):
    gin.clear_config()  # Leave no bindings to the next test module.
    super().tearDownClass()

  def assert_same_scores(self, actual, expected):
    for key in _SCORE_KEYS:
      # Bit-for-bit: same step, same metric code, same batches (NaN == NaN).
      np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)

  def test_latest_checkpoint_reproduces_the_trainers_last_validation(self):
    restored = configurables.load_run(self.model_dir, "latest")
    self.assertEqual(restored.step, self.train_result["step"])
    result = evaluator.evaluate(restored.model, restored.records_dir, "val",
                                 restored.batch_size, log=lambda _: None)
    self.assert_same_scores(result, self.train_result["last_validation"])
    self.assertEqual(result["num_images"], 8)

  def test_best_checkpoint_reproduces_the_best_validation_mean_iou(self):
    restored = configurables.load_run(self.model_dir, "best")
    self.assertEqual(restored.step, self.train_result["best_step"])
    result = evaluator.evaluate(restored.model, self.records, "val", 8,
                                 log=lambda _: None)
    # best_miou is a float32 variable.
    self.assertAlmostEqual(result["mean_iou"], self.train_result["best_mean_iou"], places=6)

  def test_every_image_counts_when_the_last_batch_is_incomplete(self):
    restored = configurables.load_run(self.model_dir, "latest")
    result = evaluator.evaluate(restored.model, self.records, "test", 4,
                                 log=lambda _: None)  # 6 images: 4 + 2.
    self.assertEqual(result["num_images"], 6)
    labelled = 0
    for batch in eval_pipeline.make_eval_dataset(self.records, "test", 6):
      labels = batch["label"].numpy()[batch["mask"].numpy()]
      labelled += int(np.sum(labels != records.IGNORE_LABEL))
    self.assertEqual(result["num_pixels"], labelled)
    self.assertEqual(np.sum(result["confusion_matrix"]), labelled)
    # Batch size and padding mode change nothing: each image is scored alone.
    unpadded = evaluator.evaluate(restored.model, self.records, "test", 8,
                                   pad_to_size=None, log=lambda _: None)
    self.assertEqual(unpadded["confusion_matrix"], result["confusion_matrix"])

  def test_test_time_augmentation_scores_the_apis_averaged_predictions(self):
    restored = configurables.load_run(self.model_dir, "latest")
    augmentation = tta.TestTimeAugmentation(scales=(1.0, 1.5), flip=True)
    result = evaluator.evaluate_report(restored, self.records, "val", 4,
                                       log=lambda _: None, augmentation=augmentation)
    self.assertEqual(result["test_time_augmentation"],
                     "scales 1, 1.5 and their mirror images (4 views)")
    # The same views through the Python API, one image at a time, scored here.
    model = segmentation.from_restored(restored, augmentation=augmentation)
    confusion = np.zeros((4, 5), np.int64)
    for example in eval_pipeline.make_eval_dataset(self.records, "val", 1).unbatch():
      classes = model.segment(example["image"].numpy().astype(np.uint8)).classes
      label = example["label"].numpy()
      for truth, predicted in zip(label[label != 255], classes[label != 255]):
        confusion[truth, predicted] += 1
    self.assertAllEqual(result["confusion_matrix"], confusion)
    # The views count (a model this small may predict the same classes anyway).
    image = example["image"].numpy().astype(np.uint8)
    plain = segmentation.from_restored(restored).segment(image)
    self.assertGreater(np.abs(model.segment(image).probabilities
                              - plain.probabilities).max(), 1e-4)

  def test_default_reports_of_other_views_do_not_overwrite_each_other(self):
    restored = configurables.load_run(self.model_dir, "latest")
    name = os.path.basename(restored.checkpoint)
    views = tta.TestTimeAugmentation(scales=(1.0, 1.5), flip=True)
    self.assertEqual(evaluator.default_output(restored, "val", published=False),
                     os.path.join(self.model_dir, "eval", f"val-{name}.json"))
    self.assertEqual(
        evaluator.default_output(restored, "val", published=False, augmentation=views),
        os.path.join(self.model_dir, "eval", f"val-{name}-tta-1_1.5-flip.json"))
    self.assertEqual(
        evaluator.default_output(restored, "test", published=True,
                                 augmentation=tta.TestTimeAugmentation(scales=(0.75, 1.0))),
        os.path.join("eval", restored.name, "test-tta-0.75_1.json"))

  def test_unknown_split_is_a_clear_error(self):
    restored = configurables.load_run(self.model_dir, "latest")
    with self.assertRaisesRegex(InputError, r"no split 'nope' \(it has test, train, val\)"):
      evaluator.evaluate(restored.model, self.records, "nope", 4)

  def test_binary_prints_the_table_and_writes_json(self):
    folder = self.create_tempdir().full_path
    output = os.path.join(folder, "val.json")
    results_file = os.path.join(folder, "results.json")
    with open(results_file, "w") as f:
      json.dump({"other_run": {"mean_iou": 0.5}}, f)
    process = fixtures.run_module(
        "reseg_tf.evaluate", f"--model_dir={self.model_dir}", "--split=val",
        "--checkpoint=latest", f"--output={output}", f"--results_file={results_file}")
    self.assertEqual(process.returncode, 0, process.stderr)
    for text in ("background", "triangle", "global accuracy", "mean IoU", "8 images"):
      self.assertIn(text, process.stdout)
    with open(output) as f:
      report = json.load(f)
    self.assertEqual(report["step"], self.train_result["step"])
    self.assertEqual(report["dataset"], "synthetic")
    expected = self.train_result["last_validation"]
    for key in ("global_accuracy", "class_average_accuracy", "mean_iou", "num_pixels"):
      self.assertEqual(report[key], expected[key], msg=key)
    self.assertLen(report["confusion_matrix"], 4)
    # --results_file: this run added beside the other one, with its budget.
    with open(results_file) as f:
      results = json.load(f)
    self.assertEqual(results["other_run"], {"mean_iou": 0.5})
    entry = results[os.path.basename(self.model_dir)]
    self.assertEqual(entry["mean_iou"], expected["mean_iou"])
    self.assertEqual((entry["split"], entry["step"]), ("val", self.train_result["step"]))
    self.assertAlmostEqual(entry["epoch"],
                           self.train_result["step"] / self.train_result["steps_per_epoch"])
    self.assertGreater(entry["training_hours"], 0)
    self.assertLess(entry["training_hours"], 1)
    self.assertIn("--split=val", entry["command"])
    self.assertIn("logical CPUs", entry["hardware"])

  def test_operative_config_or_gin_files_build_the_same_model(self):
    from_config = configurables.load_run(self.model_dir, "latest")
    from_files = configurables.load_run(
        self.model_dir, "latest",
        gin_files=[os.path.join(fixtures.ROOT, "gin", "quickstart.gin")],
        gin_bindings=[f"train.records_dir = '{self.records}'"])
    self.assertEqual(from_files.records_dir, self.records)
    images = tf.random.uniform([1, 32, 40, 3], 0, 255)
    self.assertAllEqual(from_config.model(images), from_files.model(images))

  def test_restoring_from_a_spec_reads_no_gin(self):
    spec = configurables.read_model_spec(os.path.join(self.model_dir, "operative_config.gin"))
    with self.assertRaises(TypeError):  # Frozen.
      spec.reseg_args["num_classes"] = 7
    # Bindings that would change the model if restoring read gin (gin
    # cleared first: read_model_spec keeps what the class's training left).
    gin.clear_config()
    gin.parse_config("ReSeg.num_classes = 7")
    try:
      restored = restore.restore_run(spec, self.model_dir, "latest")
    finally:
      gin.clear_config()
    self.assertEqual(restored.model.num_classes, 4)
    self.assertEqual(restored.step, self.train_result["step"])

  def test_a_missing_configuration_is_a_clear_error(self):
    with self.assertRaisesRegex(InputError, "not found: is this a training run's model_dir"):
      configurables.load_run(self.create_tempdir().full_path, "latest")

  def test_missing_checkpoint_is_a_clear_error(self):
    with self.assertRaisesRegex(FileNotFoundError, "no checkpoint at"):
      restore.find_checkpoint(self.model_dir, "checkpoints/ckpt-999")
    self.assertEqual(restore.find_checkpoint(self.model_dir, "checkpoints/ckpt-4"),
                     os.path.join(self.model_dir, "checkpoints", "ckpt-4"))


class TableTest(tf.test.TestCase):

  def fake_result(self, names):
    k = len(names)
    return {"class_names": list(names), "per_class_accuracy": [0.5] * k,
            "per_class_iou": [0.25] * (k - 1) + [float("nan")],
            "global_accuracy": 0.9, "class_average_accuracy": 0.5, "mean_iou": 0.25,
            "num_pixels": 1234, "num_images": 3,
            **({"foreground_iou": 0.7} if k == 2 else {})}

  def test_camvid_table_shows_the_papers_numbers_by_class_name(self):
    names = ("Sky", "Building", "Pole", "Road", "Sidewalk", "Tree", "SignSymbol",
             "Fence", "Car", "Pedestrian", "Bicyclist")
    table = evaluator.format_table(self.fake_result(names), "camvid")
    sky = next(line for line in table.splitlines() if line.startswith("Sky"))
    self.assertEqual(sky.split(), ["Sky", "50.0", "25.0", "93.0"])
    self.assertIn("mean IoU", table)
    self.assertIn("58.8", table)
    self.assertIn("88.7", table)
    self.assertIn("68.1", table)
    bicyclist = next(line for line in table.splitlines() if line.startswith("Bicyclist"))
    self.assertEqual(bicyclist.split(), ["Bicyclist", "50.0", "-", "43.5"])

  def test_binary_datasets_show_the_foreground_iou(self):
    table = evaluator.format_table(self.fake_result(("background", "horse")), "horse")
    line = next(row for row in table.splitlines() if row.startswith("foreground IoU"))
    self.assertEqual(line.split()[-2:], ["70.0", "91.6"])
    flowers = evaluator.format_table(self.fake_result(("background", "flower")), "flowers")
    self.assertIn("93.7", flowers)

  def test_other_datasets_have_no_paper_column(self):
    table = evaluator.format_table(self.fake_result(("a", "b", "c")), "synthetic")
    self.assertNotIn("paper", table)

  def test_json_ready_replaces_nan(self):
    self.assertEqual(evaluator.json_ready({"a": [1.0, float("nan")], "b": "x"}),
                     {"a": [1.0, None], "b": "x"})


if __name__ == "__main__":
  tf.test.main()
