"""Optional dependencies: imported when present, the pip command when absent."""

import json
import unittest

from reseg_tf.common import extras
from reseg_tf.common.errors import InputError


class RequireTest(unittest.TestCase):

  def test_an_installed_module_is_returned(self):
    self.assertIs(extras.require("json", "none", "reading JSON"), json)

  def test_a_missing_module_names_the_feature_and_the_extra(self):
    with self.assertRaises(InputError) as raised:
      extras.require("reseg_tf_no_such_module", "video", "reading and writing video")
    self.assertEqual(str(raised.exception), 'reading and writing video: needs the video '
                     'extra: pip install -e ".[video]"')


if __name__ == "__main__":
  unittest.main()
