"""VGG-16 weight files: which layers, and the h5/npz layouts they come in.

Weight sources (`VGGFrontEnd(weights=...)`, the choice is logged):
  * a path to an `.h5` file. Three layouts are read:
      - the legacy Keras file `vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5`
        (Keras 1 names: `block1_conv1/block1_conv1_W_1:0`, `..._b_1:0`) and
        any legacy-format Keras 2 / Keras 3 `.h5` (`block1_conv1/block1_conv1/
        kernel:0`, `.../kernel`, possibly under `model_weights/`); a layer is
        a group named after it whose datasets are listed in its
        `weight_names` attribute;
      - the Keras 3 `.weights.h5` layout (`layers/<id>/vars/0`, `vars/1`, the
        layer name in the `name` attribute of `vars`).
    In every layout the kernel is the 4-D array and the bias the 1-D one.
  * a path to an `.npz` file with keys `block1_conv1/kernel`,
    `block1_conv1/bias`, ... (see `convert_h5_to_npz`);
  * `'imagenet'`: the Keras download cache
    (`$KERAS_HOME/models/` or `~/.keras/models/`); never downloads;
  * `'auto'`: the Keras cache when the file is there, random otherwise;
  * `'random'` (or `None`): He-normal kernels (conv1_1's divided by the
    pixels' standard deviation) and zero biases.
"""

import math
import os
from typing import Dict, Optional, Sequence, Tuple

import h5py
import numpy as np
import tensorflow as tf

KERAS_FILE_NAME = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"

# (layer name, input channels, output channels); None is a 2x2 max-pool.
ARCHITECTURE = (
    ("block1_conv1", 3, 64),
    ("block1_conv2", 64, 64),
    None,
    ("block2_conv1", 64, 128),
    ("block2_conv2", 128, 128),
    None,
    ("block3_conv1", 128, 256),
    ("block3_conv2", 256, 256),
    ("block3_conv3", 256, 256),
)
LAYER_NAMES = tuple(spec[0] for spec in ARCHITECTURE if spec is not None)
_SHAPES = {
    n: ((3, 3, c_in, c_out), (c_out,))
    for n, c_in, c_out in (s for s in ARCHITECTURE if s is not None)
}

Weights = Dict[str, Tuple[np.ndarray, np.ndarray]]  # name -> (kernel, bias)


def keras_cache_path() -> str:
  """Where Keras keeps a downloaded `KERAS_FILE_NAME` (it may be absent)."""
  base = os.environ.get("KERAS_HOME") or os.path.join(
      os.path.expanduser("~"), ".keras")
  return os.path.join(base, "models", KERAS_FILE_NAME)


def _h5_attr_list(node, key):
  """A list-of-strings attribute, also when Keras split it into chunks."""
  if key in node.attrs:
    raw = list(node.attrs[key])
  else:
    raw, i = [], 0
    while f"{key}{i}" in node.attrs:
      raw.extend(node.attrs[f"{key}{i}"])
      i += 1
  return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in raw]


def _h5_datasets(group):
  """Every dataset below `group`, in `weight_names` order when listed."""
  names = _h5_attr_list(group, "weight_names")
  if names:
    return [np.asarray(group[n]) for n in names if n in group]
  found = []
  group.visititems(lambda _, o: found.append(np.asarray(o))
                   if isinstance(o, h5py.Dataset) else None)
  return found


def _read_h5(path: str) -> Dict[str, list]:
  """Layer name -> list of arrays, for the layers of `LAYER_NAMES` found."""
  out = {}
  with h5py.File(path, "r") as f:
    layers = f.get("layers")
    if isinstance(layers, h5py.Group) and any(
        "vars" in g for g in layers.values() if isinstance(g, h5py.Group)):
      # Keras 3 `.weights.h5`: layers/<auto id>/vars/{0,1}, name in attrs.
      for g in layers.values():
        v = g.get("vars") if isinstance(g, h5py.Group) else None
        if v is None:
          continue
        name = v.attrs.get("name", "")
        name = name.decode("utf8") if isinstance(name, bytes) else str(name)
        if name in _SHAPES:
          out[name] = [np.asarray(v[k]) for k in sorted(v, key=str)]
    else:
      # Legacy Keras: one group per layer name (under `model_weights/` in a
      # whole-model file).
      root = f["model_weights"] if "model_weights" in f else f
      for name in LAYER_NAMES:
        if isinstance(root.get(name), h5py.Group):
          out[name] = _h5_datasets(root[name])
  return out


def _read_npz(path: str) -> Dict[str, list]:
  """Layer name -> [kernel, bias] (or the one found), from an `.npz`."""
  out = {}
  with np.load(path, allow_pickle=False) as f:
    for name in LAYER_NAMES:
      arrays = [f[k] for k in (f"{name}/kernel", f"{name}/bias") if k in f]
      if arrays:
        out[name] = arrays
  return out


