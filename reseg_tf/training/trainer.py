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

`train` runs named phases in order: `_seed` (the global seed and op
determinism), `run_setup.build_plan` (the immutable `RunPlan`),
`_choose_jit_compile` (the XLA decision, which may time the step) and
`run_setup.compile_steps`, `_restore`, `_begin_state` (the mutable
`run_state.TrainState`), `_write_run_description`, then `_run_epoch` until
the end, each validating with `_validate_and_checkpoint`, and `_finish`,
which returns the typed `run_state.TrainResult` and writes it.
"""

import math
import os
import time
from typing import Callable, Optional, Sequence

import tensorflow as tf
from absl import logging

from reseg_tf.common import machine, run_files
from reseg_tf.common.errors import InputError
from reseg_tf.common.progress import RateLog
from reseg_tf.data import eval_pipeline, input_pipeline
from reseg_tf.evaluation import eval_step, metrics, summaries
from reseg_tf.training import (
  distribute,
  jit_choice,
  options,
  run_control,
  run_setup,
  run_state,
  train_step,
)


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
          **legacy_bindings) -> run_state.TrainResult:
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
    train_split: split to train on; several joined by `+` (`"train+val"`) train on
      their union (class weights stay those metadata.json gives).
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
    The run's summary, also written to `model_dir/train_result.json`.

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
    _seed(seed, deterministic)
    plan = run_setup.build_plan(
        model_dir=model_dir, write_dir=write_dir, strategy=strategy, model_fn=model_fn,
        records_dir=records_dir, batch_size=batch_size, schedule=groups["schedule"],
        optimisation=groups["optimisation"], checkpointing=groups["checkpointing"],
        input_options=input_options, cache_features=cache_features,
        train_split=train_split, validation_split=validation_split, seed=seed)
    _warn_if_bf16_in_software(plan.model)
    steps = run_setup.compile_steps(plan, _choose_jit_compile(plan, jit_compile, deterministic))
    _restore(plan, init_from)
    state = _begin_state(plan)
    _write_run_description(plan, state.step, operative_config(), init_from)
    with run_control.StopRequests() as stop:
      while state.step < plan.total_steps and not stop.signal_name:
        if _run_epoch(plan, steps, state, stop):  # True: early stopping.
          break
      result = _finish(plan, state, stop.signal_name)
  return result


def _seed(seed: int, deterministic: bool):
  """Seeds TensorFlow's global generator (the model's initial weights draw
  from it) and, when asked, switches op determinism on for the process."""
  tf.random.set_seed(seed)
  if deterministic:
    tf.config.experimental.enable_op_determinism()


def _warn_if_bf16_in_software(model) -> None:
  """One warning when bf16 was asked for on a CPU that emulates it."""
  dtypes = {model.compute_dtype, model.vgg.compute_dtype if model.vgg else tf.float32}
  if (tf.bfloat16 in dtypes and not tf.config.list_physical_devices("GPU")
      and machine.bf16_in_software()):
    logging.warning("bfloat16 compute on %s, which has neither AMX nor AVX512-BF16: "
                    "bf16 is emulated here and slower than float32 (ReSeg.compute_dtype, "
                    "ReSeg.vgg_compute_dtype).", machine.cpu_model())


def _choose_jit_compile(plan: run_setup.RunPlan, jit_compile: Optional[bool],
                        deterministic: bool) -> bool:
  """`jit_compile` when given, else the XLA decision for this plan's step on
  this machine (`jit_choice.decide`: may time the step, or read the cache)."""
  if jit_compile is not None:
    return jit_compile
  jit_compile, why = jit_choice.decide(
      train_step.make_loss_and_gradients(plan.model, plan.loss_options),
      plan.model.trainable_variables, lambda: run_setup.example_inputs(plan),
      plan.total_steps, xla_excluded=run_setup.xla_excluded(plan.model, deterministic))
  logging.info("Outer XLA function for the trainable part: %s (%s)",
               "on" if jit_compile else "off", why)
  return jit_compile


def _restore(plan: run_setup.RunPlan, init_from: Optional[str]):
  """Resumes from the latest rolling checkpoint, if any; else reads the
  model's weights from `init_from`, if given."""
  latest = plan.manager.latest_checkpoint
  if not latest and init_from:
    path = run_files.find_weights(init_from)
    run_files.read_weights(plan.model, path)
    logging.info("Started from the weights of %s.", path)
  elif latest:
    try:
      plan.manager.checkpoint.restore(latest).assert_existing_objects_matched()
    except (AssertionError, ValueError) as e:
      raise InputError(latest, "does not fit the configured model and optimizer "
                       "(another configuration was trained in this model_dir?): "
                       f"{str(e).splitlines()[0][:300]}") from e
    logging.info("Resumed from %s (step %d).", latest, int(plan.optimizer.iterations.numpy()))


def _begin_state(plan: run_setup.RunPlan) -> run_state.TrainState:
  """The state at the step the run starts from (0, or a resumed step)."""
  return run_state.TrainState(
      iterations=plan.optimizer.iterations,
      progress=RateLog("step", plan.total_steps, logging.info, unit="steps",
                       every_seconds=plan.checkpointing.log_every_seconds,
                       start=int(plan.optimizer.iterations.numpy())))


