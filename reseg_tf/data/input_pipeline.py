"""Train and eval input pipelines: TFRecord shards -> batches of dicts.

Train (`make_train_dataset`): shard files (or examples) per input pipeline ->
shuffle the file order -> parallel interleave -> shuffle the serialized
examples -> repeat -> decode (`records.decode_example`) -> `augment.augment`
-> batch (drop remainder) -> CutMix (`cutmix.py`, when set) -> prefetch. Elements:

    {"image": uint8 [B, H, W, 3], "label": uint8 [B, H, W], "mask": bool [B]}

with B the per-replica batch, every shape static and `mask` all True (train
and eval batches have the same structure, so a step can always weight by
`mask`).

Image size in training. The model needs one size per batch:
  * `augment.crop_size` set: every example is cropped/padded to it (random
    offsets with `random_crop`, else centred; padding is label 255).
  * `augment.crop_size` None (the default, the paper's CamVid setting): the
    images are used whole, which needs every image of the split to have the
    same size (metadata.json says so); otherwise `make_train_dataset` raises
    and asks for a `crop_size`. Nothing is ever resized.

Eval batches come from `eval_pipeline.make_eval_dataset`.

Randomness. Every seed derives from the `seed` argument: the file and example
shuffles (tf.data seeds) and each example's augmentation seed, a stateless
fold of (seed, input pipeline id, position of the example in the pipeline's
stream). The same seed and the same number of pipelines give the same
batches, run after run.
"""

import dataclasses
import os
from typing import Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from reseg_tf.data import augment as augment_lib
from reseg_tf.data import cutmix, records

# Fixed parallelism, and tf.data's autotuner off. The autotuner runs a model
# thread per iterator and destroying the iterator waits for that thread; in a
# training run of this project (TensorFlow 2.21, a fresh iterator each epoch)
# that wait never returned and the run hung at an epoch's start. Decoding and
# augmenting use every core the process may run on (every core of the
# machine where the OS cannot say), as the autotuner's ceiling; two batches
# are prefetched.
PARALLEL_CALLS = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                  else os.cpu_count() or 1)
PREFETCH_BATCHES = 2


def without_autotune(dataset: tf.data.Dataset) -> tf.data.Dataset:
  """`dataset` with tf.data's autotuning (and its model thread) switched off."""
  options = tf.data.Options()
  options.autotune.enabled = False
  return dataset.with_options(options)


@dataclasses.dataclass(frozen=True)
class InputOptions:
  """How the train pipeline reads and augments (defaults: the paper's).

  Attributes:
    augment: the augmentation ops and the training crop size (all off).
    shuffle_buffer: serialized examples in the shuffle buffer (the whole of
      CamVid's train split at the default; about 1 MB each for 360x480 PNGs).
    cycle_length: shard files read at once by the interleave.
    repeat: repeat the data forever; False gives one pass (tests, counting).
    cutmix_probability: the chance that an example of a batch receives a
      box of another with its labels (`cutmix.py`); 0: off.
  """
  augment: augment_lib.AugmentOptions = dataclasses.field(
      default_factory=augment_lib.AugmentOptions)
  shuffle_buffer: int = 512
  cycle_length: int = 8
  repeat: bool = True
  cutmix_probability: float = 0.0

  def __post_init__(self):
    if self.shuffle_buffer < 1 or self.cycle_length < 1:
      raise ValueError("shuffle_buffer and cycle_length must be >= 1, got "
                       f"{self.shuffle_buffer} and {self.cycle_length}")
    # Here rather than at the pipeline's first trace: a bad gin value fails
    # before the records are read.
    cutmix.check_probability(self.cutmix_probability, "InputOptions.cutmix_probability")


def make_train_dataset(records_dir: str, split: str, global_batch_size: int,
                       options: Optional[InputOptions] = None, seed: int = 0,
                       input_context: Optional[tf.distribute.InputContext] = None
                       ) -> tf.data.Dataset:
  """The shuffled, augmented, batched training stream of one input pipeline.

  Usable as is or from `strategy.distribute_datasets_from_function`. With an
  `input_context`, the batch is the per-replica share of `global_batch_size`,
  and the data is split between the input pipelines: by file when there are
  at least as many shard files as pipelines, else by example (each pipeline
  then reads every file and keeps every n-th example, which needs the same
  file order everywhere: the shuffles use `seed` alone, not the pipeline id).

  Args:
    records_dir: the converter's output folder (shards + metadata.json).
    split: e.g. "train".
    global_batch_size: examples per step over all replicas.
    options: pipeline and augmentation options; None: `InputOptions()`.
    seed: seeds shuffling and augmentation (pass a new one per epoch to get
      a new order that is still reproducible).
    input_context: from `distribute_datasets_from_function`; None: one pipeline.

  Returns:
    Batches of `{"image", "label", "mask"}` (module docstring), forever
    unless `options.repeat` is False.

  Raises:
    FileNotFoundError: no shards of `split` in `records_dir`.
    ValueError: the images differ in size and no `crop_size` is set.
  """
  options = options or InputOptions()
  files = shard_files(records_dir, split)
  size = train_image_size(records_dir, split, options.augment)
  dataset, batch_size, pipeline_id = shuffled_records(
      files, global_batch_size, options, seed, input_context)
  # Position in this pipeline's stream (across epochs): the augmentation seed.
  dataset = dataset.enumerate()
  pipeline_seed = tf.constant([int(seed) % 2**63, pipeline_id], tf.int64)

  def preprocess(index, serialized):
    example = records.decode_example(serialized)
    image_seed = tf.random.experimental.stateless_fold_in(pipeline_seed, index)
    image, label = augment_lib.augment(example["image"], example["label"],
                                       image_seed, options.augment)
    return set_size({"image": image, "label": label, "mask": tf.constant(True)},
                     size)

  dataset = dataset.map(preprocess, num_parallel_calls=PARALLEL_CALLS, deterministic=True)
  # Drop remainder makes the batch dimension static.
  dataset = dataset.batch(batch_size, drop_remainder=True)
  if options.cutmix_probability > 0:
    # Seeded by the batch's position, apart from the examples' seeds.
    batch_seed = tf.constant([int(seed) % 2**63, -1 - pipeline_id], tf.int64)
    dataset = dataset.enumerate().map(
        lambda index, batch: cutmix.cutmix(
            batch, tf.random.experimental.stateless_fold_in(batch_seed, index),
            options.cutmix_probability),
        num_parallel_calls=PARALLEL_CALLS, deterministic=True)
  return without_autotune(dataset.prefetch(PREFETCH_BATCHES))


