"""Train and eval input pipelines: TFRecord shards -> batches of dicts.

Train (`make_train_dataset`): shard files (or examples) per input pipeline ->
shuffle the file order -> parallel interleave -> shuffle the serialized
examples -> repeat -> decode (`records.decode_example`) -> `augment.augment`
-> batch (drop remainder) -> prefetch. Elements:

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

Eval (`make_eval_dataset`): no augmentation, no shuffling, every example
scored exactly once. The last batch is completed with dummy examples (`mask`
False, label all 255), so no example is dropped and shapes stay static; every
input pipeline yields the same number of batches. See its docstring for
images of different sizes.

Randomness. Every seed derives from the `seed` argument: the file and example
shuffles (tf.data seeds) and each example's augmentation seed, a stateless
fold of (seed, input pipeline id, position of the example in the pipeline's
stream). The same seed and the same number of pipelines give the same
batches, run after run.
"""

import dataclasses
import math
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from reseg_tf.data import augment as augment_lib
from reseg_tf.data import geometric, pixels, records

AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass(frozen=True)
class InputOptions:
  """How the train pipeline reads and augments (defaults: the paper's).

  Attributes:
    augment: the augmentation ops and the training crop size (all off).
    shuffle_buffer: serialized examples in the shuffle buffer (the whole of
      CamVid's train split at the default; about 1 MB each for 360x480 PNGs).
    cycle_length: shard files read at once by the interleave.
    repeat: repeat the data forever; False gives one pass (tests, counting).
  """
  augment: augment_lib.AugmentOptions = dataclasses.field(
      default_factory=augment_lib.AugmentOptions)
  shuffle_buffer: int = 512
  cycle_length: int = 8
  repeat: bool = True

  def __post_init__(self):
    if self.shuffle_buffer < 1 or self.cycle_length < 1:
      raise ValueError("shuffle_buffer and cycle_length must be >= 1, got "
                       f"{self.shuffle_buffer} and {self.cycle_length}")


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
    return _set_size({"image": image, "label": label, "mask": tf.constant(True)},
                     size)

  dataset = dataset.map(preprocess, num_parallel_calls=AUTOTUNE, deterministic=True)
  # Drop remainder makes the batch dimension static.
  dataset = dataset.batch(batch_size, drop_remainder=True)
  return dataset.prefetch(AUTOTUNE)


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
  batch_size, num_pipelines, pipeline_id = _per_pipeline(global_batch_size,
                                                         input_context)
  file_seed, example_seed = _derive_seeds(seed, 2)
  dataset = tf.data.Dataset.from_tensor_slices(list(files))
  shard_by_file = len(files) >= num_pipelines
  if num_pipelines > 1 and shard_by_file:
    dataset = dataset.shard(num_pipelines, pipeline_id)
  dataset = dataset.shuffle(len(files), seed=file_seed, reshuffle_each_iteration=True)
  dataset = dataset.interleave(
      tf.data.TFRecordDataset, cycle_length=min(options.cycle_length, len(files)),
      num_parallel_calls=AUTOTUNE, deterministic=True)
  if num_pipelines > 1 and not shard_by_file:
    dataset = dataset.shard(num_pipelines, pipeline_id)
  dataset = dataset.shuffle(shuffle_buffer or options.shuffle_buffer,
                            seed=example_seed, reshuffle_each_iteration=True)
  if options.repeat:
    dataset = dataset.repeat()
  return dataset, batch_size, pipeline_id