def _run_epoch(plan: run_setup.RunPlan, steps: run_setup.CompiledSteps,
               state: run_state.TrainState, stop: run_control.StopRequests) -> bool:
  """Trains to the end of the current epoch (or a stop request), validating
  on schedule. Returns True when early stopping ends the run."""
  step, epoch = state.step, state.step // plan.steps_per_epoch
  plan.optimizer.learning_rate.assign(run_control.learning_rate_at(
      epoch, plan.initial_learning_rate, plan.schedule.learning_rate_drop_epochs,
      plan.schedule.learning_rate_drop_factor))
  iterator = iter(plan.strategy.distribute_datasets_from_function(
      lambda context: plan.make_dataset(
          plan.batch_size, plan.input_options,
          seed=input_pipeline.epoch_seed(plan.seed, epoch),
          input_context=context).skip(step % plan.steps_per_epoch)))
  epoch_end = min((epoch + 1) * plan.steps_per_epoch, plan.total_steps)
  while step < epoch_end and not stop.signal_name:
    next_validation = (step // plan.validate_every + 1) * plan.validate_every
    num_steps = min(plan.schedule.steps_per_loop, epoch_end - step, next_validation - step)
    loop_start = time.monotonic()
    loss = float(steps.train_loop(iterator, tf.constant(num_steps)))
    step += num_steps
    if not math.isfinite(loss):
      path = tf.train.Checkpoint(model=plan.model, optimizer=plan.optimizer).write(
          os.path.join(plan.write_dir, "nonfinite", "state"))
      raise NonFiniteLossError(
          f"loss is {loss} at step {step}; the state that produced it is in "
          f"{path}, the last good checkpoint in {plan.manager.latest_checkpoint}")
    images_per_second = num_steps * plan.batch_size / (time.monotonic() - loop_start)
    if plan.chief:
      summaries.write_scalars(plan.train_writer, step, {
          "loss": loss, "images_per_second": images_per_second,
          "learning_rate": float(plan.optimizer.learning_rate.numpy())})
    state.progress.update(num_steps, detail=f"epoch {step / plan.steps_per_epoch:.1f} "
                          f"loss/image {loss:.4g} {images_per_second:.1f} images/s",
                          force=step == plan.total_steps)
    if step % plan.validate_every == 0 and plan.validation_split:
      if _validate_and_checkpoint(plan, steps, state, step):
        return True
  return False


def _validate_and_checkpoint(plan: run_setup.RunPlan, steps: run_setup.CompiledSteps,
                             state: run_state.TrainState, step: int) -> bool:
  """Validates, keeps the best and a rolling checkpoint; True to stop early."""
  scores = _validate(plan, steps, step)
  improved = plan.early_stopping.update(scores["mean_iou"])
  if improved:
    plan.best_manager.save(checkpoint_number=step)
    state.best_step = step
  logging.info("validation at step %d: mean IoU %.4f, global accuracy %.4f, "
               "class average accuracy %.4f%s", step, scores["mean_iou"],
               scores["global_accuracy"], scores["class_average_accuracy"],
               " (best)" if improved else "")
  state.last_validation = scores
  plan.manager.save(checkpoint_number=step)
  if plan.early_stopping.should_stop(step // plan.steps_per_epoch):
    logging.info("Early stopping: %d validations without improvement after epoch %d.",
                 plan.schedule.patience, plan.schedule.min_epochs)
    state.early_stopped = True
  return state.early_stopped


def _validate(plan: run_setup.RunPlan, steps: run_setup.CompiledSteps, step: int) -> dict:
  num_classes, class_names = plan.metadata["num_classes"], plan.metadata["class_names"]
  dataset = plan.strategy.distribute_datasets_from_function(
      lambda context: eval_pipeline.make_eval_dataset(
          plan.records_dir, plan.validation_split, plan.batch_size, input_context=context))
  confusion = eval_step.sum_confusion(steps.evaluate_batch, dataset, num_classes)
  scores = metrics.scores(confusion, class_names)
  if plan.chief:
    summaries.write_metrics(plan.validation_writer, step, scores, class_names)
    count = plan.checkpointing.num_summary_images
    if count > 0:
      summaries.write_prediction_images(
          plan.validation_writer, step, plan.model,
          eval_pipeline.make_eval_dataset(plan.records_dir, plan.validation_split, count),
          plan.metadata["class_colors"], count)
  return scores


def _finish(plan: run_setup.RunPlan, state: run_state.TrainState,
            signal_name: Optional[str]) -> run_state.TrainResult:
  """Last checkpoint, summaries flushed, the result (train_result.json)."""
  step = state.step
  if os.path.basename(plan.manager.latest_checkpoint or "") != f"ckpt-{step}":
    plan.manager.save(checkpoint_number=step)
  if signal_name:
    logging.info("%s received: wrote a checkpoint at step %d and stopped.",
                 signal_name, step)
  plan.train_writer.flush()
  plan.validation_writer.flush()
  result = state.result(plan.steps_per_epoch, float(plan.early_stopping.best.numpy()),
                        interrupted_by=signal_name)
  if plan.chief:
    result.write(plan.model_dir)
  return result


def _write_run_description(plan: run_setup.RunPlan, step: int, config: str,
                           init_from: Optional[str]):
  """The configuration that ran (file and TensorBoard) and model_info.json,
  what evaluate, predict and export read of the run besides its weights."""
  run_files.write_operative_config(plan.write_dir, config)
  run_files.write_model_info(plan.write_dir, run_files.model_info(
      plan.records_dir, plan.metadata, plan.batch_size, train_split=plan.train_split,
      validation_split=plan.validation_split, void_as_class=bool(plan.model.void_as_class),
      **({"init_from": init_from} if init_from else {})))
  summaries.write_config(plan.train_writer, step, config)
