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

Writers and readers (`serving/restore.py`) share these names and
`model_info.json`'s schema through this module.
"""

import json
import os
from typing import Optional

import tensorflow as tf

from reseg_tf.common.errors import InputError

OPERATIVE_CONFIG = "operative_config.gin"
MODEL_INFO = "model_info.json"
BEST_DIR = "best"
CHECKPOINTS_DIR = "checkpoints"
TRAIN_RESULT = "train_result.json"
PUBLISHED_CONFIG = "config.gin"
PUBLISHED_WEIGHTS = "weights"  # Checkpoint prefix inside a published model.
MODELS_DIR = "models"  # Published models, in the repository or the working folder.
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
