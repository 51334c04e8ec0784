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
lines name files relative to the repository root, which this module adds to
gin's search path so that they resolve from any working directory.

Configurations written before the option groups existed bind them flat
(`train.max_epochs = 60`); `train` still accepts those names
(`options.LEGACY_BINDINGS`), so older runs' operative configs load as they are.
"""

import os

import gin
from reseg_tf.common import run_files
from reseg_tf.data import augment, input_pipeline
from reseg_tf.model import reseg
from reseg_tf.training import optimizers, options, trainer

REPO_ROOT = run_files.REPO_ROOT
if os.path.isdir(os.path.join(REPO_ROOT, "gin")):
  gin.add_config_file_search_path(REPO_ROOT)

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
  option groups come from their own bindings (`Schedule.max_epochs = 60`)."""
  return _configured_train(
      model_dir=model_dir, schedule=Schedule(), optimisation=Optimisation(),
      checkpointing=Checkpointing(), operative_config=gin.operative_config_str)
