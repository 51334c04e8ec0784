"""The compiled sweep (kernels/gru_sweep.cc) against the `tf.scan` reference:
outputs and every gradient over mode x axis x odd sizes, finite differences,
bfloat16, the op's own checks, and the fallback when it cannot load."""

import itertools
import json
import os
import subprocess
from concurrent import futures
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized

from reseg_tf.model import cells, compiled_sweep, lowering, renet, sweep
from reseg_tf.serving import segmenter as segmenter_lib
from tests import fixtures

_NEEDS_OP = "the compiled sweep did not build or load here (see the log)"
# [B, H, W]: one step, one line, a line count that is not a multiple of the
# two threads, and odd sizes everywhere.
_SIZES = ((1, 1, 1), (1, 1, 4), (1, 4, 1), (3, 1, 5), (2, 3, 5), (3, 5, 7))


def _random_weights(rng, channels, units, stacked, dtype=np.float32):
  g = 3 * units
  shapes = ([channels, g], [units, g], [g], [units if stacked else channels, g], [units, g], [g])
  return [tf.constant(rng.normal(0.0, 0.5, s).astype(dtype)) for s in shapes]


def _loss(out):
  """A fixed non-linear read of every output, so that every gradient differs."""
  return tf.reduce_sum(tf.sin(out) * tf.cos(tf.range(out.shape[-1], dtype=out.dtype)))


def _sweep_and_gradients(x, axis, weights, stacked, form, compute_dtype=None):
  recurrence = lowering.recurrence(form, "gru", x)
  with tf.GradientTape() as tape:
    tape.watch([x, *weights])
    out = sweep.bidirectional(x, axis, weights[:3], weights[3:], "gru", stacked, recurrence,
                              compute_dtype)
    loss = _loss(out)
  return out, tape.gradient(loss, [x, *weights])


