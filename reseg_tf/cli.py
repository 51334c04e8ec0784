"""What the binaries share: quiet logs, one-line errors, the model flags.

Every binary imports this module before anything that loads TensorFlow, so
that TensorFlow's C++ INFO lines (oneDNN, CUDA probing, XLA service) are
hidden unless the user set `TF_CPP_MIN_LOG_LEVEL` or passed `--verbose`;
Python-side INFO lines of TensorFlow (checkpoint sharding) likewise. And
runs `main` through `run`, which ends an expected failure (`InputError`: a
missing file, a model that does not fit its checkpoint, a busy model_dir)
with one line `error: <path>: <problem>` and exit status 1. `--verbose`
keeps TensorFlow's logs and the traceback.

The binaries that load a trained model (evaluate, predict, export) define
its flags through `define_model_flags` and load it with `load_model`: a
published model (`--model=camvid_no_vgg`, a folder under `models/` or a
path) or a training run (`--model_dir=runs/camvid`).
"""

import dataclasses
import logging as std_logging
import os
import sys
import tempfile
from typing import Callable, Optional

from absl import app, flags, logging

from reseg_tf.common.errors import InputError

# TensorFlow 2.21 writes its start-up INFO lines (oneDNN, CPU features, CUDA
# probing) before its logging is initialised, whatever TF_CPP_MIN_LOG_LEVEL
# says; only the later lines obey it (2: errors only).
_STARTUP_NOISE = ("I0000 ", "W0000 ", "E0000 ", "WARNING: All log messages before absl::InitializeLog",
                  "To enable the following instructions", "This TensorFlow binary is optimized")
_VERBOSE_ARGS = ("--verbose", "--verbose=true", "--verbose=True", "--verbose=1")


def _load_tensorflow_quietly():
  """Imports TensorFlow and probes its devices with the C-level stderr
  captured, then writes back what is not start-up noise."""
  saved = os.dup(2)
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    try:
      import tensorflow as tf  # noqa: PLC0415
      tf.config.list_physical_devices()  # The CUDA probe logs here.
    finally:
      os.dup2(saved, 2)
      os.close(saved)
    captured.seek(0)
    for line in captured.read().decode(errors="replace").splitlines():
      if not line.startswith(_STARTUP_NOISE):
        print(line, file=sys.stderr)


if not any(arg in _VERBOSE_ARGS for arg in sys.argv) and "TF_CPP_MIN_LOG_LEVEL" not in os.environ:
  os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
  _load_tensorflow_quietly()

_VERBOSE = flags.DEFINE_bool(
    "verbose", False, "Show TensorFlow's own log lines, and the traceback of "
    "expected errors (a missing file, a checkpoint that does not fit).")


def run(main: Callable):
  """`app.run(main)`, ending an `InputError` with one line and status 1."""

  def guarded(argv):
    if not _VERBOSE.value:
      std_logging.getLogger("tensorflow").setLevel(std_logging.WARNING)
      # TensorFlow's Python INFO lines (e.g. checkpoint sharding times), which
      # go through absl's handler like ours: keep its warnings and errors.
      logging.get_absl_handler().addFilter(
          lambda record: record.levelno >= std_logging.WARNING
          or f"{os.sep}tensorflow{os.sep}" not in record.pathname)
    try:
      return main(argv)
    except InputError as e:
      if _VERBOSE.value:
        raise
      # Not str(e): gin appends the configurable's name to the message.
      sys.exit(f"error: {e.path}: {e.problem}")

  app.run(guarded)


@dataclasses.dataclass(frozen=True)
class ModelFlags:
  """The flags that choose a trained model (see `define_model_flags`)."""
  model: flags.FlagHolder
  model_dir: flags.FlagHolder
  checkpoint: flags.FlagHolder
  gin_file: flags.FlagHolder
  gin_bindings: flags.FlagHolder
  records_dir: flags.FlagHolder

  def given(self) -> bool:
    return bool(self.model.value or self.model_dir.value)


