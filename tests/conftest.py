"""Shared pytest set-up."""

import os
import tempfile

# Quiet TensorFlow's C++ start-up banners in test logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The trainer's cached XLA choice (reseg_tf/training/jit_choice.py): a fresh
# one per test session, never the user's.
os.environ["RESEG_TF_CACHE_DIR"] = tempfile.mkdtemp(prefix="reseg_tf_cache_")

from absl import flags  # pylint: disable=g-import-not-at-top


def pytest_configure(config):
  del config
  # absltest's TestCase (and so tf.test.TestCase) reads flags such as
  # --test_tmpdir; under pytest nobody parses them, so use their defaults.
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
