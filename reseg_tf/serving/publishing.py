"""Publishing a trained model: `models/<name>/`, small enough for the repository.

`publish` turns a training run's checkpoint into a published model (layout
in `common/run_files.py`): the model's weights only (no optimizer slots, so
about a third of a rolling checkpoint), the run's operative gin config, its
`model_info.json` extended with the checkpoint's step, the parameter count
and the training budget, and a model card. `write_card` (re)writes the card
from those facts and from the model's entries in a results file such as
docs/results.json (written by `python -m reseg_tf.evaluate --model=<name>
--results_file=...`), so every number in a card comes from a command.
"""

import datetime
import json
import os
import shutil
from typing import Optional

import numpy as np
import tensorflow as tf

from reseg_tf.common import run_files
from reseg_tf.common.errors import InputError, MissingFileError
from reseg_tf.data import records
from reseg_tf.evaluation import results
from reseg_tf.serving import restore

# What each dataset's published model is for, and what it is not.
_USE = {
    "horse": ("Figure/ground segmentation of horses in photographs like the Weizmann "
              "Horse database's (mostly side views of one horse, 100-500 pixels wide).",
              "Trained on {trained} images: expect it to fail on other animals, unusual poses, "
              "several horses or cluttered scenes; it was never meant as a general "
              "animal segmenter."),
    "flowers": ("Flower/background segmentation of close-up flower photographs like "
                "Oxford Flowers 17's (one flower species per image, centred).",
                "Trained on {trained} images of 17 species at 256x256; other species, "
                "several flowers or non-centred flowers are out of its domain."),
    "camvid": ("Street-scene parsing into CamVid's 11 classes, for 360x480 frames from "
               "a car's dashboard in daylight (Cambridge, UK, 2007-2008).",
               "Trained on {trained} frames of three drives. CamVid's val frames come from a "
               "drive that training also samples: on new drives (CamVid's test split) "
               "the published CamVid models score a mean IoU 12-14 points below val's "
               "(their test rows above). Thin classes (Pole, SignSymbol, Fence) and "
               "pedestrians are the weakest; not for safety-related use."),
}


# What the records command needs besides --dataset, for the data these models saw.
_BUILD_NOTES = {
    "flowers": " --flowers_foreground_index=1` (the 256x256 copy; the official "
               "release's flower index is 38)",
}


def count_parameters(model) -> int:
  """Trainable parameters of `model`."""
  return int(sum(np.prod(v.shape) for v in model.trainable_variables))


def publish(model_dir: str, name: str, checkpoint: str = "best",
            models_dir: str = run_files.MODELS_DIR, overwrite: bool = False,
            results_file: Optional[str] = None, *, spec: restore.ModelSpec) -> str:
  """Writes `models_dir/<name>/` from `model_dir`'s `checkpoint`, its card
  quoting `results_file`'s entries for `name` (see `write_card`). `spec` is
  the model of the run's operative config (`configurables.read_model_spec`),
  which is copied as the published `config.gin`.

  The folder is written beside its destination and renamed into place, so a
  failed publish leaves no half-written model.

  Returns:
    The published model's folder.

  Raises:
    InputError: the folder exists and `overwrite` is False, or the run
      cannot be restored.
  """
  destination = os.path.join(models_dir, name)
  if os.path.exists(destination) and not overwrite:
    raise InputError(destination, "exists: pass --overwrite to replace it")
  restored = restore.restore_run(spec, model_dir, checkpoint)
  info = dict(restored.info)
  metadata = records.load_metadata(info["records_dir"])
  if "class_names" not in info:  # A run from before model_info.json.
    info = run_files.model_info(info["records_dir"], metadata, info.get("batch_size") or 5)
  split = metadata.get("split", {})
  info.update(
      splits={split_name: s["num_examples"] for split_name, s in metadata["splits"].items()},
      split_method={k: split[k] for k in ("method", "seed", "fractions") if k in split})
  info.update(
      name=name, step=restored.step, trainable_parameters=count_parameters(restored.model),
      void_as_class=bool(restored.model.void_as_class),
      training=results.training_budget(model_dir, restored.step),
      training_hardware=results.hardware(),
      selection=checkpoint if checkpoint in ("best", "latest") else "given",
      source={"model_dir": model_dir, "checkpoint": restored.checkpoint,
              "published": datetime.date.today().isoformat()})
  if info.get("init_from"):  # Fine-tuned: the budget of what it started from.
    info["training"]["started_from"] = starting_point(info["init_from"])
  temporary = destination + ".tmp"
  shutil.rmtree(temporary, ignore_errors=True)
  os.makedirs(temporary)
  try:
    tf.train.Checkpoint(model=restored.model).write(
        os.path.join(temporary, run_files.PUBLISHED_WEIGHTS))
    shutil.copy(os.path.join(model_dir, run_files.OPERATIVE_CONFIG),
                os.path.join(temporary, run_files.PUBLISHED_CONFIG))
    run_files.write_model_info(temporary, info)
    write_card(temporary, name, results_file)
    shutil.rmtree(destination, ignore_errors=True)
    os.replace(temporary, destination)
  except BaseException:
    shutil.rmtree(temporary, ignore_errors=True)
    raise
  return destination


