"""The gin configurables of reseg-tf, registered in this one place.

Library modules (`vgg`, `renet`, `model`, `input_pipeline`, `augment`,
`losses`, `metrics`, `trainer`) stay free of gin; this module wraps the few
roots gin configures: the model's constructor (`ReSeg`), the trainer
(`train`), the optimizer factory (`make_optimizer`) and the input options
(`InputOptions`, `AugmentOptions`). Build the configured model with

    from reseg_tf import configurables
    gin.parse_config_files_and_bindings(['gin/model/camvid.gin'], [])
    model = configurables.ReSeg()

Gin files bind its arguments as `ReSeg.<arg>` (or `reseg_tf.ReSeg.<arg>`),
e.g. `ReSeg.renet_units = (100, 100)`; see `gin/model/`. Their `include`
lines name files relative to the repository root, which this module adds to
gin's search path so that they resolve from any working directory.
"""

import os

import gin

from reseg_tf import augment, input_pipeline, model, optimizers, trainer

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(REPO_ROOT, 'gin')):
  gin.add_config_file_search_path(REPO_ROOT)

# A gin-configurable subclass of `model.ReSeg`; `model.ReSeg` stays unchanged.
ReSeg = gin.external_configurable(model.ReSeg, module='reseg_tf')

train = gin.external_configurable(trainer.train, module='reseg_tf')
make_optimizer = gin.external_configurable(optimizers.make_optimizer,
                                           module='reseg_tf')
InputOptions = gin.external_configurable(input_pipeline.InputOptions,
                                         module='reseg_tf')
AugmentOptions = gin.external_configurable(augment.AugmentOptions,
                                           module='reseg_tf')
