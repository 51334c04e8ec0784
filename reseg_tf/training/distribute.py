"""Choosing the `tf.distribute` strategy the trainer runs under.

`auto` picks `MultiWorkerMirroredStrategy` when `TF_CONFIG` names more than
one worker (the way to scale past one machine), else `MirroredStrategy` over
the visible GPUs, or the CPU when there are none.
"""

import json
import os

import tensorflow as tf

STRATEGIES = ("auto", "mirrored", "multi_worker")


def num_workers_in_tf_config() -> int:
  """Workers (chief included) named by the TF_CONFIG environment variable."""
  config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
  cluster = config.get("cluster", {})
  return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def make_strategy(kind: str = "auto") -> tf.distribute.Strategy:
  """Builds the strategy; see the module docstring for `auto`."""
  if kind not in STRATEGIES:
    raise ValueError(f"strategy {kind!r} is not one of {STRATEGIES}")
  if kind == "multi_worker" or (kind == "auto" and num_workers_in_tf_config() > 1):
    return tf.distribute.MultiWorkerMirroredStrategy()
  devices = [d.name for d in tf.config.list_logical_devices("GPU")]
  if not devices:
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
  return tf.distribute.MirroredStrategy(devices)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """True on the worker that writes checkpoints, summaries and logs."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  return (resolver.task_type == "chief"
          or (resolver.task_type == "worker" and resolver.task_id == 0
              and "chief" not in resolver.cluster_spec().as_dict()))
