"""ReSeg written the way a PyTorch user would, and our weights copied into it.

The PyTorch peer of `reseg_tf.model.reseg.ReSeg` for `torch_peer.py` (the
timing script) and `tests/torch_peer_test.py`. It has no absl flags, so a
test process that also imports the reseg_tf binaries can import it.

The network (CamVid configuration, gin/model/camvid.gin):

    images [B, H, W, 3] RGB 0..255 (the same batches as our train step)
      -> caffe preprocessing (RGB -> BGR, minus the ImageNet mean), NCHW,
         zero padding to a multiple of the stride
      -> VGG-16 conv1_1 .. conv3_3 (nn.Conv2d + ReLU, nn.MaxPool2d), frozen
      -> ReNet layers: per layer two sweeps of nn.GRU over the rows, then the
         columns (`horizontal_first`), in our code's `stacked` bidirectional
         mode: a forward nn.GRU, and a backward nn.GRU that reads the forward
         one's states in reverse order (`independent`, the paper's mode, is
         one nn.GRU(bidirectional=True))
      -> nn.ConvTranspose2d (stride = kernel) + ReLU, twice; 1x1 nn.Conv2d
      -> crop to H x W: logits [B, K, H, W] (NCHW, as F.cross_entropy wants)

The GRU. Ours (reseg_tf/model/cells.py; gates fused as (r, u, c)):

    r  = sigmoid(x w_xr + h w_hr + b_r)
    u  = sigmoid(x w_xu + h w_hu + b_u)
    c  = tanh(x w_xc + r * (h w_hc) + b_c)
    h' = (1 - u) * h + u * c

torch.nn.GRU (weights stacked as (r, z, n) along their first axis):

    r  = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z  = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n  = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h

Both apply the reset gate after the recurrent matmul, so the maths is the
same with z = 1 - u = sigmoid(-(x w_xu + h w_hu + b_u)):

    weight_ih_l0 [3U, C] = concat([w_xr, -w_xu, w_xc], axis=1).T
    weight_hh_l0 [3U, U] = concat([w_hr, -w_hu, w_hc], axis=1).T
    bias_ih_l0   [3U]    = concat([b_r, -b_u, b_c])
    bias_hh_l0   [3U]    = 0, frozen (requires_grad False)

Ours has one bias per gate; torch has two. For r and z the second is
redundant (only b_i + b_h enters), but b_hn sits inside the reset product,
r * (W_hn h + b_hn), which ours does not have: with b_hn = 0 the forward
maths is ours. Left trainable, torch's b_hh would receive gradients and the
models would part after the first step (a different model class for b_hn,
and Adadelta moving the r and z biases twice as fast), so the peer freezes
every `bias_hh` at zero: the trainable parameters are then ours, one for one.

This is exact in real arithmetic; in floating point it differs only by
rounding (sigmoid(-a) against 1 - sigmoid(a), the order of the blend, the
matmul kernels). The copy is therefore exact, and the forward passes agree
to float32 rounding (`compare_forward`).

Other weights: VGG kernels [3, 3, C_in, C_out] -> [C_out, C_in, 3, 3];
transposed convolutions [fh, fw, F, C] -> nn.ConvTranspose2d's
[C, F, fh, fw] (no flip: with stride = kernel each input pixel writes the
block `w[:, :, f, c]`, as ours); the 1x1 classifier [C, K] -> [K, C, 1, 1].

Loss (`pixel_cross_entropy`): as our train step, summed over each image's
pixels and averaged over the images; void (255) is trained as the extra
class K when the model has one (`void_as_class`, the CamVid config) and
ignored otherwise.

Not supported (ValueError): `input_scale` != 1 (tf.image.resize's
antialiased bilinear and torch's interpolate differ) and LSTM cores.
"""

from typing import Callable, Dict, Optional, Sequence

import numpy as np
import tensorflow as tf
import torch
import torch.nn.functional as F
from torch import nn

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
VOID_LABEL = 255
NO_VGG_INPUT_SCALE = 1.0 / 255.0
# VGG-16 conv1_1 .. conv3_3: output channels, "M" a 2x2 max-pool.
VGG_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256)


def vgg_front_end() -> nn.Sequential:
  """VGG-16 conv1_1 .. conv3_3 with ReLUs and both max-pools (stride 4)."""
  layers, channels = [], 3
  for spec in VGG_LAYERS:
    if spec == "M":
      layers.append(nn.MaxPool2d(2))  # Floors odd sizes, as Keras' 'valid'.
    else:
      layers += [nn.Conv2d(channels, spec, 3, padding=1), nn.ReLU(inplace=True)]
      channels = spec
  return nn.Sequential(*layers)


