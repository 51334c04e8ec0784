"""A user's class table (`classes.json` / `classes.csv`) and mask-value lookups.

The table lists each class's name, the id its pixels carry in class-id masks
and, optionally, the colour they carry in RGB colour masks:

  classes.json   [{"name": "road", "id": 0, "color": [128, 64, 128]}, ...]
                 (or {"classes": [...]}; a colour may also be "#804080")
  classes.csv    a header with `name,id` and optionally `color`, then one
                 row per class; a colour is "#804080" or "128 64 128"

Ids are distinct whole numbers, not necessarily 0..K-1: the records number the
classes 0..K-1 in ascending id order (metadata.json records the id of each).
"""

import csv
import dataclasses
import json
import os
import re
from typing import Any, Optional

import numpy as np

from data_prep.dataset import BadInputError

TABLE_FILES = ("classes.json", "classes.csv")
# The records hold class ids in one byte, 255 being void.
MAX_CLASSES = 255

Color = tuple[int, int, int]
_NOT_UTF8 = ("is not UTF-8 text ({e}): save it as UTF-8 (in a spreadsheet "
             "program: 'CSV UTF-8')")


@dataclasses.dataclass(frozen=True)
class ClassTable:
  """The classes of a table, in ascending id order (their order in the records)."""
  path: str
  names: tuple[str, ...]
  ids: tuple[int, ...]
  colors: Optional[tuple[Color, ...]]  # None when the table gives none.


def find(data_dir: str) -> str:
  """The path of data_dir's class table; exactly one of TABLE_FILES must exist."""
  found = [os.path.join(data_dir, n) for n in TABLE_FILES
           if os.path.exists(os.path.join(data_dir, n))]
  if not found:
    raise BadInputError(os.path.join(data_dir, TABLE_FILES[0]), "class table is "
                        "missing (write classes.json or classes.csv: name, id, "
                        "optional colour per class)")
  if len(found) > 1:
    raise BadInputError(found[1], f"both {' and '.join(TABLE_FILES)} exist: keep one")
  return found[0]


def read(path: str) -> ClassTable:
  """Reads and checks a class table (module docstring)."""
  rows = _read_json(path) if path.endswith(".json") else _read_csv(path)
  if not rows:
    raise BadInputError(path, "lists no classes")
  if len(rows) > MAX_CLASSES:
    raise BadInputError(path, f"lists {len(rows)} classes; at most {MAX_CLASSES} fit the records")
  entries = []
  for where, row in rows:
    name = str(row.get("name") or "").strip()
    if not name:
      raise BadInputError(path, f"{where}: class has no name")
    try:
      class_id = int(str(row.get("id")).strip())
    except ValueError:
      raise BadInputError(path, f"{where}: id of {name!r} is not a whole number: "
                          f"{row.get('id')!r}") from None
    if class_id < 0:
      raise BadInputError(path, f"{where}: id of {name!r} is negative: {class_id}")
    color = row.get("color")
    if color not in (None, ""):
      try:
        color = parse_color(color)
      except ValueError as e:
        raise BadInputError(path, f"{where}: colour of {name!r}: {e}") from None
    entries.append((class_id, name, color or None))
  _check_distinct(path, [e[1] for e in entries], "name")
  _check_distinct(path, [e[0] for e in entries], "id")
  with_color = [e[2] for e in entries if e[2] is not None]
  if with_color and len(with_color) != len(entries):
    raise BadInputError(path, "give a colour for every class or for none")
  _check_distinct(path, with_color, "colour")
  entries.sort()
  return ClassTable(path=path, names=tuple(e[1] for e in entries),
                    ids=tuple(e[0] for e in entries),
                    colors=tuple(e[2] for e in entries) if with_color else None)