def load_weights(path: str) -> Weights:
  """Reads and checks the conv1_1 .. conv3_3 weights of a file.

  Args:
    path: an `.npz` file (keys `<layer>/kernel`, `<layer>/bias`), or else an
      HDF5 file in one of the Keras layouts of the module docstring.

  Returns:
    Layer name -> `(kernel [3, 3, C_in, C_out], bias [C_out])`, float32.

  Raises:
    FileNotFoundError: `path` does not exist.
    ValueError: a layer is missing, lacks a kernel or a bias, or has the
      wrong shape; the message names the file and the layer.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"VGG-16 weights file not found: {path}")
  try:
    raw = _read_npz(path) if path.endswith(".npz") else _read_h5(path)
  except (OSError, ValueError) as e:  # Not an HDF5 / npz file at all.
    raise ValueError(
        f'VGG-16 weights file {path}: cannot be read as '
        f'{"npz" if path.endswith(".npz") else "HDF5"} ({e}).') from e
  weights = {}
  for name in LAYER_NAMES:
    if name not in raw:
      raise ValueError(
          f'VGG-16 weights file {path}: layer {name!r} not found '
          f'(found: {sorted(raw) or "no VGG layer"}).')
    k_shape, b_shape = _SHAPES[name]
    kernels = [a for a in raw[name] if a.ndim == 4]
    biases = [a for a in raw[name] if a.ndim == 1]
    if len(kernels) != 1 or len(biases) != 1:
      raise ValueError(
          f"VGG-16 weights file {path}: layer {name!r} should hold one 4-D "
          f"kernel and one 1-D bias, found shapes "
          f"{[a.shape for a in raw[name]]}.")
    kernel, bias = kernels[0], biases[0]
    if kernel.shape != k_shape or bias.shape != b_shape:
      raise ValueError(
          f"VGG-16 weights file {path}: layer {name!r} has kernel "
          f"{kernel.shape} and bias {bias.shape}, expected {k_shape} and "
          f"{b_shape}.")
    weights[name] = (kernel.astype(np.float32), bias.astype(np.float32))
  return weights


def save_npz(weights: Weights, path: str) -> None:
  """Writes `weights` (as from `load_weights`) as an `.npz` file."""
  arrays = {}
  for name, (kernel, bias) in weights.items():
    arrays[f"{name}/kernel"] = kernel
    arrays[f"{name}/bias"] = bias
  with open(path, "wb") as f:  # A file object: numpy keeps the name as is.
    np.savez(f, **arrays)


def convert_h5_to_npz(h5_path: str, npz_path: str) -> None:
  """Converts a Keras VGG-16 `.h5` to this module's `.npz` (block1..3 only).

  Example:
    convert_h5_to_npz(keras_cache_path(), '/data/vgg16_block1-3.npz')
  """
  save_npz(load_weights(h5_path), npz_path)


# Standard deviation of ImageNet pixels on the 0..255 scale (57-59 by channel).
PIXEL_STD = 58.0


def he_normal_stddev(kernel_shape: Sequence[int]) -> float:
  """He et al. 2015: the standard deviation of normal `[kh, kw, C_in, C_out]`
  kernel weights that keeps the scale of the inputs through a ReLU."""
  kh, kw, c_in = kernel_shape[:3]
  return math.sqrt(2.0 / (kh * kw * c_in))


def random_weights(seed: Optional[int] = None) -> Weights:
  """He-normal kernels (VGG's ReLU stack keeps its scale) and zero biases.

  He-normal keeps the scale of unit-variance inputs, but VGG reads
  caffe-preprocessed pixels (standard deviation about 58): conv1_1's kernels
  are divided by that, so that the features a trainable VGG starts from are
  of order 1, not of order 60, which would saturate the GRU gates after it.

  Without a seed, the seed is drawn from TensorFlow's random state, so
  `tf.random.set_seed` (the trainer's `seed`) makes it repeatable, as it
  does every other initial value of the model.
  """
  if seed is None:
    seed = int(tf.random.uniform([], 0, 2**62, dtype=tf.int64))
  rng = np.random.default_rng(seed)
  weights = {}
  for name, (k_shape, b_shape) in _SHAPES.items():
    kernel = rng.normal(0.0, he_normal_stddev(k_shape), k_shape)
    if name == LAYER_NAMES[0]:
      kernel /= PIXEL_STD
    weights[name] = (kernel.astype(np.float32), np.zeros(b_shape, np.float32))
  return weights


def resolve_weights(weights: Optional[str],
                    seed: Optional[int] = None) -> Tuple[Weights, str]:
  """Turns a `VGGFrontEnd(weights=...)` value into arrays and a description.

  Args:
    weights: `'auto'`, `'imagenet'`, `'random'`, `None` or a file path (see
      the module docstring).
    seed: seed of the random initialisation.

  Returns:
    `(weights, source)`, `source` a human-readable origin for the logs.

  Raises:
    FileNotFoundError: `'imagenet'` without the Keras cache file, or a path
      that does not exist.
    ValueError: a mismatched file (see `load_weights`).
  """
  if weights in (None, "random"):
    return random_weights(seed), "random initialisation (He normal)"
  if weights in ("auto", "imagenet"):
    path = keras_cache_path()
    if os.path.isfile(path):
      return load_weights(path), f"Keras cache {path}"
    if weights == "imagenet":
      raise FileNotFoundError(
          f"VGG-16 ImageNet weights not found in the Keras cache: {path}. "
          "Copy the file there or pass its path (this code never downloads).")
    return random_weights(seed), (
        f"random initialisation (He normal): no Keras cache file {path}")
  return load_weights(weights), f"file {weights}"
