"""Writing a benchmark's results (next to the scripts, so `import` finds it)."""

import json
import os


def write_json(path: str, results: dict) -> None:
  """Writes `results` as JSON to `path` (folders created) and says where."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    json.dump(results, f, indent=1, default=list)
  print(f"Wrote {path}")