def parse_color(value: Any) -> Color:
  """An RGB colour from [r, g, b], "#rrggbb", "r g b" or "r,g,b".

  Raises:
    ValueError: not a colour.
  """
  parts = value
  if isinstance(value, str):
    text = value.strip()
    if re.fullmatch(r"#[0-9a-fA-F]{6}", text):
      return tuple(int(text[i:i + 2], 16) for i in (1, 3, 5))
    parts = re.split(r"[\s,]+", text)
  try:
    rgb = tuple(int(v) for v in parts)
  except (TypeError, ValueError):
    rgb = ()
  if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
    raise ValueError(f"{value!r} is not a colour (use [r, g, b], "
                     "'#rrggbb' or 'r g b' with values 0..255)")
  return rgb


def color_codes(rgb: np.ndarray) -> np.ndarray:
  """One int64 per pixel of a uint8 `[..., 3]` array: (r << 16) | (g << 8) | b."""
  rgb = rgb.astype(np.int64)
  return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def color_code(color: Color) -> int:
  return (color[0] << 16) | (color[1] << 8) | color[2]


def sorted_lookup(mapping: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
  """`(keys, targets)` for `lookup`: mapping's keys ascending and their values."""
  keys = sorted(mapping)
  return np.asarray(keys, np.int64), np.asarray([mapping[k] for k in keys], np.uint8)


def lookup(values: np.ndarray, keys: np.ndarray, targets: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
  """Maps every value through ascending `keys` to `targets`.

  Returns:
    `(mapped, known)`: uint8 targets (0 where unknown) and a bool array that
    is False where a value is not among `keys`.
  """
  position = np.clip(np.searchsorted(keys, values), 0, len(keys) - 1)
  known = keys[position] == values
  return np.where(known, targets[position], 0).astype(np.uint8), known


def _read_json(path: str) -> list[tuple[str, dict]]:
  try:
    with open(path, encoding="utf-8-sig") as f:  # A byte-order mark is fine.
      content = json.load(f)
  except UnicodeDecodeError as e:
    raise BadInputError(path, _NOT_UTF8.format(e=e)) from e
  except (OSError, ValueError) as e:
    raise BadInputError(path, f"cannot read JSON ({e})") from e
  if isinstance(content, dict):
    content = content.get("classes")
  if not isinstance(content, list) or not all(isinstance(c, dict) for c in content):
    raise BadInputError(path, 'expected a list of {"name": ..., "id": ..., '
                        '"color": ...} objects (or {"classes": [...]})')
  return [(f"class {i}", row) for i, row in enumerate(content)]


def _read_csv(path: str) -> list[tuple[str, dict]]:
  """The rows of a CSV table as spreadsheet programs save it: a UTF-8
  byte-order mark, CRLF line ends, blank lines, spaces around fields,
  empty trailing columns and `;` as separator (locales with a decimal
  comma) all read."""
  try:
    with open(path, newline="", encoding="utf-8-sig") as f:
      text = f.read()
  except UnicodeDecodeError as e:
    raise BadInputError(path, _NOT_UTF8.format(e=e)) from e
  except OSError as e:
    raise BadInputError(path, f"cannot read CSV ({e.strerror})") from e
  lines = text.splitlines(keepends=True)
  skipped = next((i for i, line in enumerate(lines) if line.strip()), len(lines))
  lines = lines[skipped:]  # Blank lines above the header.
  delimiter = ";" if lines and ";" in lines[0] and "," not in lines[0] else ","
  try:
    reader = csv.DictReader(lines, delimiter=delimiter, skipinitialspace=True)
    rows = [(f"line {skipped + reader.line_num}", {k.strip(): (v or "").strip()
                                          for k, v in row.items() if k and k.strip()})
            for row in reader]
    fields = [f.strip() for f in reader.fieldnames or []]
  except csv.Error as e:
    raise BadInputError(path, f"cannot read CSV ({e})") from e
  if not {"name", "id"} <= set(fields):
    raise BadInputError(path, f"the header must name the columns name,id[,color]; got {fields}")
  return [(where, row) for where, row in rows if any(row.values())]  # Skip blank rows.


def _check_distinct(path: str, values: list, what: str):
  seen = set()
  for value in values:
    if value in seen:
      raise BadInputError(path, f"{what} {value!r} is given to two classes")
    seen.add(value)
