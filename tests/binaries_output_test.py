"""What every binary prints on its common paths: plain progress and results
lines, one-line usage errors, and none of TensorFlow's own chatter.

One tiny pipeline, each step a fresh process as a user runs it: build
synthetic records into the build's default output folder, train on them
from a gin file outside the repository (whose include names a repository
file), evaluate (on test images of six sizes, unpadded), predict, export,
publish and plot the curves.
"""

import dataclasses
import json
import os
import re

import numpy as np
import tensorflow as tf
from PIL import Image

from data_prep import synthetic, writer
from data_prep.dataset import LoadedExample
from tests import fixtures
from tests.data_prep.build_helpers import read_metadata

# TensorFlow's start-up lines (C++ logging before and after absl's set-up,
# CPU features, the CUDA probe, checkpoint sharding).
_TENSORFLOW_START_UP = ("I0000 ", "W0000 ", "E0000 ", "absl::InitializeLog", "cuInit",
                        "cuda", "oneDNN", "This TensorFlow binary", "Sharding callback")
# absl's prefix: level, date, time, thread, file:line.
_ABSL_PREFIX = re.compile(r"^[IWE]\d{4} ", re.MULTILINE)

# Trains the horse model's architecture, scaled down, on the synthetic
# records: its include resolves against the repository root, and that file
# includes two more.
_GIN_OUTSIDE_THE_REPOSITORY = """\
include 'gin/model/horse_no_vgg.gin'

ReSeg.num_classes = 4
ReSeg.renet_units = (8, 8)
ReSeg.upsample_filters = (8, 8)
train.model_fn = @ReSeg
train.records_dir = '{records}'
train.batch_size = 4
Schedule.max_steps = 4
Schedule.validate_every_steps = 4
Schedule.steps_per_loop = 4
"""


def write_test_split_of_six_sizes(records_dir: str) -> str:
  """Synthetic records with only a test split: 6 images, 6 sizes."""
  plan = synthetic.plan(0, (0, 0, 6), (32, 40))

  def load(ref):
    size = (24 + 2 * (ref.index % 6), 32 + 2 * (ref.index % 6))
    return LoadedExample(*synthetic.generate(0, ref.index, *size))

  writer.write_dataset(dataclasses.replace(plan, load=load), records_dir,
                       num_shards=1, log=lambda _: None)
  return records_dir


class BinariesOutputTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    root = cls.root = os.path.join(tf.compat.v1.test.get_temp_dir(), "binaries_output")
    cls.records = os.path.join(root, "data", "synthetic")  # The build's default.
    cls.model_dir = os.path.join(root, "run")
    cls.sizes = write_test_split_of_six_sizes(os.path.join(root, "six_sizes"))
    images = cls.images = os.path.join(root, "images")
    os.makedirs(images)
    rng = np.random.default_rng(0)
    for name, size in (("a.png", (32, 40)), ("b.png", (21, 30))):
      Image.fromarray(rng.integers(0, 256, size + (3,), np.uint8)).save(
          os.path.join(images, name))
    outside = os.path.join(root, "my_configs")
    os.makedirs(outside)
    with open(os.path.join(outside, "tiny.gin"), "w") as f:
      f.write(_GIN_OUTSIDE_THE_REPOSITORY.format(records=cls.records))

    # fixtures.run_module sets TF_CPP_MIN_LOG_LEVEL=2, which the binaries
    # treat as a user's shell without it (reseg_tf/cli.py). Processes that
    # do not depend on each other run at once: most of each one's time is
    # importing TensorFlow, on one core. The first ones run in `root`: the
    # build's default folders are relative to where it runs.
    cls.runs = fixtures.run_at_once(
        cwd=root,
        build=("data_prep.build", "--synthetic_split_sizes=16,4,0",
               "--synthetic_image_size=32,40", "--num_shards=1"),
        # camvid's default --data_dir, datasets/camvid, is absent here.
        no_release=("data_prep.build", "--dataset=camvid"),
        no_such_input=("reseg_tf.predict", f"--model_dir={cls.model_dir}",
                       f"--input={images}/*.webp"),
        bad_flag=("data_prep.build", "--dataset=mnist"))
    cls.errors = {name: cls.runs.pop(name)
                  for name in ("no_release", "no_such_input", "bad_flag")}
    cls.runs["train"] = fixtures.run_module(
        "reseg_tf.train", "--gin_file=tiny.gin", f"--model_dir={cls.model_dir}",
        cwd=outside)
    cls.runs.update(fixtures.run_at_once(
        evaluate=("reseg_tf.evaluate", f"--model_dir={cls.model_dir}",
                  f"--records_dir={cls.sizes}", "--split=test", "--pad_to_size=none",
                  f"--output={root}/test.json"),
        predict=("reseg_tf.predict", f"--model_dir={cls.model_dir}", f"--input={images}",
                 f"--output_dir={root}/predictions"),
        export=("reseg_tf.export", f"--model_dir={cls.model_dir}",
                f"--export_dir={root}/export"),
        publish=("reseg_tf.publish", f"--model_dir={cls.model_dir}",
                 f"--models_dir={root}/models", f"--results_file={root}/results.json"),
        plot_curves=("reseg_tf.plot_curves", f"--model_dir={cls.model_dir}",
                     f"--output={root}/curves.png")))

  def assert_plain(self, process):
    """Exit status 0, and no line of TensorFlow's or absl's making."""
    self.assertEqual(process.returncode, 0, process.stderr)
    output = process.stdout + process.stderr
    for noise in _TENSORFLOW_START_UP:
      self.assertNotIn(noise, output)
    self.assertNotIn("retracing", output)
    self.assertNotIn("Path not found", output)  # Gin's, for the include.
    self.assertIsNone(_ABSL_PREFIX.search(output), output)

  def test_every_binary_prints_plain_lines(self):
    for name, process in self.runs.items():
      with self.subTest(name):
        self.assert_plain(process)

  def test_build_prints_its_progress_and_table(self):
    process = self.runs["build"]
    self.assertEqual(process.stderr.splitlines()[0], "Converting synthetic: train 16, val 4")
    self.assertRegex(process.stderr, r"train: 16/16 done in .* examples/s")
    self.assertRegex(process.stdout, r"train\s+16\s+1\s+[\d.]+ MB\s+0")
    # --output_dir's default, relative to the working folder.
    self.assertIn("Wrote data/synthetic (metadata.json beside the shards).",
                  process.stdout.splitlines())
    self.assertEqual(read_metadata(self.records)["dataset"], "synthetic")

  def test_build_without_the_release_names_the_folder_it_looked_in(self):
    process = self.errors["no_release"]
    self.assertEqual(process.returncode, 1)
    self.assertIn("datasets/camvid", process.stderr)

  def test_train_prints_its_validation_and_result(self):
    with open(os.path.join(self.model_dir, "train_result.json")) as f:
      result = json.load(f)
    lines = self.runs["train"].stderr.splitlines()
    self.assertEqual(lines[0], f"Training in {self.model_dir}")
    scores = result["last_validation"]
    self.assertIn(f"validation at step 4: mean IoU {scores['mean_iou']:.4f}, global "
                  f"accuracy {scores['global_accuracy']:.4f}, class average accuracy "
                  f"{scores['class_average_accuracy']:.4f} (best)", lines)
    self.assertEqual(lines[-1], "Finished at step 4; best validation mean IoU "
                     f"{result['best_mean_iou']:.4f}.")

  def test_evaluate_scores_six_sizes_unpadded(self):
    with open(os.path.join(self.root, "test.json")) as f:
      report = json.load(f)
    self.assertEqual(report["num_images"], 6)
    self.assertEqual(report["pad_to_size"], "none")
    # The table's row, as evaluator.format_table writes it.
    self.assertIn(f"{'mean IoU':<24}{100 * report['mean_iou']:>10.1f}",
                  self.runs["evaluate"].stdout.splitlines())

  def test_the_other_binaries_say_what_they_wrote(self):
    for name, expected in (
        ("predict", f"Segmented 2 of 2 images into {self.root}/predictions"),
        ("export", f"Exported {self.model_dir}/best/ckpt-4 to {self.root}/export/4"),
        ("publish", f"Published {self.root}/models/run "),
        ("plot_curves", f"Wrote {self.root}/curves.png (run: 1 points)")):
      with self.subTest(name):
        self.assertStartsWith(self.runs[name].stdout, expected)

  def test_a_usage_error_is_one_line(self):
    for name, expected in (
        ("no_such_input",
         f"error: no images found for --input={self.images}/*.webp (see --help)"),
        ("bad_flag", "error: flag --dataset=mnist: value should be one of <camvid|horse|"
         "flowers|synthetic|voc|cityscapes|folder> (see --help)")):
      with self.subTest(name):
        process = self.errors[name]
        self.assertEqual(process.returncode, 2)
        self.assertEqual(process.stdout, "")
        self.assertEqual(process.stderr.splitlines(), [expected])


if __name__ == "__main__":
  tf.test.main()