class BidirectionalGRU(nn.Module):
  """A bidirectional GRU over axis 1 of `[N, T, C]`, in one of our two modes.

  `stacked` (our code, the CamVid default): a forward nn.GRU, then a
  backward nn.GRU reading the forward states in reverse time order.
  `independent` (the paper): one nn.GRU(bidirectional=True).
  The output is `concat(forward, backward)`, both in input order: `[N, T, 2U]`.
  torch's recurrent biases `bias_hh` are zero and frozen (see the module
  docstring), so the trainable parameters are ours, one for one.
  """

  def __init__(self, input_size: int, units: int, stacked: bool = True):
    super().__init__()
    self.stacked = stacked
    if stacked:
      self.forward_rnn = nn.GRU(input_size, units, batch_first=True)
      self.backward_rnn = nn.GRU(units, units, batch_first=True)
    else:
      self.rnn = nn.GRU(input_size, units, batch_first=True, bidirectional=True)
    for name, parameter in self.named_parameters():
      if "bias_hh" in name:  # Ours has no b_hn: kept at zero, not trained.
        nn.init.zeros_(parameter)
        parameter.requires_grad_(False)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    if not self.stacked:
      return self.rnn(x)[0]
    h_fw, _ = self.forward_rnn(x)
    h_bw, _ = self.backward_rnn(h_fw.flip(1))
    return torch.cat([h_fw, h_bw.flip(1)], dim=-1)


class ReNetLayer(nn.Module):
  """Patches, then a bidirectional GRU along each spatial axis. NHWC in/out."""

  def __init__(self, input_channels: int, units: int,
               patch_size: Sequence[int] = (1, 1),
               sweep_order: str = "horizontal_first", stacked: bool = True):
    super().__init__()
    self.patch_size = tuple(patch_size)
    self.horizontal_first = sweep_order == "horizontal_first"
    ph, pw = self.patch_size
    self.first_sweep = BidirectionalGRU(ph * pw * input_channels, units, stacked)
    self.second_sweep = BidirectionalGRU(2 * units, units, stacked)

  def _patches(self, x):
    ph, pw = self.patch_size
    if (ph, pw) == (1, 1):
      return x
    b, h, w, c = x.shape
    x = F.pad(x, (0, 0, 0, -w % pw, 0, -h % ph))
    hp, wp = x.shape[1] // ph, x.shape[2] // pw
    x = x.reshape(b, hp, ph, wp, pw, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, hp, wp, ph * pw * c)  # Patch flattened as (ph, pw, C).

  @staticmethod
  def _along_rows(rnn, x):  # Recur over W, the rows folded into the batch.
    b, h, w, c = x.shape
    return rnn(x.reshape(b * h, w, c)).reshape(b, h, w, -1)

  @staticmethod
  def _along_columns(rnn, x):  # Recur over H, the columns folded into the batch.
    b, h, w, c = x.shape
    y = rnn(x.transpose(1, 2).reshape(b * w, h, c))
    return y.reshape(b, w, h, -1).transpose(1, 2)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = self._patches(x)
    if self.horizontal_first:
      return self._along_columns(self.second_sweep,
                                 self._along_rows(self.first_sweep, x))
    return self._along_rows(self.second_sweep,
                            self._along_columns(self.first_sweep, x))


