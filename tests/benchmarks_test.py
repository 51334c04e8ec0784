"""The benchmark scripts still run: their smoke commands, end to end.

Benchmarks live outside the product, so nothing else imports them, and a
refactor can break one silently (benchmarks/tflite.py once patched a
function that had been removed). Each smoke run here is seconds long and
checks the script's JSON, not its timings.
"""

import json

import pytest

from reseg_tf.model import compiled_sweep
from tests import fixtures


def test_tflite_benchmark_converts_both_sweep_forms(tmp_path):
  output = tmp_path / "tflite.json"
  result = fixtures.run_script(
      "benchmarks/tflite.py", "--repeats=1", "--warmup=0", "--threads=1", "--height=48",
      "--width=64", "--images=2", f"--output={output}", timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  cases = json.loads(output.read_text())["cases"]
  assert set(cases) == {
      "SavedModel (TF runtime, tf.scan)", ".tflite float32, unrolled, 1 thread",
      ".tflite dynamic_range, unrolled, 1 thread", ".tflite float32, scan, 1 thread"}
  # Both float32 forms compute the SavedModel's classes; the scan form is a
  # different graph (WHILE loops and their buffers), hence a different file.
  unrolled = cases[".tflite float32, unrolled, 1 thread"]
  scan = cases[".tflite float32, scan, 1 thread"]
  assert unrolled["class_agreement_with_saved_model"] == 1.0
  assert scan["class_agreement_with_saved_model"] == 1.0
  assert scan["bytes"] != unrolled["bytes"]
  assert all(case["median_latency_s"] > 0 for case in cases.values())


def test_sweep_kernel_benchmark_reports_every_phase(tmp_path):
  if not compiled_sweep.available():
    pytest.skip("the compiled sweep did not build or load here")
  output = tmp_path / "sweep_kernel.json"
  result = fixtures.run_script("benchmarks/sweep_kernel.py", "--quick", "--nofused",
                               f"--output={output}", timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  rows = json.loads(output.read_text())["rows"]
  assert {(r["axis"], r["dtype"]) for r in rows} == {
      (a, d) for a in (1, 2) for d in ("float32", "bfloat16")}
  for row in rows:
    # The op's own phase timers ran, and the phases fit inside the wall times.
    assert row["forward_gemm_us"] > 0 and row["backward_gates_io_us"] > 0
    assert row["dw_h_us"] > 0 and "fused_xla_us" not in row
    assert row["floor_us"] <= row["total_us"] * 2  # Per thread against wall: at most 2 threads.


@pytest.mark.slow  # ~30 s: a benchmark, outside the product.
def test_step_profile_benchmark_sums_op_times_by_type(tmp_path):
  output = tmp_path / "step_profile.json"
  result = fixtures.run_script("benchmarks/step_profile.py", "--height=48", "--width=64",
                               "--steps=1", "--dtypes=bfloat16", f"--output={output}",
                               timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  profile = json.loads(output.read_text())["bfloat16"]
  ops = profile["op_seconds_per_step"]
  # The step's convolutions, projections and (where it loads) the compiled sweep ran.
  assert ops["_MklNativeFusedConv2D"] > 0 and ops["_MklMatMul"] > 0
  if compiled_sweep.available():
    assert ops["ResegGruSweep"] > 0 and ops["ResegGruSweepGrad"] > 0
  assert abs(sum(ops.values()) - profile["op_seconds_total"]) < 1e-9
