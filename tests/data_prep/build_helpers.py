"""Runs the data_prep.build binary in-process, as a user would from a shell."""

import contextlib
import io
import json
import os

from absl import flags

from data_prep import build
from reseg_tf.data import records


def run_build(*args: str) -> tuple[int, str, str]:
  """Runs `python -m data_prep.build ARGS` in-process.

  Returns:
    (exit status, stdout, stderr).
  """
  # Reset only the binary's own flags: absltest's flags must stay parsed.
  for flag in flags.FLAGS.get_flags_for_module(build):
    flag.unparse()
  argv = flags.FLAGS(["build", *args])
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    status = build.main(argv)
  return status, out.getvalue(), err.getvalue()


def read_metadata(output_dir: str) -> dict:
  with open(os.path.join(output_dir, records.METADATA_FILENAME)) as f:
    return json.load(f)
