"""The benchmark scripts still run: their smoke commands, end to end.

Benchmarks live outside the product, so nothing else imports them, and a
refactor can break one silently (benchmarks/tflite.py once patched a
function that had been removed). Each smoke run here checks the script's
JSON, not its timings; those of half a minute or more are `slow`, outside
the CI suite: `python -m pytest tests/benchmarks_test.py -m slow`.
"""

import json

import numpy as np
import pytest
import tensorflow as tf

from reseg_tf.model import compiled_sweep
from tests import fixtures


def test_floor_rates_come_from_the_probes_timed_beside_the_variants():
  flop_floor = fixtures.benchmark_module("flop_floor")
  bench_output = fixtures.benchmark_module("bench_output")
  probes = flop_floor.probe_runners()
  assert set(probes) == {f"floor {d} {k}" for d in ("float32", "bfloat16")
                         for k in ("matmul", "conv")}
  calls = []
  seconds = bench_output.time_round_robin(
      {"variant": calls.append, **probes}, loops=1, steps_per_loop=1)
  assert calls == [1]
  rates, variants = flop_floor.rates_from_seconds(seconds)
  assert variants == {"variant": seconds["variant"]}
  # Four calls per timed step: a 2048^3 matmul, a 3x3 256 -> 256 conv on 90x120.
  for dtype in ("float32", "bfloat16"):
    matmul = 4 * 2 * 2048**3 / seconds[f"floor {dtype} matmul"] / 1e9
    conv = 4 * 2 * 90 * 120 * 9 * 256 * 256 / seconds[f"floor {dtype} conv"] / 1e9
    assert rates[dtype]["matmul"] == pytest.approx(matmul)
    assert rates[dtype]["conv"] == pytest.approx(conv)
    assert rates[dtype]["floor"] == max(matmul, conv)


def test_flops_of_a_network_without_vgg_count_each_layer_on_its_own_grid():
  flop_floor = fixtures.benchmark_module("flop_floor")
  bench_output = fixtures.benchmark_module("bench_output")
  net = bench_output.ours_from_gin("gin/model/horse_no_vgg.gin", (
      "ReSeg.renet_units = (8, 6)", "ReSeg.upsample_filters = (5, 4)"))
  first, second = net.renet_layers  # 2x2 patches each: 8x12 -> 4x6 -> 2x3 cells.

  def matmuls(layer):
    return sum(int(v.shape[0] * v.shape[1]) for v in layer.trainable_variables
               if len(v.shape) == 2)

  up1, up2 = (int(np.prod(flop_floor._kernel(layer).shape)) for layer in net.upsample_layers)
  head = int(np.prod(flop_floor._kernel(net.classifier).shape))
  expected = (2 * 24 * matmuls(first) + 2 * 6 * matmuls(second)
              + 2 * 6 * up1 + 2 * 24 * up2 + 2 * 96 * head)
  assert flop_floor.trainable_flops(net, 8, 12) == expected
  assert flop_floor.forward_flops(net, 8, 12) == expected  # No VGG term.
  assert flop_floor.step_flops(net, 8, 12, batch=2) == 2 * 3 * expected


