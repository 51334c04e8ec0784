"""Writes a planned dataset as sharded TFRecords plus metadata.json.

Nothing is half-written: the shards go to a temporary sibling folder that
replaces `output_dir` only once every split has been written. Examples are
decoded and encoded by a pool of threads (Pillow and zlib release the GIL)
while the main thread serialises them into shards, round-robin so that each
shard holds a spread of the (often sequential) source files.
"""

import collections
import concurrent.futures
import dataclasses
import json
import os
import shutil
from typing import Callable, Iterator, Optional

import numpy as np
import tensorflow as tf

from data_prep import images, statistics
from data_prep.dataset import BadInputError, ExampleRef, LoadedExample, Plan
from reseg_tf.common.errors import InputError
from reseg_tf.common.progress import RateLog
from reseg_tf.data import records

_PROGRESS_SECONDS = 2.0


@dataclasses.dataclass
class _Encoded:
  """A converted example as the main thread needs it."""
  ref: ExampleRef
  image_encoded: bytes
  image_format: str
  height: int
  width: int
  label_png: bytes
  class_counts: np.ndarray  # int64 [256]: pixels per label value.
  void_values: Optional[dict[str, int]]  # LoadedExample.void_values.


def check_output_dir(output_dir: str, overwrite: bool):
  """Refuses to replace an existing, non-empty output without --overwrite."""
  if os.path.isdir(output_dir) and os.listdir(output_dir) and not overwrite:
    raise BadInputError(output_dir, "output folder already exists and is not "
                        "empty; pass --overwrite to replace it")
  if os.path.exists(output_dir) and not os.path.isdir(output_dir):
    raise BadInputError(output_dir, "output path exists and is not a folder")


def write_dataset(plan: Plan, output_dir: str, num_shards: int = 8,
                  num_workers: int = 2, overwrite: bool = False,
                  skip_bad: bool = False, limit: Optional[int] = None,
                  log: Callable[[str], None] = print,
                  check: Optional[Callable[[dict], None]] = None) -> dict:
  """Converts every split of `plan` and returns the metadata it wrote.

  Args:
    plan: what to convert, from a converter's `plan()`.
    output_dir: where the shards and metadata.json end up.
    num_shards: shards per split (fewer when a split has fewer examples).
    num_workers: threads that decode and encode examples.
    overwrite: replace an existing, non-empty `output_dir`.
    skip_bad: skip (and record) bad examples instead of failing.
    limit: convert at most this many examples per split (smoke tests).
    log: where progress lines go.
    check: called with the metadata before it is written: it may raise
      BadInputError (nothing is written) or add entries to it.

  Raises:
    BadInputError: bad input, naming the file; `output_dir` is then untouched.
  """
  check_output_dir(output_dir, overwrite)
  skipped = list(plan.unpaired)
  if skipped and not skip_bad:
    first = skipped[0]
    more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
    raise BadInputError(first["path"], first["problem"] + more +
                        "; pass --skip_bad to skip such examples")
  output_dir = os.path.abspath(output_dir)
  temp_dir = f"{output_dir}.partial-{os.getpid()}"
  shutil.rmtree(temp_dir, ignore_errors=True)
  os.makedirs(temp_dir)
  try:
    split_stats = {}
    for split, refs in plan.splits.items():
      refs = refs[:limit] if limit else refs
      split_stats[split] = _write_split(plan, split, refs, temp_dir, num_shards,
                                        num_workers, skip_bad, skipped, log)
    metadata = statistics.metadata(plan, split_stats, skipped,
                                   build={"num_shards": num_shards, "limit": limit})
    if check is not None:
      check(metadata)
    with open(os.path.join(temp_dir, records.METADATA_FILENAME), "w") as f:
      json.dump(metadata, f, indent=1)
    _replace_dir(temp_dir, output_dir)
  except BaseException:
    shutil.rmtree(temp_dir, ignore_errors=True)
    raise
  return metadata


