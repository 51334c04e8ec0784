"""What changes while a run trains (`TrainState`), and what it ends with
(`TrainResult`, written to the run's `train_result.json`).

The numeric state of a run (the model's and the optimizer's variables, the
step, which is `optimizer.iterations`, and early stopping's best mean IoU and
stale count) lives in TensorFlow variables that the checkpoints save and
restore; the objects owning them are fixed for the run and belong to the
plan (`run_setup.RunPlan`). `TrainState` reads the step from that counter
and holds the rest: the progress line and what this process has seen, which
becomes the result. Nothing in it is checkpointed, so a resumed run starts
it afresh (as `train_result.json` always did).
"""

import dataclasses
import json
import os
from typing import Optional

import tensorflow as tf

from reseg_tf.common import run_files
from reseg_tf.common.progress import RateLog


@dataclasses.dataclass(frozen=True)
class TrainResult:
  """The trainer's summary of a run (`train_result.json`).

  Attributes:
    steps_per_epoch: training steps per epoch.
    step: the last step trained.
    epoch: `step / steps_per_epoch`.
    best_mean_iou: the best validation mean IoU of the run (resumed runs
      included: it is checkpointed); -1 before any validation.
    best_step: the step of the best validation, when this process improved
      on it; else None (absent from the file).
    last_validation: the scores of this process's last validation
      (`evaluation.metrics.scores`), or None (absent).
    early_stopped: whether early stopping ended the run (in the file only
      when True).
    interrupted_by: the signal that stopped the run ("SIGTERM"), or None
      (absent).
  """
  steps_per_epoch: int
  step: int
  epoch: float
  best_mean_iou: float
  best_step: Optional[int] = None
  last_validation: Optional[dict] = None
  early_stopped: bool = False
  interrupted_by: Optional[str] = None

  def to_json(self) -> dict:
    """The file's keys and their order since the file exists: the optional
    ones only when set, so that readers can test for them."""
    optional = {"best_step": self.best_step, "last_validation": self.last_validation,
                "early_stopped": self.early_stopped or None,
                "interrupted_by": self.interrupted_by}
    return {"steps_per_epoch": self.steps_per_epoch,
            **{key: value for key, value in optional.items() if value is not None},
            "step": self.step, "epoch": self.epoch, "best_mean_iou": self.best_mean_iou}

  def write(self, folder: str):
    with open(os.path.join(folder, run_files.TRAIN_RESULT), "w") as f:
      json.dump(self.to_json(), f, indent=1)


def finished_line(result: dict) -> str:
  """The line `python -m reseg_tf.train` ends with, from the run's summary
  (`TrainResult.to_json`)."""
  if result["best_mean_iou"] < 0:  # The trainer's value before any validation.
    return (f"Finished at step {result['step']}; no validation ran, so there is no best "
            "checkpoint (evaluate with --checkpoint=latest).")
  return f"Finished at step {result['step']}; best validation mean IoU {result['best_mean_iou']:.4f}."


@dataclasses.dataclass
class TrainState:
  """What changes from one loop of steps to the next, besides the variables.

  Attributes:
    iterations: the step counter, the optimizer's `iterations` variable
      (checkpointed with it); read through `step`.
    progress: the step progress line, started at the step the run resumed
      from so that its rate and ETA count this process's work only.
    best_step: the step of this process's best validation so far, if any.
    last_validation: the scores of the latest validation, if any.
    early_stopped: set when early stopping ends the run.
  """
  iterations: tf.Variable
  progress: RateLog
  best_step: Optional[int] = None
  last_validation: Optional[dict] = None
  early_stopped: bool = False

  @property
  def step(self) -> int:
    return int(self.iterations.numpy())

  def result(self, steps_per_epoch: int, best_mean_iou: float,
             interrupted_by: Optional[str] = None) -> TrainResult:
    """The summary of the run at the current step."""
    step = self.step
    return TrainResult(steps_per_epoch=steps_per_epoch, step=step,
                       epoch=step / steps_per_epoch, best_mean_iou=best_mean_iou,
                       best_step=self.best_step, last_validation=self.last_validation,
                       early_stopped=self.early_stopped, interrupted_by=interrupted_by)
