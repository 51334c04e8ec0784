"""CutMix for segmentation: a box of another image of the batch, pasted with
its labels (Yun et al., ICCV 2019; French et al., BMVC 2020 for segmentation).

ReNet's sweeps carry context across the whole image, so the network can lean
on the layout of the scenes it trains on (sky above buildings above road).
A pasted box breaks that layout where it lands while keeping every label
true to its pixel, so the network has to recognise a class from what the
pixel and its surroundings show rather than from where it sits in the scene.

Each example, with probability `probability`, receives a box from the
example before it in the batch (the first from the last), at the same
position in both images. The box's area is a uniform fraction of the image
(CutMix's Beta(1, 1)), its aspect ratio the image's, its position uniform.
Labels are pasted with the pixels, void included, so the loss needs no
mixing weights. The examples mixed are those of one input pipeline's batch
(per replica under a distribution strategy): a batch of one mixes nothing.
"""

import tensorflow as tf

from reseg_tf.data import geometric


def cutmix(batch: dict, seed: tf.Tensor, probability: float) -> dict:
  """Pastes a random box of the previous example into each example.

  Args:
    batch: `{"image": [B, H, W, 3], "label": [B, H, W], ...}` with static
      shapes; other keys pass through.
    seed: stateless seed, int `[2]`.
    probability: the chance that an example receives a box; 0 returns the
      batch unchanged.

  Returns:
    The batch with the boxes pasted into "image" and "label".
  """
  check_probability(probability)
  if probability == 0.0:
    return batch
  images, labels = batch["image"], batch["label"]
  size, height, width = images.shape[0], images.shape[1], images.shape[2]
  apply_seed, area_seed, top_seed, left_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, 4))
  applied = tf.random.stateless_uniform([size], apply_seed) < probability
  side = tf.sqrt(tf.random.stateless_uniform([size], area_seed))  # Of the image's sides.
  box_height = tf.cast(tf.round(side * height), tf.int32)
  box_width = tf.cast(tf.round(side * width), tf.int32)
  top = geometric.uniform_offset(tf.random.stateless_uniform([size], top_seed),
                                height - box_height)
  left = geometric.uniform_offset(tf.random.stateless_uniform([size], left_seed),
                                 width - box_width)
  rows = tf.range(height)[None, :, None]
  columns = tf.range(width)[None, None, :]
  inside = ((rows >= top[:, None, None]) & (rows < (top + box_height)[:, None, None])
            & (columns >= left[:, None, None]) & (columns < (left + box_width)[:, None, None])
            & applied[:, None, None])  # [B, H, W]
  return dict(batch,
              image=tf.where(inside[..., None], tf.roll(images, 1, axis=0), images),
              label=tf.where(inside, tf.roll(labels, 1, axis=0), labels))


def check_probability(probability: float, name: str = "the CutMix probability"):
  """Raises ValueError unless `probability` is in [0, 1]."""
  if not 0.0 <= probability <= 1.0:
    raise ValueError(f"{name} must be in [0, 1], got {probability}")

