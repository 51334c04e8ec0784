r"""What averaging several trained models' class probabilities gains.

COMMAND:
  python benchmarks/ensemble.py --split=holdout --records_dir=data/camvid_holdout \
      --models=runs/holdout_control,runs/holdout_aug,runs/holdout_deeper,runs/holdout_wider
  python benchmarks/ensemble.py --split=val \
      --models=camvid_no_vgg_cycle4,camvid_no_vgg_cycle5,camvid_no_vgg_cycle6 \
      --groups=camvid_no_vgg_cycle5+camvid_no_vgg_cycle6

Each member (a training run's folder, scored at --checkpoint, or a published
model's name) runs once over every image of --split. Its real-class
probabilities (one view, as `evaluate` without test-time augmentation) are
kept in memory as float16, and each group is scored on the most probable
class of its members' averaged probabilities, with `evaluate`'s metric code.
The groups: each member alone, every group of --groups ("a+b", by the names
the table prints: a run's folder name or a published model's name), and all
members together. Prints mean IoU, global and class-average accuracy per
group and writes JSON to --output (default
benchmarks/results/ensemble.json).

Memory: images x height x width x classes x 2 bytes per member (CamVid's
101 held-out frames: 0.4 GB).
"""

import bench_output
import numpy as np
import tensorflow as tf
from absl import app, flags

from reseg_tf import configurables
from reseg_tf.common import machine
from reseg_tf.data import eval_pipeline, records
from reseg_tf.evaluation import metrics
from reseg_tf.model import test_time_augmentation as tta

FLAGS = flags.FLAGS


def define_flags():
  """The script's flags, defined only when it runs: the tests import its
  functions into processes whose other modules parse flags of their own."""
  flags.DEFINE_list("models", [], "Comma-separated members: training runs' folders or "
                    "published models' names. Required.")
  flags.DEFINE_list("groups", [], "Further groups to score besides each member alone "
                    "and all together, e.g. 'a+b' (members by their printed names).")
  flags.DEFINE_string("split", "val", "The split to score.")
  flags.DEFINE_string("records_dir", None,
                      "Records to read. Default: the first member's own.")
  flags.DEFINE_string("checkpoint", "latest",
                      "For runs: 'latest', 'best' or a checkpoint path.")
  flags.DEFINE_integer("batch_size", 5, "Images per step.")
  flags.DEFINE_string("output", "benchmarks/results/ensemble.json", "JSON output.")


def member_probabilities(model, dataset) -> list:
  """float16 `[B, H, W, K]` real-class probabilities per batch."""
  probabilities = tf.function(lambda images: tta.probabilities(model, images, model.num_classes),
                              reduce_retracing=True)
  return [probabilities(batch["image"]).numpy().astype(np.float16) for batch in dataset]


def group_scores(members: list, batches: list, num_classes: int, class_names) -> dict:
  """`metrics.scores` of the most probable class of `members`' averaged
  probabilities (each a list of per-batch arrays, as `batches`)."""
  confusion = np.zeros((num_classes, num_classes + 1), np.int64)
  for i, batch in enumerate(batches):
    total = sum(member[i].astype(np.float32) for member in members)
    confusion += metrics.confusion_matrix(batch["label"], np.argmax(total, axis=-1),
                                          num_classes, example_mask=batch["mask"]).numpy()
  return metrics.scores(confusion, class_names)


def main(argv):
  del argv
  if not FLAGS.models:
    raise app.UsageError("give --models: runs' folders or published models' names")
  restored = [configurables.load_run_or_published(member, FLAGS.checkpoint)
              for member in FLAGS.models]
  names = [r.name for r in restored]
  if len(set(names)) < len(names):
    raise app.UsageError(f"two members share a name ({names}): the groups could not "
                         "tell them apart; give folders of different names")
  records_dir = FLAGS.records_dir or restored[0].records_dir
  metadata = records.load_metadata(records_dir)
  dataset = list(eval_pipeline.make_eval_dataset(records_dir, FLAGS.split,
                                                 FLAGS.batch_size))
  batches = [{"label": b["label"].numpy(), "mask": b["mask"].numpy()} for b in dataset]
  probabilities = {}
  for name, r in zip(names, restored):
    print(f"{name}: {r.checkpoint} on {records_dir}/{FLAGS.split}", flush=True)
    probabilities[name] = member_probabilities(r.model, dataset)
  groups = [[name] for name in names] + [g.split("+") for g in FLAGS.groups] + [names]
  results = {}
  for group in groups:
    unknown = set(group) - set(probabilities)
    if unknown:
      raise app.UsageError(f"--groups names {sorted(unknown)}; the members are {names}")
    scores = group_scores([probabilities[n] for n in group], batches,
                          metadata["num_classes"], metadata.get("class_names"))
    results["+".join(group)] = scores
    print(f"{'+'.join(group)}: mean IoU {100 * scores['mean_iou']:.1f}, global "
          f"{100 * scores['global_accuracy']:.1f}, class average "
          f"{100 * scores['class_average_accuracy']:.1f}")
  bench_output.write_json(FLAGS.output, {
      "split": FLAGS.split, "records_dir": records_dir, "cpu": machine.cpu_model(),
      "members": {n: r.checkpoint for n, r in zip(names, restored)}, "groups": results})


if __name__ == "__main__":
  define_flags()
  app.run(main)