class ReSeg(nn.Module):
  """ReSeg: [B, H, W, 3] RGB 0..255 -> logits [B, K, H, W]."""

  def __init__(self, num_outputs: int, use_vgg: bool = True,
               vgg_trainable: bool = False,
               renet_units: Sequence[int] = (100, 100),
               renet_patch_sizes: Sequence[Sequence[int]] = ((1, 1), (1, 1)),
               sweep_order: str = "horizontal_first", stacked: bool = True,
               upsample_filters: Sequence[int] = (50, 50),
               upsample_size: Sequence[int] = (2, 2)):
    super().__init__()
    self.vgg = vgg_front_end() if use_vgg else None
    if self.vgg is not None:
      self.vgg.requires_grad_(vgg_trainable)
    sh = (4 if use_vgg else 1) * int(np.prod([p[0] for p in renet_patch_sizes]))
    sw = (4 if use_vgg else 1) * int(np.prod([p[1] for p in renet_patch_sizes]))
    self.stride = (sh, sw)
    self.register_buffer("mean_bgr", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1),
                         persistent=False)
    channels = 256 if use_vgg else 3
    self.renet = nn.Sequential()
    for units, patch in zip(renet_units, renet_patch_sizes):
      self.renet.append(ReNetLayer(channels, units, patch, sweep_order, stacked))
      channels = 2 * units
    head = []
    for filters in upsample_filters:
      head += [nn.ConvTranspose2d(channels, filters, tuple(upsample_size),
                                  stride=tuple(upsample_size)),
               nn.ReLU(inplace=True)]
      channels = filters
    head.append(nn.Conv2d(channels, num_outputs, 1))
    self.head = nn.Sequential(*head)

  def features(self, images: torch.Tensor) -> torch.Tensor:
    """[B, H, W, 3] RGB 0..255 -> NCHW VGG features (or scaled pixels)."""
    x = images.permute(0, 3, 1, 2).float().flip(1) - self.mean_bgr  # BGR - mean.
    h, w = x.shape[2:]
    x = F.pad(x, (0, -w % self.stride[1], 0, -h % self.stride[0]))
    return x * NO_VGG_INPUT_SCALE if self.vgg is None else self.vgg(x)

  def forward(self, images: torch.Tensor) -> torch.Tensor:
    h, w = images.shape[1:3]
    x = self.features(images).permute(0, 2, 3, 1)  # NHWC for the sweeps.
    x = self.renet(x).permute(0, 3, 1, 2)  # [B, 2U, H', W']
    return self.head(x)[:, :, :h, :w]


def pixel_cross_entropy(logits: torch.Tensor, labels: torch.Tensor,
                        void_class: Optional[int]) -> torch.Tensor:
  """Summed over each image's pixels, averaged over images (our train step).

  Void pixels (255) become `void_class` when set, else they are ignored.
  """
  labels = labels.long()
  if void_class is not None:
    labels = torch.where(labels == VOID_LABEL, void_class, labels)
  loss = F.cross_entropy(logits.float(), labels, ignore_index=VOID_LABEL,
                         reduction="sum")
  return loss / logits.shape[0]


def adadelta(model: nn.Module) -> torch.optim.Adadelta:
  """The paper's Adadelta (gin/camvid.gin): lr 1.0, rho 0.95, eps 1e-6."""
  return torch.optim.Adadelta([p for p in model.parameters() if p.requires_grad],
                              lr=1.0, rho=0.95, eps=1e-6)


def build(ours) -> ReSeg:
  """The torch peer of our `reseg_tf.model.reseg.ReSeg` (architecture only)."""
  if ours.input_scale != 1.0:
    raise ValueError("input_scale != 1 is not reproduced in torch.")
  layers = ours.renet_layers
  if any(layer.first_sweep.core != "gru" for layer in layers):
    raise ValueError("only GRU cores have a torch peer here.")
  up = ours.upsample_layers
  return ReSeg(
      num_outputs=ours.num_outputs, use_vgg=ours.vgg is not None,
      vgg_trainable=bool(ours.vgg is not None and ours.vgg.trainable_variables),
      renet_units=[layer.units for layer in layers],
      renet_patch_sizes=[layer.patch_size for layer in layers],
      sweep_order=layers[0].sweep_order,
      stacked=layers[0].first_sweep.backward_reads_forward,
      upsample_filters=[layer.filters for layer in up],
      upsample_size=up[0].size if up else (1, 1))


def gru_parameters(w_x: np.ndarray, w_h: np.ndarray, b: np.ndarray):
  """Our `(w_x [C, 3U], w_h [U, 3U], b [3U])`, gates (r, u, c) -> torch's
  `(weight_ih [3U, C], weight_hh [3U, U], bias_ih [3U], bias_hh [3U])`,
  gates (r, z, n), with z = 1 - u (see the module docstring)."""
  sign = np.repeat(np.array([1.0, -1.0, 1.0], np.float32), w_h.shape[0])
  return ((w_x * sign).T, (w_h * sign).T, b * sign, np.zeros_like(b))


def _gru_state(prefix: str, core, value, suffix: str = "") -> Dict[str, np.ndarray]:
  names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
  values = gru_parameters(*(value(v) for v in core.weights))
  return {f"{prefix}.{n}{suffix}": v for n, v in zip(names, values)}


