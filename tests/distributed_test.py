"""Distribution: replicas and workers agree (child processes, under timeouts)."""

import json
import os
import socket
import subprocess
import sys

import tensorflow as tf

from tests import fixtures

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=_ROOT)


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


class ReplicasTest(tf.test.TestCase):

  def test_two_replicas_match_one_on_the_same_global_batch(self):
    result = subprocess.run([sys.executable, os.path.join(_ROOT, "tests", "replicas_script.py")],
                            cwd=_ROOT, env=_ENV, capture_output=True, text=True, timeout=300)
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    report = json.loads(result.stdout)
    for name, numbers in report.items():
      with self.subTest(name):
        self.assertAllClose(numbers["loss_1"], numbers["loss_2"], rtol=1e-6)
        self.assertGreater(numbers["max_gradient"], 1e-3)  # Not a vacuous check.
        self.assertLess(numbers["max_gradient_difference"],
                        1e-5 * max(1.0, numbers["max_gradient"]))


class MultiWorkerTest(tf.test.TestCase):

  def test_two_workers_on_localhost_end_with_identical_weights(self):
    root = self.create_tempdir().full_path
    records = fixtures.build_synthetic(os.path.join(root, "synthetic"), sizes=(32, 8, 0))
    model_dir = os.path.join(root, "run")
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    processes = []
    try:
      for index in range(2):
        env = dict(_ENV, TF_CONFIG=json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "reseg_tf.train", "--gin_file=gin/quickstart.gin",
             f"--gin_bindings=train.records_dir = '{records}'",
             "--gin_bindings=Schedule.max_steps = 4", "--gin_bindings=Schedule.steps_per_loop = 2",
             "--gin_bindings=Schedule.validate_every_steps = 4",
             f"--model_dir={model_dir}"],
            cwd=_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
      # A worker whose peer never starts blocks forever: bound the wait.
      outputs = [p.communicate(timeout=300)[1] for p in processes]
    finally:
      for p in processes:
        p.kill()
    for p, stderr in zip(processes, outputs):
      self.assertEqual(p.returncode, 0, stderr[-3000:])
    # MultiWorkerMirroredStrategy is a CollectiveAllReduceStrategy.
    self.assertIn("Distribution: CollectiveAllReduceStrategy, 2 replica(s).", outputs[0] + outputs[1])
    chief = fixtures.checkpoint_values(os.path.join(model_dir, "checkpoints", "ckpt-4"))
    worker = fixtures.checkpoint_values(os.path.join(model_dir, "workers", "1", "checkpoints", "ckpt-4"))
    weights = [n for n in chief if n.startswith("model/")]
    self.assertNotEmpty(weights)
    for name in chief:
      self.assertAllEqual(chief[name], worker[name], msg=name)
    with open(os.path.join(model_dir, "train_result.json")) as f:
      self.assertEqual(json.load(f)["step"], 4)


if __name__ == "__main__":
  tf.test.main()
