"""Training ReSeg: the loop, validation, checkpoints, early stopping, summaries.

`train` is the trainer's entry point; the binary `reseg_tf/train.py` parses
flags and gin, and `reseg_tf/configurables.py` (the gin root) calls it with
the configured option groups. This module does not import gin.

Protocol (docs/protocol.md, "Training protocol"): Adadelta (lr 1.0, rho
0.95, eps 1e-6), batch 5, no augmentation, validation every epoch on mean
IoU, and the original code's early-stopping rule: after `min_epochs` epochs,
stop once `patience` validations in a row have not improved the best mean
IoU. The best checkpoint is kept apart from the rolling ones.

A rerun of the same command resumes from the latest checkpoint in
`model_dir`; each epoch's data order depends only on (seed, epoch), so a
resumed run sees the same batches as an uninterrupted one. SIGINT and SIGTERM
finish the current loop of steps, write a checkpoint and return. One trainer
at a time owns a model_dir (`run_control.ModelDirLock`).
"""

import json
import math
import os
import time
from typing import Callable, Optional, Sequence

import tensorflow as tf
from absl import logging

from reseg_tf.common import run_files
from reseg_tf.common.errors import InputError
from reseg_tf.common.progress import RateLog
from reseg_tf.data import eval_pipeline, input_pipeline
from reseg_tf.evaluation import eval_step, metrics, summaries
from reseg_tf.training import distribute, options, run_control, run_setup


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN or infinite loss."""


def default_model_dir(gin_files: Sequence[str]) -> str:
  """`runs/<name of the last gin file>`, e.g. gin/camvid.gin -> runs/camvid."""
  if not gin_files:
    return os.path.join("runs", "default")
  return os.path.join("runs", os.path.splitext(os.path.basename(gin_files[-1]))[0])


def train(model_dir: str, *,
          model_fn: Callable,
          records_dir: str,
          batch_size: int = 5,
          schedule: options.Schedule = options.Schedule(),
          optimisation: options.Optimisation = options.Optimisation(),
          checkpointing: options.Checkpointing = options.Checkpointing(),
          input_options: Optional[input_pipeline.InputOptions] = None,
          cache_features: bool = False,
          train_split: str = "train",
          validation_split: Optional[str] = "val",
          seed: int = 0,
          deterministic: bool = False,
          distribution: str = "auto",
          jit_compile: Optional[bool] = None,
          init_from: Optional[str] = None,
          operative_config: Callable[[], str] = str,
          **legacy_bindings) -> dict:
  """Trains until early stopping, `max_epochs` or `max_steps`.

  Args:
    model_dir: checkpoints, TensorBoard logs and the operative config go here.
    model_fn: builds the model (gin: the configured `ReSeg`).
    records_dir: the converter's output folder (shards + metadata.json).
    batch_size: global batch size (paper: 5).
    schedule: epochs, validation and learning-rate drops.
    optimisation: optimizer, class weights, weight decay, clipping.
    checkpointing: rolling checkpoints, progress lines, summary images.
    input_options: augmentation and pipeline options (default: none, as the paper).
    cache_features: compute the frozen VGG features of the training images
      once into `model_dir/feature_cache/<train_split>` and train the rest
      from them (data/feature_cache.py; needs a frozen VGG and no random
      augmentation). Off by default.
    train_split: split to train on.
    validation_split: split to validate on; None or absent: no validation.
    seed: seeds initialisation, data order and augmentation.
    deterministic: also make every op deterministic (slower), so that a
      resumed run equals an uninterrupted one bit for bit.
    distribution: "auto", "mirrored" or "multi_worker" (distribute.py).
    jit_compile: compile the whole trainable part with XLA; None: on GPUs
      yes, on CPUs whichever is faster for this model on this machine, timed
      once and cached (`training/jit_choice.py`).
    init_from: the model weights a new run starts from instead of random
      ones (fine-tuning, e.g. on whole images after training on crops): a
      published model's name or folder, a run's model_dir (its latest
      checkpoint) or a checkpoint prefix (`run_files.find_weights`). Only
      the model's variables are read: the optimizer, step and schedule
      start afresh. Ignored once `model_dir` has a checkpoint of its own,
      so that a rerun resumes.
    operative_config: returns the configuration text that ran (gin's
      operative config), written to `model_dir` and TensorBoard.
    **legacy_bindings: flat option names of older configurations
      (`max_epochs=...`), moved into their option group.

  Returns:
    A summary: final step, epoch, best validation mean IoU and its step.

  Raises:
    InputError: records without metadata.json, a model whose number of
      classes differs from the records', a model_dir in use, or `init_from`
      absent or of another architecture.
    NonFiniteLossError: the loss became NaN or infinite (a checkpoint of the
      state that produced it is written to `model_dir/nonfinite`).
  """
  groups = options.apply_legacy_bindings(
      dict(schedule=schedule, optimisation=optimisation, checkpointing=checkpointing,
           distribution=distribution), legacy_bindings)
  strategy = distribute.make_strategy(groups["distribution"])
  write_dir = model_dir if distribute.is_chief(strategy) else os.path.join(
      model_dir, "workers", f"{strategy.cluster_resolver.task_id}")
  logging.info("Distribution: %s, %d replica(s).", type(strategy).__name__,
               strategy.num_replicas_in_sync)
  with run_control.ModelDirLock(write_dir):
    run = run_setup.build(
        model_dir, write_dir, strategy, model_fn, records_dir, batch_size,
        groups["schedule"], groups["optimisation"], groups["checkpointing"],
        input_options, cache_features, train_split, validation_split, seed,
        deterministic, jit_compile)
    _restore(run, init_from)
    run.progress = RateLog("step", run.total_steps, logging.info, unit="steps",
                           every_seconds=run.checkpointing.log_every_seconds,
                           start=run.step)
    _write_run_description(run, operative_config(), train_split, init_from)
    with run_control.StopRequests() as stop:
      while run.step < run.total_steps and not stop.signal_name:
        if _run_epoch(run, stop):  # True: early stopping.
          break
      _finish(run, stop.signal_name)
  return run.result


def _restore(run: run_setup.Run, init_from: Optional[str]):
  """Resumes from the latest rolling checkpoint, if any; else reads the
  model's weights from `init_from`, if given."""
  latest = run.manager.latest_checkpoint
  if not latest and init_from:
    path = run_files.find_weights(init_from)
    run_files.read_weights(run.model, path)
    logging.info("Started from the weights of %s.", path)
  elif latest:
    try:
      run.manager.checkpoint.restore(latest).assert_existing_objects_matched()
    except (AssertionError, ValueError) as e:
      raise InputError(latest, "does not fit the configured model and optimizer "
                       "(another configuration was trained in this model_dir?): "
                       f"{str(e).splitlines()[0][:300]}") from e
    logging.info("Resumed from %s (step %d).", latest, run.step)