class CompiledSweepTest(tf.test.TestCase, parameterized.TestCase):

  def setUp(self):
    super().setUp()
    if not compiled_sweep.available():
      self.skipTest(_NEEDS_OP)

  @parameterized.product(stacked=(True, False), axis=(1, 2))
  def test_outputs_and_gradients_match_scan(self, stacked, axis):
    rng = np.random.default_rng(axis + 2 * stacked)
    for size in _SIZES:
      channels, units = 3, 5
      x = tf.constant(rng.normal(size=[*size, channels]).astype(np.float32))
      weights = _random_weights(rng, channels, units, stacked)
      want, want_grads = _sweep_and_gradients(x, axis, weights, stacked, "scan")
      for execution in ("eager", "function"):
        # No autograph: nothing here needs it, and in the full suite its
        # conversion cache once handed back another function of this file.
        fn = (_sweep_and_gradients if execution == "eager"
              else tf.function(_sweep_and_gradients, autograph=False))
        got, got_grads = fn(x, axis, weights, stacked, "compiled")
        msg = f"size {size} {execution}"
        self.assertAllClose(got, want, atol=1e-5, rtol=1e-5, msg=msg)
        names = ["x", "w_x", "w_h", "b", "w_x back", "w_h back", "b back"]
        for name, g_got, g_want in zip(names, got_grads, want_grads):
          self.assertAllClose(g_got, g_want, atol=1e-5, rtol=1e-5, msg=f"{msg} d{name}")

  def test_unknown_sizes_match_scan(self):
    layer = renet.ReNetLayer(3, 4, patch_size=(2, 2))
    x = tf.random.normal([2, 5, 7, 3])
    fn = tf.function(lambda t: layer(t, "compiled"), input_signature=[
        tf.TensorSpec([None, None, None, 3], tf.float32)])
    self.assertAllClose(fn(x), layer(x, "scan"), atol=1e-5)

  def test_gradients_match_finite_differences(self):
    rng = np.random.default_rng(7)
    x = rng.normal(size=[1, 2, 3, 2])
    weights = [w.numpy().astype(np.float64) for w in _random_weights(rng, 2, 3, stacked=False)]
    recurrence = compiled_sweep.recurrence

    def f(x, *weights):  # float32 inside (the op's dtype), float64 outside.
      weights = [tf.cast(w, tf.float32) for w in weights]
      out = sweep.bidirectional(tf.cast(x, tf.float32), 2, weights[:3], weights[3:], "gru",
                                False, recurrence)
      return tf.cast(tf.reduce_sum(tf.sin(out)), tf.float64)

    theoretical, numerical = tf.test.compute_gradient(
        f, [tf.constant(a) for a in [x, *weights]], delta=1e-3)
    for t, n in zip(theoretical, numerical):
      self.assertAllClose(t, n, atol=2e-3, rtol=2e-3)

  @parameterized.parameters(True, False)
  def test_bfloat16_stays_close_to_float32(self, stacked):
    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(size=[2, 6, 9, 16]).astype(np.float32))
    weights = _random_weights(rng, 16, 8, stacked)
    want, want_grads = _sweep_and_gradients(x, 2, weights, stacked, "scan")
    got, got_grads = _sweep_and_gradients(x, 2, weights, stacked, "compiled", tf.bfloat16)
    self.assertEqual(got.dtype, tf.float32)
    self.assertBetween(float(tf.reduce_max(tf.abs(got - want))), 1e-6, 5e-2)  # bf16 is used.
    for g16, g32 in zip(got_grads, want_grads):
      self.assertLess(float(tf.norm(g16 - g32) / tf.norm(g32)), 3e-2)

  @parameterized.parameters(1, 2)
  def test_bfloat16_projections_equal_their_float32_cast(self, axis):
    # bfloat16 gx is read as it is, and dgx rounded to nearest even as
    # TensorFlow's Cast rounds: bit for bit what the op does on float32 with
    # the casts around it (odd sizes: partial vectors, two thread blocks).
    rng = np.random.default_rng(axis)
    units = 5
    gx16 = tf.constant(rng.normal(size=[3, 5, 7, 2 * 3 * units]), tf.bfloat16)
    w_h = tf.constant(rng.normal(0.0, 0.5, [2, units, 3 * units]).astype(np.float32))
    b = tf.constant(rng.normal(size=[2, 3 * units]).astype(np.float32))
    dhs = tf.constant(rng.normal(size=[3, 5, 7, 2 * units]).astype(np.float32))
    results = {}
    for dtype in (tf.bfloat16, tf.float32):
      gx = tf.cast(gx16, dtype)
      with tf.GradientTape() as tape:
        tape.watch(gx)
        hs = compiled_sweep.recurrence("gru", gx, w_h, b, axis, (False, True), tf.bfloat16)
      dgx = tape.gradient(hs, gx, output_gradients=dhs)
      self.assertEqual(dgx.dtype, dtype)
      results[dtype] = hs.numpy(), tf.cast(dgx, tf.bfloat16).numpy()
    self.assertAllEqual(results[tf.bfloat16][0], results[tf.float32][0])
    self.assertAllEqual(results[tf.bfloat16][1], results[tf.float32][1])
    self.assertGreater(np.abs(results[tf.float32][1].astype(np.float32)).max(), 0.1)

  def test_inference_keeps_no_gates_and_tapeless_gradients_still_match_scan(self):
    rng = np.random.default_rng(11)
    x = tf.constant(rng.normal(size=[2, 3, 5, 3]).astype(np.float32))
    weights = _random_weights(rng, 3, 4, stacked=True)
    want, want_grads = _sweep_and_gradients(x, 2, weights, True, "scan")
    kept_steps = []
    ops = compiled_sweep.load()
    real_sweep = ops.reseg_gru_sweep

    def counting_sweep(*args, **kwargs):
      outputs = real_sweep(*args, **kwargs)
      kept_steps.append(outputs[1].shape[0])
      return outputs

    def run(x, *weights):
      recurrence = lowering.recurrence("compiled", "gru", x)
      return sweep.bidirectional(x, 2, weights[:3], weights[3:], "gru", True, recurrence)

    with mock.patch.object(ops, "reseg_gru_sweep", counting_sweep):
      # No tape: the forward ops keep no gates (0 steps), and the output is the same.
      self.assertAllClose(run(x, *weights), want, atol=1e-5, rtol=1e-5)
      self.assertEqual(kept_steps, [0, 0])
      # A gradient without a tape (graph-mode tf.gradients) reruns the
      # forward op keeping the gates, and equals the reference's.
      kept_steps.clear()

      @tf.function(autograph=False)
      def tapeless_gradients(x, *weights):
        return tf.gradients(_loss(run(x, *weights)), [x, *weights])

      got_grads = tapeless_gradients(x, *weights)
      self.assertEqual(sorted(kept_steps), [0, 0, 5, 5])
      # Under a tape (training) the forward ops keep their gates, once.
      kept_steps.clear()
      with tf.GradientTape():
        run(x, *weights)
      self.assertEqual(kept_steps, [5, 5])
      # A function traced with no tape, then called under one, is not
      # traced again: its gradient comes from the rerun as well.
      traced = tf.function(run, autograph=False)
      traced(x, *weights)
      with tf.GradientTape() as tape:
        tape.watch([x, *weights])
        loss = _loss(traced(x, *weights))
      traced_grads = tape.gradient(loss, [x, *weights])
    for grads in (got_grads, traced_grads):
      for g_got, g_want in zip(grads, want_grads):
        self.assertAllClose(g_got, g_want, atol=1e-5, rtol=1e-5)

  def test_op_rejects_inconsistent_inputs(self):
    ops = compiled_sweep.load()
    gx, w_h, b = tf.zeros([1, 2, 3, 6]), tf.zeros([1, 2, 6]), tf.zeros([1, 6])
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "D\\*3U"):
      ops.reseg_gru_sweep(tf.zeros([1, 2, 3, 7]), w_h, b, axis=2, reverse=[False])
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "w_h must be"):
      ops.reseg_gru_sweep(gx, tf.zeros([2, 2, 6]), b, axis=2, reverse=[False])
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "axis"):
      ops.reseg_gru_sweep(gx, w_h, b, axis=3, reverse=[False])

  def test_auto_is_compiled_outside_xla_and_fused_inside(self):
    x = tf.zeros([1, 2, 3, 4])
    self.assertEqual(lowering.sweep_form("auto", "gru", True), "compiled")
    self.assertEqual(lowering.sweep_form("auto", "lstm", True), "scan")
    forms = []
    tf.function(lambda t: forms.append(lowering.sweep_form("auto", "gru", True)) or t,
                jit_compile=True)(x)
    self.assertEqual(forms, ["fused"])

  def test_saved_model_form_holds_builtin_ops_only(self):
    model_ops = {}
    for name, form in (("saved", lowering.SAVED_MODEL), ("in_process", lowering.IN_PROCESS)):
      tf.random.set_seed(0)
      from reseg_tf.model import reseg  # noqa: PLC0415
      model = reseg.ReSeg(num_classes=2, use_vgg=False, renet_units=(3,),
                          renet_patch_sizes=((2, 2),), upsample_filters=(2,))
      segmenter = segmenter_lib.Segmenter(model, ["a", "b"], [[0, 0, 0], [9, 9, 9]],
                                          lowering=form)
      graph = segmenter.serve_images.get_concrete_function().graph.as_graph_def()
      ops = {node.op for node in graph.node}
      for function in graph.library.function:
        ops |= {node.op for node in function.node_def}
      model_ops[name] = ops
    self.assertIn("ResegGruSweep", model_ops["in_process"])  # The check can fail.
    self.assertNotIn("ResegGruSweep", model_ops["saved"])
    self.assertFalse({op for op in model_ops["saved"] if op.startswith("Reseg")})


