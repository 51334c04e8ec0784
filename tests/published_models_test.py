"""Every model published under models/ loads, is what its card says, and
still scores what docs/results.json records for it.

The re-evaluation needs the real datasets in ../shared/data (skipped with a
reason when absent); it converts the split it needs into a temporary folder
with `data_prep.build`, as a user would.
"""

import glob
import json
import os
import re
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from reseg_tf import configurables
from reseg_tf.common import run_files
from reseg_tf.data import records as records_lib
from reseg_tf.evaluation import evaluator
from reseg_tf.model import test_time_augmentation as tta
from tests import fixtures

_MODELS = sorted(os.path.basename(os.path.dirname(p)) for p in glob.glob(
    os.path.join(fixtures.ROOT, "models", "*", run_files.PUBLISHED_CONFIG)))
# How each dataset's raw release in ../shared/data is converted.
_BUILD_ARGS = {
    "horse": ["--dataset=horse", "--data_dir={shared}/weizmann_horse"],
    "flowers": ["--dataset=flowers", "--data_dir={shared}/flowers17",
                "--flowers_foreground_index=1"],
    "camvid": ["--dataset=camvid", "--data_dir={shared}/camvid"],
}


def _results():
  with open(os.path.join(fixtures.ROOT, "docs", "results.json")) as f:
    return json.load(f)


class PublishedModelsTest(tf.test.TestCase):

  def test_models_folder_is_small(self):
    total = sum(os.path.getsize(p) for p in glob.glob(
        os.path.join(fixtures.ROOT, "models", "**", "*"), recursive=True) if os.path.isfile(p))
    self.assertLess(total, 40 * 2**20)

  def test_a_retired_model_names_its_replacement_and_the_commit_that_holds_it(self):
    retired = run_files.retired_models()
    self.assertIn("camvid_no_vgg", retired)
    for name, entry in retired.items():
      with self.subTest(name):
        self.assertNotIn(name, _MODELS)
        self.assertIn(entry["replacement"], _MODELS)
        with self.assertRaisesRegex(run_files.MissingFileError, (
            rf"^{name}: this published model was retired \(.+\); use "
            rf"--model={entry['replacement']}, or restore .* `git checkout {entry['commit']} "
            rf"-- models/{name}`$")):
          run_files.find_published(name)
        held = _git("cat-file", "-e", f"{entry['commit']}:models/{name}/{run_files.PUBLISHED_CONFIG}")
        if held is None:
          continue  # Not a full git checkout: the commit cannot be looked up.
        self.assertEqual(held.returncode, 0, f"{entry['commit']} does not hold models/{name}")

  def test_each_model_loads_matches_its_card_and_segments_an_image(self):
    if not _MODELS:
      self.skipTest("no published model under models/")
    for name in _MODELS:
      with self.subTest(name):
        restored = configurables.load_published(name)
        parameters = sum(int(np.prod(v.shape)) for v in restored.model.trainable_variables)
        with open(os.path.join(restored.folder, "README.md")) as f:
          card = f.read()
        stated = re.search(r"Trainable parameters: ([\d,]+)", card).group(1)
        self.assertEqual(int(stated.replace(",", "")), parameters)
        self.assertIn("from random initialisation", card)
        image = tf.cast(tf.random.uniform([1, 60, 84, 3], 0, 256, seed=3), tf.uint8)
        probabilities = tf.nn.softmax(restored.model(tf.cast(image, tf.float32)))
        self.assertEqual(probabilities.shape[:3], (1, 60, 84))
        self.assertAllClose(tf.reduce_sum(probabilities, -1), tf.ones([1, 60, 84]), atol=1e-5)

  # Minutes: it converts the three datasets and scores every published
  # model on its splits; run it with -m slow (docs/development.md).
  @pytest.mark.slow
  @pytest.mark.real_data
  def test_each_model_reproduces_its_recorded_metrics(self):
    shared = fixtures.SHARED_DATA
    if not os.path.isdir(shared):
      self.skipTest(f"real datasets not found at {shared}")
    entries = _results()
    built = {}  # dataset -> records folder, converted once.
    for name in _MODELS:
      for key, entry in entries.items():
        if key != name and not key.startswith(name + "@"):
          continue
        with self.subTest(key):
          restored = configurables.load_published(name)
          dataset = restored.info["dataset"]
          if dataset not in built:
            built[dataset] = os.path.join(self.create_tempdir().full_path, dataset)
            args = [a.format(shared=shared) for a in _BUILD_ARGS[dataset]]
            process = fixtures.run_module("data_prep.build", *args,
                                          f"--output_dir={built[dataset]}")
            self.assertEqual(process.returncode, 0, process.stderr)
          records = built[dataset]
          if entry["split"] not in records_lib.load_metadata(records)["splits"]:
            # E.g. CamVid's test split, which ../shared/data lacks: the entry
            # quotes an evaluation on the full release (its "records" says so).
            self.assertIn("records", entry, f"{key}: no split {entry['split']} here")
            continue
          augmentation = _augmentation_of(entry)
          report = evaluator.evaluate_report(restored, records, entry["split"],
                                             restored.batch_size or 5, log=lambda _: None,
                                             augmentation=augmentation)
          for metric in ("global_accuracy", "class_average_accuracy", "mean_iou",
                         "foreground_iou"):
            if entry.get(metric) is not None:
              self.assertAlmostEqual(100 * report[metric], 100 * entry[metric], delta=0.1,
                                     msg=f"{key} {metric}")


def _git(*args):
  """`git <args>` in the repository, or None where it is no full git
  checkout (no git, or a shallow clone missing older commits)."""
  try:
    shallow = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=fixtures.ROOT,
                             capture_output=True, text=True, check=False)
  except FileNotFoundError:
    return None
  if shallow.returncode != 0 or shallow.stdout.strip() != "false":
    return None
  return subprocess.run(["git", *args], cwd=fixtures.ROOT, capture_output=True, check=False)


def _augmentation_of(entry: dict) -> tta.TestTimeAugmentation:
  """The test-time augmentation of an entry, from the flags of its command;
  it must be the one the entry declares."""
  flags = entry.get("command", "").split()
  scales = [f.split("=", 1)[1] for f in flags if f.startswith("--tta_scales=")]
  augmentation = tta.TestTimeAugmentation(
      scales=tta.parse_scales(scales[0]) if scales else (1.0,), flip="--tta_flip" in flags)
  declared = entry.get("test_time_augmentation")
  assert declared == (None if augmentation.is_identity else augmentation.describe()), entry
  return augmentation


if __name__ == "__main__":
  tf.test.main()
