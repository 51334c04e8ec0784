r"""Trains ReSeg as a gin configuration describes.

  python -m reseg_tf.train --gin_file=gin/camvid.gin
  python -m reseg_tf.train --gin_file=gin/quickstart.gin \
      --gin_bindings='Schedule.max_steps = 100' --model_dir=runs/try

Rerunning the same command resumes from the latest checkpoint in
--model_dir (default: runs/<name of the last gin file>).
"""

import os

from absl import app, flags, logging

import gin
from reseg_tf import cli, configurables
from reseg_tf.training import run_state, trainer

_GIN_FILE = flags.DEFINE_multi_string(
    "gin_file", [], "Gin config files, parsed in order (repeatable).")
_GIN_BINDINGS = flags.DEFINE_multi_string(
    "gin_bindings", [], "Gin bindings applied after the files (repeatable), "
    "e.g. 'train.batch_size = 8'.")
_MODEL_DIR = flags.DEFINE_string(
    "model_dir", None, "Checkpoints, TensorBoard logs and the operative config. "
    "Default: runs/<name of the last gin file>.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not _GIN_FILE.value:
    raise app.UsageError("give at least one --gin_file, e.g. gin/quickstart.gin")
  for path in _GIN_FILE.value:
    if not os.path.isfile(configurables.gin_file_path(path)):
      raise app.UsageError(f"--gin_file={path}: no such file")
  gin.parse_config_files_and_bindings(_GIN_FILE.value, _GIN_BINDINGS.value)
  model_dir = _MODEL_DIR.value or trainer.default_model_dir(_GIN_FILE.value)
  logging.info("Training in %s", model_dir)
  logging.info("%s", run_state.finished_line(configurables.train(model_dir=model_dir)))


if __name__ == "__main__":
  cli.run(main)
