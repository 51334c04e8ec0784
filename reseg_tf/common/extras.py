"""Optional dependencies: imported when a feature needs them, with the fix
named when they are absent."""

import importlib

from reseg_tf.common.errors import InputError


def require(module: str, extra: str, feature: str):
  """Imports `module` from the optional `extra`.

  Raises:
    InputError: it is not installed; the message gives the pip command.
  """
  try:
    return importlib.import_module(module)
  except ImportError as e:
    raise InputError(feature, f'needs the {extra} extra: pip install -e ".[{extra}]"') from e