def make_eval_dataset(records_dir: str, split: str, global_batch_size: int,
                      pad_to_size: Union[str, Sequence[int], None] = "max",
                      image_fill: pixels.Fill = 0.0, with_filenames: bool = False,
                      input_context: Optional[tf.distribute.InputContext] = None
                      ) -> tf.data.Dataset:
  """Every example of `split` once, in file order, in padded batches.

  Input pipeline i of n takes examples i, i + n, ...; all pipelines yield
  the same number of batches, `r * ceil(ceil(N / n) / (r * B))`, completed
  with dummy examples (`mask` False, image `image_fill`, label 255), where N
  is metadata.json's `num_examples`, B the per-replica batch and r the
  replicas each pipeline feeds (`num_replicas_in_sync / n`: with one worker
  and two GPUs, one pipeline feeds both, a batch each per step).

  Images of different sizes (Horse). With `pad_to_size` each image is padded
  bottom/right to one size, the image with `image_fill` and the label with
  255, so padding pixels never count in the metrics. The recurrent model
  does see the padding, however: its sweeps run across it, so predictions
  near the bottom/right edges can differ from those of the unpadded image.
  The exact alternative is `pad_to_size=None` with a per-replica batch of 1:
  each image keeps its own size (shape `[1, None, None, 3]`; a
  `tf.function` then retraces per distinct size unless its signature is
  relaxed). For datasets of one size (CamVid) "max" changes nothing.

  Args:
    records_dir: the converter's output folder (shards + metadata.json).
    split: e.g. "val".
    global_batch_size: examples per step over all replicas.
    pad_to_size: "max" (default): the split's largest height and width from
      metadata.json; `(height, width)`: that size (larger images fail);
      None: no padding (needs one image size, or a per-replica batch of 1).
    image_fill: image value (scalar or RGB) in the padding, 0..255.
    with_filenames: add `"filename"` (string `[B]`, b"" for dummies). Off by
      default: string tensors do not go to accelerators (distributed
      datasets copy every element to the replicas' devices).
    input_context: from `distribute_datasets_from_function`; None: one pipeline.

  Returns:
    Batches of `{"image": uint8 [B, H, W, 3], "label": uint8 [B, H, W],
    "mask": bool [B]}` (plus `"filename"`), a finite dataset.

  Raises:
    FileNotFoundError: no shards of `split` in `records_dir`.
    ValueError: `pad_to_size=None` with images of different sizes and a
      per-replica batch above 1.
  """
  files = shard_files(records_dir, split)
  split_info = records.load_metadata(records_dir)["splits"][split]
  num_examples = split_info["num_examples"]
  batch_size, num_pipelines, pipeline_id = _per_pipeline(global_batch_size,
                                                         input_context)
  common = _common_size(records_dir, split)
  if pad_to_size == "max":
    sizes = split_info["image_size"]
    size = (sizes["height"]["max"], sizes["width"]["max"])
  elif pad_to_size is None:
    size = common
    if size is None and batch_size > 1:
      raise ValueError(
          f"the {split!r} images in {records_dir} differ in size: evaluate "
          "them unpadded with a per-replica batch of 1, or set pad_to_size")
  else:
    size = tuple(pad_to_size)
  fill = tf.cast(tf.broadcast_to(tf.constant(image_fill, tf.float32), [3]), tf.uint8)

  def preprocess(serialized):
    example = records.decode_example(serialized)
    image, label = example["image"], example["label"]
    if size is not None and pad_to_size is not None:
      image, label = pad_bottom_right(image, label, size, fill, example["filename"])
    element = {"image": image, "label": label, "mask": tf.constant(True)}
    if with_filenames:
      element["filename"] = example["filename"]
    return _set_size(element, size) if size is not None else element

  # Unpadded: dummies of the smallest size, which the model surely accepts.
  dummy_size = size or (split_info["image_size"]["height"]["min"],
                        split_info["image_size"]["width"]["min"])
  dummy = {"image": tf.broadcast_to(fill, [dummy_size[0], dummy_size[1], 3]),
           "label": tf.fill(dummy_size, tf.constant(records.IGNORE_LABEL, tf.uint8)),
           "mask": tf.constant(False)}
  if with_filenames:
    dummy["filename"] = tf.constant(b"")

  dataset = tf.data.TFRecordDataset(files)
  if num_pipelines > 1:
    dataset = dataset.shard(num_pipelines, pipeline_id)
  dataset = dataset.map(preprocess, num_parallel_calls=AUTOTUNE, deterministic=True)
  # Each step takes one batch per replica; a pipeline may feed several
  # replicas (one pipeline per worker), so its batches come in multiples of
  # that number, or the distributed iterator drops the leftover batches.
  replicas = _replicas_per_pipeline(input_context)
  num_batches = replicas * math.ceil(
      math.ceil(num_examples / num_pipelines) / (batch_size * replicas))
  dataset = dataset.concatenate(tf.data.Dataset.from_tensors(dummy).repeat())
  dataset = dataset.take(num_batches * batch_size)
  dataset = dataset.batch(batch_size, drop_remainder=True)
  return dataset.prefetch(AUTOTUNE)


def pad_bottom_right(image: tf.Tensor, label: tf.Tensor, size: Sequence[int],
                     image_fill: tf.Tensor, filename: tf.Tensor = None
                     ) -> Tuple[tf.Tensor, tf.Tensor]:
  """Pads `[H, W, 3]` / `[H, W]` to `size` at the bottom and right.

  The label is padded with 255 (ignored by losses and metrics), the image
  with `image_fill` (uint8 `[3]`). An image larger than `size` is an error.
  """
  shape = tf.shape(label)
  target = tf.constant(size, tf.int32)
  fits = tf.debugging.Assert(
      tf.reduce_all(shape <= target),
      ["image larger than pad_to_size:", shape, "vs", target,
       filename if filename is not None else ""])
  with tf.control_dependencies([fits]):
    shape = tf.identity(shape)
  paddings = tf.stack([[0, 0], target - shape], axis=1)  # [2, 2]
  return geometric.pad_with_fill(image, label, paddings, image_fill)


def train_image_size(records_dir: str, split: str,
                     augment: augment_lib.AugmentOptions) -> Tuple[int, int]:
  """`(H, W)` of every training example: the crop, else the common size."""
  size = augment.crop_size or _common_size(records_dir, split)
  if size is None:
    raise ValueError(
        f"the {split!r} images in {records_dir} differ in size: set "
        "InputOptions.augment.crop_size (AugmentOptions.crop_size) to train on them")
  return tuple(size)


def _set_size(element: dict, size: Sequence[int]) -> dict:
  element["image"] = tf.ensure_shape(element["image"], [size[0], size[1], 3])
  element["label"] = tf.ensure_shape(element["label"], [size[0], size[1]])
  return element


def shard_files(records_dir: str, split: str) -> list:
  files = sorted(tf.io.gfile.glob(records.shard_pattern(records_dir, split)))
  if not files:
    raise FileNotFoundError(
        f"no {split!r} shards match {records.shard_pattern(records_dir, split)}: "
        "build the records with `python -m data_prep.build --dataset=...`")
  return files


def _common_size(records_dir: str, split: str) -> Optional[Tuple[int, int]]:
  """`(H, W)` shared by every image of `split` per metadata.json, else None."""
  sizes = records.load_metadata(records_dir)["splits"][split].get("image_size") or {}
  if not sizes:
    return None
  height, width = sizes["height"], sizes["width"]
  if height["min"] != height["max"] or width["min"] != width["max"]:
    return None
  return (height["max"], width["max"])


def _per_pipeline(global_batch_size: int,
                  input_context: Optional[tf.distribute.InputContext]):
  """`(per-replica batch, number of pipelines, this pipeline's id)`."""
  if input_context is None:
    return global_batch_size, 1, 0
  return (input_context.get_per_replica_batch_size(global_batch_size),
          input_context.num_input_pipelines, input_context.input_pipeline_id)


def _replicas_per_pipeline(input_context: Optional[tf.distribute.InputContext]) -> int:
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
