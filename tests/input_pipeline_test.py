"""Tests of the train and eval input pipelines (reseg_tf/input_pipeline.py).

The records are written here, tiny: example i's image holds i in its red
channel, so every batch says which examples it contains.
"""

import io
import json
import os

import numpy as np
import tensorflow as tf
from absl.testing import parameterized
from PIL import Image

from reseg_tf.data import augment, eval_pipeline, input_pipeline, records

_ALL_ON = augment.AugmentOptions(
    crop_size=(10, 12), random_crop=True, flip=True, scale_range=(0.8, 1.2),
    max_rotation_degrees=10, max_shear_degrees=5, elastic_alpha=1.0,
    elastic_spacing=4, brightness=0.1, contrast=0.1, saturation=0.1, gamma=0.1)


def _png(array: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format="PNG")
  return buffer.getvalue()


def _write_split(records_dir: str, split: str, sizes, num_shards: int):
  """Writes examples of the given (H, W) sizes round-robin into shards."""
  os.makedirs(records_dir, exist_ok=True)
  paths = [os.path.join(records_dir, records.shard_filename(split, i, num_shards))
           for i in range(num_shards)]
  writers = [tf.io.TFRecordWriter(p) for p in paths]
  for i, (height, width) in enumerate(sizes):
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = i
    image[..., 1] = 100
    label = (np.arange(height * width).reshape(height, width) % 4).astype(np.uint8)
    example = records.make_example(_png(image), "png", height, width, f"{i:03d}.png",
                                   _png(label))
    writers[i % num_shards].write(example.SerializeToString())
  for writer in writers:
    writer.close()
  path = os.path.join(records_dir, records.METADATA_FILENAME)
  metadata = {"num_classes": 4, "splits": {}}
  if os.path.exists(path):
    with open(path) as f:
      metadata = json.load(f)
  heights, widths = zip(*sizes)
  metadata["splits"][split] = {
      "num_examples": len(sizes), "num_shards": num_shards,
      "image_size": {"height": {"min": min(heights), "max": max(heights)},
                     "width": {"min": min(widths), "max": max(widths)}}}
  with open(path, "w") as f:
    json.dump(metadata, f)


def _ids(images) -> list:
  """Example ids of a batch of unaugmented images (their red channel)."""
  return [int(i) for i in np.asarray(images)[:, 0, 0, 0]]


def _context(pipeline_id: int, num_pipelines: int = 2) -> tf.distribute.InputContext:
  return tf.distribute.InputContext(num_input_pipelines=num_pipelines,
                                    input_pipeline_id=pipeline_id,
                                    num_replicas_in_sync=num_pipelines)


