"""The manual: MkDocs builds it without a warning, and the code blocks of
README.md and docs/*.md run as written.

Python blocks run in a fresh interpreter whose working folder is a temporary
one holding `photo.jpg` (a horse from docs/horse_test.png), each page's
blocks in order in one namespace, as a reader would paste them. A block that
cannot run in CI is preceded by `<!-- skip: <reason> -->`; a shell block
runs only when preceded by `<!-- run -->` (keep those cheap).
"""

import dataclasses
import glob
import importlib.util
import json
import os
import re
import subprocess
import sys
from typing import List, Optional

import tensorflow as tf
from PIL import Image

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_ENV = dict(os.environ, PYTHONPATH=_ROOT, TF_CPP_MIN_LOG_LEVEL="2")

_FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
_SKIP = re.compile(r"^\s*<!--\s*skip:(.*?)-->\s*$")
_SKIP_WITHOUT_REASON = re.compile(r"^\s*<!--\s*skip\s*-->\s*$")
_RUN = re.compile(r"^\s*<!--\s*run\s*-->\s*$")
_PYTHON = ("python", "py")
_SHELL = ("sh", "bash", "console", "shell")

# Each page's Python blocks in one namespace; a traceback names the page and
# its line (the code is padded to the line it starts on).
_DRIVER = """
import json, sys, traceback
with open(sys.argv[1]) as f:
  pages = json.load(f)
for page, blocks in pages.items():
  namespace = {"__name__": "__main__"}
  for line, code in blocks:
    try:
      exec(compile("\\n" * (line - 1) + code, page, "exec"), namespace)
    except BaseException:
      traceback.print_exc()
      print(f"FAILED {page}:{line}", file=sys.stderr)
      sys.exit(1)
    print(json.dumps([page, line]), flush=True)
"""


@dataclasses.dataclass
class Block:
  page: str  # Relative to the repository.
  line: int  # Of the block's first code line, 1-based.
  language: str
  code: str
  skip: Optional[str]  # The reason, if the block is marked to skip.
  run: bool  # A shell block marked to run.


def pages() -> List[str]:
  return ["README.md"] + sorted(
      os.path.relpath(p, _ROOT) for p in glob.glob(os.path.join(_ROOT, "docs", "*.md")))


def code_blocks(page: str) -> List[Block]:
  """The fenced code blocks of a page, with the marker before each."""
  with open(os.path.join(_ROOT, page)) as f:
    lines = f.read().split("\n")
  blocks, i = [], 0
  while i < len(lines):
    opening = _FENCE.match(lines[i])
    if not opening:
      i += 1
      continue
    indent, language = opening.group(1), opening.group(2)
    end = i + 1
    while not re.match(rf"^{indent}```\s*$", lines[end]):
      end += 1
    code = "\n".join(line[len(indent):] for line in lines[i + 1:end]) + "\n"
    before = next((line for line in reversed(lines[:i]) if line.strip()), "")
    if _SKIP_WITHOUT_REASON.match(before):
      raise ValueError(f"{page}:{i + 1}: a skip marker needs a reason: "
                       "<!-- skip: <reason> -->")
    skip = _SKIP.match(before)
    reason = skip.group(1).strip() if skip else None
    if skip and not reason:
      raise ValueError(f"{page}:{i + 1}: a skip marker needs a reason")
    blocks.append(Block(page, i + 2, language, code, reason, bool(_RUN.match(before))))
    i = end + 1
  return blocks


def _write_photo(folder: str) -> None:
  """`photo.jpg`, the first horse of docs/horse_test.png (its input column)."""
  sheet = Image.open(os.path.join(_ROOT, "docs", "horse_test.png")).convert("RGB")
  sheet.crop((0, 16, 200, 172)).save(os.path.join(folder, "photo.jpg"), quality=95)


class MkDocsTest(tf.test.TestCase):

  def test_the_manual_builds_strictly(self):
    if importlib.util.find_spec("mkdocs") is None:
      self.skipTest('mkdocs is not installed: pip install -e ".[docs]"')
    site = self.create_tempdir().full_path
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", site],
        cwd=_ROOT, env=dict(_ENV, NO_MKDOCS_2_WARNING="1"), capture_output=True,
        text=True, timeout=300)
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    # Every page of the nav was written, the API reference with its docstrings.
    for page in pages()[1:]:
      name = os.path.splitext(os.path.basename(page))[0]
      html = "index.html" if name == "index" else os.path.join(name, "index.html")
      self.assertTrue(os.path.exists(os.path.join(site, html)), html)
    with open(os.path.join(site, "api", "index.html")) as f:
      api = f.read()
    for documented in ("from_renet_layer", "name_or_path", "pixel_shares"):
      self.assertIn(documented, api)


class CodeBlocksTest(tf.test.TestCase):

  def test_markers_are_parsed(self):
    folder = self.create_tempdir()
    page = os.path.relpath(os.path.join(folder.full_path, "page.md"), _ROOT)
    folder.create_file("page.md", "\n".join([
        "<!-- skip: needs the CamVid release -->", "```python", "x = 1", "```", "",
        "<!-- run -->", "", "```sh", "echo hi", "```", "- a list:", "",
        "    ```python", "    y = 2", "    ```", ""]))
    blocks = code_blocks(page)
    self.assertEqual([(b.line, b.language, b.code, b.skip, b.run) for b in blocks], [
        (3, "python", "x = 1\n", "needs the CamVid release", False),
        (9, "sh", "echo hi\n", None, True),
        (14, "python", "y = 2\n", None, False)])
    folder.create_file("page.md", "<!-- skip -->\n```python\nx = 1\n```\n")
    with self.assertRaisesRegex(ValueError, "needs a reason"):
      code_blocks(page)

  def test_the_code_blocks_run_as_written(self):
    blocks = [b for page in pages() for b in code_blocks(page)]
    python = [b for b in blocks if b.language in _PYTHON]
    runnable = [b for b in python if b.skip is None]
    shell = [b for b in blocks if b.language in _SHELL and b.run and b.skip is None]
    skipped = [b for b in python if b.skip is not None]
    folder = self.create_tempdir().full_path
    _write_photo(folder)

    pages_blocks = {}
    for b in runnable:
      pages_blocks.setdefault(b.page, []).append((b.line, b.code))
    with open(os.path.join(folder, "blocks.json"), "w") as f:
      json.dump(pages_blocks, f)
    result = subprocess.run([sys.executable, "-c", _DRIVER, "blocks.json"], cwd=folder,
                            env=_ENV, capture_output=True, text=True, timeout=300)
    self.assertEqual(result.returncode, 0, result.stderr[-4000:])
    ran = [tuple(json.loads(line)) for line in result.stdout.splitlines()
           if line.startswith('["')]
    self.assertEqual(ran, [(b.page, b.line) for b in runnable])

    for b in shell:
      process = subprocess.run(["bash", "-euo", "pipefail", "-c", b.code], cwd=folder,
                               env=_ENV, capture_output=True, text=True, timeout=120)
      self.assertEqual(process.returncode, 0,
                       f"{b.page}:{b.line}\n{process.stderr[-3000:]}")

    # What ran and what did not, in the test's output (`pytest -rA` shows it).
    print(f"ran {len(runnable)} Python and {len(shell)} shell blocks; skipped "
          f"{len(skipped)}: " + "; ".join(f"{b.page}:{b.line} ({b.skip})" for b in skipped))
    # The Keras page's three examples at least: a test that ran nothing
    # would pass whatever the pages say.
    self.assertGreaterEqual(len(runnable), 3)


if __name__ == "__main__":
  tf.test.main()