def starting_point(source: str) -> dict:
  """The name and training budget of the weights a run started from
  (`train.init_from`): a published model's recorded budget, or a run's from
  its folder, each with what it started from in turn; only the name when
  neither is on this machine."""
  try:
    info = run_files.read_model_info(run_files.find_published(source)) or {}
    return {"name": info.get("name", source), **info.get("training", {})}
  except MissingFileError:
    pass
  if os.path.isdir(source):  # A run: init_from read its latest checkpoint.
    start = {"name": source, **results.training_budget(source, None, at_last_step=True)}
    earlier = (run_files.read_model_info(source) or {}).get("init_from")
    if earlier:  # The run was itself a fine-tune: follow the chain.
      start["started_from"] = starting_point(earlier)
    return start
  return {"name": source}


def write_card(folder: str, name: Optional[str] = None,
               results_file: Optional[str] = None) -> str:
  """(Re)writes `folder/README.md`, the model card, from `model_info.json`
  and the model's entries in `results_file` (`<name>` and `<name>@<split>`)."""
  info = run_files.read_model_info(folder)
  if info is None:
    raise InputError(os.path.join(folder, run_files.MODEL_INFO), "not found")
  name = name or info.get("name") or os.path.basename(os.path.normpath(folder))
  entries = {}
  if results_file and os.path.exists(results_file):
    with open(results_file) as f:
      entries = {k: v for k, v in json.load(f).items()
                 if k == name or k.startswith(name + "@")}
  dataset = info.get("dataset", "")
  use, limits = _USE.get(dataset, ("Segmentation of images like its training data.",
                                   "Untested outside its training data's domain."))
  sizes = info.get("splits", {})
  trained_on = _trained_on(info)
  if all(split in sizes for split in trained_on):  # The training images, counted.
    limits = limits.format(trained=sum(sizes[split] for split in trained_on))
  else:
    limits = limits.format(trained="its")
  training = info.get("training", {})
  lines = [
      f"# `{name}`: ReSeg, {dataset or 'custom data'}, from random initialisation", "",
      f"Segments images into {info['num_classes']} classes "
      f"({', '.join(info['class_names'])}). Trained **from random initialisation** "
      "(no ImageNet weights) with reseg-tf.", "",
      "    python -m reseg_tf.predict --model=" + name + " --input=<image or folder>", "",
      "## Model", "",
      f"- Trainable parameters: {info['trainable_parameters']:,}",
      f"- Configuration: `config.gin` (the operative config of its training run); "
      f"classes, colours and ignore value ({info.get('ignore_label', 255)}): "
      "`model_info.json`.",
      f"- Weights: `weights.*`, the checkpoint of training step {info.get('step')}, "
      "model variables only.", "",
      "## Data and training", "",
      f"- Records: `python -m data_prep.build --dataset={dataset}"
      + _BUILD_NOTES.get(dataset, "`") + " into "
      f"`{info.get('records_dir')}`; splits "
      + ", ".join(f"{k} {v}" for k, v in info.get("splits", {}).items())
      + (f" ({_split_text(info['split_method'])})" if info.get("split_method") else "")
      + f"; trained on `{info.get('train_split', 'train')}`, " + _selection_text(info),
      f"- Budget: the checkpoint of epoch {_number(training.get('epoch'), '.0f')} "
      f"({training.get('trained_steps')} steps trained in all), "
      f"{_number(training.get('training_hours'), '.2f')} h of training on "
      f"{info.get('training_hardware')}, shared with other jobs (an upper bound)."
      + _started_from_text(training.get("started_from")),
      "", "## Metrics", ""]
  if entries:
    lines += ["| split | global accuracy | class-average accuracy | mean IoU | "
              "foreground IoU | command |", "|---|---|---|---|---|---|"]
    for key in sorted(entries):
      entry = entries[key]
      lines.append(
          f"| {entry['split']}"
          + (f", test-time augmentation: {entry['test_time_augmentation']}"
             if entry.get("test_time_augmentation") else "")
          + f" | {_percent(entry.get('global_accuracy'))} | "
          f"{_percent(entry.get('class_average_accuracy'))} | "
          f"{_percent(entry.get('mean_iou'))} | {_percent(entry.get('foreground_iou'))} | "
          f"`{entry.get('command')}` |")
    lines += ["", "Numbers in percent, from the results file's entries "
              f"{', '.join(f'`{k}`' for k in sorted(entries))}; void pixels excluded."]
    lines += [f"The {entries[k]['split']} row was {entries[k]['records']}." for k in sorted(entries)
              if entries[k].get("records")]
  else:
    lines.append(_not_evaluated_text(name, info))
  lines += ["", "## Intended use and limits", "", use, "", limits, ""]
  path = os.path.join(folder, "README.md")
  with open(path, "w") as f:
    f.write("\n".join(lines))
  return path