def _run_epoch(run: run_setup.Run, stop: run_control.StopRequests) -> bool:
  """Trains to the end of the current epoch (or a stop request), validating
  on schedule. Returns True when early stopping ends the run."""
  step, epoch = run.step, run.step // run.steps_per_epoch
  run.optimizer.learning_rate.assign(run_control.learning_rate_at(
      epoch, run.initial_learning_rate, run.schedule.learning_rate_drop_epochs,
      run.schedule.learning_rate_drop_factor))
  iterator = iter(run.strategy.distribute_datasets_from_function(
      lambda context: run.make_dataset(
          run.batch_size, run.input_options,
          seed=input_pipeline.epoch_seed(run.seed, epoch),
          input_context=context).skip(step % run.steps_per_epoch)))
  epoch_end = min((epoch + 1) * run.steps_per_epoch, run.total_steps)
  while step < epoch_end and not stop.signal_name:
    next_validation = (step // run.validate_every + 1) * run.validate_every
    num_steps = min(run.schedule.steps_per_loop, epoch_end - step, next_validation - step)
    loop_start = time.monotonic()
    loss = float(run.train_loop(iterator, tf.constant(num_steps)))
    step += num_steps
    if not math.isfinite(loss):
      path = tf.train.Checkpoint(model=run.model, optimizer=run.optimizer).write(
          os.path.join(run.write_dir, "nonfinite", "state"))
      raise NonFiniteLossError(
          f"loss is {loss} at step {step}; the state that produced it is in "
          f"{path}, the last good checkpoint in {run.manager.latest_checkpoint}")
    images_per_second = num_steps * run.batch_size / (time.monotonic() - loop_start)
    if run.chief:
      summaries.write_scalars(run.train_writer, step, {
          "loss": loss, "images_per_second": images_per_second,
          "learning_rate": float(run.optimizer.learning_rate.numpy())})
    run.progress.update(num_steps, detail=f"epoch {step / run.steps_per_epoch:.1f} "
                    f"loss/image {loss:.4g} {images_per_second:.1f} images/s",
                    force=step == run.total_steps)
    if step % run.validate_every == 0 and run.validation_split:
      if _validate_and_checkpoint(run, step):
        return True
  return False


def _validate_and_checkpoint(run: run_setup.Run, step: int) -> bool:
  """Validates, keeps the best and a rolling checkpoint; True to stop early."""
  scores = _validate(run, step)
  improved = run.early_stopping.update(scores["mean_iou"])
  if improved:
    run.best_manager.save(checkpoint_number=step)
    run.result.update(best_step=step)
  logging.info("validation at step %d: mean IoU %.4f, global accuracy %.4f, "
               "class average accuracy %.4f%s", step, scores["mean_iou"],
               scores["global_accuracy"], scores["class_average_accuracy"],
               " (best)" if improved else "")
  run.result["last_validation"] = scores
  run.manager.save(checkpoint_number=step)
  if run.early_stopping.should_stop(step // run.steps_per_epoch):
    logging.info("Early stopping: %d validations without improvement after epoch %d.",
                 run.schedule.patience, run.schedule.min_epochs)
    run.result["early_stopped"] = True
  return bool(run.result.get("early_stopped"))


def _validate(run: run_setup.Run, step: int) -> dict:
  num_classes, class_names = run.metadata["num_classes"], run.metadata["class_names"]
  dataset = run.strategy.distribute_datasets_from_function(
      lambda context: eval_pipeline.make_eval_dataset(
          run.records_dir, run.validation_split, run.batch_size, input_context=context))
  confusion = eval_step.sum_confusion(run.evaluate_batch, dataset, num_classes)
  scores = metrics.scores(confusion, class_names)
  if run.chief:
    summaries.write_metrics(run.validation_writer, step, scores, class_names)
    count = run.checkpointing.num_summary_images
    if count > 0:
      summaries.write_prediction_images(
          run.validation_writer, step, run.model,
          eval_pipeline.make_eval_dataset(run.records_dir, run.validation_split, count),
          run.metadata["class_colors"], count)
  return scores


def _finish(run: run_setup.Run, signal_name: Optional[str]):
  """Last checkpoint, summaries flushed, train_result.json."""
  step = run.step
  if os.path.basename(run.manager.latest_checkpoint or "") != f"ckpt-{step}":
    run.manager.save(checkpoint_number=step)
  if signal_name:
    logging.info("%s received: wrote a checkpoint at step %d and stopped.",
                 signal_name, step)
    run.result["interrupted_by"] = signal_name
  run.train_writer.flush()
  run.validation_writer.flush()
  run.result.update(step=step, epoch=step / run.steps_per_epoch,
                    best_mean_iou=float(run.early_stopping.best.numpy()))
  if run.chief:
    with open(os.path.join(run.model_dir, "train_result.json"), "w") as f:
      json.dump(run.result, f, indent=1)


def _write_run_description(run: run_setup.Run, config: str, train_split: str,
                           init_from: Optional[str]):
  """The configuration that ran (file and TensorBoard) and model_info.json,
  what evaluate, predict and export read of the run besides its weights."""
  run_files.write_operative_config(run.write_dir, config)
  run_files.write_model_info(run.write_dir, run_files.model_info(
      run.records_dir, run.metadata, run.batch_size, train_split=train_split,
      validation_split=run.validation_split, void_as_class=bool(run.model.void_as_class),
      **({"init_from": init_from} if init_from else {})))
  summaries.write_config(run.train_writer, run.step, config)