def state_from_ours(ours, value: Optional[Callable] = None) -> Dict[str, torch.Tensor]:
  """The `state_dict` of `build(ours)` holding our model's current weights.

  `value(variable) -> np.ndarray` (default: the variable's value) may give
  another array of the variable's shape, e.g. its gradient: the mapping is
  linear, so gradients map as the weights do (frozen `bias_hh` get zeros).
  """
  value = value or (lambda v: v.numpy())
  state = {}
  if ours.vgg is not None:
    index, convs = 0, iter(ours.vgg.convs)  # Sequential: conv, ReLU, ..., pool.
    for spec in VGG_LAYERS:
      if spec != "M":
        conv = next(convs)
        state[f"vgg.{index}.weight"] = value(conv.w).transpose(3, 2, 0, 1)
        state[f"vgg.{index}.bias"] = value(conv.b)
      index += 1 if spec == "M" else 2
  for i, layer in enumerate(ours.renet_layers):
    for name in ("first_sweep", "second_sweep"):
      sweep = getattr(layer, name)
      prefix = f"renet.{i}.{name}"
      if sweep.backward_reads_forward:
        state.update(_gru_state(f"{prefix}.forward_rnn", sweep.forward, value))
        state.update(_gru_state(f"{prefix}.backward_rnn", sweep.backward, value))
      else:
        state.update(_gru_state(f"{prefix}.rnn", sweep.forward, value))
        state.update(_gru_state(f"{prefix}.rnn", sweep.backward, value, "_reverse"))
  for i, layer in enumerate(ours.upsample_layers):  # Conv, ReLU pairs.
    state[f"head.{2 * i}.weight"] = value(layer.w).transpose(3, 2, 0, 1)
    state[f"head.{2 * i}.bias"] = value(layer.b)
  last = 2 * len(ours.upsample_layers)
  state[f"head.{last}.weight"] = value(ours.classifier.w).T[:, :, None, None]
  state[f"head.{last}.bias"] = value(ours.classifier.b)
  return {k: torch.from_numpy(np.ascontiguousarray(v, np.float32))
          for k, v in state.items()}


def copy_weights(ours, theirs: ReSeg) -> None:
  """Loads our model's weights into `theirs` (every parameter, strictly)."""
  theirs.load_state_dict(state_from_ours(ours), strict=True)


def build_from(ours) -> ReSeg:
  """`build(ours)` holding our weights."""
  theirs = build(ours)
  copy_weights(ours, theirs)
  return theirs


def parameter_differences(ours, theirs: ReSeg) -> Dict[str, float]:
  """Max abs difference of every parameter of `theirs` from ours, mapped."""
  mine = state_from_ours(ours)
  return {k: float((v.detach() - mine[k]).abs().max())
          for k, v in theirs.state_dict().items()}


def _agreement(a: np.ndarray, b: np.ndarray) -> dict:
  if a.shape != b.shape:
    raise AssertionError(f"shapes differ: ours {a.shape}, torch {b.shape}")
  scale = float(np.abs(a).max())
  difference = float(np.abs(a - b).max())
  return {"shape": list(a.shape), "max_abs_difference": difference,
          "max_abs_value": scale, "relative_difference": difference / max(scale, 1e-30)}


def compare_forward(ours, theirs: ReSeg, images: np.ndarray) -> dict:
  """Both forward passes on `images` ([B, H, W, 3] uint8 RGB).

  Returns the max abs difference of the logits, their max abs value (the
  scale) and the ratio of the two, and the fraction of pixels whose argmax
  class is the same.
  """
  a = np.asarray(ours(images))  # [B, H, W, K]
  theirs.eval()
  with torch.no_grad():
    b = theirs(torch.from_numpy(images)).permute(0, 2, 3, 1).numpy()
  result = _agreement(a, b)
  result["argmax_agreement"] = float(np.mean(a.argmax(-1) == b.argmax(-1)))
  return result


def compare_renet(ours, theirs: ReSeg, features: np.ndarray) -> dict:
  """Both ReNet stacks on `features` ([B, h, w, C] float32, NHWC).

  Random-weight logits can be small (the GRUs of a random network damp
  their input); feeding the ReNet stack N(0, 1) features checks the
  recurrences where their gates are neither saturated nor constant.
  """
  x = tf.constant(features)
  for layer in ours.renet_layers:
    x = layer(x)
  with torch.no_grad():
    b = theirs.renet(torch.from_numpy(features)).numpy()
  return _agreement(np.asarray(x), b)
