r"""Publishes a training run as a model under models/ (weights, config, card).

  python -m reseg_tf.publish --model_dir=runs/horse_no_vgg            # -> models/horse_no_vgg/
  python -m reseg_tf.evaluate --model=horse_no_vgg --split=test --results_file=docs/results.json
  python -m reseg_tf.publish --name=horse_no_vgg --update_card        # metrics into its card

Writes `models/<name>/`: `weights.*` (the checkpoint's model variables, no
optimizer state), `config.gin` (the run's operative config),
`model_info.json` (classes, records, step, parameters, training budget) and
`README.md`, the model card, whose metrics come from --results_file. Every
binary then takes `--model=<name>`.
"""

import os

from absl import app, flags

from reseg_tf import cli, configurables
from reseg_tf.common import run_files
from reseg_tf.serving import publishing

_MODEL_DIR = flags.DEFINE_string("model_dir", None, "The training run to publish.")
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", "best", "'best' (best validation mean IoU), 'latest' or a "
    "checkpoint path.")
_NAME = flags.DEFINE_string(
    "name", None, "The published model's name. Default: the base name of --model_dir.")
_MODELS_DIR = flags.DEFINE_string("models_dir", run_files.MODELS_DIR,
                                  "Where published models live.")
_RESULTS_FILE = flags.DEFINE_string(
    "results_file", "docs/results.json", "Evaluations whose entries <name> and "
    "<name>@<split> the card quotes.")
_UPDATE_CARD = flags.DEFINE_bool(
    "update_card", False, "Only rewrite the card of the published --name (after "
    "evaluating it), from its model_info.json and --results_file.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing published model.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _UPDATE_CARD.value:
    if not _NAME.value:
      raise app.UsageError("--update_card needs --name")
    path = publishing.write_card(run_files.find_published(_NAME.value), _NAME.value,
                                 _RESULTS_FILE.value)
    print(f"Wrote {path}")
    return
  if not _MODEL_DIR.value:
    raise app.UsageError("give --model_dir, the run to publish")
  name = _NAME.value or os.path.basename(os.path.normpath(_MODEL_DIR.value))
  spec = configurables.read_model_spec(
      os.path.join(_MODEL_DIR.value, run_files.OPERATIVE_CONFIG))
  folder = publishing.publish(_MODEL_DIR.value, name, _CHECKPOINT.value, _MODELS_DIR.value,
                              overwrite=_OVERWRITE.value, results_file=_RESULTS_FILE.value,
                              spec=spec)
  size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
  command = publishing.evaluate_command(name, run_files.read_model_info(folder),
                                        _RESULTS_FILE.value)
  print(f"Published {folder} ({size / 2**20:.1f} MiB); evaluate it with {command}, "
        "then --update_card")


if __name__ == "__main__":
  cli.run(main)
