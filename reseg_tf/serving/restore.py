"""Rebuilding a trained model: from a training run or a published model.

Both layouts are described in `common/run_files.py`. `load_run` and
`load_published` parse the gin configuration, build the configured `ReSeg` and restore its variables. Every model variable must be in
the checkpoint (the frozen VGG weights included), so the model is built with
random VGG weights instead of reading a weight file that the checkpoint
overrides anyway, and that may be absent on the machine that evaluates.

Shared by the evaluate, predict and export binaries (through `reseg_tf/cli.py`).
"""

import dataclasses
import os
import re
from typing import Optional, Sequence

import tensorflow as tf

import gin
from reseg_tf import configurables
from reseg_tf.common import palette
from reseg_tf.common.errors import InputError, MissingFileError
from reseg_tf.common.run_files import (
  MODEL_INFO,
  OPERATIVE_CONFIG,
  PUBLISHED_CONFIG,
  PUBLISHED_WEIGHTS,
  find_checkpoint,
  find_published,
  read_model_info,
  read_weights,
)
from reseg_tf.data import records
from reseg_tf.model import reseg as model_lib

# Appended after the gin files, before the user's bindings: the checkpoint
# holds the VGG weights, so there is no need to read them from a file.
_RESTORE_BINDINGS = ("ReSeg.vgg_weights = 'random'",)


@dataclasses.dataclass
class Restored:
  """A model restored from a checkpoint, and where it came from.

  Attributes:
    model: the `ReSeg`, its variables restored.
    checkpoint: the checkpoint prefix read, e.g. `.../best/ckpt-960`.
    step: the training step of that checkpoint, or None.
    info: the run's `model_info.json` (records_dir, batch_size, classes...).
    name: the run's folder name or the published model's name.
    folder: the run's model_dir or the published model's folder.
  """
  model: model_lib.ReSeg
  checkpoint: str
  step: Optional[int]
  info: dict
  name: str
  folder: Optional[str]

  @property
  def records_dir(self) -> Optional[str]:
    return self.info.get("records_dir")

  @property
  def batch_size(self) -> Optional[int]:
    return self.info.get("batch_size")

  def class_table(self, records_dir: Optional[str] = None) -> dict:
    """Class names and colours: from `records_dir`'s metadata when given,
    else from the model's info, else from its records (see `class_table`)."""
    if not records_dir and self.info.get("class_names"):
      return _table(self.info, os.path.join(self.folder or ".", MODEL_INFO))
    return class_table(records_dir or self.records_dir, self.model.num_classes)


def parse_gin(config: Optional[str], gin_files: Sequence[str] = (),
              gin_bindings: Sequence[str] = ()) -> list:
  """Clears gin and parses `gin_files`, else the model's own `config`.

  Returns:
    The files parsed.

  Raises:
    MissingFileError: no gin file given and `config` does not exist.
  """
  files = list(gin_files)
  if not files:
    if not config or not tf.io.gfile.exists(config):
      raise MissingFileError(
          config or "(no model)", "not found: is this a training run's model_dir "
          "or a published model? Otherwise give its gin files with --gin_file")
    files = [config]
  gin.clear_config()
  gin.parse_config_files_and_bindings(files, list(_RESTORE_BINDINGS) + list(gin_bindings))
  return files


def checkpoint_step(path: str) -> Optional[int]:
  """The N of a `.../ckpt-N` prefix (the trainer numbers them by step)."""
  match = re.search(r"ckpt-(\d+)$", path)
  return int(match.group(1)) if match else None


def restore_model(checkpoint: str, model_fn=configurables.ReSeg) -> model_lib.ReSeg:
  """Builds `model_fn()` and reads its variables from `checkpoint`
  (`run_files.read_weights`).

  Raises:
    InputError: the checkpoint does not fit the configured model (a variable
      is absent or has another shape).
  """
  model = model_fn()
  read_weights(model, checkpoint)
  return model


def load_run(model_dir: Optional[str], checkpoint: str = "best",
             gin_files: Sequence[str] = (), gin_bindings: Sequence[str] = ()) -> Restored:
  """Restores a training run's checkpoint (see `find_checkpoint`)."""
  config = os.path.join(model_dir, OPERATIVE_CONFIG) if model_dir else None
  parse_gin(config, gin_files, gin_bindings)
  path = find_checkpoint(model_dir, checkpoint)
  info = read_model_info(model_dir) or _legacy_run_info()
  return Restored(model=restore_model(path), checkpoint=path, step=checkpoint_step(path),
                  info=info, name=os.path.basename(os.path.normpath(model_dir or "run")),
                  folder=model_dir)


def load_published(name: str, gin_files: Sequence[str] = (),
                   gin_bindings: Sequence[str] = ()) -> Restored:
  """Restores a published model (a name under `models/`, or a folder)."""
  folder = find_published(name)
  parse_gin(os.path.join(folder, PUBLISHED_CONFIG), gin_files, gin_bindings)
  info = read_model_info(folder)
  if info is None:
    raise MissingFileError(os.path.join(folder, MODEL_INFO), "not found")
  path = os.path.join(folder, PUBLISHED_WEIGHTS)
  if not tf.io.gfile.exists(path + ".index"):
    raise MissingFileError(path + ".index", "the published weights are missing")
  return Restored(model=restore_model(path), checkpoint=path, step=info.get("step"),
                  info=info, name=os.path.basename(os.path.normpath(folder)), folder=folder)


def class_table(records_dir: Optional[str], num_classes: int) -> dict:
  """Class names and colours from `records_dir/metadata.json`.

  When the metadata is unavailable (records not on this machine), falls back
  to `class_0`, `class_1`, ... and a fixed palette, and says so in `source`.

  Returns:
    `{"dataset", "class_names", "class_colors", "source"}`.

  Raises:
    InputError: the metadata's number of classes differs from `num_classes`.
  """
  try:
    metadata = records.load_metadata(records_dir) if records_dir else None
  except FileNotFoundError:
    metadata = None
  if metadata is None:
    return {"dataset": "", "class_names": [f"class_{i}" for i in range(num_classes)],
            "class_colors": [list(c) for c in palette.voc_palette(num_classes)],
            "source": f"no metadata.json in {records_dir!r}: generic names and colours"}
  if metadata["num_classes"] != num_classes:
    raise InputError(os.path.join(records_dir, records.METADATA_FILENAME),
                     f"{metadata['num_classes']} classes, but the model predicts {num_classes}")
  return _table(metadata, os.path.join(records_dir, records.METADATA_FILENAME))


def _table(described: dict, source: str) -> dict:
  """The class table of a metadata.json or model_info.json (same keys)."""
  return {"dataset": described.get("dataset", ""),
          "class_names": list(described["class_names"]),
          "class_colors": [list(c) for c in described["class_colors"]],
          "source": source}


def _legacy_run_info() -> dict:
  """Runs trained before `model_info.json` existed: what their (already
  parsed) operative config says of the records and the batch size."""
  info = {}
  for key in ("records_dir", "batch_size"):
    try:
      info[key] = gin.query_parameter(f"train.{key}")
    except ValueError:  # Not bound (e.g. a model-only gin file).
      pass
  return info
