"""`import reseg_tf` gives TensorFlow its BFC CPU allocator unless the user chose.

TensorFlow reports memory statistics for CPU:0 only when its allocator is
the BFC one, so each child process below says which allocator it got.
"""

import os
import subprocess
import sys

from reseg_tf.common import cpu_allocator
from tests import fixtures

# Imports TensorFlow first, as a user's script may, then reseg_tf, then runs an op.
PROBE = """
import tensorflow as tf
{import_package}
tf.matmul(tf.ones([256, 256]), tf.ones([256, 256]))
try:
  print("BFC", tf.config.experimental.get_memory_info("CPU:0")["peak"])
except ValueError:
  print("default")
"""


def _probe(import_package=True, **env) -> list:
  clean = {k: v for k, v in os.environ.items() if k != cpu_allocator.ENV}
  code = PROBE.format(import_package="import reseg_tf" if import_package else "")
  result = subprocess.run([sys.executable, "-c", code], cwd=fixtures.ROOT, text=True,
                          capture_output=True, timeout=120,
                          env={**clean, "TF_CPP_MIN_LOG_LEVEL": "2", **env})
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout.split()


def test_importing_the_package_selects_the_bfc_allocator():
  answer = _probe()
  assert answer[0] == "BFC"
  assert int(answer[1]) >= 256 * 256 * 4  # It served the matmul's tensors.


def test_the_users_setting_wins():
  assert _probe(**{cpu_allocator.ENV: "true"})[0] == "BFC"
  # With "false", importing the package changes nothing: the allocator is the
  # one TensorFlow alone picks. That is its default one where TensorFlow's
  # oneDNN build has no allocator of its own (AMD EPYC); on an Intel Xeon it
  # serves CPU tensors from its own BFC-backed allocator whatever the
  # variable says.
  alone = _probe(import_package=False, **{cpu_allocator.ENV: "false"})[0]
  assert _probe(**{cpu_allocator.ENV: "false"})[0] == alone


def test_without_onednn_false_means_the_default_allocator():
  # TF_ENABLE_ONEDNN_OPTS=0 takes oneDNN's own allocator away on every CPU,
  # so there the user's "false" is seen to keep TensorFlow's default.
  env = {cpu_allocator.ENV: "false", "TF_ENABLE_ONEDNN_OPTS": "0"}
  assert _probe(**env)[0] == "default"