@pytest.mark.slow  # ~30 s: a benchmark, outside the product.
def test_torch_inference_benchmark_takes_each_case_floor_from_its_rounds(tmp_path):
  pytest.importorskip("torch", reason="the PyTorch peer is optional (pip install torch)")
  output = tmp_path / "torch_inference.json"
  result = fixtures.run_script(
      "benchmarks/torch_inference.py", "--height=48", "--width=64", "--repeats=1",
      "--warmup=0", "--batch=2", f"--output={output}", timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  out = json.loads(output.read_text())
  for case, batch in (("batch 1", 1), ("batch 2", 2)):
    rates = out["floor_gflops"][case]
    for name, fraction in out["fraction_of_floor"][case].items():
      dtype = "bfloat16" if "bf16" in name else "float32"
      seconds = out["seconds_per_call"][case][name]
      expected = batch * out["gflop_per_image"] / seconds / rates[dtype]["floor"]
      assert fraction == pytest.approx(expected)


def test_projection_matmuls_benchmark_rates_each_product_against_its_floor(tmp_path):
  output = tmp_path / "projection_matmuls.json"
  result = fixtures.run_script("benchmarks/projection_matmuls.py", "--height=6", "--width=8",
                               "--batch=1", "--units=4", "--inputs=3,8", "--loops=1",
                               "--steps_per_loop=1", f"--output={output}")
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(output.read_text())
  rows = {r["name"]: r for r in report["rows"]}
  assert set(rows) == {f"K={k} {p}" for k in (3, 8) for p in ("forward", "dX", "dW")}
  floor = report["floor"]["float32"]["floor"]
  for name, row in rows.items():
    k = int(name.split()[0][2:])
    # 2 * [48, K] x [K, 12] FLOPs in the seconds measured, and that rate
    # over the floor of the same rounds.
    assert row["gflops"] == pytest.approx(2 * 48 * k * 12 / row["seconds"] / 1e9)
    assert row["floor_fraction"] == pytest.approx(row["gflops"] / floor)


@pytest.mark.slow  # ~45 s: a benchmark, outside the product.
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
    assert row["io_floor_us"] > 0 and row["inference_forward_us"] > 0
  # The state I/O a step moves is the op's map-sized tensors, divided by the steps:
  # checked against the tensors the op takes and returns at the same shape.
  ops = compiled_sweep.load()
  shape = dict(batch=1, height=6, width=8, units=8)  # sweep_kernel.QUICK.
  units = shape["units"]
  for row in rows:
    dtype = tf.bfloat16 if row["dtype"] == "bfloat16" else tf.float32
    gx = tf.zeros([shape["batch"], shape["height"], shape["width"], 3 * units], dtype)
    w_h, b = tf.zeros([1, units, 3 * units]), tf.zeros([1, 3 * units])
    attrs = dict(axis=row["axis"], reverse=[False], bf16=dtype == tf.bfloat16)
    hs, saved, _ = ops.reseg_gru_sweep(gx, w_h, b, **attrs)
    dhs = tf.zeros_like(hs)
    dgx = ops.reseg_gru_sweep_grad(dhs, hs, saved, w_h, T=dtype, **attrs)[0]
    nbytes = lambda t: t.shape.num_elements() * t.dtype.size  # noqa: E731
    # hs is written forward and read back (as h_prev) backward; saved likewise.
    moved = nbytes(gx) + 2 * nbytes(hs) + 2 * nbytes(saved) + nbytes(dhs) + nbytes(dgx)
    assert row["state_io_bytes"] * row["steps"] == moved


@pytest.mark.slow  # ~35 s: a benchmark, outside the product.
def test_cpu_allocator_benchmark_pairs_a_child_of_each_allocator(tmp_path):
  output = tmp_path / "cpu_allocator.json"
  result = fixtures.run_script("benchmarks/cpu_allocator.py", "--quick",
                               f"--output={output}", timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  out = json.loads(output.read_text())
  (default,), (bfc,) = out["runs"]["default"], out["runs"]["BFC"]
  assert out["default_over_bfc"] == [
      pytest.approx(default["seconds_per_step"] / bfc["seconds_per_step"])]
  # Only the BFC child reuses its memory: the default one faults in pages
  # for its tensors on every step.
  assert default["minor_faults_per_step"] > bfc["minor_faults_per_step"]


@pytest.mark.slow  # ~30 s: a benchmark, outside the product.
def test_step_profile_benchmark_sums_op_times_by_type(tmp_path):
  output = tmp_path / "step_profile.json"
  result = fixtures.run_script("benchmarks/step_profile.py", "--height=48", "--width=64",
                               "--steps=1", "--dtypes=bfloat16", f"--output={output}",
                               timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  profile = json.loads(output.read_text())["bfloat16"]
  ops = profile["op_seconds_per_step"]
  # The step's convolutions, projections and (where it loads) the compiled sweep
  # ran: as oneDNN ops (_MklNativeFusedConv2D, _MklMatMul), or as TensorFlow's
  # own where oneDNN has no bf16 kernels (a CPU without AVX-512).
  assert sum(t for op, t in ops.items() if op.endswith("Conv2D")) > 0
  assert sum(t for op, t in ops.items() if op.endswith("MatMul")) > 0
  if compiled_sweep.available():
    assert ops["ResegGruSweep"] > 0 and ops["ResegGruSweepGrad"] > 0
  assert abs(sum(ops.values()) - profile["op_seconds_total"]) < 1e-9
  busy = profile["busy_seconds_per_step"]
  assert set(busy) == set(ops)
  assert all(0 < busy[op] <= ops[op] + 1e-9 for op in ops if ops[op] > 0)
  assert sum(busy.values()) <= profile["step_seconds"] * 1.5  # One step, few overlaps.


def test_busy_seconds_is_the_length_of_the_intervals_union():
  bench_output = fixtures.benchmark_module("bench_output")
  # [0, 3) and [1, 2) overlap; [2.5, 4) extends the first; [5, 6) is apart.
  assert bench_output.busy_seconds([(1, 2), (0, 3), (5, 6), (2.5, 4)]) == 5
  assert bench_output.busy_seconds([]) == 0
  assert bench_output.busy_seconds([(0, 1), (1, 2)]) == 2


def test_ensemble_benchmark_runs_and_scores_each_member_as_evaluate_does(tmp_path):
  import shutil

  import tensorflow as tf

  from reseg_tf import configurables
  from reseg_tf.evaluation import evaluator

  records, run, _ = fixtures.train_tiny_run(str(tmp_path))
  # A second member: the same run four steps earlier (its ckpt-4 as latest).
  earlier = str(tmp_path / "earlier")
  shutil.copytree(run, earlier)
  checkpoints = f"{earlier}/checkpoints"
  tf.compat.v1.train.update_checkpoint_state(checkpoints, f"{checkpoints}/ckpt-4")
  output = tmp_path / "ensemble.json"
  result = fixtures.run_script("benchmarks/ensemble.py", f"--models={run},{earlier}",
                               f"--records_dir={records}", "--split=val",
                               f"--output={output}")
  assert result.returncode == 0, result.stderr[-3000:]
  out = json.loads(output.read_text())
  assert set(out["groups"]) == {"run", "earlier", "run+earlier"}
  assert out["members"]["earlier"].endswith("ckpt-4")
  for name, path in (("run", run), ("earlier", earlier)):
    alone = evaluator.evaluate(configurables.load_run(path, "latest").model, records, "val",
                               batch_size=5, log=lambda _: None)
    assert out["groups"][name]["per_class_iou"] == pytest.approx(alone["per_class_iou"])
    assert out["groups"][name]["global_accuracy"] == pytest.approx(alone["global_accuracy"])


def test_ensemble_groups_are_scored_on_their_members_averaged_probabilities():
  ensemble = fixtures.benchmark_module("ensemble")
  # One batch of one 1x4 image, 2 classes; the last pixel is void (255).
  batches = [{"label": np.array([[[0, 1, 1, 255]]]), "mask": np.array([True])}]
  confident = [np.array([[[[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [1, 0]]]], np.float16)]
  unsure = [np.array([[[[0.4, 0.6], [0.1, 0.9], [0.45, 0.55], [0, 1]]]], np.float16)]
  # Alone, `confident` gets pixels 0 and 2 right (IoU: class 0 1/2, class 1
  # 1/2), `unsure` pixels 1 and 2 (class 0 0/1, class 1 2/3). Averaged:
  # (0.65, 0.35), (0.35, 0.65), (0.325, 0.675): all three right.
  def iou(members):
    return ensemble.group_scores(members, batches, 2, ["a", "b"])["per_class_iou"]
  assert iou([confident]) == pytest.approx([0.5, 0.5])
  assert iou([unsure]) == pytest.approx([0.0, 2 / 3])
  assert iou([confident, unsure]) == pytest.approx([1.0, 1.0])
