"""A cache of the frozen VGG front end's features, for training without augmentation.

VGG is frozen and is most of a CamVid train step's FLOPs (about 320 of 550
GFLOP, benchmarks/train_step.py). When no random augmentation touches the
input, every training image gives the same features in every epoch: `ensure`
computes them once and writes them as TFRecord shards, and `make_dataset`
streams them like `input_pipeline.make_train_dataset` does the images, with
`"features"` in place of `"image"`; the train step then skips the front end.

The cache has one shard per records shard, with the examples in the same
order, so `make_dataset` yields the same examples in the same order as
`make_train_dataset` for the same seed (the shuffle buffer aside, see
`make_dataset`): a cached run trains on the same batches as an uncached one.

A cache is valid for one fingerprint of everything its features depend on:
the records (metadata.json and shard names), the split, the crop, the front
end's weights, dtype, input scale and stride. `ensure` rebuilds a cache whose
fingerprint differs, and writes into a temporary folder renamed at the end,
so an interrupted build never leaves a cache that looks complete.
"""

import hashlib
import json
import os
from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from reseg_tf.common.progress import RateLog
from reseg_tf.data import augment as augment_lib
from reseg_tf.data import input_pipeline, records

INFO_FILE = "cache.json"
# Bytes of cached examples the shuffle buffer may hold (CamVid's fp32
# features are 11 MB per image: 93 of them).
SHUFFLE_BUFFER_BYTES = 1 << 30

_FEATURE_SPEC = {
    "features": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.string),
}


def unsupported_reason(model, augment: augment_lib.AugmentOptions) -> Optional[str]:
  """Why the features of `model` cannot be cached for training, or None."""
  if model.vgg is None:
    return "the model has no VGG front end, so there is nothing worth caching"
  if model.vgg.trainable_variables:
    return "the VGG front end is trainable (ReSeg.vgg_trainable), so its features change"
  if augment.is_random:
    return ("random augmentation is on (AugmentOptions), so the input differs "
            "every epoch; only a centre crop/pad is compatible")
  return None


def fingerprint(model, records_dir: str, split: str,
                augment: augment_lib.AugmentOptions) -> str:
  """A hash of everything the cached features and labels depend on."""
  digest = hashlib.sha256()
  with tf.io.gfile.GFile(os.path.join(records_dir, records.METADATA_FILENAME), "rb") as f:
    digest.update(f.read())
  files = [os.path.basename(f) for f in input_pipeline.shard_files(records_dir, split)]
  digest.update(json.dumps([split, files, augment.crop_size, augment.image_fill,
                            model.input_scale, model.stride,
                            model.vgg.compute_dtype.name]).encode())
  for variable in model.vgg.variables:
    digest.update(variable.name.encode())
    digest.update(np.ascontiguousarray(variable.numpy()).tobytes())
  return digest.hexdigest()


def ensure(model, records_dir: str, split: str, cache_dir: str,
           augment: augment_lib.AugmentOptions,
           log: Callable[[str], None] = print) -> dict:
  """Builds the cache of `split` in `cache_dir` unless a valid one is there.

  Returns:
    The cache's info (`cache.json`): fingerprint, shard files, feature
    shape and dtype, label size, number of examples.

  Raises:
    ValueError: `unsupported_reason` is not None.
  """
  reason = unsupported_reason(model, augment)
  if reason:
    raise ValueError(f"cannot cache the front end's features: {reason}")
  key = fingerprint(model, records_dir, split, augment)
  info_path = os.path.join(cache_dir, INFO_FILE)
  if tf.io.gfile.exists(info_path):
    with tf.io.gfile.GFile(info_path) as f:
      info = json.load(f)
    if info.get("fingerprint") == key:
      log(f"Feature cache: reusing {cache_dir} ({info['num_examples']} examples).")
      return info
    log(f"Feature cache: {cache_dir} was made for other weights, records or "
        "settings; rebuilding it.")
  return _build(model, records_dir, split, cache_dir, augment, key, log)


