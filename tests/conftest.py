"""Shared pytest set-up."""

import os

# Quiet TensorFlow's C++ start-up banners in test logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # pylint: disable=g-import-not-at-top


def pytest_configure(config):
  del config
  # absltest's TestCase (and so tf.test.TestCase) reads flags such as
  # --test_tmpdir; under pytest nobody parses them, so use their defaults.
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
