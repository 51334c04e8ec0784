"""What a training run is made of, fixed for the run: the `RunPlan` (folders,
sizes, options, the model and optimizer under the strategy, checkpoint
managers, early stopping, the training data and the TensorBoard writers)
and its compiled steps (`CompiledSteps`).

`build_plan` builds the plan from the trainer's option groups and does
nothing else: seeding, op determinism and the XLA decision are phases of
`training/trainer.py`, which runs them around it (seeding before, since the
model's initial weights draw from the seed; the XLA decision after, since
it times this plan's model). The compiled steps are a value of their own
because they need that decision: `compile_steps(plan, jit_compile)`. What
changes as the run goes is in `training/run_state.py`.
"""

import dataclasses
import functools
import os
from typing import Callable, Optional

import tensorflow as tf
from absl import logging

from reseg_tf.common import run_files
from reseg_tf.common.errors import InputError
from reseg_tf.data import feature_cache, input_pipeline, records
from reseg_tf.evaluation import eval_step
from reseg_tf.training import distribute, losses, options, run_control, train_step


@dataclasses.dataclass(frozen=True)
class RunPlan:
  """What is fixed for a run, once built.

  The model, the optimizer and early stopping are objects fixed for the run
  whose variables change (and are checkpointed); `TrainState` reads the
  step from `optimizer.iterations`.

  Attributes:
    model_dir: the run's folder (train_result.json).
    write_dir: where this worker writes: `model_dir` on the chief, a
      subfolder of it on the other workers.
    chief: whether this worker is the chief (it alone writes summaries and
      the result).
    records_dir: the records trained and validated on.
    metadata: their `metadata.json`.
    batch_size: the global batch size.
    steps_per_epoch: `num_train // batch_size`, at least 1.
    total_steps: the step at which training ends (`max_epochs`, `max_steps`).
    validate_every: steps between validations.
    schedule: epochs, validation and learning-rate drops.
    checkpointing: rolling checkpoints, progress lines, summary images.
    strategy: the distribution strategy whose scope holds model and optimizer.
    model: the `ReSeg`.
    optimizer: the Keras optimizer, built for the model's trainable variables.
    initial_learning_rate: the optimizer's configured rate, before any drop.
    early_stopping: the early-stopping rule and its checkpointed state.
    manager: the rolling checkpoints (model, optimizer, early stopping).
    best_manager: the best checkpoint (model only).
    loss_options: the loss and gradient options of the train step.
    make_dataset: `(batch_size, input_options, seed, input_context=None)`
      -> the training stream (the records or the feature cache).
    input_options: augmentation and pipeline options.
    seed: the run's seed (data order and augmentation per epoch).
    train_split: the split trained on (`+` joins several).
    validation_split: the split validated on, or None when there is none.
    train_writer: TensorBoard writer of `write_dir/train`.
    validation_writer: TensorBoard writer of `write_dir/validation`.
  """
  model_dir: str
  write_dir: str
  chief: bool
  records_dir: str
  metadata: dict
  batch_size: int
  steps_per_epoch: int
  total_steps: int
  validate_every: int
  schedule: options.Schedule
  checkpointing: options.Checkpointing
  strategy: tf.distribute.Strategy
  model: object
  optimizer: object
  initial_learning_rate: float
  early_stopping: run_control.EarlyStopping
  manager: tf.train.CheckpointManager
  best_manager: tf.train.CheckpointManager
  loss_options: train_step.LossOptions
  make_dataset: Callable
  input_options: input_pipeline.InputOptions
  seed: int
  train_split: str
  validation_split: Optional[str]
  train_writer: object
  validation_writer: object


@dataclasses.dataclass(frozen=True)
class CompiledSteps:
  """The run's compiled functions, and whether XLA compiles their trainable part.

  Attributes:
    jit_compile: the XLA decision they were built with.
    train_loop: `(iterator, num_steps) -> mean loss per image`
      (`train_step.make_train_loop`).
    evaluate_batch: `(distributed batch) -> confusion matrix`
      (`eval_step.make_eval_step`).
  """
  jit_compile: bool
  train_loop: Callable
  evaluate_batch: Callable


