r"""Times the full conversion of the three real datasets and reports CamVid's
class frequencies and median-frequency weights beside SegNet's.

  python benchmarks/build_datasets.py [--shared_data=../shared/data]   # ~1 min

For each dataset: the whole `python -m data_prep.build` command (wall time,
TensorFlow start-up included), then the writer alone with 1 worker thread
and with 2 (the baseline, measured in the same run), and the counts per split.
Writes JSON to --output (default benchmarks/results/build_datasets.json).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

import bench_output
import numpy as np
from absl import app, flags

from data_prep import camvid, flowers, horse, images, writer

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_SHARED_DATA = flags.DEFINE_string(
    "shared_data", os.path.join(_ROOT, "..", "shared", "data"),
    "The folder of the raw datasets (camvid, weizmann_horse, flowers17; an "
    "absent one is skipped). Default: ../shared/data from the repository root.")
_OUTPUT = flags.DEFINE_string(
    "output", os.path.join(_ROOT, "benchmarks", "results", "build_datasets.json"),
    "Where to write the JSON results. Default: benchmarks/results/"
    "build_datasets.json in the repository.")

# SegNet's published CamVid class weights (SegNet-Tutorial, classes 0..10).
SEGNET_WEIGHTS = (0.2595, 0.1826, 4.5640, 0.1417, 0.9051, 0.3826, 9.6446,
                  1.8418, 0.6823, 6.2478, 7.3614)

DATASETS = (
    ("camvid", "camvid", lambda d: camvid.plan(d), ()),
    ("horse", "weizmann_horse", lambda d: horse.plan(d), ()),
    ("flowers", "flowers17", lambda d: flowers.plan(d, foreground_index=1),
     ("--flowers_foreground_index=1",)),
)


def time_command(dataset, data_dir, extra, out):
  start = time.perf_counter()
  subprocess.run([sys.executable, "-m", "data_prep.build", f"--dataset={dataset}",
                  f"--data_dir={data_dir}", f"--output_dir={out}", "--overwrite",
                  *extra], cwd=_ROOT, check=True, capture_output=True,
                 env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  return time.perf_counter() - start


def time_writer(make_plan, data_dir, out, num_workers):
  start = time.perf_counter()
  metadata = writer.write_dataset(make_plan(data_dir), out, num_workers=num_workers,
                                  overwrite=True, log=lambda _: None)
  return time.perf_counter() - start, metadata


def camvid_weight_variants(data_dir):
  """Median-frequency weights with void pixels in the image total and without."""
  plan = camvid.plan(data_dir)
  num_classes = camvid.INFO.num_classes
  class_pixels = np.zeros(num_classes)
  labelled_total = np.zeros(num_classes)
  all_total = np.zeros(num_classes)
  for ref in plan.splits["train"]:
    label = images.read_single_channel(ref.label_path)
    counts = np.bincount(label.ravel(), minlength=12)
    present = counts[:num_classes] > 0
    class_pixels += counts[:num_classes]
    labelled_total += present * counts[:num_classes].sum()
    all_total += present * label.size
  variants = {}
  for name, total in (("labelled_pixels", labelled_total), ("all_pixels", all_total)):
    freq = class_pixels / total
    variants[name] = {"frequencies": freq.tolist(),
                      "weights": (np.median(freq) / freq).tolist()}
  return variants


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  results = {"machine_cores": os.cpu_count(), "datasets": {}}
  scratch = tempfile.mkdtemp()
  try:
    print(f"{'dataset':8} {'examples':>8} {'command s':>9} {'1 thread s':>10} "
          f"{'2 threads s':>11} {'ex/s (2)':>8} {'speedup':>7}  splits")
    for dataset, folder, make_plan, extra in DATASETS:
      data_dir = os.path.join(_SHARED_DATA.value, folder)
      if not os.path.isdir(data_dir):
        print(f"{dataset}: {data_dir} absent, skipped")
        continue
      out = os.path.join(scratch, dataset)
      command = time_command(dataset, data_dir, extra, out)
      one, _ = time_writer(make_plan, data_dir, out, 1)
      two, metadata = time_writer(make_plan, data_dir, out, 2)
      counts = {s: v["num_examples"] for s, v in metadata["splits"].items()}
      total = sum(counts.values())
      results["datasets"][dataset] = {
          "examples": total, "splits": counts, "command_seconds": command,
          "writer_seconds_1_thread": one, "writer_seconds_2_threads": two,
          "examples_per_second_2_threads": total / two, "speedup_2_vs_1": one / two,
          "bytes": sum(v["num_bytes"] for v in metadata["splits"].values())}
      print(f"{dataset:8} {total:8d} {command:9.1f} {one:10.1f} {two:11.1f} "
            f"{total / two:8.1f} {one / two:7.2f}x  {counts}")
      if dataset == "camvid":
        results["camvid_weights"] = {
            "class_names": metadata["class_names"],
            "ours_frequencies": metadata["train_class_frequencies"],
            "ours_weights": metadata["median_frequency_weights"],
            "segnet_weights": list(SEGNET_WEIGHTS),
            "variants": camvid_weight_variants(data_dir)}
  finally:
    shutil.rmtree(scratch, ignore_errors=True)

  if "camvid_weights" in results:
    w = results["camvid_weights"]
    alt = w["variants"]["all_pixels"]["weights"]
    print("\nCamVid train: median-frequency weights (ours: void pixels left out of "
          "the image totals; alt: void counted)")
    print(f"{'class':12} {'freq':>7} {'ours':>7} {'alt':>7} {'SegNet':>7} {'ours/SegNet':>11}")
    for i, name in enumerate(w["class_names"]):
      print(f"{name:12} {w['ours_frequencies'][i]:7.4f} {w['ours_weights'][i]:7.4f} "
            f"{alt[i]:7.4f} {w['segnet_weights'][i]:7.4f} "
            f"{w['ours_weights'][i] / w['segnet_weights'][i]:11.3f}")
  bench_output.write_json(_OUTPUT.value, results)


if __name__ == "__main__":
  app.run(main)
