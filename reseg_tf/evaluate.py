r"""Scores a trained ReSeg on a split and compares it with the paper.

  python -m reseg_tf.evaluate --model=horse_no_vgg              # published, test
  python -m reseg_tf.evaluate --model_dir=runs/camvid           # a run: best, test
  python -m reseg_tf.evaluate --model_dir=runs/quickstart --split=val \
      --checkpoint=latest --output=val.json

Rebuilds the model (a published model under models/, or a training run's
configuration and checkpoint), scores every image of --split and prints a
table of per-class accuracy and IoU, global and class-average accuracy, mean
IoU (void excluded), foreground IoU for two-class datasets, and the paper's
numbers for CamVid, Horse and Flowers. Writes the numbers and the confusion
matrix as JSON to --output, and with --results_file adds the model to a
shared record such as docs/results.json (reseg_tf/evaluation/results.py).
"""

import sys

from absl import app, flags, logging

from reseg_tf import cli
from reseg_tf.evaluation import evaluator, results

_MODEL = cli.define_model_flags(
    "Records to read. Default: the records the model was trained on "
    "(model_info.json), e.g. data/camvid.")
_SPLIT = flags.DEFINE_string("split", "test", "The split to score.")
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", None, "Images per step. Default: the training batch size "
    "(5 if unknown).")
_PAD_TO_SIZE = flags.DEFINE_enum(
    "pad_to_size", "max", ["max", "none"], "'max': pad images of different "
    "sizes to the split's largest, as the trainer's validation does; 'none': "
    "each image alone at its own size (batch 1).")
_JIT_COMPILE = flags.DEFINE_enum(
    "jit_compile", "auto", ["auto", "true", "false"], "Compile the model's "
    "trainable part with XLA. auto: as the trainer does (only on GPUs).")
_OUTPUT = flags.DEFINE_string(
    "output", None, "JSON file for the results. Default: "
    "<model_dir>/eval/<split>-<checkpoint name>.json for a run, "
    "eval/<model>/<split>.json for a published model; test-time views add "
    "their tag before .json, e.g. -tta-1_1.5_2-flip.")
_RESULTS_FILE = flags.DEFINE_string(
    "results_file", None, "Also merge a summary of this evaluation (metrics, "
    "training budget, machine, command) into this JSON file, e.g. "
    "docs/results.json, under --results_name. Default: none.")
_AUGMENTATION = cli.define_augmentation_flags()
_RESULTS_NAME = flags.DEFINE_string(
    "results_name", None, "The entry's name in --results_file. Default: the "
    "model's name (the base name of --model_dir, or --model).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  restored = cli.load_model(_MODEL)
  records_dir = cli.records_dir(_MODEL, restored)
  if not records_dir:
    raise app.UsageError("the model does not say which records it was trained on: "
                         "give --records_dir")
  batch_size = _BATCH_SIZE.value or restored.batch_size or 5
  logging.info("Evaluating %s on %s/%s", restored.checkpoint, records_dir, _SPLIT.value)
  augmentation = _AUGMENTATION.value()
  report = evaluator.evaluate_report(
      restored, records_dir, _SPLIT.value, batch_size,
      pad_to_size=None if _PAD_TO_SIZE.value == "none" else "max",
      jit_compile={"auto": None, "true": True, "false": False}[_JIT_COMPILE.value],
      log=logging.info, augmentation=augmentation)
  print(evaluator.format_table(
      report, report["dataset"], title=f"{restored.checkpoint} on "
      f"{report['dataset'] or records_dir} {_SPLIT.value!r}\n"))
  output = _OUTPUT.value or evaluator.default_output(
      restored, _SPLIT.value, published=bool(_MODEL.model.value), augmentation=augmentation)
  evaluator.write_report(report, output)
  logging.info("Wrote %s", output)
  if _RESULTS_FILE.value:
    name = _RESULTS_NAME.value or restored.name
    command = " ".join(["python -m reseg_tf.evaluate", *sys.argv[1:]])
    results.merge(_RESULTS_FILE.value, name, results.run_entry(report, restored, command))
    logging.info("Added %r to %s", name, _RESULTS_FILE.value)


if __name__ == "__main__":
  cli.run(main)
