"""The files of a training run's model_dir and of a published model.

A training run's `model_dir` (written by `training/trainer.py`):

    operative_config.gin     the gin configuration that ran
    model_info.json          records, batch size and class table of the run
    best/ckpt-N              tf.train.Checkpoint(model=...), best validation mIoU
    checkpoints/ckpt-N       tf.train.Checkpoint(model=..., optimizer=..., ...)
    train/, validation/      TensorBoard logs
    train_result.json        the trainer's summary, when it returned

A published model (`models/<name>/`, written by `reseg_tf.publish`):

    config.gin               the operative configuration of its training run
    model_info.json          as above, plus its training budget and metrics
    weights.index, weights.data-*   tf.train.Checkpoint(model=...), no optimizer
    README.md                its model card

`models/retired.json` names the published models that were removed to keep
`models/` small, each with its replacement and the commit that still holds
its weights; asking for one raises an error that says so.

Writers and readers (`serving/restore.py`) share these names and
`model_info.json`'s schema through this module.
"""

import contextlib
import gc
import json
import logging
import os
from typing import Optional

import tensorflow as tf
from absl import logging as absl_logging

from reseg_tf.common.errors import InputError, MissingFileError

OPERATIVE_CONFIG = "operative_config.gin"
MODEL_INFO = "model_info.json"
BEST_DIR = "best"
CHECKPOINTS_DIR = "checkpoints"
TRAIN_RESULT = "train_result.json"
PUBLISHED_CONFIG = "config.gin"
PUBLISHED_WEIGHTS = "weights"  # Checkpoint prefix inside a published model.
MODELS_DIR = "models"  # Published models, in the repository or the working folder.
RETIRED_MODELS = "retired.json"  # In the repository's models/: name -> replacement.
# The repository's root (this file is reseg_tf/common/run_files.py): its
# models/ folder is searched after the working folder's.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IGNORE_LABEL = 255  # As data/records.py; repeated so this module stays at the bottom.


def model_info(records_dir: str, metadata: dict, batch_size: int, **extra) -> dict:
  """What evaluate, predict and export need to know of a model besides its
  gin configuration and weights: its records, batch size and class table."""
  return {"records_dir": records_dir, "batch_size": batch_size,
          "dataset": metadata.get("dataset", ""),
          "num_classes": metadata["num_classes"],
          "class_names": list(metadata["class_names"]),
          "class_colors": [list(c) for c in metadata["class_colors"]],
          "ignore_label": metadata.get("ignore_label", IGNORE_LABEL),
          **extra}


def write_operative_config(folder: str, config: str):
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, OPERATIVE_CONFIG), "w") as f:
    f.write(config)


def write_model_info(folder: str, info: dict):
  os.makedirs(folder, exist_ok=True)
  temporary = os.path.join(folder, MODEL_INFO + ".tmp")
  with open(temporary, "w") as f:
    json.dump(info, f, indent=1)
    f.write("\n")
  os.replace(temporary, os.path.join(folder, MODEL_INFO))


def read_model_info(folder: Optional[str]) -> Optional[dict]:
  """`folder/model_info.json`, or None when there is none.

  Raises:
    InputError: the file is not valid JSON.
  """
  if not folder:
    return None
  path = os.path.join(folder, MODEL_INFO)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    try:
      return json.load(f)
    except json.JSONDecodeError as e:
      raise InputError(path, f"not valid JSON ({e})") from None


def find_checkpoint(model_dir: Optional[str], checkpoint: str = "best") -> str:
  """Resolves a checkpoint choice to a checkpoint prefix.

  Args:
    model_dir: the training run's folder.
    checkpoint: `"best"` (the best validation mIoU, `model_dir/best`),
      `"latest"` (the last rolling checkpoint, `model_dir/checkpoints`), a
      checkpoint prefix (`.../ckpt-480`) or a folder holding checkpoints;
      relative paths are tried as given, then inside `model_dir`.

  Returns:
    The checkpoint prefix.

  Raises:
    MissingFileError: nothing matches, with what was looked for.
  """
  if checkpoint in ("best", "latest"):
    if not model_dir:
      raise MissingFileError(checkpoint, "a 'best' or 'latest' checkpoint needs a model_dir")
    folder = os.path.join(model_dir, BEST_DIR if checkpoint == "best" else CHECKPOINTS_DIR)
    found = tf.train.latest_checkpoint(folder)
    if not found:
      hint = (" (the best checkpoint is written at the first validation; "
              "use --checkpoint=latest)" if checkpoint == "best" else "")
      raise MissingFileError(folder, f"no checkpoint{hint}")
    return found
  candidates = [checkpoint]
  if model_dir and not os.path.isabs(checkpoint):
    candidates.append(os.path.join(model_dir, checkpoint))
  for path in candidates:
    if tf.io.gfile.isdir(path):
      found = tf.train.latest_checkpoint(path)
      if found:
        return found
    elif tf.io.gfile.exists(path + ".index"):
      return path
  raise MissingFileError(checkpoint, f"no checkpoint at {' or '.join(candidates)}")