def _build(model, records_dir, split, cache_dir, augment, key, log) -> dict:
  size = input_pipeline.train_image_size(records_dir, split, augment)
  sources = input_pipeline.shard_files(records_dir, split)
  total = records.load_metadata(records_dir)["splits"][split]["num_examples"]
  features_fn = tf.function(model.features)
  temporary = cache_dir.rstrip("/") + ".partial"
  if tf.io.gfile.exists(temporary):
    tf.io.gfile.rmtree(temporary)
  tf.io.gfile.makedirs(temporary)
  progress = RateLog(f"Feature cache of {split!r}", total, log, every_seconds=10.0)
  shapes = set()
  names = []
  for source in sources:
    name = os.path.basename(source)
    names.append(name)
    examples = tf.data.TFRecordDataset(source).map(
        lambda s: _cropped(records.decode_example(s), size, augment))
    with tf.io.TFRecordWriter(os.path.join(temporary, name)) as writer:
      for image, label in examples:
        features = features_fn(image[None])[0]
        shapes.add(tuple(features.shape))
        writer.write(tf.train.Example(features=tf.train.Features(feature={
            "features": _bytes(tf.io.serialize_tensor(features)),
            "label": _bytes(tf.io.serialize_tensor(label)),
        })).SerializeToString())
        progress.update()
  progress.finish()
  if len(shapes) != 1:
    raise ValueError(f"the cached features differ in shape: {sorted(shapes)}")
  info = {"fingerprint": key, "records_dir": os.path.abspath(records_dir),
          "split": split, "files": names, "num_examples": progress.done,
          "feature_shape": list(shapes.pop()),
          "feature_dtype": model.vgg.compute_dtype.name, "label_size": list(size)}
  with tf.io.gfile.GFile(os.path.join(temporary, INFO_FILE), "w") as f:
    json.dump(info, f, indent=2)
  if tf.io.gfile.exists(cache_dir):
    tf.io.gfile.rmtree(cache_dir)
  tf.io.gfile.rename(temporary, cache_dir)
  return info


def _cropped(example, size, augment):
  """What `make_train_dataset` makes of an example: non-random, so any seed."""
  image, label = augment_lib.augment(example["image"], example["label"],
                                     tf.zeros([2], tf.int64), augment)
  return tf.ensure_shape(image, [*size, 3]), tf.ensure_shape(label, size)


def _bytes(tensor: tf.Tensor) -> tf.train.Feature:
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[tensor.numpy()]))


def make_dataset(cache_dir: str, info: dict, global_batch_size: int,
                 options: input_pipeline.InputOptions, seed: int = 0,
                 input_context: Optional[tf.distribute.InputContext] = None
                 ) -> tf.data.Dataset:
  """Batches of `{"features", "label", "mask"}` from the cache.

  The order is `make_train_dataset`'s for the same seed, options and
  context, except that the shuffle buffer holds at most
  `SHUFFLE_BUFFER_BYTES` of features (fewer examples than
  `options.shuffle_buffer` when the features are large).
  """
  files = [os.path.join(cache_dir, name) for name in info["files"]]
  shape = info["feature_shape"]
  dtype = tf.as_dtype(info["feature_dtype"])
  example_bytes = int(np.prod(shape)) * dtype.size
  buffer = max(1, min(options.shuffle_buffer, SHUFFLE_BUFFER_BYTES // example_bytes))
  dataset, batch_size, _ = input_pipeline.shuffled_records(
      files, global_batch_size, options, seed, input_context, shuffle_buffer=buffer)

  def parse(serialized):
    example = tf.io.parse_single_example(serialized, _FEATURE_SPEC)
    return {"features": tf.ensure_shape(tf.io.parse_tensor(example["features"], dtype), shape),
            "label": tf.ensure_shape(tf.io.parse_tensor(example["label"], tf.uint8),
                                     info["label_size"]),
            "mask": tf.constant(True)}

  dataset = dataset.map(parse, num_parallel_calls=input_pipeline.PARALLEL_CALLS,
                        deterministic=True)
  return input_pipeline.without_autotune(
      dataset.batch(batch_size, drop_remainder=True).prefetch(input_pipeline.PREFETCH_BATCHES))
