"""The on-disk dataset format: TFRecord shards of `tf.train.Example`s.

This module is the single source of the feature spec. The converters in
`data_prep` write with `make_example` and the input pipeline reads with
`decode_example`, so the two cannot drift apart.

The keys are those of the TensorFlow segmentation ecosystem (Model Garden's
`tf_example_decoder`, DeepLab's `build_data`), so their tools read our records:

  image/encoded                     encoded RGB image (PNG or JPEG bytes)
  image/format                      b"png" or b"jpeg"
  image/height, image/width         int64
  image/filename                    source file name, for error messages
  image/segmentation/class/encoded  single-channel PNG of class ids
  image/segmentation/class/format   b"png"

Label maps hold class ids 0..K-1 and `IGNORE_LABEL` (255) for void, for
every dataset. Beside the shards, `metadata.json` describes the dataset.
"""

import json
import os

import tensorflow as tf

from reseg_tf.common.errors import InputError, MissingFileError

IGNORE_LABEL = 255
METADATA_FILENAME = "metadata.json"

FEATURE_SPEC = {
    "image/encoded": tf.io.FixedLenFeature((), tf.string),
    "image/format": tf.io.FixedLenFeature((), tf.string),
    "image/height": tf.io.FixedLenFeature((), tf.int64),
    "image/width": tf.io.FixedLenFeature((), tf.int64),
    "image/filename": tf.io.FixedLenFeature((), tf.string),
    "image/segmentation/class/encoded": tf.io.FixedLenFeature((), tf.string),
    "image/segmentation/class/format": tf.io.FixedLenFeature((), tf.string),
}


def _bytes_feature(value: bytes) -> tf.train.Feature:
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int64_feature(value: int) -> tf.train.Feature:
  return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def make_example(image_encoded: bytes, image_format: str, height: int,
                 width: int, filename: str,
                 label_png: bytes) -> tf.train.Example:
  """Builds the `tf.train.Example` for one image and its label map.

  Args:
    image_encoded: PNG or JPEG bytes of an RGB image of size `height x width`.
    image_format: "png" or "jpeg".
    height: image height in pixels.
    width: image width in pixels.
    filename: source file name, kept for error messages and predictions.
    label_png: single-channel 8-bit PNG bytes of class ids, same size.

  Returns:
    The example, with exactly the keys of `FEATURE_SPEC`.
  """
  if image_format not in ("png", "jpeg"):
    raise ValueError(f"image_format must be 'png' or 'jpeg', not {image_format!r}")
  features = {
      "image/encoded": _bytes_feature(image_encoded),
      "image/format": _bytes_feature(image_format.encode()),
      "image/height": _int64_feature(height),
      "image/width": _int64_feature(width),
      "image/filename": _bytes_feature(filename.encode()),
      "image/segmentation/class/encoded": _bytes_feature(label_png),
      "image/segmentation/class/format": _bytes_feature(b"png"),
  }
  example = tf.train.Example(features=tf.train.Features(feature=features))
  assert set(features) == set(FEATURE_SPEC)  # The spec is the contract.
  return example


def decode_example(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
  """Parses and decodes one serialized example (graph-safe, for tf.data).

  Args:
    serialized: scalar string tensor.

  Returns:
    A dict with `image` uint8 `[H, W, 3]`, `label` uint8 `[H, W]` and
    `filename` string scalar.
  """
  parsed = tf.io.parse_single_example(serialized, FEATURE_SPEC)
  # decode_image reads PNG and JPEG alike; expand_animations=False gives a
  # 3-D tensor with a known rank, which the rest of the pipeline needs.
  image = tf.io.decode_image(parsed["image/encoded"], channels=3,
                             expand_animations=False)
  label = tf.io.decode_png(parsed["image/segmentation/class/encoded"],
                           channels=1)
  height = tf.cast(parsed["image/height"], tf.int32)
  width = tf.cast(parsed["image/width"], tf.int32)
  image = tf.ensure_shape(tf.reshape(image, [height, width, 3]),
                          [None, None, 3])
  label = tf.reshape(label, [height, width])
  return {"image": image, "label": label, "filename": parsed["image/filename"]}


def shard_filename(split: str, index: int, num_shards: int) -> str:
  """`{split}-{i:05d}-of-{n:05d}.tfrecord`, the naming every reader relies on."""
  return f"{split}-{index:05d}-of-{num_shards:05d}.tfrecord"


SPLIT_JOINER = "+"  # "train+val": the union of two splits, e.g. to train on both.


def split_names(split: str) -> list:
  """The splits that `split` names: one, or several joined by `+`."""
  return split.split(SPLIT_JOINER)


def split_size(metadata: dict, split: str) -> int:
  """Examples in `split` (a union sums its parts) per metadata.json."""
  return sum(metadata["splits"][name]["num_examples"] for name in split_names(split))


def shard_pattern(records_dir: str, split: str) -> str:
  """The glob that matches every shard of `split` in `records_dir`."""
  return os.path.join(records_dir, f"{split}-?????-of-?????.tfrecord")


def load_metadata(records_dir: str) -> dict:
  """Reads `metadata.json` written beside the shards by `data_prep.build`.

  Raises:
    MissingFileError: no metadata.json (records not built, or another folder).
    InputError: it is not valid JSON.
  """
  path = os.path.join(records_dir, METADATA_FILENAME)
  if not tf.io.gfile.exists(path):
    raise MissingFileError(path, "not found: build the records first with "
                           "`python -m data_prep.build --dataset=...`")
  with tf.io.gfile.GFile(path) as f:
    try:
      return json.load(f)
    except json.JSONDecodeError as e:
      raise InputError(path, f"not valid JSON ({e})") from None
