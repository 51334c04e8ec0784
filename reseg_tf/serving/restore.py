"""Rebuilding a trained model from its model_dir: gin config plus checkpoint.

The trainer leaves in `model_dir` (see `trainer.train`):

    operative_config.gin     the gin configuration that ran
    best/ckpt-N              tf.train.Checkpoint(model=...), best validation mIoU
    checkpoints/ckpt-N       tf.train.Checkpoint(model=..., optimizer=..., ...)

`load` parses the gin configuration (the given files, else
`operative_config.gin`), builds the configured `ReSeg` and restores a
checkpoint into it. Either kind of checkpoint works: only the model's
variables are read. Every model variable must be in the checkpoint (the
frozen VGG weights included), so the model is built with random VGG weights
instead of reading a weight file that the checkpoint overrides anyway, and
that may be absent on the machine that evaluates or exports.

Shared by the evaluate, predict and export binaries.
"""

import dataclasses
import os
import re
from typing import Optional, Sequence

import gin
import tensorflow as tf

from reseg_tf import configurables, model as model_lib, records

OPERATIVE_CONFIG = "operative_config.gin"
BEST_DIR = "best"
CHECKPOINTS_DIR = "checkpoints"
# Appended after the gin files, before the user's bindings: the checkpoint
# holds the VGG weights, so there is no need to read them from a file.
_RESTORE_BINDINGS = ("ReSeg.vgg_weights = 'random'",)


@dataclasses.dataclass
class Restored:
  """A model restored from a checkpoint, and where it came from.

  Attributes:
    model: the `model.ReSeg`, its variables restored.
    checkpoint: the checkpoint prefix read, e.g. `.../best/ckpt-960`.
    step: the training step of that checkpoint (from its name), or None.
    records_dir: `train.records_dir` of the gin configuration, or None.
    batch_size: `train.batch_size` of the gin configuration, or None.
  """
  model: model_lib.ReSeg
  checkpoint: str
  step: Optional[int]
  records_dir: Optional[str]
  batch_size: Optional[int]


def parse_gin(model_dir: Optional[str], gin_files: Sequence[str] = (),
              gin_bindings: Sequence[str] = ()) -> list:
  """Clears gin and parses `gin_files`, else `model_dir/operative_config.gin`.

  Args:
    model_dir: the training run's folder (may be None when `gin_files` given).
    gin_files: gin files to parse instead of the operative config.
    gin_bindings: bindings applied last (e.g. "ReSeg.compute_dtype = 'bfloat16'").

  Returns:
    The files parsed.

  Raises:
    FileNotFoundError: no gin file given and no operative config in `model_dir`.
  """
  files = list(gin_files)
  if not files:
    if not model_dir:
      raise FileNotFoundError("give a model_dir or gin files")
    path = os.path.join(model_dir, OPERATIVE_CONFIG)
    if not tf.io.gfile.exists(path):
      raise FileNotFoundError(
          f"{path} not found: is {model_dir} a training run's model_dir? "
          "Otherwise give the run's gin files explicitly")
    files = [path]
  gin.clear_config()
  gin.parse_config_files_and_bindings(files, list(_RESTORE_BINDINGS) + list(gin_bindings))
  return files


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
    FileNotFoundError: nothing matches, with what was looked for.
  """
  if checkpoint in ("best", "latest"):
    if not model_dir:
      raise FileNotFoundError(f"checkpoint={checkpoint!r} needs a model_dir")
    folder = os.path.join(model_dir, BEST_DIR if checkpoint == "best" else CHECKPOINTS_DIR)
    found = tf.train.latest_checkpoint(folder)
    if not found:
      hint = (" (the best checkpoint is written at the first validation; "
              "use checkpoint='latest')" if checkpoint == "best" else "")
      raise FileNotFoundError(f"no checkpoint in {folder}{hint}")
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
  raise FileNotFoundError(f"checkpoint {checkpoint!r}: no checkpoint at "
                          f"{' or '.join(candidates)}")


def checkpoint_step(path: str) -> Optional[int]:
  """The N of a `.../ckpt-N` prefix (the trainer numbers them by step)."""
  match = re.search(r"ckpt-(\d+)$", path)
  return int(match.group(1)) if match else None


def restore_model(checkpoint: str, model_fn=configurables.ReSeg) -> model_lib.ReSeg:
  """Builds `model_fn()` and reads its variables from `checkpoint`.

  Raises:
    AssertionError: a model variable is absent from the checkpoint (a gin
      configuration that does not match the checkpoint).
  """
  model = model_fn()
  status = tf.train.Checkpoint(model=model).restore(checkpoint)
  # Optimizer slots and early-stopping state of rolling checkpoints are not
  # read; every model variable must be.
  status.assert_existing_objects_matched().expect_partial()
  return model


def load(model_dir: Optional[str], checkpoint: str = "best",
         gin_files: Sequence[str] = (), gin_bindings: Sequence[str] = ()) -> Restored:
  """Parses the gin configuration, builds the model and restores it.

  See `parse_gin` and `find_checkpoint` for the arguments.
  """
  parse_gin(model_dir, gin_files, gin_bindings)
  path = find_checkpoint(model_dir, checkpoint)
  return Restored(model=restore_model(path), checkpoint=path,
                  step=checkpoint_step(path), records_dir=_query("train.records_dir"),
                  batch_size=_query("train.batch_size"))


def load_class_table(records_dir: Optional[str], num_classes: int) -> dict:
  """Class names and colours from `records_dir/metadata.json`.

  When the metadata is unavailable (records not on this machine), falls back
  to `class_0`, `class_1`, ... and a fixed palette, and says so in `source`.

  Returns:
    `{"dataset", "class_names", "class_colors", "source"}`.

  Raises:
    ValueError: the metadata's number of classes differs from `num_classes`.
  """
  try:
    metadata = records.load_metadata(records_dir) if records_dir else None
  except FileNotFoundError:
    metadata = None
  if metadata is None:
    return {"dataset": "", "class_names": [f"class_{i}" for i in range(num_classes)],
            "class_colors": default_palette(num_classes),
            "source": f"no metadata.json in {records_dir!r}: generic names and colours"}
  if metadata["num_classes"] != num_classes:
    raise ValueError(f"{records_dir} has {metadata['num_classes']} classes but the "
                     f"model predicts {num_classes}")
  return {"dataset": metadata.get("dataset", ""),
          "class_names": list(metadata["class_names"]),
          "class_colors": [list(c) for c in metadata["class_colors"]],
          "source": os.path.join(records_dir, records.METADATA_FILENAME)}


def default_palette(num_classes: int) -> list:
  """Distinct colours (PASCAL VOC's bit-interleaved palette, black first)."""
  colors = []
  for i in range(num_classes):
    r = g = b = 0
    c = i
    for j in range(8):
      r |= ((c >> 0) & 1) << (7 - j)
      g |= ((c >> 1) & 1) << (7 - j)
      b |= ((c >> 2) & 1) << (7 - j)
      c >>= 3
    colors.append([r, g, b])
  return colors


def _query(name: str):
  try:
    return gin.query_parameter(name)
  except ValueError:  # Not bound (e.g. a model-only gin file).
    return None