def _has_test_split(info: dict) -> bool:
  """False when the model's records list their splits and test is absent or
  empty (an older model_info.json without `splits` is given the benefit)."""
  splits = info.get("splits")
  return splits is None or bool(splits.get("test"))


def evaluate_command(name: str, info: dict, results_file: str = "docs/results.json") -> str:
  """The command that scores a published model on test, pointed at other
  records when its own have no test split (CamVid's copy here holds train
  and val only)."""
  records_flag = "" if _has_test_split(info) else " --records_dir=<records with a test split>"
  return (f"python -m reseg_tf.evaluate --model={name}{records_flag} --split=test "
          f"--results_file={results_file}")


def _not_evaluated_text(name: str, info: dict) -> str:
  """The card's Metrics line before any evaluation."""
  note = "" if _has_test_split(info) else (
      f" (its records, `{info.get('records_dir')}`, have no test split: build one that "
      "has, e.g. from the dataset's full release, into another folder)")
  return f"Not evaluated yet: `{evaluate_command(name, info)}`{note}."


def _started_from_text(start: Optional[dict]) -> str:
  """The budget line's account of a fine-tuned model's starting weights,
  following the chain of `started_from` back to random initialisation."""
  parts = []
  while start:
    budget = (f"epoch {_number(start.get('epoch'), '.0f')}, "
              f"{_number(start.get('training_hours'), '.2f')} h of training"
              if "training_hours" in start else "budget unknown")
    parts.append(f"`{start['name']}` ({budget})")
    start = start.get("started_from")
  return "".join(f" It started from the weights of {parts[0]}" if i == 0 else
                 f", which started from those of {part}"
                 for i, part in enumerate(parts)) + ("." if parts else "")


def _trained_on(info: dict) -> list:
  """The splits a published model was trained on (several for `train+val`)."""
  return records.split_names(info.get("train_split", "train"))


def _selection_text(info: dict) -> str:
  if info.get("selection") == "latest":
    trained_on = _trained_on(info)
    if len(trained_on) > 1:
      return ("the last checkpoint of a fixed budget: no split was used to select it; "
              f"{' and '.join(trained_on)} were both trained on, so their scores say "
              "nothing about new images, and only a split outside them measures it.")
    return ("the last checkpoint of a fixed budget: no split was used to select it, "
            "so every split but the training one is only scored.")
  if info.get("selection") == "given":
    return f"checkpoint `{info['source']['checkpoint']}`, chosen by hand."
  return (f"checkpoint selected on `{info.get('validation_split', 'val')}` (the "
          "selection rule is in `config.gin`); the held-out split is only scored.")


def _split_text(method: dict) -> str:
  if method.get("method") == "seeded_random":
    fractions = "/".join(str(v) for v in method.get("fractions", {}).values())
    return f"drawn at random with seed {method.get('seed')}, fractions {fractions}"
  return str(method.get("method"))


def _percent(value) -> str:
  return "-" if value is None else f"{100 * value:.1f}"


def _number(value, spec: str) -> str:
  return "?" if value is None else format(value, spec)
