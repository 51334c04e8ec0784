"""Progress reports for long jobs of a known size: lines or a terminal bar.

`RateLog` writes rate-limited lines (count, percentage, rate, ETA and an
optional detail) through a log function: conversion, evaluation, the feature
cache and the trainer's step line. `ProgressBar` draws the same numbers as a
bar on an interactive terminal (prediction), and as lines elsewhere.
"""

import sys
import time
from typing import Callable


def duration(seconds: float) -> str:
  """`1h02m`, `3m05s` or `42s`."""
  seconds = int(max(seconds, 0))
  if seconds >= 3600:
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
  if seconds >= 60:
    return f"{seconds // 60}m{seconds % 60:02d}s"
  return f"{seconds}s"


class RateLog:
  """Rate-limited progress lines: count, percentage, rate and ETA.

  Args:
    label: what is counted, e.g. a split's name or "step".
    total: the count at which the job is done.
    log: where lines go (e.g. `logging.info`).
    unit: the unit of the rate.
    every_seconds: at most one line per this many seconds.
    start: the count already done before this process (a resumed run): the
      rate and ETA count only the work done here.
  """

  def __init__(self, label: str, total: int, log: Callable[[str], None],
               unit: str = "examples", every_seconds: float = 2.0, start: int = 0):
    self._label, self._total, self._log = label, total, log
    self._unit, self._every = unit, every_seconds
    self._first = start
    self.done = start
    self._start = self._last = time.monotonic()

  def rate(self, now: float) -> float:
    return (self.done - self._first) / max(now - self._start, 1e-9)

  def eta(self, now: float) -> float:
    rate = self.rate(now)
    return (self._total - self.done) / rate if rate else 0.0

  def update(self, count: int = 1, detail: str = "", force: bool = False):
    """Counts `count` more items; logs when `every_seconds` have passed (or
    `force`), with `detail` appended."""
    self.done += count
    now = time.monotonic()
    if force or now - self._last >= self._every:
      self._last = now
      self._log(f"{self._label}: {self.done}/{self._total} "
                f"({100 * self.done / max(self._total, 1):.0f}%) {self.rate(now):.1f} "
                f"{self._unit}/s, ETA {duration(self.eta(now))}"
                + (f", {detail}" if detail else ""))

  def finish(self):
    """Logs the total time and rate."""
    elapsed = time.monotonic() - self._start
    self._log(f"{self._label}: {self.done}/{self._total} done in {elapsed:.1f}s "
              f"({self.rate(time.monotonic()):.1f} {self._unit}/s)")


class ProgressBar(RateLog):
  """`[#####.....] 12/40 images 3.1/s ETA 9s` on a terminal, lines otherwise;
  `unit` names what is counted (images, frames)."""

  def __init__(self, total: int, stream=None, width: int = 30,
               line_every_seconds: float = 10.0, unit: str = "images"):
    self.stream = stream if stream is not None else sys.stderr
    self.interactive = getattr(self.stream, "isatty", lambda: False)()
    super().__init__(unit, total, self._draw, unit,
                     every_seconds=0.0 if self.interactive else line_every_seconds)
    self.width = width

  def update(self, count: int = 1, detail: str = "", force: bool = False):
    super().update(count, detail, force=force or self.done + count == self._total)

  def message(self, text: str):
    """Prints `text` on its own line without breaking the bar."""
    if self.interactive:
      self.stream.write("\r\033[K")
    self.stream.write(text + "\n")
    if self.interactive and self.done:
      self._draw("")
    self.stream.flush()

  def _draw(self, line: str):
    del line  # The bar formats its own numbers.
    now = time.monotonic()
    filled = int(self.width * self.done / max(self._total, 1))
    text = (f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self._total} "
            f"{self._unit} {self.rate(now):.1f}/s ETA {duration(self.eta(now))}")
    if self.interactive:
      self.stream.write("\r" + text + ("\n" if self.done == self._total else ""))
    else:
      self.stream.write(text + "\n")
    self.stream.flush()