def build_plan(*, model_dir: str, write_dir: str, strategy: tf.distribute.Strategy,
               model_fn: Callable, records_dir: str, batch_size: int,
               schedule: options.Schedule, optimisation: options.Optimisation,
               checkpointing: options.Checkpointing,
               input_options: Optional[input_pipeline.InputOptions],
               cache_features: bool, train_split: str, validation_split: Optional[str],
               seed: int) -> RunPlan:
  """Model, optimizer, checkpoints, sizes, training data and writers of a run
  (the arguments are `trainer.train`'s). With `cache_features`, computes
  the feature cache if it is not complete yet.

  Raises:
    InputError: records without metadata.json or without `train_split`, or
      a model whose number of classes differs from the records'.
  """
  metadata = records.load_metadata(records_dir)
  num_classes = metadata["num_classes"]
  for name in records.split_names(train_split):
    if name not in metadata["splits"]:
      raise InputError(os.path.join(records_dir, records.METADATA_FILENAME),
                       f"no {name!r} split (it has {', '.join(metadata['splits'])})")
  num_train = records.split_size(metadata, train_split)
  steps_per_epoch = max(1, num_train // batch_size)
  total_steps = schedule.max_epochs * steps_per_epoch
  if schedule.max_steps is not None:
    total_steps = min(total_steps, schedule.max_steps)

  with strategy.scope():
    model = model_fn()
    if model.num_classes != num_classes:
      raise InputError(os.path.join(records_dir, records.METADATA_FILENAME), (
          f"the records have {num_classes} classes "
          f"({', '.join(metadata['class_names'])}), but the model predicts "
          f"{model.num_classes} (ReSeg.num_classes): remove that binding to take "
          "the number from this file, or rebuild the records"))
    optimizer = optimisation.optimizer_fn()
    optimizer.build(model.trainable_variables)
  early_stopping = run_control.EarlyStopping(schedule.min_epochs, schedule.patience)
  checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer,
                                   best_miou=early_stopping.best,
                                   stale_validations=early_stopping.stale)
  manager = tf.train.CheckpointManager(
      checkpoint, os.path.join(write_dir, run_files.CHECKPOINTS_DIR),
      max_to_keep=checkpointing.checkpoints_to_keep)
  best_manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                                            os.path.join(write_dir, run_files.BEST_DIR),
                                            max_to_keep=1)

  weights = losses.class_weights(optimisation.class_weighting, metadata, model.num_outputs,
                                 optimisation.explicit_class_weights)
  loss_options = train_step.LossOptions(
      global_batch_size=batch_size, class_weights=weights,
      void_class=num_classes if model.void_as_class else None,
      weight_decay=optimisation.weight_decay, clip_norm=optimisation.clip_norm,
      lovasz_weight=optimisation.lovasz_weight,
      hard_pixel_fraction=optimisation.hard_pixel_fraction)
  input_options = input_options or input_pipeline.InputOptions()
  make_dataset = functools.partial(input_pipeline.make_train_dataset, records_dir, train_split)
  if cache_features:
    cache_dir = os.path.join(write_dir, "feature_cache", train_split)
    info = feature_cache.ensure(model, records_dir, train_split, cache_dir,
                                input_options.augment, log=logging.info)
    make_dataset = functools.partial(feature_cache.make_dataset, cache_dir, info)
  has_validation = bool(validation_split) and validation_split in metadata["splits"]
  return RunPlan(
      model_dir=model_dir, write_dir=write_dir, chief=distribute.is_chief(strategy),
      records_dir=records_dir, metadata=metadata, batch_size=batch_size,
      steps_per_epoch=steps_per_epoch, total_steps=total_steps,
      validate_every=schedule.validate_every_steps or steps_per_epoch,
      schedule=schedule, checkpointing=checkpointing, strategy=strategy, model=model,
      optimizer=optimizer,
      # The optimizer's own learning-rate variable is set at each epoch start
      # rather than replaced by a Keras schedule: Keras 3 checkpoints optimizer
      # variables by position, so a schedule (no variable) could not resume runs
      # started without one.
      initial_learning_rate=float(optimizer.learning_rate.numpy()),
      early_stopping=early_stopping, manager=manager, best_manager=best_manager,
      loss_options=loss_options, make_dataset=make_dataset, input_options=input_options,
      seed=seed, train_split=train_split,
      validation_split=validation_split if has_validation else None,
      train_writer=tf.summary.create_file_writer(os.path.join(write_dir, "train")),
      validation_writer=tf.summary.create_file_writer(os.path.join(write_dir, "validation")))


def compile_steps(plan: RunPlan, jit_compile: bool) -> CompiledSteps:
  """The train loop and the eval step of `plan`, their trainable part
  compiled by XLA or not (traced at their first call)."""
  return CompiledSteps(
      jit_compile=jit_compile,
      train_loop=train_step.make_train_loop(plan.strategy, plan.model, plan.optimizer,
                                            plan.loss_options, jit_compile=jit_compile),
      evaluate_batch=eval_step.make_eval_step(plan.strategy, plan.model,
                                              plan.metadata["num_classes"],
                                              jit_compile=jit_compile))


def example_inputs(plan: RunPlan) -> tuple:
  """One replica's `(inputs, labels)` from a batch of the training stream
  (a separate iterator: the run's own data order is untouched)."""
  per_replica = max(1, plan.batch_size // plan.strategy.num_replicas_in_sync)
  batch = next(iter(plan.make_dataset(per_replica, plan.input_options, seed=0)))
  return train_step.step_inputs(plan.model, batch)


def xla_excluded(model, deterministic: bool) -> Optional[str]:
  """Why the train step cannot be compiled by XLA in this run, if it cannot."""
  if deterministic and not train_step.has_frozen_front_end(model):
    # XLA's max-pool gradient (SelectAndScatter) has no deterministic kernel:
    # compiling it under op determinism fails.
    return ("op determinism with a trainable front end: XLA has no deterministic "
            "max-pool gradient")
  return None
