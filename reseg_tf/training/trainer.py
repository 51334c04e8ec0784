"""Training ReSeg: the loop, validation, checkpoints, early stopping, summaries.

`train` is the gin root of the trainer (registered in `configurables`): the
binary `reseg_tf/train.py` parses flags and gin, then calls it once.

Protocol (RESEG.md): Adadelta (lr 1.0, rho 0.95, eps 1e-6), batch 5, no
augmentation, validation every epoch on mean IoU, and the original code's
early-stopping rule: after `min_epochs` epochs, stop once `patience`
validations in a row have not improved the best mean IoU. The best
checkpoint is kept apart from the rolling ones.

A rerun of the same command resumes from the latest checkpoint in
`model_dir`; each epoch's data order depends only on (seed, epoch), so a
resumed run sees the same batches as an uninterrupted one. SIGINT and SIGTERM
finish the current loop of steps, write a checkpoint and return.
"""

import functools
import json
import math
import os
import signal
import time
from typing import Callable, Optional, Sequence

import gin
import numpy as np
import tensorflow as tf
from absl import logging

from reseg_tf import (distribute, feature_cache, input_pipeline, losses, metrics,
                      optimizers, records, steps, summaries)


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN or infinite loss."""


class _StopRequests:
  """Turns SIGINT/SIGTERM into a flag the loop checks between step loops."""

  def __init__(self):
    self.signal_name = None
    self._previous = {}

  def __enter__(self):
    for sig in (signal.SIGINT, signal.SIGTERM):
      try:
        self._previous[sig] = signal.signal(sig, self._handle)
      except ValueError:  # Not the main thread (e.g. some test runners).
        pass
    return self

  def _handle(self, signum, frame):
    del frame
    self.signal_name = signal.Signals(signum).name

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


class _EarlyStopping:
  """The original code's rule: after `min_epochs`, stop once `patience`
  validations in a row have not beaten the best mean IoU. Its state lives in
  variables so that it is saved with, and resumed from, the checkpoint."""

  def __init__(self, min_epochs: int, patience: int):
    self.min_epochs, self.patience = min_epochs, patience
    self.best = tf.Variable(-1.0, trainable=False, name="best_miou")
    self.stale = tf.Variable(0, trainable=False, name="stale_validations")

  def update(self, mean_iou: float) -> bool:
    """Records a validation; True when it is the best so far."""
    if mean_iou > float(self.best.numpy()):
      self.best.assign(mean_iou)
      self.stale.assign(0)
      return True
    self.stale.assign_add(1)
    return False

  def should_stop(self, epoch: float) -> bool:
    return epoch >= self.min_epochs and int(self.stale.numpy()) >= self.patience


class _ProgressLog:
  """The terminal's progress line, at most every `every_seconds`."""

  def __init__(self, start_step: int, total_steps: int, steps_per_epoch: int,
               every_seconds: float):
    self.start_step, self.total_steps = start_step, total_steps
    self.steps_per_epoch, self.every_seconds = steps_per_epoch, every_seconds
    self.start_time, self.last = time.monotonic(), 0.0

  def __call__(self, step: int, loss: float, images_per_second: float):
    now = time.monotonic()
    if now - self.last < self.every_seconds and step != self.total_steps:
      return
    self.last = now
    rate = (step - self.start_step) / (now - self.start_time)
    logging.info("step %d/%d epoch %.1f loss/image %.4g %.1f images/s ETA %s",
                 step, self.total_steps, step / self.steps_per_epoch, loss,
                 images_per_second, _duration((self.total_steps - step) / max(rate, 1e-9)))


def default_model_dir(gin_files: Sequence[str]) -> str:
  """`runs/<name of the last gin file>`, e.g. gin/camvid.gin -> runs/camvid."""
  if not gin_files:
    return os.path.join("runs", "default")
  return os.path.join("runs", os.path.splitext(os.path.basename(gin_files[-1]))[0])