class InputPipelineTest(tf.test.TestCase, parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.dir = self.create_tempdir().full_path
    _write_split(self.dir, "train", [(12, 14)] * 16, num_shards=4)
    _write_split(self.dir, "one_shard", [(12, 14)] * 16, num_shards=1)
    _write_split(self.dir, "val", [(12, 14)] * 7, num_shards=3)
    # Horse-like: every image a different size.
    _write_split(self.dir, "varied", [(9, 14), (12, 10), (11, 13), (8, 8), (12, 14)],
                 num_shards=2)

  def _one_pass(self, split="train", batch=4, **kwargs):
    options = input_pipeline.InputOptions(repeat=False)
    return input_pipeline.make_train_dataset(self.dir, split, batch, options, **kwargs)

  # ------------------------------------------------------------------ train

  @parameterized.named_parameters(("plain", augment.AugmentOptions()), ("augmented", _ALL_ON))
  def test_train_batches_have_static_shapes_and_the_exact_size(self, augment_options):
    options = input_pipeline.InputOptions(augment=augment_options)
    dataset = input_pipeline.make_train_dataset(self.dir, "train", 3, options)
    height, width = augment_options.crop_size or (12, 14)
    spec = dataset.element_spec
    self.assertEqual(spec["image"], tf.TensorSpec([3, height, width, 3], tf.uint8))
    self.assertEqual(spec["label"], tf.TensorSpec([3, height, width], tf.uint8))
    self.assertEqual(spec["mask"], tf.TensorSpec([3], tf.bool))
    for batch in dataset.take(7):  # Repeats: 21 examples from 16.
      self.assertEqual(batch["image"].shape, (3, height, width, 3))
      self.assertAllEqual(batch["mask"], [True] * 3)

  def test_one_pass_sees_every_example_once_and_drops_the_remainder(self):
    ids = [i for batch in self._one_pass(batch=4) for i in _ids(batch["image"])]
    self.assertCountEqual(ids, range(16))
    self.assertNotEqual(ids, sorted(ids))  # Shuffled.
    batches = list(self._one_pass(batch=5))
    self.assertLen(batches, 3)
    ids = [i for batch in batches for i in _ids(batch["image"])]
    self.assertLen(set(ids), 15)

  @parameterized.named_parameters(("plain", augment.AugmentOptions()), ("augmented", _ALL_ON))
  def test_train_stream_is_determined_by_the_seed(self, augment_options):
    options = input_pipeline.InputOptions(augment=augment_options)

    def first_batches(seed):
      dataset = input_pipeline.make_train_dataset(self.dir, "train", 4, options, seed=seed)
      return [b["image"].numpy() for b in dataset.take(6)]  # 1.5 epochs.

    run, rerun, other = first_batches(7), first_batches(7), first_batches(8)
    self.assertAllEqual(run, rerun)
    self.assertNotAllEqual(run, other)

  def test_cutmix_pastes_boxes_of_the_previous_example_of_the_same_stream(self):
    def first_batches(probability):
      options = input_pipeline.InputOptions(cutmix_probability=probability)
      dataset = input_pipeline.make_train_dataset(self.dir, "train", 4, options, seed=5)
      return [(b["image"].numpy(), b["label"].numpy()) for b in dataset.take(6)]

    plain, mixed, mixed_again = first_batches(0.0), first_batches(1.0), first_batches(1.0)
    self.assertAllEqual([m[0] for m in mixed], [m[0] for m in mixed_again])
    pasted_share = []
    for (image, label), (mixed_image, mixed_label) in zip(plain, mixed):
      box = mixed_image[..., 0] != image[..., 0]  # The red channel is the example id.
      previous_image, previous_label = np.roll(image, 1, axis=0), np.roll(label, 1, axis=0)
      self.assertAllEqual(mixed_image[box], previous_image[box])
      self.assertAllEqual(mixed_label[box], previous_label[box])
      self.assertAllEqual(mixed_image[~box], image[~box])
      self.assertAllEqual(mixed_label[~box], label[~box])
      pasted_share.append(box.mean())
    self.assertGreater(np.mean(pasted_share), 0.2)  # About half, on 24 examples.
    with self.assertRaisesRegex(ValueError, "cutmix_probability"):
      input_pipeline.InputOptions(cutmix_probability=-0.1)

  @parameterized.named_parameters(
      ("by_file", "train", 2, 16),  # 4 files, 2 pipelines.
      ("by_example", "one_shard", 2, 16),
      ("by_example_of_several_files", "val", 4, 7))  # 3 files, 4 pipelines.
  def test_input_pipelines_split_the_data_disjointly_and_cover_it(
      self, split, num_pipelines, num_examples):
    ids = []
    for pipeline_id in range(num_pipelines):
      dataset = self._one_pass(split, batch=num_pipelines, seed=3,
                               input_context=_context(pipeline_id, num_pipelines))
      self.assertEqual(dataset.element_spec["image"].shape[0], 1)  # Per replica.
      ids += [i for b in dataset for i in _ids(b["image"])]
    self.assertCountEqual(ids, range(num_examples))  # Each exactly once.

  def test_repeat_gives_whole_epochs_in_new_orders(self):
    dataset = input_pipeline.make_train_dataset(self.dir, "train", 4, seed=5)
    ids = [i for b in dataset.take(12) for i in _ids(b["image"])]
    epochs = [ids[:16], ids[16:32], ids[32:]]
    for epoch in epochs:
      self.assertCountEqual(epoch, range(16))
    self.assertNotEqual(epochs[0], epochs[1])

  def test_images_of_different_sizes_need_a_crop_size(self):
    with self.assertRaisesRegex(ValueError, "crop_size"):
      input_pipeline.make_train_dataset(self.dir, "varied", 2)
    options = input_pipeline.InputOptions(
        augment=augment.AugmentOptions(crop_size=(10, 12)), repeat=False)
    dataset = input_pipeline.make_train_dataset(self.dir, "varied", 2, options)
    self.assertEqual(dataset.element_spec["label"].shape, (2, 10, 12))
    labels = np.concatenate([b["label"].numpy() for b in dataset])
    self.assertContainsSubset(np.unique(labels), [0, 1, 2, 3, 255])
    self.assertIn(255, labels)  # The 8x8 image is padded.

  def test_missing_split_is_reported(self):
    with self.assertRaisesRegex(FileNotFoundError, "data_prep.build"):
      input_pipeline.make_train_dataset(self.dir, "test", 2)
    with self.assertRaisesRegex(FileNotFoundError, "'test' shards"):
      input_pipeline.make_train_dataset(self.dir, "train+test", 2)

  def test_a_union_of_splits_sees_every_example_of_each_once(self):
    ids = [i for batch in self._one_pass("train+val", batch=1) for i in _ids(batch["image"])]
    self.assertCountEqual(ids, [*range(16), *range(7)])  # Ids restart in each split.
    metadata = records.load_metadata(self.dir)
    self.assertEqual(records.split_size(metadata, "train+val"), 23)
    self.assertEqual(input_pipeline.common_size(self.dir, "train+val"), (12, 14))
    self.assertIsNone(input_pipeline.common_size(self.dir, "train+varied"))

  def test_pipelines_run_without_the_autotuner(self):
    # Its per-iterator model thread once hung a run when an epoch's iterator
    # was destroyed (input_pipeline.py); fixed parallelism replaces it.
    for dataset in (self._one_pass(), eval_pipeline.make_eval_dataset(self.dir, "val", 3)):
      self.assertFalse(dataset.options().autotune.enabled)
      self.assertNotEmpty(list(dataset.take(1)))

  # ------------------------------------------------------------------- eval

  def test_eval_scores_every_example_once_with_a_padded_last_batch(self):
    dataset = eval_pipeline.make_eval_dataset(self.dir, "val", 3, with_filenames=True)
    batches = list(dataset)
    self.assertEqual([b["mask"].numpy().tolist() for b in batches],
                     [[True] * 3, [True] * 3, [True, False, False]])
    self.assertEqual(dataset.element_spec["image"].shape, (3, 12, 14, 3))
    real = [(f, i) for b in batches for f, i, m in zip(
        b["filename"].numpy(), _ids(b["image"]), b["mask"].numpy()) if m]
    self.assertCountEqual(real, [(f"{i:03d}.png".encode(), i) for i in range(7)])
    last = batches[-1]
    self.assertAllEqual(last["label"][1:], np.full((2, 12, 14), 255))
    self.assertAllEqual(last["filename"][1:], [b"", b""])

  def test_eval_input_pipelines_yield_equal_batches_and_cover_every_example(self):
    filenames, masks = [], []
    for pipeline_id in range(2):
      dataset = eval_pipeline.make_eval_dataset(
          self.dir, "val", 4, with_filenames=True, input_context=_context(pipeline_id))
      batches = list(dataset)
      masks.append([b["mask"].numpy().tolist() for b in batches])
      filenames += [f for b in batches for f, m in zip(b["filename"].numpy(),
                                                       b["mask"].numpy()) if m]
    # 7 examples: 4 and 3 per pipeline, 2 batches of 2 each.
    self.assertEqual(masks, [[[True, True], [True, True]], [[True, True], [True, False]]])
    self.assertCountEqual(filenames, [f"{i:03d}.png".encode() for i in range(7)])

  def test_eval_batches_fill_every_replica_of_a_pipeline(self):
    # One worker, two replicas (MirroredStrategy): each step dequeues two
    # batches from the single pipeline, so it must yield an even number.
    context = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0,
                                         num_replicas_in_sync=2)
    dataset = eval_pipeline.make_eval_dataset(self.dir, "val", 4, input_context=context)
    self.assertEqual([b["mask"].numpy().tolist() for b in dataset],
                     [[True, True], [True, True], [True, True], [True, False]])
    dataset = eval_pipeline.make_eval_dataset(self.dir, "val", 2, input_context=context)
    self.assertEqual([b["mask"].numpy().tolist() for b in dataset],
                     [[True]] * 7 + [[False]])

  def test_eval_pads_images_bottom_right_with_ignored_labels(self):
    dataset = eval_pipeline.make_eval_dataset(self.dir, "varied", 2, image_fill=7)
    self.assertEqual(dataset.element_spec["image"].shape, (2, 12, 14, 3))
    examples = {}
    for batch in dataset:
      for image, label, real in zip(batch["image"].numpy(), batch["label"].numpy(),
                                    batch["mask"].numpy()):
        if real:
          examples[int(image[0, 0, 0])] = image, label
    self.assertLen(examples, 5)
    image, label = examples[0]  # 9x14: rows 9.. are padding.
    self.assertAllEqual(label[9:], np.full((3, 14), 255))
    self.assertAllEqual(image[9:], np.full((3, 14, 3), 7))
    self.assertNotIn(255, label[:9])
    image, label = examples[1]  # 12x10: columns 10.. are padding.
    self.assertAllEqual(label[:, 10:], np.full((12, 4), 255))
    self.assertAllEqual(image[:, :10, 1], np.full((12, 10), 100))
    self.assertAllEqual(image[:, 10:], np.full((12, 4, 3), 7))

  def test_eval_unpadded_needs_batches_of_one(self):
    with self.assertRaisesRegex(ValueError, "per-replica batch of 1"):
      eval_pipeline.make_eval_dataset(self.dir, "varied", 2, pad_to_size=None)
    dataset = eval_pipeline.make_eval_dataset(self.dir, "varied", 1, pad_to_size=None)
    self.assertEqual(dataset.element_spec["image"].shape.as_list(), [1, None, None, 3])
    shapes = [tuple(b["label"].shape[1:]) for b in dataset]
    self.assertEqual(shapes, [(9, 14), (11, 13), (12, 14), (12, 10), (8, 8)])
    # Across 2 pipelines (3 + 2 examples) the short one ends with a dummy of
    # the smallest size.
    dataset = eval_pipeline.make_eval_dataset(self.dir, "varied", 2, pad_to_size=None,
                                               input_context=_context(1))
    batches = list(dataset)
    self.assertEqual([bool(b["mask"][0]) for b in batches], [True, True, False])
    self.assertEqual(batches[-1]["label"].shape, (1, 8, 8))

  def test_eval_refuses_images_larger_than_pad_to_size(self):
    dataset = eval_pipeline.make_eval_dataset(self.dir, "varied", 1, pad_to_size=(10, 14))
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "larger than pad_to_size"):
      list(dataset)


if __name__ == "__main__":
  tf.test.main()
