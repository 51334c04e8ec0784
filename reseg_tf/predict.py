r"""Segments image files with a trained ReSeg and draws the results.

  python -m reseg_tf.predict --model_dir=runs/camvid --input=photos/ \
      --output_dir=predictions
  python -m reseg_tf.predict --saved_model=exports/camvid \
      --input='photos/**/*.jpg' --labels=photos_labels/

For each image (any size): `<stem>_classes.png` (class ids), `<stem>_color.png`
(the dataset's colours) and `<stem>_overlay.png`; for a folder or glob also
contact sheets (input | prediction | ground truth when --labels has
`<stem>.png`). Unreadable files are named and skipped; the exit status is
then 1.

With --model_dir the model is rebuilt from the run's gin configuration and
checkpoint, the colours read from the records' metadata.json; with
--saved_model (an export) everything comes from the SavedModel.
"""

import sys

from absl import app, flags, logging

from reseg_tf import prediction, restore, serving

_MODEL_DIR = flags.DEFINE_string(
    "model_dir", None, "A training run's folder. Give this or --saved_model.")
_SAVED_MODEL = flags.DEFINE_string(
    "saved_model", None, "An exported SavedModel: a version folder, or the export "
    "folder (its highest version is used). Give this or --model_dir.")
_GIN_FILE = flags.DEFINE_multi_string(
    "gin_file", [], "With --model_dir: gin files that build the model "
    "(repeatable). Default: <model_dir>/operative_config.gin.")
_GIN_BINDINGS = flags.DEFINE_multi_string(
    "gin_bindings", [], "With --model_dir: gin bindings applied after the files. "
    "Default: none.")
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", "best", "With --model_dir: 'best', 'latest' or a checkpoint path.")
_RECORDS_DIR = flags.DEFINE_string(
    "records_dir", None, "With --model_dir: records whose metadata.json gives the "
    "class colours. Default: train.records_dir of the gin configuration "
    "(generic colours if it is absent).")
_INPUT = flags.DEFINE_string(
    "input", None, "An image file, a folder of images (not recursive) or a glob "
    "(quote it; ** recurses). Required.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "predictions",
                                  "Where the pictures are written (created).")
_LABELS = flags.DEFINE_string(
    "labels", None, "Optional folder of ground-truth label maps <stem>.png "
    "(class ids, 255 void) drawn in the contact sheet. Default: none.")
_OVERLAY_ALPHA = flags.DEFINE_float("overlay_alpha", 0.5,
                                    "Opacity of the class colours in the overlay.")
_CONTACT_SHEET_ROWS = flags.DEFINE_integer(
    "contact_sheet_rows", 64, "Images per contact sheet (for a folder or glob); "
    "0: no contact sheet.")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show a progress bar for a folder or glob.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if bool(_MODEL_DIR.value) == bool(_SAVED_MODEL.value):
    raise app.UsageError("give exactly one of --model_dir and --saved_model")
  if not _INPUT.value:
    raise app.UsageError("give --input: an image, a folder or a glob")
  try:
    paths, is_collection = prediction.find_inputs(_INPUT.value)
  except FileNotFoundError as e:
    raise app.UsageError(str(e))

  if _SAVED_MODEL.value:
    try:
      segmenter = serving.load_saved_model(_SAVED_MODEL.value)
    except FileNotFoundError as e:
      sys.exit(f"error: {e}")
  else:
    try:
      restored = restore.load(_MODEL_DIR.value, _CHECKPOINT.value, _GIN_FILE.value,
                              _GIN_BINDINGS.value)
    except FileNotFoundError as e:  # No config or no such checkpoint.
      sys.exit(f"error: {e}")
    table = restore.load_class_table(_RECORDS_DIR.value or restored.records_dir,
                                     restored.model.num_classes)
    logging.info("Class colours from %s", table["source"])
    segmenter = serving.Segmenter(restored.model, table["class_names"],
                                  table["class_colors"], table["dataset"])
  colors = serving.class_table(segmenter)["class_colors"]

  report = prediction.predict_files(
      segmenter, paths, _OUTPUT_DIR.value, colors, labels_dir=_LABELS.value,
      alpha=_OVERLAY_ALPHA.value,
      rows_per_sheet=_CONTACT_SHEET_ROWS.value if is_collection else 0,
      progress=_PROGRESS.value and is_collection)
  print(f"Segmented {len(report.written)} of {len(paths)} images into {_OUTPUT_DIR.value}"
        + (f"; contact sheets: {', '.join(report.contact_sheets)}"
           if report.contact_sheets else ""))
  if report.failed:
    print(f"{len(report.failed)} file(s) could not be read and were skipped:",
          file=sys.stderr)
    for path, reason in report.failed.items():
      print(f"  {path}: {reason}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  app.run(main)
