"""Rebuilding a trained model from a typed spec and a checkpoint.

A `ModelSpec` is what a saved configuration (a run's `operative_config.gin`
or a published model's `config.gin`, layouts in `common/run_files.py`) says
about the model. The gin side, `configurables.read_model_spec`, parses the
configuration once into a spec; everything here takes the spec and never
reads gin. `restore_model` builds the `ReSeg` a spec describes and reads
its variables; `restore_run` and `restore_published` add where the weights
and the run's facts (`model_info.json`) come from. Every model variable
must be in the checkpoint (the frozen VGG weights included), so the model
is built with random VGG weights instead of reading a weight file that the
checkpoint overrides anyway, and that may be absent on the machine that
evaluates.

Shared by the evaluate, predict, export and publish binaries (through
`reseg_tf/cli.py` and `configurables.load_run` / `load_published`).
"""

import dataclasses
import os
import re
import types
from typing import Any, Mapping, Optional

import tensorflow as tf

from reseg_tf.common import palette
from reseg_tf.common.errors import InputError, MissingFileError
from reseg_tf.common.run_files import (
  MODEL_INFO,
  PUBLISHED_WEIGHTS,
  find_checkpoint,
  read_model_info,
  read_weights,
)
from reseg_tf.data import records
from reseg_tf.model import reseg as model_lib


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """The model a saved configuration describes, as plain values.

  Attributes:
    reseg_args: the keyword arguments of `model.reseg.ReSeg` as configured,
      a read-only mapping. They are kept as `ReSeg`'s own names rather than
      restated as fields, so that the spec follows the constructor (an
      unknown name fails in `restore_model` as it would in `ReSeg`).
      `vgg_weights` is ignored: the checkpoint holds the VGG weights.
    records_dir: `train.records_dir` when the configuration binds it, else
      None; read only for runs from before `model_info.json`.
    batch_size: `train.batch_size` likewise.
    source: the configuration files the spec was parsed from.
  """
  reseg_args: Mapping[str, Any]
  records_dir: Optional[str] = None
  batch_size: Optional[int] = None
  source: tuple = ()

  def __post_init__(self):
    # A private read-only copy: the spec stays what was parsed, whoever
    # holds the dict it was built from.
    object.__setattr__(self, "reseg_args", types.MappingProxyType(dict(self.reseg_args)))
    object.__setattr__(self, "source", tuple(self.source))

  def legacy_info(self) -> dict:
    """What a run from before `model_info.json` records of its records and
    batch size: the bound ones of `records_dir` and `batch_size`."""
    return {key: value for key, value in (("records_dir", self.records_dir),
                                          ("batch_size", self.batch_size))
            if value is not None}


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


def checkpoint_step(path: str) -> Optional[int]:
  """The N of a `.../ckpt-N` prefix (the trainer numbers them by step)."""
  match = re.search(r"ckpt-(\d+)$", path)
  return int(match.group(1)) if match else None


def restore_model(spec: ModelSpec, checkpoint: str) -> model_lib.ReSeg:
  """Builds the `ReSeg` that `spec` describes and reads its variables from
  `checkpoint` (`run_files.read_weights`). Reads no configuration.

  Raises:
    InputError: the checkpoint does not fit the model (a variable is absent
      or has another shape).
  """
  model = model_lib.ReSeg(**{**spec.reseg_args, "vgg_weights": "random"})
  read_weights(model, checkpoint)
  return model


def restore_run(spec: ModelSpec, model_dir: Optional[str],
                checkpoint: str = "best") -> Restored:
  """Restores a training run's checkpoint (see `find_checkpoint`); `spec`
  is its configuration's (`configurables.load_run` reads both).

  Raises:
    MissingFileError: no such checkpoint.
    InputError: the checkpoint does not fit the model.
  """
  path = find_checkpoint(model_dir, checkpoint)
  info = read_model_info(model_dir) or spec.legacy_info()
  return Restored(model=restore_model(spec, path), checkpoint=path, step=checkpoint_step(path),
                  info=info, name=os.path.basename(os.path.normpath(model_dir or "run")),
                  folder=model_dir)


def restore_published(spec: ModelSpec, folder: str) -> Restored:
  """Restores the published model in `folder` (`run_files.find_published`);
  `spec` is its `config.gin`'s (`configurables.load_published` reads both).

  Raises:
    MissingFileError: its model_info.json or weights are missing.
    InputError: the weights do not fit the model.
  """
  info = read_model_info(folder)
  if info is None:
    raise MissingFileError(os.path.join(folder, MODEL_INFO), "not found")
  path = os.path.join(folder, PUBLISHED_WEIGHTS)
  if not tf.io.gfile.exists(path + ".index"):
    raise MissingFileError(path + ".index", "the published weights are missing")
  return Restored(model=restore_model(spec, path), checkpoint=path, step=info.get("step"),
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