def define_model_flags(records_dir_help: str) -> ModelFlags:
  """Defines --model, --model_dir, --checkpoint, --gin_file, --gin_bindings
  and --records_dir (whose role, `records_dir_help`, differs per binary)."""
  return ModelFlags(
      model=flags.DEFINE_string(
          "model", None, "A published model: a name under models/ (e.g. "
          "camvid_no_vgg) or the path of such a folder. Give this or --model_dir."),
      model_dir=flags.DEFINE_string(
          "model_dir", None, "A training run's folder (checkpoints and "
          "operative_config.gin). Give this or --model."),
      checkpoint=flags.DEFINE_string(
          "checkpoint", "best", "With --model_dir: 'best' (best validation mean "
          "IoU, <model_dir>/best), 'latest' (<model_dir>/checkpoints) or a "
          "checkpoint path such as <model_dir>/checkpoints/ckpt-600."),
      gin_file=flags.DEFINE_multi_string(
          "gin_file", [], "Gin files that build the model (repeatable). Default: "
          "the model's own configuration (config.gin or operative_config.gin)."),
      gin_bindings=flags.DEFINE_multi_string(
          "gin_bindings", [], "Gin bindings applied last (repeatable), e.g. "
          "\"ReSeg.compute_dtype = 'bfloat16'\". Default: none."),
      records_dir=flags.DEFINE_string("records_dir", None, records_dir_help))


def load_model(model_flags: ModelFlags):
  """Restores the model the flags name (`serving.restore.Restored`).

  A published model (--model), a run (--model_dir), or gin files with a
  checkpoint path (--gin_file and --checkpoint). The configuration is read
  once into a `ModelSpec` (`configurables.load_published` / `load_run`).

  Raises:
    app.UsageError: the flags name no model, or two.
    InputError: no such model, configuration or checkpoint.
  """
  from reseg_tf import configurables  # Loads TensorFlow: only when needed.
  model, model_dir = model_flags.model.value, model_flags.model_dir.value
  if model and model_dir:
    raise app.UsageError("give --model or --model_dir, not both")
  if model:
    return configurables.load_published(model, model_flags.gin_file.value,
                                        model_flags.gin_bindings.value)
  if not model_dir and not (model_flags.gin_file.value and
                            model_flags.checkpoint.value not in ("best", "latest")):
    raise app.UsageError("give --model (a published model) or --model_dir (a run)")
  return configurables.load_run(model_dir, model_flags.checkpoint.value,
                                model_flags.gin_file.value, model_flags.gin_bindings.value)


def records_dir(model_flags: ModelFlags, restored) -> Optional[str]:
  """--records_dir, else the records the model was trained on."""
  return model_flags.records_dir.value or restored.records_dir


@dataclasses.dataclass(frozen=True)
class AugmentationFlags:
  """The test-time augmentation flags (see `define_augmentation_flags`)."""
  scales: flags.FlagHolder
  flip: flags.FlagHolder

  def value(self):
    """The `TestTimeAugmentation` they ask for.

    Raises:
      app.UsageError: --tta_scales is not a list of positive numbers.
    """
    from reseg_tf.model import test_time_augmentation as tta  # Loads TensorFlow.
    try:
      return tta.TestTimeAugmentation(scales=tta.parse_scales(self.scales.value),
                                      flip=self.flip.value)
    except ValueError as e:
      raise app.UsageError(f"--tta_scales: {e}") from None


def define_augmentation_flags() -> AugmentationFlags:
  """Defines --tta_scales and --tta_flip (test-time augmentation)."""
  return AugmentationFlags(
      scales=flags.DEFINE_string(
          "tta_scales", "1", "Test-time augmentation: comma-separated scale factors "
          "of the image (e.g. 0.75,1,1.25); the class probabilities of the views are "
          "averaged. Default 1: the image as given."),
      flip=flags.DEFINE_bool(
          "tta_flip", False, "Test-time augmentation: also each scale mirrored "
          "left-right. Default: no."))
