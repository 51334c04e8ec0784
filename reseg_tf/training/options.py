"""The trainer's option groups, gin-configurable frozen dataclasses.

`train` (training/trainer.py) takes a `Schedule`, an `Optimisation` and a
`Checkpointing` rather than two dozen flat arguments. Gin files bind them as
`Schedule.max_epochs = 60`; configurations written before the groups
existed bind the same names flat on `train` (`train.max_epochs = 60`), which
`apply_legacy_bindings` moves into their group.
"""

import dataclasses
from typing import Callable, Optional, Sequence

from reseg_tf.training import losses, optimizers


@dataclasses.dataclass(frozen=True)
class Schedule:
  """How long to train, and when to validate and drop the learning rate.

  Attributes:
    max_epochs: hard limit on epochs.
    max_steps: optional hard limit on steps (overrides epochs when smaller).
    validate_every_steps: validate every N steps; None: every epoch (code).
    min_epochs: early stopping is off before this epoch (code: 100).
    patience: validations without improvement that stop training (code: 6).
    steps_per_loop: train steps per `tf.function` call.
    learning_rate_drop_epochs: epochs from which the learning rate is
      multiplied by `learning_rate_drop_factor` once more (step decay; the
      paper has none). Empty: constant.
    learning_rate_drop_factor: the factor of each drop.
  """
  max_epochs: int = 1000
  max_steps: Optional[int] = None
  validate_every_steps: Optional[int] = None
  min_epochs: int = 100
  patience: int = 6
  steps_per_loop: int = 10
  learning_rate_drop_epochs: Sequence[int] = ()
  learning_rate_drop_factor: float = 0.1


@dataclasses.dataclass(frozen=True)
class Optimisation:
  """The optimizer and what shapes the gradient.

  Attributes:
    optimizer_fn: builds the optimizer (gin: `make_optimizer`).
    class_weighting: "none", "median_frequency", "sqrt_median_frequency" or
      "explicit" (losses.py).
    explicit_class_weights: the weights for "explicit".
    weight_decay: L2 penalty on kernels (paper: 0.001; code: never applied).
    clip_norm: global gradient-norm clipping; None: off.
    lovasz_weight: adds this times the Lovasz-softmax loss (a surrogate of
      1 - IoU, losses.py) to each labelled pixel's cross-entropy; 0: off.
    hard_pixel_fraction: hard-pixel mining: the cross-entropy of each image
      counts only this fraction of its labelled pixels, those the network
      gets most wrong (losses.py); 1: all pixels, off.
  """
  optimizer_fn: Callable = optimizers.make_optimizer
  class_weighting: str = "none"
  explicit_class_weights: Optional[Sequence[float]] = None
  weight_decay: float = 0.0
  clip_norm: Optional[float] = None
  lovasz_weight: float = 0.0
  hard_pixel_fraction: float = 1.0

  def __post_init__(self):
    # Here rather than at the loss's first trace: a bad gin value fails
    # before the records are read and the model is built.
    losses.check_hard_pixel_fraction(self.hard_pixel_fraction,
                                     "Optimisation.hard_pixel_fraction")


@dataclasses.dataclass(frozen=True)
class Checkpointing:
  """What the run leaves behind besides the best checkpoint.

  Attributes:
    checkpoints_to_keep: rolling checkpoints kept besides the best one.
    log_every_seconds: how often the progress line is printed.
    num_summary_images: validation images drawn in TensorBoard.
  """
  checkpoints_to_keep: int = 3
  log_every_seconds: float = 10.0
  num_summary_images: int = 3


# Flat `train.<name>` bindings of configurations written before the option
# groups existed (operative_config.gin of older runs): the group each belongs to.
LEGACY_BINDINGS = {
    **{f.name: "schedule" for f in dataclasses.fields(Schedule)},
    **{f.name: "optimisation" for f in dataclasses.fields(Optimisation)},
    **{f.name: "checkpointing" for f in dataclasses.fields(Checkpointing)},
    "strategy": "distribution",
}


def apply_legacy_bindings(groups: dict, legacy: dict) -> dict:
  """Moves flat option names (`max_epochs=...`) into their group in `groups`
  (`{"schedule": Schedule, ..., "distribution": str}`).

  Raises:
    TypeError: a name that belongs to no group (a typo).
  """
  for name, value in legacy.items():
    group = LEGACY_BINDINGS.get(name)
    if group is None:
      raise TypeError(f"train() got an unexpected argument {name!r}")
    if group == "distribution":
      groups[group] = value
    else:
      groups[group] = dataclasses.replace(groups[group], **{name: value})
  return groups