def find_published(name: str) -> str:
  """The folder of a published model: `name` itself when it is a folder,
  else `models/<name>` in the working folder or in the repository.

  Raises:
    MissingFileError: no such model, listing the published ones.
  """
  candidates = [name] if os.sep in name or os.path.isdir(name) else []
  candidates += [os.path.join(MODELS_DIR, name),
                 os.path.join(REPO_ROOT, MODELS_DIR, name)]
  for folder in candidates:
    if tf.io.gfile.exists(os.path.join(folder, PUBLISHED_CONFIG)):
      return folder
  retired = retired_models().get(name)
  if retired:
    raise MissingFileError(name, (
        f"this published model was retired ({retired['reason']}); use "
        f"--model={retired['replacement']}, or restore its weights with "
        f"`git checkout {retired['commit']} -- {MODELS_DIR}/{name}`"))
  available = sorted(published_names())
  raise MissingFileError(name, "no such published model (a folder with "
                         f"{PUBLISHED_CONFIG}); published: {', '.join(available) or 'none'}")


def retired_models() -> dict:
  """The retired published models (`models/retired.json` of the repository):
  name -> {"replacement", "reason", "commit"}, where `commit` still holds
  the model's folder."""
  path = os.path.join(REPO_ROOT, MODELS_DIR, RETIRED_MODELS)
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def published_names() -> set:
  """Names of the models under `models/` (working folder and repository)."""
  names = set()
  for base in (MODELS_DIR, os.path.join(REPO_ROOT, MODELS_DIR)):
    if os.path.isdir(base):
      names.update(n for n in os.listdir(base)
                   if os.path.exists(os.path.join(base, n, PUBLISHED_CONFIG)))
  return names


def find_weights(source: str) -> str:
  """The checkpoint prefix of the model weights that `source` names.

  Args:
    source: a published model (a name under `models/`, or its folder), a
      training run's model_dir (its latest rolling checkpoint), a folder of
      checkpoints, or a checkpoint prefix (`.../ckpt-480`).

  Raises:
    MissingFileError: nothing matches, with what was looked for.
  """
  if tf.io.gfile.isdir(os.path.join(source, CHECKPOINTS_DIR)):  # A run's model_dir.
    return find_checkpoint(source, "latest")
  # A published model's folder, or a bare name that is no file or folder here.
  if tf.io.gfile.exists(os.path.join(source, PUBLISHED_CONFIG)) or not (
      os.sep in source or tf.io.gfile.exists(source + ".index") or tf.io.gfile.isdir(source)):
    return os.path.join(find_published(source), PUBLISHED_WEIGHTS)
  return find_checkpoint(None, source)


def read_weights(model: tf.Module, checkpoint: str):
  """Reads every variable of `model` from `checkpoint`: a published model's
  weights or a training checkpoint, whose optimizer slots and early-stopping
  state are left unread.

  Raises:
    InputError: the checkpoint does not fit `model` (a variable is absent or
      has another shape).
  """
  error = None
  # A failed read's objects log every unread checkpoint value (hundreds of
  # lines) when they are freed: keep TensorFlow's warnings down meanwhile,
  # and build the error outside the `except` so that nothing keeps them alive.
  with _tensorflow_warnings_silenced():
    try:
      # `read` (not `restore`): published weights are written without a save
      # counter. expect_partial: the optimizer's state is not wanted; every
      # model variable must be read.
      status = tf.train.Checkpoint(model=model).read(checkpoint)
      status.expect_partial()
      status.assert_existing_objects_matched()
    except (AssertionError, ValueError) as e:
      error = InputError(checkpoint, "does not fit the configured model (another "
                         "architecture or number of classes?): "
                         f"{str(e).splitlines()[0][:300]}")
    gc.collect()
  if error is not None:
    raise error


@contextlib.contextmanager
def _tensorflow_warnings_silenced():
  logger = logging.getLogger("tensorflow")
  level, verbosity = logger.level, absl_logging.get_verbosity()
  logger.setLevel(logging.ERROR)
  absl_logging.set_verbosity(absl_logging.ERROR)
  try:
    yield
  finally:
    logger.setLevel(level)
    absl_logging.set_verbosity(verbosity)
