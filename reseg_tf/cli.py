"""What the binaries share: quiet logs, one-line errors, the model flags.

Every binary imports this module before anything that loads TensorFlow, so
that TensorFlow's C++ INFO lines (oneDNN, CUDA probing, XLA service) are
hidden unless the user passed `--verbose` or set `TF_CPP_MIN_LOG_LEVEL`
to 0 or 1; INFO lines of other libraries (TensorFlow's checkpoint sharding,
gin) likewise. `run` runs `main` with plain log lines: our INFO messages as
they are (progress and results), warnings as `warning: ...`, errors as
`error: ...`, without absl's `I1205 12:00:00.000 file.py:12]` prefix. It
ends an expected failure (`InputError`: a missing file, a model that does
not fit its checkpoint, a busy model_dir) with one line
`error: <path>: <problem>` and exit status 1, and a usage error (a bad
flag, an --input that matches nothing) with one line
`error: <problem> (see --help)` and exit status 2. `--verbose` keeps
TensorFlow's logs, absl's prefixes and the traceback.

The binaries that load a trained model (evaluate, predict, export) define
its flags through `define_model_flags` and load it with `load_model`: a
published model (`--model=camvid_no_vgg_cycle4`, a folder under `models/` or a
path) or a training run (`--model_dir=runs/camvid`).
"""

import dataclasses
import logging as std_logging
import os
import sys
from typing import Callable, Optional

from absl import app, flags, logging

from reseg_tf.common import quiet_tensorflow
from reseg_tf.common.errors import InputError

_VERBOSE_ARGS = ("--verbose", "--verbose=true", "--verbose=True", "--verbose=1")

# Quiet unless --verbose, or the user asked TensorFlow for its INFO (0) or
# WARNING (1) lines; a level of 2 or 3 set by the user is quiet too, since
# the start-up lines ignore it.
if not any(arg in _VERBOSE_ARGS for arg in sys.argv) and quiet_tensorflow.wanted():
  quiet_tensorflow.import_quietly()

_VERBOSE = flags.DEFINE_bool(
    "verbose", False, "Show TensorFlow's own log lines, log lines with absl's "
    "prefix, and the traceback of expected errors (a missing file, a "
    "checkpoint that does not fit).")


USAGE_ERROR_STATUS = 2  # As argparse: the command line was wrong.

# The packages whose INFO messages are the binaries' progress and results;
# other libraries' INFO lines (TensorFlow, gin) show only with --verbose.
_OWN_CODE = tuple(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                               package) + os.sep
                  for package in ("reseg_tf", "data_prep"))


class PlainFormatter(std_logging.Formatter):
  """Log records as plain lines: the message alone, `warning: ` or `error: `
  before it from WARNING up (a traceback, if any, follows as usual)."""

  def formatMessage(self, record: std_logging.LogRecord) -> str:
    if record.levelno >= std_logging.ERROR:
      return f"error: {record.message}"
    if record.levelno >= std_logging.WARNING:
      return f"warning: {record.message}"
    return record.message


def _plain_logs():
  """Plain log lines through absl's handler, our INFO messages only, and
  TensorFlow's messages once (not again through its own handler)."""
  std_logging.getLogger("tensorflow").setLevel(std_logging.WARNING)
  # TensorFlow adds a handler of its own when it is imported before absl's
  # is installed (as here): its warnings would come twice, once from each.
  for handler in list(std_logging.getLogger("tensorflow").handlers):
    std_logging.getLogger("tensorflow").removeHandler(handler)
  handler = logging.get_absl_handler()
  handler.setFormatter(PlainFormatter())
  handler.addFilter(lambda record: record.levelno >= std_logging.WARNING
                    or record.pathname.startswith(_OWN_CODE))


def _usage_error(problem: str):
  """Ends the process with one line, `error: <problem> (see --help)`."""
  problem = " ".join(str(problem).split())  # Some flag errors span lines.
  print(f"error: {problem} (see --help)", file=sys.stderr)
  sys.exit(USAGE_ERROR_STATUS)


def _parse_flags(argv: list) -> list:
  """absl's flag parsing, with a bad flag reported as a usage error (absl
  prints two lines and a FATAL prefix)."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    _usage_error(e)


def run(main: Callable):
  """`app.run(main)` with plain log lines, an `InputError` ended with one
  line and status 1, and a usage error (`app.UsageError`, a bad flag) with
  one line and status 2 instead of the help text."""

  def guarded(argv):
    if not _VERBOSE.value:
      _plain_logs()
    try:
      return main(argv)
    except app.UsageError as e:
      _usage_error(e)
    except InputError as e:
      if _VERBOSE.value:
        raise
      # Not str(e): gin appends the configurable's name to the message.
      sys.exit(f"error: {e.path}: {e.problem}")

  app.run(guarded, flags_parser=_parse_flags)


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