class FallbackTest(tf.test.TestCase):

  def test_unloadable_op_falls_back_to_the_fused_sweep(self):
    with mock.patch.object(compiled_sweep, "load", return_value=None):
      self.assertFalse(compiled_sweep.available())
      self.assertEqual(lowering.sweep_form("auto", "gru", True), "fused")
      self.assertEqual(lowering.sweep_form("compiled", "gru", True), "fused")
      self.assertEqual(lowering.sweep_form("compiled", "gru", False), "scan")
      layer = renet.ReNetLayer(3, 4)
      x = tf.random.normal([1, 3, 4, 3])
      self.assertAllClose(layer(x, "compiled"), layer(x, "scan"), atol=1e-5)

  def test_disabled_by_environment_says_why(self):
    with mock.patch.dict("os.environ", {compiled_sweep.DISABLE_ENV: "0"}):
      self.assertEqual(compiled_sweep._why_not_buildable(), f"{compiled_sweep.DISABLE_ENV}=0")

  def test_training_runs_when_the_op_cannot_load(self):
    # A fresh process with the op disabled: one log line says why, and the
    # quickstart model trains on the fused sweep.
    root = self.create_tempdir().full_path
    records = fixtures.build_synthetic(os.path.join(root, "synthetic"), sizes=(16, 8, 0))
    process = fixtures.run_module(
        "reseg_tf.train", f"--gin_file={fixtures.QUICKSTART}", "--verbose",
        f"--model_dir={os.path.join(root, 'run')}",
        f"--gin_bindings=train.records_dir = '{records}'",
        "--gin_bindings=Schedule.max_steps = 4", "--gin_bindings=Schedule.steps_per_loop = 2",
        "--gin_bindings=Schedule.validate_every_steps = 4",
        env={compiled_sweep.DISABLE_ENV: "0"})
    self.assertEqual(process.returncode, 0, msg=process.stderr[-3000:])
    log = process.stdout + process.stderr
    self.assertEqual(log.count("The compiled ReNet sweep is not available "
                               f"({compiled_sweep.DISABLE_ENV}=0)"), 1, msg=log[-3000:])
    with open(os.path.join(root, "run", "train_result.json")) as f:
      self.assertEqual(json.load(f)["step"], 4)

  def test_cpu_without_avx2_is_not_built_for(self):
    with mock.patch.object(compiled_sweep.machine, "cpu_flags", return_value={"sse2"}):
      self.assertIn("lacks avx2", compiled_sweep._why_not_buildable())


