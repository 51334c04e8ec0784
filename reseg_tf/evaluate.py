r"""Scores a trained ReSeg on a split and compares it with the paper.

  python -m reseg_tf.evaluate --model_dir=runs/camvid              # best, test
  python -m reseg_tf.evaluate --model_dir=runs/quickstart --split=val \
      --checkpoint=latest --output=val.json

Rebuilds the model from --gin_file (default: the run's operative_config.gin),
restores the chosen checkpoint, scores every image of --split and prints a
table of per-class accuracy and IoU, global and class-average accuracy, mean
IoU (void excluded), foreground IoU for two-class datasets, and the paper's
numbers for CamVid, Horse and Flowers. Writes the numbers and the confusion
matrix as JSON to --output, and with --results_file adds the run to a shared
record such as docs/results.json (reseg_tf/results.py).
"""

import json
import os
import sys

from absl import app, flags, logging

from reseg_tf import evaluation, records, restore, results

_MODEL_DIR = flags.DEFINE_string(
    "model_dir", None, "The training run's folder (required): checkpoints and "
    "operative_config.gin.")
_GIN_FILE = flags.DEFINE_multi_string(
    "gin_file", [], "Gin files that build the model (repeatable). Default: "
    "<model_dir>/operative_config.gin.")
_GIN_BINDINGS = flags.DEFINE_multi_string(
    "gin_bindings", [], "Gin bindings applied after the files (repeatable). "
    "Default: none.")
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", "best", "'best' (best validation mean IoU, <model_dir>/best), "
    "'latest' (<model_dir>/checkpoints) or a checkpoint path such as "
    "<model_dir>/checkpoints/ckpt-600.")
_SPLIT = flags.DEFINE_string("split", "test", "The split to score.")
_RECORDS_DIR = flags.DEFINE_string(
    "records_dir", None, "Records to read. Default: train.records_dir of the gin "
    "configuration.")
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", None, "Images per step. Default: train.batch_size of the gin "
    "configuration (5 if unset).")
_PAD_TO_SIZE = flags.DEFINE_enum(
    "pad_to_size", "max", ["max", "none"], "'max': pad images of different "
    "sizes to the split's largest, as the trainer's validation does; 'none': "
    "each image alone at its own size (batch 1).")
_JIT_COMPILE = flags.DEFINE_enum(
    "jit_compile", "auto", ["auto", "true", "false"], "Compile the model's "
    "trainable part with XLA. auto: as the trainer does (only on GPUs).")
_OUTPUT = flags.DEFINE_string(
    "output", None, "JSON file for the results. Default: "
    "<model_dir>/eval/<split>-<checkpoint name>.json, e.g. eval/test-ckpt-600.json.")
_RESULTS_FILE = flags.DEFINE_string(
    "results_file", None, "Also merge a summary of this evaluation (metrics, "
    "training budget, machine, command) into this JSON file, e.g. "
    "docs/results.json, under --results_name. Default: none.")
_RESULTS_NAME = flags.DEFINE_string(
    "results_name", None, "The entry's name in --results_file. Default: the "
    "base name of --model_dir.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not _MODEL_DIR.value and _CHECKPOINT.value in ("best", "latest"):
    raise app.UsageError("give --model_dir (or --gin_file and a --checkpoint path)")
  try:
    restored = restore.load(_MODEL_DIR.value, _CHECKPOINT.value, _GIN_FILE.value,
                            _GIN_BINDINGS.value)
  except FileNotFoundError as e:  # No config or no such checkpoint.
    sys.exit(f"error: {e}")
  records_dir = _RECORDS_DIR.value or restored.records_dir
  if not records_dir:
    raise app.UsageError("no train.records_dir in the gin configuration: give --records_dir")
  batch_size = _BATCH_SIZE.value or restored.batch_size or 5
  logging.info("Evaluating %s on %s/%s", restored.checkpoint, records_dir, _SPLIT.value)
  try:
    result = evaluation.evaluate(
        restored.model, records_dir, _SPLIT.value, batch_size,
        pad_to_size=None if _PAD_TO_SIZE.value == "none" else "max",
        jit_compile={"auto": None, "true": True, "false": False}[_JIT_COMPILE.value],
        log=logging.info)
  except KeyError as e:  # An absent split: say which exist.
    sys.exit(f"error: {e.args[0]}")
  dataset = records.load_metadata(records_dir).get("dataset", "")
  print(evaluation.format_table(
      result, dataset, title=f"{restored.checkpoint} on {dataset or records_dir} "
      f"{_SPLIT.value!r}\n"))
  output = _OUTPUT.value or os.path.join(
      _MODEL_DIR.value or ".", "eval",
      f"{_SPLIT.value}-{os.path.basename(restored.checkpoint)}.json")
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  report = {"checkpoint": restored.checkpoint, "step": restored.step,
            "split": _SPLIT.value, "records_dir": records_dir, "dataset": dataset, "batch_size": batch_size,
            "pad_to_size": _PAD_TO_SIZE.value, **result,
            "paper": evaluation.paper_results(dataset)}
  with open(output, "w") as f:
    json.dump(evaluation.json_ready(report), f, indent=1)
  logging.info("Wrote %s", output)
  if _RESULTS_FILE.value:
    name = _RESULTS_NAME.value or os.path.basename(os.path.normpath(_MODEL_DIR.value or "run"))
    command = " ".join(["python -m reseg_tf.evaluate", *sys.argv[1:]])
    results.merge(_RESULTS_FILE.value, name,
                  results.run_entry(evaluation.json_ready(report), _MODEL_DIR.value, command))
    logging.info("Added %r to %s", name, _RESULTS_FILE.value)


if __name__ == "__main__":
  app.run(main)
