"""A small generated dataset: coloured shapes on textured backgrounds.

It is the embedded default of the quickstart and the tests: it needs no
download, is deterministic for a seed, and is learnable in minutes on a CPU.
Each image has a textured, low-saturation background and one to four shapes
(circle, square, triangle); each class has its own hue family, jittered per
shape, so both colour and shape carry the class. A one-pixel band on every
object boundary is void (255), like the boundary bands of VOC or trimaps, so
the ignore value is exercised too.
"""

from typing import Sequence

import numpy as np

from data_prep.dataset import SPLITS, DatasetInfo, ExampleRef, LoadedExample, Plan
from reseg_tf.data.records import IGNORE_LABEL

INFO = DatasetInfo(name="synthetic",
                   class_names=("background", "circle", "square", "triangle"),
                   class_colors=((0, 0, 0), (220, 20, 60), (30, 144, 255),
                                 (255, 215, 0)))
# Mean RGB of each shape class; every shape draws a jittered colour.
_SHAPE_COLOURS = np.array([[200, 50, 50], [40, 90, 210], [225, 200, 40]], np.float32)
_SPLIT_STRIDE = 1_000_000  # Example seeds: split number * stride + index.


def plan(seed: int = 0, split_sizes: Sequence[int] = (200, 50, 50),
         image_size: Sequence[int] = (64, 80)) -> Plan:
  """Plans `split_sizes` (train, val, test) images of `image_size` (H, W)."""
  height, width = image_size
  if height < 16 or width < 16:
    raise ValueError(f"synthetic image size must be at least 16x16, got {height}x{width}")

  def load(ref: ExampleRef) -> LoadedExample:
    image, label = generate(seed, ref.index, height, width)
    return LoadedExample(image, label)

  return Plan(
      info=INFO,
      splits={split: [ExampleRef(name=f"{split}_{i:05d}.png",
                                 index=k * _SPLIT_STRIDE + i) for i in range(size)]
              for k, (split, size) in enumerate(zip(SPLITS, split_sizes)) if size},
      absent_splits={split: "size 0 requested"
                     for split, size in zip(SPLITS, split_sizes) if not size},
      load=load,
      split_description={"method": "generated", "seed": seed,
                         "sizes": dict(zip(SPLITS, split_sizes)),
                         "image_size": [height, width]},
      source={"layout": "generated"})


def generate(seed: int, index: int, height: int, width: int
             ) -> tuple[np.ndarray, np.ndarray]:
  """One image and its label map, a pure function of its arguments.

  Returns:
    uint8 image `[H, W, 3]` and uint8 label `[H, W]` (0..3 and 255).
  """
  rng = np.random.default_rng([seed, index])
  y, x = np.mgrid[0:height, 0:width].astype(np.float32)
  # Background: a grey-ish base colour, two low-frequency waves, pixel noise.
  base = rng.uniform(70, 150) + rng.uniform(-15, 15, size=3)
  texture = sum(rng.uniform(8, 20) * np.sin(
      rng.uniform(0.05, 0.4) * (np.cos(a) * x + np.sin(a) * y) + rng.uniform(0, 6.3))
                for a in rng.uniform(0, np.pi, size=2))
  image = base + texture[..., None] + rng.normal(0, 6, size=(height, width, 3))
  label = np.zeros((height, width), np.uint8)

  for _ in range(rng.integers(1, 5)):
    shape = rng.integers(3)  # 0 circle, 1 square, 2 triangle.
    radius = rng.uniform(0.12, 0.3) * min(height, width)
    cy, cx = rng.uniform(0, height), rng.uniform(0, width)
    dy, dx = y - cy, x - cx
    if shape == 0:
      mask = dy**2 + dx**2 <= radius**2
    elif shape == 1:
      mask = (np.abs(dy) <= radius) & (np.abs(dx) <= radius)
    else:  # Upright triangle: below the two slanted edges, above the base.
      mask = (dy <= radius / 2) & (2 * np.abs(dx) <= 1.2 * (dy + radius))
    colour = _SHAPE_COLOURS[shape] + rng.uniform(-25, 25, size=3)
    image[mask] = colour + rng.normal(0, 6, size=(int(mask.sum()), 3))
    label[mask] = shape + 1

  # Void band: pixels whose right or lower neighbour has another class.
  boundary = np.zeros_like(label, bool)
  boundary[:, :-1] |= label[:, :-1] != label[:, 1:]
  boundary[:-1, :] |= label[:-1, :] != label[1:, :]
  label[boundary] = IGNORE_LABEL
  return np.clip(image, 0, 255).astype(np.uint8), label
