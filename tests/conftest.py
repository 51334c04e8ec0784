"""Shared pytest set-up."""

import os
import tempfile

# Quiet TensorFlow's C++ start-up banners in test logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# reseg-tf's cache folder (the compiled sweep's build, the trainer's XLA
# choice): a fresh one per test session, never the user's. pytest-xdist's
# workers inherit it from the process that starts them, so the sweep is
# built once per session, not once per worker (~20 s of compiling each).
_SESSION_CACHE = "RESEG_TF_TEST_SESSION_CACHE"
if _SESSION_CACHE not in os.environ:
  os.environ[_SESSION_CACHE] = tempfile.mkdtemp(prefix="reseg_tf_cache_")
os.environ["RESEG_TF_CACHE_DIR"] = os.environ[_SESSION_CACHE]

from absl import flags  # noqa: E402  # pylint: disable=g-import-not-at-top


def pytest_configure(config):
  del config
  # absltest's TestCase (and so tf.test.TestCase) reads flags such as
  # --test_tmpdir; under pytest nobody parses them, so use their defaults.
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