def _replace_dir(new_dir: str, output_dir: str):
  """Moves `new_dir` to `output_dir`, deleting what was there only after."""
  old_dir = None
  if os.path.exists(output_dir):
    old_dir = f"{output_dir}.old-{os.getpid()}"
    os.rename(output_dir, old_dir)
  os.makedirs(os.path.dirname(output_dir), exist_ok=True)
  os.rename(new_dir, output_dir)
  if old_dir:
    shutil.rmtree(old_dir)


def _write_split(plan: Plan, split: str, refs: list[ExampleRef], temp_dir: str,
                 num_shards: int, num_workers: int, skip_bad: bool,
                 skipped: list[dict], log) -> statistics.SplitStats:
  stats = statistics.SplitStats(num_classes=plan.info.num_classes)
  num_shards = max(1, min(num_shards, len(refs)))
  paths = [os.path.join(temp_dir, records.shard_filename(split, i, num_shards))
           for i in range(num_shards)]
  writers = [tf.io.TFRecordWriter(p) for p in paths]
  progress = RateLog(split, len(refs), log, "examples", _PROGRESS_SECONDS)
  try:
    for ref, result in _convert_all(plan, refs, num_workers):
      if isinstance(result, BadInputError):
        if not skip_bad:
          raise result
        skipped.append({"path": result.path, "problem": result.problem,
                        "split": split})
        progress.update()
        continue
      example = records.make_example(
          result.image_encoded, result.image_format, result.height,
          result.width, ref.name, result.label_png).SerializeToString()
      writers[stats.num_examples % num_shards].write(example)
      stats.add(result.height, result.width, result.class_counts, len(example),
                result.void_values)
      progress.update()
  finally:
    for writer in writers:
      writer.close()
  progress.finish()
  stats.num_shards = num_shards
  return stats


def _convert_all(plan: Plan, refs: list[ExampleRef], num_workers: int
                 ) -> Iterator[tuple[ExampleRef, object]]:
  """Yields `(ref, _Encoded or BadInputError)` in order, converting ahead."""
  def convert(ref):
    try:
      return _encode(plan, ref, plan.load(ref))
    except BadInputError as e:
      return e
    except InputError as e:  # The shared image reader's UnreadableImageError.
      return BadInputError(e.path, e.problem)

  with concurrent.futures.ThreadPoolExecutor(max(1, num_workers)) as pool:
    pending = collections.deque()
    queue_size = 4 * max(1, num_workers)  # Bounded: memory stays flat.
    for ref in refs:
      pending.append((ref, pool.submit(convert, ref)))
      if len(pending) >= queue_size:
        ref0, future = pending.popleft()
        yield ref0, future.result()
    while pending:
      ref0, future = pending.popleft()
      yield ref0, future.result()


def _encode(plan: Plan, ref: ExampleRef, loaded: LoadedExample) -> _Encoded:
  """Checks one loaded example and encodes what is not already encoded."""
  label_path = ref.label_path or ref.name
  image, label = loaded.image, loaded.label
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
    raise BadInputError(ref.image_path or ref.name,
                        f"expected uint8 RGB pixels, got {image.dtype} {image.shape}")
  images.check_same_size(image, label, label_path)
  counts = np.bincount(label.ravel().astype(np.int64), minlength=256)
  present = np.flatnonzero(counts)
  bad = present[(present >= plan.info.num_classes) & (present != records.IGNORE_LABEL)]
  if bad.size:
    raise BadInputError(label_path, "label values outside 0.."
                        f"{plan.info.num_classes - 1} and {records.IGNORE_LABEL}: "
                        f"{bad[:10].tolist()}")
  if loaded.image_encoded is not None:
    encoded, fmt = loaded.image_encoded, loaded.image_format
  else:
    encoded, fmt = images.encode_png(image), "png"
  return _Encoded(ref, encoded, fmt, image.shape[0], image.shape[1],
                  images.encode_png(label.astype(np.uint8)), counts[:256],
                  loaded.void_values)
