"""What keeps a training run in hand: its model_dir lock, stop requests,
early stopping and the learning-rate schedule.

Each is small, but they are the rules that decide when a run stops and what
it may overwrite, so they live apart from the loop that applies them.
"""

import json
import os
import signal
import socket
import time
from typing import Sequence

import tensorflow as tf

from reseg_tf.common.errors import InputError

LOCK_FILE = "training.lock"


class ModelDirLock:
  """Makes a training run the only one writing its model_dir.

  The lock file holds the owner's host, pid and start time. A second trainer
  on the same folder refuses to start, naming the running one; a lock left
  by a killed run (its pid gone on this host) is taken over. A lock from
  another host cannot be checked and is respected: delete the file if that
  run is known to be dead.
  """

  def __init__(self, folder: str):
    self.path = os.path.join(folder, LOCK_FILE)
    self._owned = False

  def __enter__(self):
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    owner = {"host": socket.gethostname(), "pid": os.getpid(),
             "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    for _ in range(2):
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
      except FileExistsError:
        holder = self._holder()
        if holder is not None and _is_alive(holder):
          raise InputError(os.path.dirname(self.path), (
              f"another training is running in this model_dir (pid {holder.get('pid')} "
              f"on {holder.get('host')}, started {holder.get('started')}); wait for it, "
              f"stop it, or delete {self.path} if it is dead")) from None
        os.remove(self.path)  # Left by a run that was killed: take it over.
        continue
      with os.fdopen(fd, "w") as f:
        json.dump(owner, f)
      self._owned = True
      return self
    raise InputError(self.path, "could not take the training lock")

  def __exit__(self, *exc):
    if self._owned and os.path.exists(self.path):
      os.remove(self.path)

  def _holder(self):
    try:
      with open(self.path) as f:
        return json.load(f)
    except (OSError, ValueError):
      return None  # Unreadable (half-written by a killed run): stale.


def _is_alive(holder: dict) -> bool:
  if holder.get("host") != socket.gethostname():
    return True  # Cannot check another machine's processes.
  try:
    os.kill(int(holder["pid"]), 0)
  except ProcessLookupError:
    return False
  except (PermissionError, KeyError, ValueError, TypeError):
    return True
  return True


class StopRequests:
  """Turns SIGINT/SIGTERM into a flag the loop checks between step loops."""

  def __init__(self):
    self.signal_name = None
    self._previous = {}

  def __enter__(self):
    for sig in (signal.SIGINT, signal.SIGTERM):
      try:
        self._previous[sig] = signal.signal(sig, self._handle)
      except ValueError:  # Not the main thread (e.g. some test runners).
        pass
    return self

  def _handle(self, signum, frame):
    del frame
    self.signal_name = signal.Signals(signum).name

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


class EarlyStopping:
  """The original code's rule: after `min_epochs`, stop once `patience`
  validations in a row have not beaten the best mean IoU. Its state lives in
  variables so that it is saved with, and resumed from, the checkpoint."""

  def __init__(self, min_epochs: int, patience: int):
    self.min_epochs, self.patience = min_epochs, patience
    self.best = tf.Variable(-1.0, trainable=False, name="best_miou")
    self.stale = tf.Variable(0, trainable=False, name="stale_validations")

  def update(self, mean_iou: float) -> bool:
    """Records a validation; True when it is the best so far."""
    if mean_iou > float(self.best.numpy()):
      self.best.assign(mean_iou)
      self.stale.assign(0)
      return True
    self.stale.assign_add(1)
    return False

  def should_stop(self, epoch: float) -> bool:
    return epoch >= self.min_epochs and int(self.stale.numpy()) >= self.patience


def learning_rate_at(epoch: int, initial: float, drop_epochs: Sequence[int],
                     factor: float) -> float:
  """Step decay: `initial` times `factor` per drop epoch reached (0-based)."""
  return initial * factor ** sum(epoch >= e for e in drop_epochs)
