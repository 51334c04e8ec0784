"""Progress lines for long jobs of a known size (conversion, evaluation)."""

import time
from typing import Callable


class RateLog:
  """Rate-limited progress lines: count, percentage, rate and ETA."""

  def __init__(self, label: str, total: int, log: Callable[[str], None],
               unit: str = "examples", every_seconds: float = 2.0):
    self._label, self._total, self._log = label, total, log
    self._unit, self._every = unit, every_seconds
    self.done = 0
    self._start = self._last = time.monotonic()

  def update(self, count: int = 1):
    """Counts `count` more items; logs when `every_seconds` have passed."""
    self.done += count
    now = time.monotonic()
    if now - self._last >= self._every:
      self._last = now
      rate = self.done / (now - self._start)
      eta = (self._total - self.done) / rate if rate else 0.0
      self._log(f"{self._label}: {self.done}/{self._total} "
                f"({100 * self.done / max(self._total, 1):.0f}%) {rate:.1f} "
                f"{self._unit}/s, ETA {eta:.0f}s")

  def finish(self):
    """Logs the total time and rate."""
    elapsed = time.monotonic() - self._start
    self._log(f"{self._label}: {self.done}/{self._total} done in {elapsed:.1f}s "
              f"({self.done / max(elapsed, 1e-9):.1f} {self._unit}/s)")
