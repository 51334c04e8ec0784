"""What a training run is made of, and building it: the model and optimizer
under the strategy, checkpoint managers, early stopping, the compiled train
and eval steps, the training dataset (or the feature cache) and the
TensorBoard writers. `training/trainer.py` runs the phases on a `Run`.
"""

import dataclasses
import functools
import os
from typing import Callable, Optional

import tensorflow as tf
from absl import logging

from reseg_tf.common import run_files
from reseg_tf.common.errors import InputError
from reseg_tf.common.progress import RateLog
from reseg_tf.data import feature_cache, input_pipeline, records
from reseg_tf.evaluation import eval_step
from reseg_tf.training import distribute, jit_choice, losses, options, run_control, train_step


@dataclasses.dataclass
class Run:
  """Everything the phases of a training run share."""
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
  train_loop: Callable
  evaluate_batch: Callable
  make_dataset: Callable
  input_options: input_pipeline.InputOptions
  seed: int
  train_writer: object
  validation_writer: object
  validation_split: Optional[str]
  result: dict = dataclasses.field(default_factory=dict)
  progress: Optional[RateLog] = None  # Created once the start step is known.

  @property
  def step(self) -> int:
    return int(self.optimizer.iterations.numpy())


def _example_inputs(model, make_dataset, batch_size, strategy, input_options):
  """One replica's `(inputs, labels)` from a batch of the training stream
  (a separate iterator: the run's own data order is untouched)."""
  per_replica = max(1, batch_size // strategy.num_replicas_in_sync)
  batch = next(iter(make_dataset(per_replica, input_options, seed=0)))
  return train_step.step_inputs(model, batch)


def _xla_excluded(model, deterministic: bool) -> Optional[str]:
  """Why the train step cannot be compiled by XLA in this run, if it cannot."""
  if deterministic and not train_step.has_frozen_front_end(model):
    # XLA's max-pool gradient (SelectAndScatter) has no deterministic kernel:
    # compiling it under op determinism fails.
    return ("op determinism with a trainable front end: XLA has no deterministic "
            "max-pool gradient")
  return None


def build(model_dir, write_dir, strategy, model_fn, records_dir, batch_size, schedule,
           optimisation, checkpointing, input_options, cache_features, train_split,
           validation_split, seed, deterministic, jit_compile) -> Run:
  """Model, optimizer, checkpoints, steps, datasets and writers of a run."""
  tf.random.set_seed(seed)
  if deterministic:
    tf.config.experimental.enable_op_determinism()
  metadata = records.load_metadata(records_dir)
  num_classes = metadata["num_classes"]
  if train_split not in metadata["splits"]:
    raise InputError(os.path.join(records_dir, records.METADATA_FILENAME),
                     f"no {train_split!r} split (it has {', '.join(metadata['splits'])})")
  num_train = metadata["splits"][train_split]["num_examples"]
  steps_per_epoch = max(1, num_train // batch_size)
  total_steps = schedule.max_epochs * steps_per_epoch
  if schedule.max_steps is not None:
    total_steps = min(total_steps, schedule.max_steps)

  with strategy.scope():
    model = model_fn()
    if model.num_classes != num_classes:
      raise InputError(os.path.join(records_dir, records.METADATA_FILENAME), (
          f"{num_classes} classes, but the model predicts {model.num_classes}: "
          "set ReSeg.num_classes"))
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
      weight_decay=optimisation.weight_decay, clip_norm=optimisation.clip_norm)
  options = input_options or input_pipeline.InputOptions()
  make_dataset = functools.partial(input_pipeline.make_train_dataset, records_dir, train_split)
  if cache_features:
    cache_dir = os.path.join(write_dir, "feature_cache", train_split)
    info = feature_cache.ensure(model, records_dir, train_split, cache_dir,
                                options.augment, log=logging.info)
    make_dataset = functools.partial(feature_cache.make_dataset, cache_dir, info)
  if jit_compile is None:
    jit_compile, why = jit_choice.decide(
        train_step.make_loss_and_gradients(model, loss_options), model.trainable_variables,
        lambda: _example_inputs(model, make_dataset, batch_size, strategy, options),
        total_steps, xla_excluded=_xla_excluded(model, deterministic))
    logging.info("Outer XLA function for the trainable part: %s (%s)",
                 "on" if jit_compile else "off", why)
  has_validation = bool(validation_split) and validation_split in metadata["splits"]
  return Run(
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
      train_loop=train_step.make_train_loop(strategy, model, optimizer, loss_options,
                                            jit_compile=jit_compile),
      evaluate_batch=eval_step.make_eval_step(strategy, model, num_classes,
                                              jit_compile=jit_compile),
      make_dataset=make_dataset, input_options=options, seed=seed,
      train_writer=tf.summary.create_file_writer(os.path.join(write_dir, "train")),
      validation_writer=tf.summary.create_file_writer(os.path.join(write_dir, "validation")),
      validation_split=validation_split if has_validation else None,
      result={"steps_per_epoch": steps_per_epoch})
