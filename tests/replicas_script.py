"""Child process of distributed_test: one vs two replicas on the same batch.

Splits the CPU into two logical devices (only possible before TensorFlow
starts, hence a separate process), runs one SGD step (learning rate 1, so the
weight change is minus the gradient) under a 1-replica and a 2-replica
MirroredStrategy, and prints the largest differences as JSON.
"""

import json
import sys

import keras
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from reseg_tf.model import reseg as model  # noqa: E402  (after the devices are set)
from reseg_tf.training import train_step  # noqa: E402

TINY = dict(num_classes=3, void_as_class=False, use_vgg=False, renet_units=(4, 4),
            renet_patch_sizes=((2, 2), (1, 1)), upsample_filters=(5,),
            upsample_size=(2, 2))


def one_step(devices, batch, initial, options, jit_compile):
  strategy = tf.distribute.MirroredStrategy(devices)
  with strategy.scope():
    net = model.ReSeg(**TINY)
    optimizer = keras.optimizers.SGD(learning_rate=1.0)
    optimizer.build(net.trainable_variables)
  for variable, value in zip(net.trainable_variables, initial):
    variable.assign(value)
  loop = train_step.make_train_loop(strategy, net, optimizer, options, jit_compile)
  dataset = strategy.experimental_distribute_dataset(
      tf.data.Dataset.from_tensors(batch).repeat())
  loss = float(loop(iter(dataset), tf.constant(1)))
  gradients = [value - v.numpy() for v, value in zip(net.trainable_variables, initial)]
  return loss, gradients


def main():
  rng = np.random.default_rng(0)
  batch = {"image": rng.integers(0, 256, (4, 12, 16, 3)).astype(np.uint8),
           "label": rng.choice([0, 1, 2, 255], (4, 12, 16)).astype(np.uint8),
           "mask": np.ones(4, bool)}
  initial = [v.numpy() for v in model.ReSeg(**TINY).trainable_variables]
  report = {}
  # The plain step in XLA (the GPU's form), the other one outside it: the
  # options' all-reduces happen outside the compiled part either way, and
  # each XLA compilation costs this test about 20 seconds.
  for name, options, jit_compile in (
      ("plain", train_step.LossOptions(global_batch_size=4), True),
      ("decay_weights_clip", train_step.LossOptions(
          global_batch_size=4, weight_decay=1e-2, clip_norm=0.5,
          class_weights=np.array([0.5, 2.0, 1.0], np.float32)), False)):
    loss1, grads1 = one_step(["/cpu:0"], batch, initial, options, jit_compile)
    loss2, grads2 = one_step(["/cpu:0", "/cpu:1"], batch, initial, options, jit_compile)
    scale = max(float(np.abs(g).max()) for g in grads1)
    report[name] = {
        "loss_1": loss1, "loss_2": loss2,
        "max_gradient_difference": max(float(np.abs(a - b).max())
                                       for a, b in zip(grads1, grads2)),
        "max_gradient": scale}
  json.dump(report, sys.stdout)


if __name__ == "__main__":
  main()