def shuffled_records(files: Sequence[str], global_batch_size: int,
                     options: InputOptions, seed: int,
                     input_context: Optional[tf.distribute.InputContext] = None,
                     shuffle_buffer: Optional[int] = None):
  """Serialized records of `files` in a seeded order, split between pipelines.

  The reading half of `make_train_dataset` (see its docstring), shared with
  `feature_cache.make_dataset`: shard files of the same structure give the
  same order.

  Returns:
    `(dataset of serialized records, per-replica batch size, pipeline id)`.
  """
  batch_size, num_pipelines, pipeline_id = per_pipeline(global_batch_size,
                                                         input_context)
  file_seed, example_seed = _derive_seeds(seed, 2)
  dataset = tf.data.Dataset.from_tensor_slices(list(files))
  shard_by_file = len(files) >= num_pipelines
  if num_pipelines > 1 and shard_by_file:
    dataset = dataset.shard(num_pipelines, pipeline_id)
  dataset = dataset.shuffle(len(files), seed=file_seed, reshuffle_each_iteration=True)
  cycle_length = min(options.cycle_length, len(files))
  dataset = dataset.interleave(
      tf.data.TFRecordDataset, cycle_length=cycle_length,
      num_parallel_calls=min(PARALLEL_CALLS, cycle_length), deterministic=True)
  if num_pipelines > 1 and not shard_by_file:
    dataset = dataset.shard(num_pipelines, pipeline_id)
  dataset = dataset.shuffle(shuffle_buffer or options.shuffle_buffer,
                            seed=example_seed, reshuffle_each_iteration=True)
  if options.repeat:
    dataset = dataset.repeat()
  return dataset, batch_size, pipeline_id


def train_image_size(records_dir: str, split: str,
                     augment: augment_lib.AugmentOptions) -> Tuple[int, int]:
  """`(H, W)` of every training example: the crop, else the common size."""
  size = augment.crop_size or common_size(records_dir, split)
  if size is None:
    raise ValueError(
        f"the {split!r} images in {records_dir} differ in size: set "
        "InputOptions.augment.crop_size (AugmentOptions.crop_size) to train on them")
  return tuple(size)


def set_size(element: dict, size: Sequence[int]) -> dict:
  element["image"] = tf.ensure_shape(element["image"], [size[0], size[1], 3])
  element["label"] = tf.ensure_shape(element["label"], [size[0], size[1]])
  return element


def shard_files(records_dir: str, split: str) -> list:
  """The shards of `split`, of each of its parts for a union (`train+val`)."""
  files = []
  for name in records.split_names(split):
    found = sorted(tf.io.gfile.glob(records.shard_pattern(records_dir, name)))
    if not found:
      raise FileNotFoundError(
          f"no {name!r} shards match {records.shard_pattern(records_dir, name)}: "
          "build the records with `python -m data_prep.build --dataset=...`")
    files += found
  return files


def common_size(records_dir: str, split: str) -> Optional[Tuple[int, int]]:
  """`(H, W)` shared by every image of `split` (of all its parts) per
  metadata.json, else None."""
  metadata, common = records.load_metadata(records_dir), set()
  for name in records.split_names(split):
    sizes = metadata["splits"][name].get("image_size") or {}
    if not sizes:
      return None
    height, width = sizes["height"], sizes["width"]
    if height["min"] != height["max"] or width["min"] != width["max"]:
      return None
    common.add((height["max"], width["max"]))
  return common.pop() if len(common) == 1 else None


def per_pipeline(global_batch_size: int,
                  input_context: Optional[tf.distribute.InputContext]):
  """`(per-replica batch, number of pipelines, this pipeline's id)`."""
  if input_context is None:
    return global_batch_size, 1, 0
  return (input_context.get_per_replica_batch_size(global_batch_size),
          input_context.num_input_pipelines, input_context.input_pipeline_id)


def replicas_per_pipeline(input_context: Optional[tf.distribute.InputContext]) -> int:
  if input_context is None:
    return 1
  return max(1, input_context.num_replicas_in_sync // input_context.num_input_pipelines)


def _derive_seeds(seed, count: int) -> list:
  """`count` independent tf.data seeds (int64) from one seed (an int, or a
  tuple of ints mixed together)."""
  entropy = [int(s) % 2**64 for s in seed] if isinstance(seed, tuple) else int(seed) % 2**64
  state = np.random.SeedSequence(entropy).generate_state(count, np.uint64)
  return [int(s >> np.uint64(1)) for s in state]  # Non-negative int64.


def epoch_seed(seed: int, epoch: int) -> int:
  """The seed of one epoch's pipeline: independent across epochs, and
  depending only on (seed, epoch), so a resumed run sees the same batches."""
  return _derive_seeds((seed, epoch), 1)[0]