def train(model_dir: str,
          model_fn: Callable = gin.REQUIRED,
          records_dir: str = gin.REQUIRED,
          batch_size: int = 5,
          max_epochs: int = 1000,
          max_steps: Optional[int] = None,
          validate_every_steps: Optional[int] = None,
          min_epochs: int = 100,
          patience: int = 6,
          steps_per_loop: int = 10,
          class_weighting: str = "none",
          explicit_class_weights: Optional[Sequence[float]] = None,
          weight_decay: float = 0.0,
          clip_norm: Optional[float] = None,
          optimizer_fn: Callable = optimizers.make_optimizer,
          learning_rate_drop_epochs: Sequence[int] = (),
          learning_rate_drop_factor: float = 0.1,
          input_options: Optional[input_pipeline.InputOptions] = None,
          cache_features: bool = False,
          train_split: str = "train",
          validation_split: str = "val",
          seed: int = 0,
          deterministic: bool = False,
          strategy: str = "auto",
          jit_compile: Optional[bool] = None,
          log_every_seconds: float = 10.0,
          num_summary_images: int = 3,
          checkpoints_to_keep: int = 3) -> dict:
  """Trains until early stopping, `max_epochs` or `max_steps`.

  Args:
    model_dir: checkpoints, TensorBoard logs and the operative config go here.
    model_fn: builds the model (gin: the configured `ReSeg`).
    records_dir: the converter's output folder (shards + metadata.json).
    batch_size: global batch size (paper: 5).
    max_epochs: hard limit on epochs.
    max_steps: optional hard limit on steps (overrides epochs when smaller).
    validate_every_steps: validate every N steps; None: every epoch (code).
    min_epochs: early stopping is off before this epoch (code: 100).
    patience: validations without improvement that stop training (code: 6).
    steps_per_loop: train steps per `tf.function` call.
    class_weighting: "none", "median_frequency" or "explicit" (losses.py).
    explicit_class_weights: the weights for "explicit".
    weight_decay: L2 penalty on kernels (paper: 0.001; code: never applied).
    clip_norm: global gradient-norm clipping; None: off.
    optimizer_fn: builds the optimizer (gin: `make_optimizer`).
    learning_rate_drop_epochs: epochs from which the learning rate is
      multiplied by `learning_rate_drop_factor` once more (step decay; the
      paper has none). Empty: constant.
    learning_rate_drop_factor: the factor of each drop.
    input_options: augmentation and pipeline options (default: none, as the paper).
    cache_features: compute the frozen VGG features of the training images
      once into `model_dir/feature_cache/<train_split>` and train the rest
      from them (feature_cache.py; needs a frozen VGG and no random
      augmentation). Off by default.
    train_split: split to train on.
    validation_split: split to validate on; None or absent: no validation.
    seed: seeds initialisation, data order and augmentation.
    deterministic: also make every op deterministic (slower), so that a
      resumed run equals an uninterrupted one bit for bit.
    strategy: "auto", "mirrored" or "multi_worker" (distribute.py).
    jit_compile: compile the whole trainable part with XLA; None:
      `steps.default_jit_compile()` (only on GPUs).
    log_every_seconds: how often the progress line is printed.
    num_summary_images: validation images drawn in TensorBoard.
    checkpoints_to_keep: rolling checkpoints kept besides the best one.

  Returns:
    A summary: final step, epoch, best validation mean IoU and its step.

  Raises:
    NonFiniteLossError: the loss became NaN or infinite (a checkpoint of the
      state that produced it is written to `model_dir/nonfinite`).
  """
  tf.random.set_seed(seed)
  if deterministic:
    tf.config.experimental.enable_op_determinism()
  metadata = records.load_metadata(records_dir)
  num_classes = metadata["num_classes"]
  num_train = metadata["splits"][train_split]["num_examples"]
  has_validation = bool(validation_split) and validation_split in metadata["splits"]
  steps_per_epoch = max(1, num_train // batch_size)
  total_steps = max_epochs * steps_per_epoch
  if max_steps is not None:
    total_steps = min(total_steps, max_steps)
  validate_every = validate_every_steps or steps_per_epoch

  strategy_ = distribute.make_strategy(strategy)
  chief = distribute.is_chief(strategy_)
  with strategy_.scope():
    model = model_fn()
    if model.num_classes != num_classes:
      raise ValueError(f"the model predicts {model.num_classes} classes but "
                       f"{records_dir} has {num_classes}: set ReSeg.num_classes")
    optimizer = optimizer_fn()
    optimizer.build(model.trainable_variables)
  # The optimizer's own learning-rate variable is set at each epoch start
  # rather than replaced by a Keras schedule: Keras 3 checkpoints optimizer
  # variables by position, so a schedule (no variable) could not resume runs
  # started without one.
  initial_learning_rate = float(optimizer.learning_rate.numpy())
  early_stopping = _EarlyStopping(min_epochs, patience)
  checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer,
                                   best_miou=early_stopping.best,
                                   stale_validations=early_stopping.stale)
  write_dir = model_dir if chief else os.path.join(
      model_dir, "workers", f"{strategy_.cluster_resolver.task_id}")
  manager = tf.train.CheckpointManager(checkpoint, os.path.join(write_dir, "checkpoints"),
                                       max_to_keep=checkpoints_to_keep)
  best_manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                                            os.path.join(write_dir, "best"), max_to_keep=1)
  if manager.latest_checkpoint:
    checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    logging.info("Resumed from %s (step %d).", manager.latest_checkpoint,
                 int(optimizer.iterations.numpy()))

  weights = losses.class_weights(class_weighting, metadata, model.num_outputs,
                                 explicit_class_weights)
  loss_options = steps.LossOptions(
      global_batch_size=batch_size, class_weights=weights,
      void_class=num_classes if model.void_as_class else None,
      weight_decay=weight_decay, clip_norm=clip_norm)
  if jit_compile is None:
    jit_compile = steps.default_jit_compile()
  train_loop = steps.make_train_loop(strategy_, model, optimizer, loss_options,
                                     jit_compile=jit_compile)
  eval_step = steps.make_eval_step(strategy_, model, num_classes, jit_compile=jit_compile)
  options = input_options or input_pipeline.InputOptions()
  make_dataset = functools.partial(input_pipeline.make_train_dataset, records_dir, train_split)
  if cache_features:
    cache_dir = os.path.join(write_dir, "feature_cache", train_split)
    info = feature_cache.ensure(model, records_dir, train_split, cache_dir,
                                options.augment, log=logging.info)
    make_dataset = functools.partial(feature_cache.make_dataset, cache_dir, info)

  train_writer = tf.summary.create_file_writer(os.path.join(write_dir, "train"))
  validation_writer = tf.summary.create_file_writer(os.path.join(write_dir, "validation"))
  _write_operative_config(write_dir, train_writer, int(optimizer.iterations.numpy()))

  def validate(step: int) -> dict:
    dataset = strategy_.distribute_datasets_from_function(
        lambda context: input_pipeline.make_eval_dataset(
            records_dir, validation_split, batch_size, input_context=context))
    confusion = np.zeros((num_classes, num_classes + 1), np.int64)
    for batch in dataset:
      confusion += eval_step(batch).numpy()
    scores = metrics.scores(confusion, metadata["class_names"])
    if chief:
      summaries.write_metrics(validation_writer, step, scores, metadata["class_names"])
      _write_prediction_images(validation_writer, step, model, records_dir,
                               validation_split, metadata, num_summary_images)
    return scores

  result = {"steps_per_epoch": steps_per_epoch}
  step = int(optimizer.iterations.numpy())
  progress = _ProgressLog(step, total_steps, steps_per_epoch, log_every_seconds)
  with _StopRequests() as stop:
    while step < total_steps:
      epoch = step // steps_per_epoch
      optimizer.learning_rate.assign(learning_rate_at(
          epoch, initial_learning_rate, learning_rate_drop_epochs,
          learning_rate_drop_factor))
      iterator = iter(strategy_.distribute_datasets_from_function(
          lambda context, e=epoch, skip=step % steps_per_epoch:
          make_dataset(batch_size, options, seed=seed * 100003 + e,
                       input_context=context).skip(skip)))
      epoch_end = min((epoch + 1) * steps_per_epoch, total_steps)
      while step < epoch_end and not stop.signal_name:
        next_validation = (step // validate_every + 1) * validate_every
        num_steps = min(steps_per_loop, epoch_end - step, next_validation - step)
        loop_start = time.monotonic()
        loss = float(train_loop(iterator, tf.constant(num_steps)))
        step += num_steps
        if not math.isfinite(loss):
          path = tf.train.Checkpoint(model=model, optimizer=optimizer).write(
              os.path.join(write_dir, "nonfinite", "state"))
          raise NonFiniteLossError(
              f"loss is {loss} at step {step}; the state that produced it is in "
              f"{path}, the last good checkpoint in {manager.latest_checkpoint}")
        images_per_second = num_steps * batch_size / (time.monotonic() - loop_start)
        if chief:
          summaries.write_scalars(train_writer, step, {
              "loss": loss, "images_per_second": images_per_second,
              "learning_rate": float(optimizer.learning_rate.numpy())})
        progress(step, loss, images_per_second)
        if step % validate_every == 0 and has_validation:
          scores = validate(step)
          improved = early_stopping.update(scores["mean_iou"])
          if improved:
            best_manager.save(checkpoint_number=step)
            result.update(best_step=step)
          logging.info("validation at step %d: mean IoU %.4f, global accuracy %.4f, "
                       "class average accuracy %.4f%s", step, scores["mean_iou"],
                       scores["global_accuracy"], scores["class_average_accuracy"],
                       " (best)" if improved else "")
          result["last_validation"] = scores
          manager.save(checkpoint_number=step)
          if early_stopping.should_stop(step // steps_per_epoch):
            logging.info("Early stopping: %d validations without improvement "
                         "after epoch %d.", patience, min_epochs)
            result["early_stopped"] = True
            break
      if stop.signal_name or result.get("early_stopped"):
        break
    if os.path.basename(manager.latest_checkpoint or "") != f"ckpt-{step}":
      manager.save(checkpoint_number=step)
    if stop.signal_name:
      logging.info("%s received: wrote a checkpoint at step %d and stopped.",
                   stop.signal_name, step)
      result["interrupted_by"] = stop.signal_name
  train_writer.flush()
  validation_writer.flush()
  result.update(step=step, epoch=step / steps_per_epoch, best_mean_iou=float(early_stopping.best.numpy()))
  if chief:
    with open(os.path.join(model_dir, "train_result.json"), "w") as f:
      json.dump(result, f, indent=1)
  return result


def learning_rate_at(epoch: int, initial: float, drop_epochs: Sequence[int],
                     factor: float) -> float:
  """Step decay: `initial` times `factor` per drop epoch reached (0-based)."""
  return initial * factor ** sum(epoch >= e for e in drop_epochs)


def _duration(seconds: float) -> str:
  seconds = int(seconds)
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
      f"{seconds // 60}m{seconds % 60:02d}s"


def _write_operative_config(write_dir: str, writer, step: int):
  """Records the gin configuration that actually ran (file and TensorBoard)."""
  config = gin.operative_config_str()
  os.makedirs(write_dir, exist_ok=True)
  with open(os.path.join(write_dir, "operative_config.gin"), "w") as f:
    f.write(config)
  with writer.as_default(step=step):
    # Markdown: indent every line so TensorBoard shows it as code.
    tf.summary.text(summaries.OPERATIVE_CONFIG_TAG,
                    "\n".join("    " + l for l in config.splitlines()))


def _write_prediction_images(writer, step, model, records_dir, split, metadata, count):
  if count <= 0:
    return
  dataset = input_pipeline.make_eval_dataset(records_dir, split, count)
  batch = next(iter(dataset))
  predictions = tf.argmax(model(batch["image"]), axis=-1).numpy()
  strip = summaries.comparison_strip(batch["image"].numpy(), batch["label"].numpy(),
                                     predictions, metadata["class_colors"])
  with writer.as_default(step=step):
    tf.summary.image("input_truth_prediction", strip[batch["mask"].numpy()],
                     max_outputs=count)
