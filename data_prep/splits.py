"""A fixed, seeded train/val/test split for datasets that have none."""

from typing import Sequence

import numpy as np

from data_prep.dataset import SPLITS


def parse_fractions(text: str) -> tuple[float, float, float]:
  """Parses "0.6,0.2,0.2" into three fractions that sum to 1."""
  try:
    fractions = tuple(float(x) for x in text.split(","))
  except ValueError:
    fractions = ()
  if (len(fractions) != 3 or min(fractions) < 0
      or abs(sum(fractions) - 1.0) > 1e-6):
    raise ValueError(
        f"split fractions must be three non-negative numbers train,val,test "
        f"that sum to 1, got {text!r}")
  return fractions


def seeded_split(names: Sequence[str], fractions: Sequence[float],
                 seed: int) -> tuple[dict[str, list[str]], dict]:
  """Splits `names` at random, reproducibly.

  The names are sorted first, so the split depends only on the set of names,
  the fractions and the seed, never on file-system order.

  Returns:
    `(splits, description)`: the sorted names of each split, and a record of
    how they were drawn for metadata.json.
  """
  ordered = sorted(names)
  permutation = np.random.default_rng(seed).permutation(len(ordered))
  num_train = int(round(fractions[0] * len(ordered)))
  num_val = int(round(fractions[1] * len(ordered)))
  bounds = (0, num_train, min(num_train + num_val, len(ordered)), len(ordered))
  splits = {
      split: sorted(ordered[i] for i in permutation[bounds[k]:bounds[k + 1]])
      for k, split in enumerate(SPLITS)
  }
  description = {
      "method": "seeded_random",
      "how": "names sorted, permuted with numpy.random.default_rng(seed), "
             "then cut at round(fraction * count)",
      "seed": seed,
      "fractions": dict(zip(SPLITS, fractions)),
      "names": splits,
  }
  return splits, description
