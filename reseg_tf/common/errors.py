"""Errors that name the user's file and what is wrong with it.

The binaries end an `InputError` with one line, `error: <path>: <problem>`,
and exit status 1 (`reseg_tf/cli.py`); anything else is a bug and keeps its
traceback.
"""


class InputError(Exception):
  """A problem with the user's files, folders or settings."""

  def __init__(self, path: str, problem: str):
    super().__init__(f"{path}: {problem}")
    self.path = path
    self.problem = problem


class MissingFileError(InputError, FileNotFoundError):
  """An expected file or folder is absent (also a `FileNotFoundError`)."""
