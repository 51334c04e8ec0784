"""The gin configurables of reseg-tf, registered in this one place.

Library modules (`model/`, `data/`, `evaluation/`, `training/`) stay free of
gin; this module wraps the few roots gin configures: the model's constructor
(`ReSeg`), the trainer (`train`) and its option groups (`Schedule`,
`Optimisation`, `Checkpointing`), the optimizer factory (`make_optimizer`)
and the input options (`InputOptions`, `AugmentOptions`). Build the
configured model with

    from reseg_tf import configurables
    gin.parse_config_files_and_bindings(['gin/model/camvid.gin'], [])
    model = configurables.ReSeg()

Gin files bind its arguments as `ReSeg.<arg>` (or `reseg_tf.ReSeg.<arg>`),
e.g. `ReSeg.renet_units = (100, 100)`; see `gin/model/`. Their `include`
lines name files relative to the repository root, which this module's file
reader (`gin_file_path`) resolves from any working directory.

`ReSeg.num_classes` may be left unbound, or bound to None where an
included file binds it (gin/custom.gin): `train` (and `read_model_spec`)
then bind it to the `num_classes` of `train.records_dir`'s metadata.json,
so one gin file trains on any dataset's records; the operative config
records the value. A number that differs stops the trainer with an error
naming metadata.json. The class names, colours and the void label always
come from metadata.json.

Configurations written before the option groups existed bind them flat
(`train.max_epochs = 60`); `train` still accepts those names
(`options.LEGACY_BINDINGS`), so older runs' operative configs load as they are.

A trained model's saved configuration is read here too, once, by
`read_model_spec`: the gin-free `serving/restore.py` rebuilds the model from
the typed `ModelSpec` it returns. `load_run` and `load_published` do both.
"""

import contextlib
import os
from typing import Optional, Sequence

import tensorflow as tf

import gin
from reseg_tf.common import run_files
from reseg_tf.common.errors import MissingFileError
from reseg_tf.data import augment, input_pipeline, records
from reseg_tf.model import reseg
from reseg_tf.serving import restore
from reseg_tf.training import optimizers, options, trainer

REPO_ROOT = run_files.REPO_ROOT


def gin_file_path(path: str) -> str:
  """Where gin reads `path`: as given when that file exists (absolute, or
  relative to the working directory), else relative to the repository root,
  as the `include` lines of gin/ name their files."""
  if os.path.isabs(path) or os.path.isfile(path):
    return path
  return os.path.join(REPO_ROOT, path)


# Gin tries each search path with each of its file readers in turn, and its
# reader of files inside Python packages logs `Path not found` as an error
# for every path it does not find (for `gin/model/...`, it looks for a module
# `gin.model`): with the repository root as a second search path, a gin file
# outside the repository that includes 'gin/model/camvid.gin' would print
# such errors before loading it from there. This reader, tried first,
# resolves the path itself (`gin_file_path`), so the others are not asked.
# There is no public way to put a reader first.
gin.config._FILE_READERS.insert(  # pylint: disable=protected-access
    0, (lambda path: open(gin_file_path(path)),
        lambda path: os.path.isfile(gin_file_path(path))))

# A gin-configurable subclass of `reseg.ReSeg`; `reseg.ReSeg` stays unchanged.
ReSeg = gin.external_configurable(reseg.ReSeg, module="reseg_tf")

make_optimizer = gin.external_configurable(optimizers.make_optimizer,
                                           module="reseg_tf")
InputOptions = gin.external_configurable(input_pipeline.InputOptions,
                                         module="reseg_tf")
AugmentOptions = gin.external_configurable(augment.AugmentOptions,
                                           module="reseg_tf")
Schedule = gin.external_configurable(options.Schedule, module="reseg_tf")
Optimisation = gin.external_configurable(options.Optimisation, module="reseg_tf")
Checkpointing = gin.external_configurable(options.Checkpointing, module="reseg_tf")
_configured_train = gin.external_configurable(trainer.train, name="train",
                                              module="reseg_tf")


def train(model_dir: str) -> dict:
  """Trains as the parsed gin configuration says (`trainer.train`): the
  option groups come from their own bindings (`Schedule.max_epochs = 60`).

  Returns:
    The run's summary as `train_result.json` holds it (`TrainResult.to_json`):
    scripts read it by key.

  Raises:
    InputError: e.g. `train.records_dir` without metadata.json.
  """
  _bind_num_classes_from_records(required=True)
  return _configured_train(
      model_dir=model_dir, schedule=Schedule(), optimisation=Optimisation(),
      checkpointing=Checkpointing(), operative_config=gin.operative_config_str).to_json()