def test_concurrent_builders_compile_once(tmp_path):
  # A stand-in compiler that counts its runs and takes a second: two
  # processes' first use at once (e.g. two trainings on a fresh machine).
  calls = tmp_path / "calls"
  compiler = tmp_path / "fake-g++"
  compiler.write_text(f'#!/bin/sh\necho run >> {calls}\nsleep 1\necho op > "$3"\n')
  compiler.chmod(0o755)
  path = str(tmp_path / "kernels" / "gru_sweep-test.so")
  with futures.ThreadPoolExecutor(2) as pool:
    for builder in [pool.submit(compiled_sweep.build, str(compiler), path) for _ in range(2)]:
      builder.result()
  assert calls.read_text() == "run\n"
  with open(path) as f:
    assert f.read() == "op\n"
  assert not [name for name in os.listdir(tmp_path / "kernels") if name.endswith(".tmp")]


def test_every_gemm_path_matches_a_float64_reference(tmp_path):
  # kernels/gemm_check.cc: every path this CPU has (AVX-512, AVX2, scalar,
  # AMX, AVX512-BF16, bf16-rounded fp32) over odd sizes, with guard pages
  # after each matrix; it exits nonzero on any failure.
  if compiled_sweep._why_not_buildable():  # noqa: SLF001
    pytest.skip(f"cannot build here: {compiled_sweep._why_not_buildable()}")  # noqa: SLF001
  binary = str(tmp_path / "gemm_check")
  build = subprocess.run(
      [compiled_sweep._compiler(), "-std=c++17", "-O2", *compiled_sweep.ARCH_FLAGS,  # noqa: SLF001
       os.path.join(compiled_sweep.KERNEL_DIR, "gemm_check.cc"), "-o", binary],
      capture_output=True, text=True, timeout=300, check=False)
  assert build.returncode == 0, build.stderr[-2000:]
  run = subprocess.run([binary], capture_output=True, text=True, timeout=300, check=False)
  assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
  assert "all paths passed" in run.stdout
  assert "avx2" in run.stdout and "scalar" in run.stdout


def test_cells_are_the_reference_maths():
  # One GRU step of cells against NumPy in float64: the maths every form shares.
  rng = np.random.default_rng(0)
  h, gx, w_h = rng.normal(size=[4, 3]), rng.normal(size=[4, 9]), rng.normal(size=[3, 9])
  gh = h @ w_h
  sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
  r, u = sig(gx[:, :3] + gh[:, :3]), sig(gx[:, 3:6] + gh[:, 3:6])
  c = np.tanh(gx[:, 6:] + r * gh[:, 6:])
  want = (1 - u) * h + u * c
  got = cells.gru_step(tf.constant(h), tf.constant(gx), tf.constant(w_h)).numpy()
  np.testing.assert_allclose(got, want, atol=1e-12)
  assert list(itertools.chain(cells.GATES["gru"])) == ["r", "u", "c"]


if __name__ == "__main__":
  tf.test.main()
