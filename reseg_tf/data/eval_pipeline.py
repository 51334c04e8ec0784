"""The eval input pipeline: every example of a split exactly once.

Eval (`make_eval_dataset`): no augmentation, no shuffling, every example
scored exactly once. The last batch is completed with dummy examples (`mask`
False, label all 255), so no example is dropped and shapes stay static; every
input pipeline yields the same number of batches. See its docstring for
images of different sizes.
"""

import math
from typing import Optional, Sequence, Tuple, Union

import tensorflow as tf

from reseg_tf.data import geometric, input_pipeline, pixels, records


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
  files = input_pipeline.shard_files(records_dir, split)
  split_info = records.load_metadata(records_dir)["splits"][split]
  num_examples = split_info["num_examples"]
  batch_size, num_pipelines, pipeline_id = input_pipeline.per_pipeline(global_batch_size,
                                                         input_context)
  common = input_pipeline.common_size(records_dir, split)
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
    return input_pipeline.set_size(element, size) if size is not None else element

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
  dataset = dataset.map(preprocess, num_parallel_calls=input_pipeline.PARALLEL_CALLS, deterministic=True)
  # Each step takes one batch per replica; a pipeline may feed several
  # replicas (one pipeline per worker), so its batches come in multiples of
  # that number, or the distributed iterator drops the leftover batches.
  replicas = input_pipeline.replicas_per_pipeline(input_context)
  num_batches = replicas * math.ceil(
      math.ceil(num_examples / num_pipelines) / (batch_size * replicas))
  dataset = dataset.concatenate(tf.data.Dataset.from_tensors(dummy).repeat())
  dataset = dataset.take(num_batches * batch_size)
  dataset = dataset.batch(batch_size, drop_remainder=True)
  return input_pipeline.without_autotune(dataset.prefetch(input_pipeline.PREFETCH_BATCHES))


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
