r"""Plots validation curves of training runs from their TensorBoard logs.

  python -m reseg_tf.plot_curves --model_dir=runs/horse_no_vgg \
      --model_dir=runs/flowers_no_vgg --output=docs/curves.png

One line per run: a validation metric (default `mean_iou`, any of the
trainer's `metrics/...` scalars) against the training step, read from
`<model_dir>/validation`. Needs matplotlib (`pip install -e ".[plots]"`).
"""

import os
import sys
from typing import Dict, List, Tuple

from absl import app, flags

# First: it loads TensorFlow quietly.
from reseg_tf import cli  # isort: split

import tensorflow as tf

from reseg_tf.common.errors import InputError
from reseg_tf.evaluation import metrics, summaries

_MODEL_DIRS = flags.DEFINE_multi_string(
    "model_dir", [], "A training run's folder (repeatable; at least one).")
_METRIC = flags.DEFINE_enum("metric", "mean_iou", list(metrics.SUMMARY_METRICS),
                             "The validation metric to plot.")
_OUTPUT = flags.DEFINE_string("output", "curves.png", "The PNG to write.")


def read_scalars(log_dir: str, tag: str) -> List[Tuple[int, float]]:
  """`(step, value)` of every `tag` scalar in `log_dir`'s event files, by step.

  A resumed run may have logged a step twice; the last value wins.
  """
  values: Dict[int, float] = {}
  for event in summaries.read_events(log_dir):
    for value in event.summary.value:
      if value.tag == tag:
        values[event.step] = float(tf.make_ndarray(value.tensor))
  return sorted(values.items())


def plot(curves: Dict[str, List[Tuple[int, float]]], metric: str, output: str):
  """Writes a PNG with one line per run."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  from matplotlib import pyplot  # pylint: disable=import-outside-toplevel
  figure, axes = pyplot.subplots(figsize=(6.4, 3.6), dpi=100)
  for name, points in curves.items():
    steps, values = zip(*points)
    axes.plot(steps, [100 * v for v in values], label=name, linewidth=1.5)
  axes.set_xlabel("training step")
  axes.set_ylabel(f"validation {metrics.SUMMARY_METRICS[metric]} (%)")
  axes.grid(alpha=0.3)
  axes.legend()
  figure.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  figure.savefig(output)
  pyplot.close(figure)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not _MODEL_DIRS.value:
    raise app.UsageError("give at least one --model_dir")
  curves = {}
  for model_dir in _MODEL_DIRS.value:
    points = read_scalars(os.path.join(model_dir, "validation"), f"metrics/{_METRIC.value}")
    if not points:
      raise InputError(os.path.join(model_dir, "validation"),
                       f"no metrics/{_METRIC.value} scalars (did the run validate?)")
    curves[os.path.basename(os.path.normpath(model_dir))] = points
  try:
    plot(curves, _METRIC.value, _OUTPUT.value)
  except ImportError:
    sys.exit('error: plotting needs matplotlib: pip install -e ".[plots]"')
  print(f"Wrote {_OUTPUT.value} ({', '.join(f'{k}: {len(v)} points' for k, v in curves.items())})")


if __name__ == "__main__":
  cli.run(main)