def read_model_spec(config: Optional[str], gin_files: Sequence[str] = (),
                    gin_bindings: Sequence[str] = ()) -> restore.ModelSpec:
  """Parses a trained model's configuration into a `restore.ModelSpec`.

  Parses `gin_files` when given, else the model's own `config` (a run's
  operative_config.gin or a published model's config.gin), then
  `gin_bindings`; reads the `ReSeg` bindings and `train.records_dir` and
  `train.batch_size` (for runs from before model_info.json); and
  leaves gin's global state as it found it (`_gin_state_kept`): nothing of the
  model's configuration stays, and a caller's own configuration survives.
  An unbound `ReSeg.num_classes` comes from the records' metadata.json when
  it is there (a gin file like gin/custom.gin given with --gin_file).

  Raises:
    MissingFileError: no gin file given and `config` does not exist.
  """
  files = list(gin_files)
  if not files:
    if not config or not tf.io.gfile.exists(config):
      raise MissingFileError(
          config or "(no model)", "not found: is this a training run's model_dir "
          "or a published model? Otherwise give its gin files with --gin_file")
    files = [config]
  with _gin_state_kept():
    gin.clear_config()
    gin.parse_config_files_and_bindings(files, list(gin_bindings))
    _bind_num_classes_from_records(required=False)
    return restore.ModelSpec(reseg_args=gin.get_bindings("reseg_tf.ReSeg"),
                             records_dir=_bound("train.records_dir"),
                             batch_size=_bound("train.batch_size"), source=tuple(files))


@contextlib.contextmanager
def _gin_state_kept():
  """Puts gin's global configuration back as it was on exit.

  Reading a model's configuration goes through gin's one global state; the
  Python API (`reseg_tf.load_model`) must not change a caller's gin
  configuration (a training script may have parsed its own). gin 0.5 has no
  public snapshot, so this copies the module state `gin.clear_config` resets.
  """
  state = gin.config
  config = {key: dict(values) for key, values in state._CONFIG.items()}
  singletons, imports = dict(state._SINGLETONS), set(state._IMPORTS)
  with state._OPERATIVE_CONFIG_LOCK:
    operative = dict(state._OPERATIVE_CONFIG)
  locked = gin.config_is_locked()
  try:
    yield
  finally:
    state._set_config_is_locked(False)
    state._CONFIG.clear()
    state._CONFIG.update(config)
    state._SINGLETONS.clear()
    state._SINGLETONS.update(singletons)
    state._IMPORTS.clear()
    state._IMPORTS.update(imports)
    with state._OPERATIVE_CONFIG_LOCK:
      state._OPERATIVE_CONFIG.clear()
      state._OPERATIVE_CONFIG.update(operative)
    state._set_config_is_locked(locked)


def load_run(model_dir: Optional[str], checkpoint: str = "best",
             gin_files: Sequence[str] = (), gin_bindings: Sequence[str] = ()) -> restore.Restored:
  """Restores a training run's checkpoint (`run_files.find_checkpoint`), the
  model built as its operative config says, or as `gin_files` say.

  Raises:
    InputError: no configuration, no such checkpoint, or a checkpoint that
      does not fit the configured model.
  """
  config = os.path.join(model_dir, run_files.OPERATIVE_CONFIG) if model_dir else None
  spec = read_model_spec(config, gin_files, gin_bindings)
  return restore.restore_run(spec, model_dir, checkpoint)


def load_published(name: str, gin_files: Sequence[str] = (),
                   gin_bindings: Sequence[str] = ()) -> restore.Restored:
  """Restores a published model (a name under `models/`, or a folder).

  Raises:
    InputError: no such model, or its files are missing or do not fit.
  """
  folder = run_files.find_published(name)
  spec = read_model_spec(os.path.join(folder, run_files.PUBLISHED_CONFIG), gin_files,
                         gin_bindings)
  return restore.restore_published(spec, folder)


def load_run_or_published(name_or_path: str, checkpoint: str = "best",
                          gin_bindings: Sequence[str] = ()) -> restore.Restored:
  """`load_run` of a training run's folder (it holds the run's operative
  config), at `checkpoint`; else `load_published` of a published model's
  name or folder.

  Raises:
    InputError: as `load_run` or `load_published`.
  """
  if os.path.exists(os.path.join(name_or_path, run_files.OPERATIVE_CONFIG)):
    return load_run(name_or_path, checkpoint, gin_bindings=gin_bindings)
  return load_published(name_or_path, gin_bindings=gin_bindings)


def _bind_num_classes_from_records(required: bool):
  """Binds `ReSeg.num_classes` to `num_classes` of `train.records_dir`'s
  metadata.json when the configuration leaves it unbound or binds None.

  Args:
    required: raise when the metadata cannot be read; else leave the
      binding unset (the caller may not need the records).

  Raises:
    InputError: `required` and no readable metadata.json.
  """
  records_dir = _bound("train.records_dir")
  if records_dir is None or _bound("reseg_tf.ReSeg.num_classes") is not None:
    return
  try:
    metadata = records.load_metadata(records_dir)
  except MissingFileError:
    if required:
      raise
    return
  with gin.unlock_config():  # The binaries parse (and lock) before this.
    gin.bind_parameter("reseg_tf.ReSeg.num_classes", int(metadata["num_classes"]))


def _bound(name: str):
  """The value bound to `name`, or None when the configuration does not
  bind it (e.g. a model-only gin file)."""
  try:
    return gin.query_parameter(name)
  except ValueError:
    return None
