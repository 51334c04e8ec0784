"""The demo page in a real browser: headless Chromium driven by Selenium.

Starts `python -m reseg_tf.demo` (the default model), uploads an image
through the page, and checks that the overlay the page shows is, pixel for
pixel, the overlay of `reseg_tf.load_model(...).segment(...)`; that bad
uploads get a message on the page and the server goes on serving; and takes
a screenshot of the page (docs/demo.png with RESEG_TF_UPDATE_DOCS=1).

Needs Debian's chromium and chromium-driver (`apt-get install -y chromium
chromium-driver`), Selenium and the demo extra; skipped otherwise. Never
downloads a browser. See docs/demo.md.
"""

import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

import numpy as np
import pytest
from PIL import Image

from tests import fixtures

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
try:
  import gradio  # noqa: F401
  from selenium import webdriver
  from selenium.webdriver.chrome.service import Service
  from selenium.webdriver.common.by import By
  from selenium.webdriver.support import expected_conditions
  from selenium.webdriver.support.ui import WebDriverWait
  MISSING = None
except ImportError as e:
  MISSING = f"needs the demo extra and selenium ({e})"
if not MISSING and not (CHROMIUM and CHROMEDRIVER):
  MISSING = "needs chromium and chromedriver: apt-get install -y chromium chromium-driver"
if not MISSING and os.environ.get("CI"):
  # A minute of start-up and page time; CI calls the backend (tests/demo_test.py).
  MISSING = "runs outside CI (docs/demo.md)"

EXAMPLE = os.path.join(fixtures.ROOT, "reseg_tf", "demo_examples", "camvid_0016E5_08085.jpg")
MODEL = "camvid_no_vgg_cycle4"  # The page's default.
SCREENSHOT = os.path.join(fixtures.ROOT, "docs", "demo.png")
_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
          "--disable-component-update", "--no-first-run", "--window-size=1280,1400")


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.browser
@unittest.skipIf(MISSING, MISSING)
class DemoBrowserTest(unittest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = tempfile.mkdtemp(prefix="demo_browser_")
    cls.url = f"http://127.0.0.1:{free_port()}/"
    port = cls.url.rsplit(":", 1)[1].strip("/")
    cls.log = open(os.path.join(cls.root, "demo.log"), "w+")
    cls.server = subprocess.Popen(
        [sys.executable, "-m", "reseg_tf.demo", f"--port={port}", "--max_upload_mb=1"],
        cwd=fixtures.ROOT, stdout=cls.log, stderr=subprocess.STDOUT,
        env=dict(os.environ, PYTHONPATH=fixtures.ROOT))
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in _FLAGS + (f"--user-data-dir={os.path.join(cls.root, 'profile')}",):
      options.add_argument(flag)
    cls.browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    deadline = time.monotonic() + 240
    while "Running on local URL" not in cls.server_log():
      if cls.server.poll() is not None or time.monotonic() > deadline:
        raise RuntimeError(f"the demo did not start:\n{cls.server_log()}")
      time.sleep(0.5)

  @classmethod
  def tearDownClass(cls):
    cls.browser.quit()
    cls.server.send_signal(signal.SIGTERM)
    cls.server.wait(timeout=30)
    cls.log.close()
    shutil.rmtree(cls.root, ignore_errors=True)
    super().tearDownClass()

  @classmethod
  def server_log(cls) -> str:
    cls.log.flush()
    with open(cls.log.name) as f:
      return f.read()

  def open_page(self):
    self.browser.get(self.url)
    return WebDriverWait(self.browser, 60).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#upload input")))

  def upload(self, path: str):
    self.open_page().send_keys(path)

  def wait_for(self, condition, seconds: float = 120):
    return WebDriverWait(self.browser, seconds, poll_frequency=0.25).until(
        lambda _: condition())

  def shown(self, elem_id: str) -> np.ndarray:
    """The picture the page shows in the output `elem_id`, as served."""
    src = self.browser.find_element(By.CSS_SELECTOR, f"#{elem_id} img").get_attribute("src")
    with urllib.request.urlopen(src, timeout=30) as response:
      return np.asarray(Image.open(io.BytesIO(response.read())).convert("RGB"))

  def toast(self) -> str:
    found = self.browser.find_elements(By.CSS_SELECTOR, ".toast-message-text")
    return " ".join(t.text for t in found)

  def summary(self) -> str:
    return self.browser.find_element(By.ID, "summary").text

  def test_the_overlay_shown_is_the_one_segment_gives(self):
    import reseg_tf  # noqa: PLC0415 (loads TensorFlow)
    self.upload(EXAMPLE)
    self.wait_for(lambda: "segmented" in self.summary())
    self.assertRegex(self.summary(), rf"^{MODEL} segmented 480x360 pixels in \d+ ms\.$")
    expected = reseg_tf.load_model(MODEL).segment(EXAMPLE)
    np.testing.assert_array_equal(self.shown("overlay"), expected.overlay())
    np.testing.assert_array_equal(self.shown("classes"), expected.color())
    np.testing.assert_array_equal(self.shown("input"), expected.image)
    legend = self.browser.find_element(By.ID, "legend").text
    road = 100 * np.mean(expected.classes == expected.class_names.index("Road"))
    self.assertIn(f"Road {road:.1f}%", legend)
    screenshot = (SCREENSHOT if os.environ.get("RESEG_TF_UPDATE_DOCS")
                  else os.path.join(self.root, "demo.png"))
    self.browser.save_screenshot(screenshot)
    # A palette of 256 colours keeps the README's picture small.
    Image.open(screenshot).convert("RGB").quantize(256).save(screenshot, optimize=True)

  def test_bad_uploads_get_a_message_and_the_server_goes_on(self):
    cases = {"notes.jpg": (b"a text file\n", "notes.jpg: not an image this page can read"),
             "empty.png": (b"", "empty.png: the file is empty"),
             "noise.png": (None, r'exceed the maximum allowed size of 1\.0 Mb: "noise\.png"')}
    noise = np.random.default_rng(0).integers(0, 256, (800, 800, 3), np.uint8)
    for name, (content, message) in cases.items():
      path = os.path.join(self.root, name)
      if content is None:
        Image.fromarray(noise).save(path)  # About 1.9 MB, over --max_upload_mb=1.
      else:
        with open(path, "wb") as f:
          f.write(content)
      self.upload(path)
      self.wait_for(lambda: self.toast(), 60)  # noqa: B023
      self.assertRegex(self.toast(), message, name)
    self.upload(EXAMPLE)
    self.wait_for(lambda: "segmented" in self.summary())
    self.assertIsNone(self.server.poll(), self.server_log())
    self.assertNotRegex(self.server_log(), re.compile("Traceback"))


if __name__ == "__main__":
  unittest.main()
