"""`import reseg_tf` gives TensorFlow its BFC CPU allocator unless the user chose.

TensorFlow reports memory statistics for CPU:0 only when its allocator is
the BFC one, so each child process below says which allocator it got.
"""

import os
import subprocess
import sys

import pytest

from reseg_tf.common import cpu_allocator
from tests import fixtures

# Imports TensorFlow first, as a user's script may, then reseg_tf, then runs an op.
PROBE = """
import tensorflow as tf
import reseg_tf
tf.matmul(tf.ones([256, 256]), tf.ones([256, 256]))
try:
  print("BFC", tf.config.experimental.get_memory_info("CPU:0")["peak"])
except ValueError:
  print("default")
"""


def _probe(**env) -> list:
  clean = {k: v for k, v in os.environ.items() if k != cpu_allocator.ENV}
  result = subprocess.run([sys.executable, "-c", PROBE], cwd=fixtures.ROOT, text=True,
                          capture_output=True, timeout=120,
                          env={**clean, "TF_CPP_MIN_LOG_LEVEL": "2", **env})
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout.split()


def test_importing_the_package_selects_the_bfc_allocator():
  answer = _probe()
  assert answer[0] == "BFC"
  assert int(answer[1]) >= 256 * 256 * 4  # It served the matmul's tensors.


@pytest.mark.parametrize("value, expected", [("false", "default"), ("true", "BFC")])
def test_the_users_setting_wins(value, expected):
  assert _probe(**{cpu_allocator.ENV: value})[0] == expected

