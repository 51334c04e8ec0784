"""The PyTorch peer of benchmarks/torch_peer.py computes what our model does.

`benchmarks/torch_reseg.py` builds ReSeg from nn.Conv2d / nn.GRU /
nn.ConvTranspose2d and copies our weights into it; with the same weights
both must give the same logits and the same gradients. Skipped without
torch (`pip install torch==2.13.0`).
"""

import os

import numpy as np
import pytest
import tensorflow as tf

import gin
from reseg_tf import configurables
from reseg_tf.training import losses
from tests import fixtures

torch = pytest.importorskip("torch")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ("ReSeg.vgg_weights = 'random'", "ReSeg.renet_units = (8, 6)",
        "ReSeg.upsample_filters = (5, 4)")
# gin file -> what it exercises.
CONFIGS = {
    "camvid.gin": "stacked, horizontal first, void as a class",
    "camvid_paper.gin": "independent, vertical first",
    "horse_no_vgg.gin": "no VGG, 2x2 patches",
}

torch_reseg = fixtures.benchmark_module("torch_reseg")


def _ours(name):
  gin.clear_config()
  try:
    gin.parse_config_files_and_bindings(
        [os.path.join(ROOT, "gin", "model", name)], list(TINY))
    tf.random.set_seed(0)
    return configurables.ReSeg()
  finally:
    gin.clear_config()


def _images(seed=0, shape=(2, 24, 32)):
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, (*shape, 3)).astype(np.uint8)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_copied_weights_give_the_same_logits(name):
  ours = _ours(name)
  theirs = torch_reseg.build_from(ours)
  logits = torch_reseg.compare_forward(ours, theirs, _images())
  assert logits["max_abs_difference"] <= 1e-4 * logits["max_abs_value"]
  assert logits["argmax_agreement"] >= 0.999
  features = np.asarray(ours.features(_images()))
  normal = np.random.default_rng(1).standard_normal(features.shape).astype(np.float32)
  renet = torch_reseg.compare_renet(ours, theirs, normal)
  assert renet["max_abs_difference"] <= 1e-5 * renet["max_abs_value"]


def test_the_update_gate_must_be_negated():
  # Guards the test above: torch's z is our 1 - u; copying u as z is wrong,
  # and must be caught by a wide margin.
  ours = _ours("camvid.gin")
  theirs = torch_reseg.build(ours)
  state = torch_reseg.state_from_ours(ours)
  for key, value in state.items():
    if "_ih_" in key or "weight_hh" in key:
      units = value.shape[0] // 3
      value[units:2 * units] *= -1  # Back to our u.
  theirs.load_state_dict(state)
  features = np.asarray(ours.features(_images()))
  normal = np.random.default_rng(1).standard_normal(features.shape).astype(np.float32)
  renet = torch_reseg.compare_renet(ours, theirs, normal)
  assert renet["max_abs_difference"] >= 1e-2 * renet["max_abs_value"]


def test_same_trainable_parameters_and_gradients():
  ours = _ours("camvid.gin")
  theirs = torch_reseg.build_from(ours)
  count = sum(int(np.prod(v.shape)) for v in ours.trainable_variables)
  assert count == sum(p.numel() for p in theirs.parameters() if p.requires_grad)

  images = _images(2)
  labels = np.random.default_rng(3).integers(0, 11, images.shape[:3]).astype(np.uint8)
  labels[:, :4] = 255  # Void: trained as class 11 (ReSeg.void_as_class).
  with tf.GradientTape() as tape:
    per_image, _ = losses.pixel_cross_entropy(ours(images), labels,
                                              void_class=ours.num_classes)
    loss = tf.reduce_sum(per_image) / images.shape[0]
  gradients = dict(zip((v.ref() for v in ours.trainable_variables),
                       tape.gradient(loss, ours.trainable_variables)))
  expected = torch_reseg.state_from_ours(
      ours, lambda v: gradients[v.ref()].numpy() if v.ref() in gradients
      else np.zeros(v.shape, np.float32))

  theirs_loss = torch_reseg.pixel_cross_entropy(
      theirs(torch.from_numpy(images)), torch.from_numpy(labels), ours.num_classes)
  theirs_loss.backward()
  np.testing.assert_allclose(theirs_loss.item(), float(loss), rtol=1e-5)
  for key, parameter in theirs.named_parameters():
    if parameter.requires_grad:
      scale = float(expected[key].abs().max())
      difference = float((parameter.grad - expected[key]).abs().max())
      assert difference <= 1e-4 * scale + 1e-7, (key, difference, scale)
