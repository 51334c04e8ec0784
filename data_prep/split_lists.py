"""Split list files: the examples of each split, named one a line.

A line holds a name ("2007_000032"), a file name ("2007_000032.jpg") or a
path pair ("/JPEGImages/2007_000032.jpg /SegmentationClassAug/2007_000032.png",
the DeepLab and SegNet style): the example is the stem of its first field.
Lists saved by spreadsheet programs read too: a UTF-8 byte-order mark, CRLF
line ends, blank lines, spaces around names, and more columns after a comma,
semicolon or tab (`a.jpg,a.png`).
"""

import os
import re

from data_prep.dataset import BadInputError

_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def read_stems(path: str) -> list[tuple[str, int]]:
  """`(stem, line number)` for each non-empty line of a list file.

  Raises:
    BadInputError: unreadable, empty, or a stem listed twice.
  """
  try:
    with open(path, encoding="utf-8-sig") as f:  # Drops a byte-order mark.
      lines = f.read().splitlines()
  except UnicodeDecodeError as e:
    raise BadInputError(path, f"is not UTF-8 text ({e}): save it as UTF-8") from e
  except OSError as e:
    raise BadInputError(path, f"cannot read list ({e.strerror})") from e
  stems, seen = [], {}
  for line_number, line in enumerate(lines, 1):
    fields = re.split(r"[,;\t]", line)[0].strip().strip('"').split()
    if not fields:
      continue
    stem = os.path.basename(fields[0].replace("\\", "/"))
    base, extension = os.path.splitext(stem)
    if extension.lower() in _IMAGE_EXTENSIONS:
      stem = base
    if stem in seen:
      raise BadInputError(path, f"line {line_number}: {stem} is listed twice "
                          f"(also line {seen[stem]})")
    seen[stem] = line_number
    stems.append((stem, line_number))
  if not stems:
    raise BadInputError(path, "lists no examples")
  return stems


def read_disjoint(paths: dict[str, str]) -> dict[str, list[tuple[str, int]]]:
  """`read_stems` of each split's list, checking that no stem is in two splits."""
  lists, split_of = {}, {}
  for split, path in paths.items():
    lists[split] = read_stems(path)
    for stem, line_number in lists[split]:
      if stem in split_of:
        raise BadInputError(path, f"line {line_number}: {stem} is also in the "
                            f"{split_of[stem]} list ({paths[split_of[stem]]})")
      split_of[stem] = split
  return lists
