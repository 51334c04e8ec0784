"""Errors that name the user's file and what is wrong with it.

`ResegError` is the one exception type of reseg-tf's expected failures (a
missing or unreadable file, an unknown model, a checkpoint that does not
fit): Python callers catch it (`reseg_tf.ResegError`), and the binaries end
it with one line, `error: <path>: <problem>`, and exit status 1
(`reseg_tf/cli.py`). Anything else is a bug and keeps its traceback.
"""


class ResegError(Exception):
  """A problem with the user's files, folders, images or settings.

  Attributes:
    path: what the problem is about: a file, a folder, a model's name or an
      argument (e.g. `images[2]`).
    problem: what is wrong, in a few words; `str(error)` is `path: problem`.
  """

  def __init__(self, path: str, problem: str):
    super().__init__(f"{path}: {problem}")
    self.path = path
    self.problem = problem


# The name the package's modules raise it by (older than the public name).
InputError = ResegError


class MissingFileError(ResegError, FileNotFoundError):
  """An expected file or folder is absent (also a `FileNotFoundError`)."""
