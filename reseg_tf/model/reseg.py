"""ReSeg: VGG front end, ReNet layers and a transposed-convolution head.

Visin et al. 2016 (arXiv:1511.07053v3), sec. 3 and fig. 1:

    image [B, H, W, 3] RGB 0..255
      -> "caffe" preprocessing, optional resize by `input_scale`,
         zero-pad H and W to a multiple of the stride
      -> VGG-16 conv1_1 .. conv3_3 (frozen)        [B, H/4, W/4, 256]
      -> ReNet layers                              [B, H/S, W/S, 2U]
      -> transposed convs (stride = size) + ReLU   [B, H, W, F]
      -> 1x1 convolution                           [B, H, W, K or K + 1]
      -> crop to the (scaled) input size, bilinear resize back to H x W

`S` is the total stride: 4 for VGG (1 without it) times the product of the
ReNet patch sizes; the transposed convolutions must undo exactly `S`.

Void: with `void_as_class=True` the classifier has `num_classes + 1` outputs
and void is trained as a class (the original CamVid code); otherwise it has
`num_classes` outputs and the loss is expected to ignore void pixels.

"ReSeg without VGG" (the paper's Weizmann Horse ablation; its architecture is
not published): the ReNet stack reads the preprocessed image itself, scaled by
1/255 so the values lie in about [-0.5, 0.5] (raw 0..255 values would saturate
GRUs initialised N(0, 0.1)). ReNet patches then do the downsampling, e.g. 2x2
in two layers for a stride of 4, undone by two 2x2 transposed convolutions
(see gin/model/horse_no_vgg.gin). `stem_filters` (ours) puts a few trained
3x3 convolutions between those pixels and the ReNet stack, a small learned
stand-in for the VGG layers whose ImageNet weights such runs cannot load.

`input_scale` != 1 (ours, not the paper's) runs the network on a bilinearly
resized image and resizes the logits back to the input size: losses,
metrics and predictions stay at the input's resolution while the ReNet
sweeps cost `input_scale**2` as much. Below 1 it is how the from-scratch
runs on 2 CPU cores fit their budget (docs/results.json, docs/results.md);
above 1 it gives thin structures (a pole 2-5 pixels wide in CamVid) more
pixels per cell of the stride-4 ReNet grid.

For training, the frozen front end and the trainable part are exposed apart:
`features(images)` (preprocessing, padding and VGG; cacheable) and
`head(features, output_size)` (ReNet, upsampling, classifier, crop; the part
worth compiling with XLA). `__call__` chains them.

Every method takes a `lowering.Lowering`: the same variables and maths built
in the form a use needs (`IN_PROCESS` for training and in-process inference,
`SAVED_MODEL` for TensorFlow Serving, `FIXED_SIZE` for LiteRT and ONNX).
"""

import math
from typing import Optional, Sequence, Tuple, Union

import tensorflow as tf

from reseg_tf.model import lowering as lowering_lib
from reseg_tf.model import renet, shapes
from reseg_tf.model import vgg as vgg_lib
from reseg_tf.model import vgg_weights as vgg_weights_lib

# Without VGG the ReNet stack reads caffe-preprocessed pixels times this.
NO_VGG_INPUT_SCALE = 1.0 / 255.0
# `input_scale` above this is more likely a percentage typed by mistake (50
# for 0.5) than a wish for 16 times the compute.
MAX_INPUT_SCALE = 4.0


def scaled_size(size: int, scale: float):
  """`round(size * scale)`, at least 1; static when `size` is."""
  if scale == 1.0:
    return size
  if isinstance(size, int):
    return max(1, int(round(size * scale)))
  scaled = tf.round(tf.cast(size, tf.float32) * scale)
  return tf.maximum(1, tf.cast(scaled, tf.int32))


def resize_matrix(size: int, new_size: int) -> tf.Tensor:
  """`[new_size, size]` constant: `tf.image.resize`'s antialiased bilinear
  resize of one axis, as a matrix (the resize is separable and linear), for
  graphs that must hold builtin TFLite ops only (`ScaleAndTranslate` is not)."""
  with tf.init_scope():  # Eager even while tracing: values, not ops.
    eye = tf.eye(size)[None, :, None, :]  # [1, size, 1, size]: pixel p in channel p.
    matrix = tf.image.resize(eye, [new_size, 1], method="bilinear", antialias=True)
    matrix = matrix[0, :, 0, :].numpy()
  # Made here, a Const of the traced graph: an eager tensor would be a
  # captured input, which tf2onnx turns into an input of the ONNX model.
  return tf.constant(matrix)


def _glorot_uniform(shape, fan_in, fan_out):
  limit = math.sqrt(6.0 / (fan_in + fan_out))
  return tf.random.uniform(shape, -limit, limit, dtype=tf.float32)


def blocks_to_space(x: tf.Tensor, size: Sequence[int]) -> tf.Tensor:
  """`[B, H, W, (fh, fw, C)]` -> `[B, H * fh, W * fw, C]`: pixel `(h, w)`'s
  channels, read as an `[fh, fw, C]` block, placed at `(h * fh, w * fw)`.

  For square blocks `tf.nn.depth_to_space` does it (faster than a general
  6-D transpose, docs/performance.md, and a builtin of TFLite and ONNX),
  otherwise a reshape and transpose does.
  """
  fh, fw = size
  if fh == fw:
    return tf.nn.depth_to_space(x, fh)
  b, h, w = (shapes.size(x, i) for i in range(3))
  c = x.shape[-1] // (fh * fw)
  x = tf.reshape(x, [b, h, w, fh, fw, c])
  return tf.reshape(tf.transpose(x, [0, 1, 3, 2, 4, 5]), [b, h * fh, w * fw, c])


class TransposedConv(tf.Module):
  """Transposed convolution whose stride equals its filter size, with ReLU.

  Because the stride equals the filter size the output blocks do not
  overlap, so the layer is one matmul per pixel: input pixel `(h, w)` writes
  the `[fh, fw, F]` block at `(h * fh, w * fw)`. This equals
  `tf.nn.conv2d_transpose(x, w, strides=(fh, fw), padding='VALID')` with
  the same `w` (layout `[fh, fw, F, C]`), and compiles well under XLA.

  `pixel_blocks` is the layer on a list of pixels, the form `ReSeg.head`
  chains: the bias and the ReLU act on each output pixel alone, so they are
  applied before the blocks are placed (oneDNN fuses them into the matmul),
  and the placement, a pure rearrangement, is left to the end of the head.
  """

  def __init__(self,
               input_channels: int,
               filters: int,
               size: Sequence[int] = (2, 2),
               relu: bool = True,
               name: Optional[str] = None):
    """Creates the layer.

    Args:
      input_channels: `C`.
      filters: `F`, the output channels.
      size: `(fh, fw)`, filter size and stride.
      relu: apply a ReLU (ReSeg does after every upsampling layer).
      name: module name.
    """
    super().__init__(name=name)
    self.size = tuple(int(s) for s in size)
    self.filters = filters
    self.relu = relu
    fh, fw = self.size
    with self.name_scope:
      self.w = tf.Variable(
          _glorot_uniform([fh, fw, filters, input_channels],
                          fan_in=input_channels * fh * fw,
                          fan_out=filters * fh * fw),
          name="w")  # [fh, fw, F, C], the conv2d_transpose layout.
      self.b = tf.Variable(tf.zeros([filters]), name="b")

  def pixel_blocks(self, pixels: tf.Tensor) -> tf.Tensor:
    """`[N, C]` -> `[N * fh * fw, F]`: each pixel's output block, its rows in
    `(pixel, i, j)` order, in the dtype of `pixels`."""
    fh, fw = self.size
    c = pixels.shape[-1]
    kernel = tf.reshape(tf.transpose(tf.cast(self.w, pixels.dtype), [3, 0, 1, 2]),
                        [c, fh * fw * self.filters])  # [C, (fh, fw, F)]
    bias = tf.tile(tf.cast(self.b, pixels.dtype), [fh * fw])
    y = tf.nn.bias_add(tf.matmul(pixels, kernel), bias)
    if self.relu:
      y = tf.nn.relu(y)
    return tf.reshape(y, [-1, self.filters])

  def __call__(self, x: tf.Tensor) -> tf.Tensor:
    """`[B, H, W, C]` -> `[B, H * fh, W * fw, F]`, in the dtype of `x`."""
    fh, fw = self.size
    b, h, w = (shapes.size(x, i) for i in range(3))
    y = self.pixel_blocks(tf.reshape(x, [-1, x.shape[-1]]))
    return blocks_to_space(tf.reshape(y, [b, h, w, fh * fw * self.filters]), self.size)


class Conv1x1(tf.Module):
  """A 1x1 convolution: a per-pixel affine map of the channels."""

  def __init__(self, input_channels: int, outputs: int,
               name: Optional[str] = None):
    """Creates `w [C, K]` (Glorot uniform) and `b [K]` (zeros)."""
    super().__init__(name=name)
    with self.name_scope:
      self.w = tf.Variable(
          _glorot_uniform([input_channels, outputs], input_channels, outputs),
          name="w")
      self.b = tf.Variable(tf.zeros([outputs]), name="b")

  def __call__(self, x: tf.Tensor) -> tf.Tensor:
    """`[..., C]` -> `[..., K]`, in the dtype of `x`."""
    y = tf.nn.bias_add(tf.matmul(tf.reshape(x, [-1, x.shape[-1]]), tf.cast(self.w, x.dtype)),
                       tf.cast(self.b, x.dtype))
    if x.shape.rank == 2:
      return y
    return tf.reshape(y, tf.concat([tf.shape(x)[:-1], [self.w.shape[-1]]], 0))


class ReSeg(tf.Module):
  """ReSeg semantic segmentation network; returns per-pixel logits.

  Defaults are the code-faithful CamVid model (see gin/model/camvid.gin)
  except `num_classes`, which is required.
  """

  def __init__(self,
               num_classes: int,
               void_as_class: bool = False,
               use_vgg: bool = True,
               vgg_weights: Optional[str] = "auto",
               vgg_trainable: bool = False,
               renet_units: Sequence[int] = (100, 100),
               renet_patch_sizes: Sequence[Sequence[int]] = ((1, 1), (1, 1)),
               renet_core: str = "gru",
               sweep_order: str = "horizontal_first",
               bidirectional_mode: str = "stacked",
               renet_init: str = "normal",
               upsample_filters: Sequence[int] = (50, 50),
               upsample_size: Sequence[int] = (2, 2),
               compute_dtype: Union[str, tf.DType] = tf.float32,
               vgg_compute_dtype: Union[str, tf.DType] = tf.float32,
               input_scale: float = 1.0,
               stem_filters: Sequence[int] = (),
               dropout_rate: float = 0.0,
               name: Optional[str] = "reseg"):
    """Creates every variable.

    Args:
      num_classes: `K`, the real classes (void excluded; 11 for CamVid).
      void_as_class: True adds a `K + 1`-th output for void (original CamVid
        code); False gives `K` outputs and void must be ignored by the loss.
      use_vgg: False builds "ReSeg without VGG": the ReNet stack reads the
        image (see the module docstring).
      vgg_weights: see `vgg.VGGFrontEnd`: `'auto'`, `'imagenet'`,
        `'random'` or a path to an `.h5`/`.npz` file.
      vgg_trainable: fine-tune VGG (paper and code: frozen).
      renet_units: `U` per direction of each ReNet layer (layer output
        `2U` channels).
      renet_patch_sizes: `(ph, pw)` of each ReNet layer.
      renet_core: `'gru'` (paper and code) or `'lstm'`.
      sweep_order: `'horizontal_first'` (code) or `'vertical_first'` (paper).
      bidirectional_mode: `'stacked'` (code: the backward RNN reads the
        forward one's states) or `'independent'` (paper).
      renet_init: `'normal'` (code: N(0, 0.1)) or `'orthogonal'` (paper).
      upsample_filters: filters of each transposed convolution.
      upsample_size: `(fh, fw)` filter size (= stride) of all of them.
      compute_dtype: dtype of ReNet and the upsampling head (variables stay
        float32; logits are float32).
      vgg_compute_dtype: dtype of the VGG convolutions (and of `features`).
      input_scale: run the network on the image resized by this factor
        (0 < scale <= MAX_INPUT_SCALE; 1, the paper, resizes nothing) and
        resize the logits back to the input size.
      stem_filters: without VGG, the filters of 3x3 convolutions with ReLU
        (`vgg.Conv3x3`, He-normal weights, trained) that read the scaled
        pixels before the first ReNet layer: a learned local front end for
        runs that cannot load ImageNet weights (ours, not the paper's).
        Empty (the default): the ReNet stack reads the pixels themselves.
      dropout_rate: in training only (`head(..., training=True)`), zero
        this share of each ReNet layer's outputs and scale the rest by
        `1 / (1 - rate)` (ours, not the paper's: neither the paper nor the
        original code regularise the network). 0, the default: no dropout.
      name: module name.

    Raises:
      ValueError: inconsistent lengths, or upsampling that does not undo the
        total stride exactly.
    """
    super().__init__(name=name)
    if len(renet_units) != len(renet_patch_sizes):
      raise ValueError(
          f"renet_units {tuple(renet_units)} and renet_patch_sizes "
          f"{tuple(renet_patch_sizes)} must have the same length.")
    if use_vgg and stem_filters:
      raise ValueError(
          f"stem_filters {tuple(stem_filters)} is for ReSeg without VGG "
          "(use_vgg=False); the VGG front end already reads the pixels.")
    if not 0.0 < input_scale <= MAX_INPUT_SCALE:
      raise ValueError(f"input_scale must be in (0, {MAX_INPUT_SCALE}], got {input_scale}.")
    if not 0.0 <= dropout_rate < 1.0:
      raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate}.")
    self.dropout_rate = float(dropout_rate)
    self.input_scale = float(input_scale)
    self.num_classes = num_classes
    self.void_as_class = void_as_class
    self.num_outputs = num_classes + (1 if void_as_class else 0)
    self.compute_dtype = tf.as_dtype(compute_dtype)

    front = vgg_lib.STRIDE if use_vgg else 1
    sh = front * math.prod(int(p[0]) for p in renet_patch_sizes)
    sw = front * math.prod(int(p[1]) for p in renet_patch_sizes)
    self.stride = (sh, sw)  # Input sizes are padded to multiples of this.
    fh, fw = (int(s) for s in upsample_size)
    n = len(upsample_filters)
    if (fh**n, fw**n) != self.stride:
      raise ValueError(
          f"{n} transposed convolutions of size {(fh, fw)} upsample by "
          f"{(fh**n, fw**n)}, but front end and ReNet patches downsample by "
          f"{self.stride}.")

    with self.name_scope:
      self.vgg = (vgg_lib.VGGFrontEnd(weights=vgg_weights,
                                      trainable=vgg_trainable,
                                      compute_dtype=vgg_compute_dtype)
                  if use_vgg else None)
      channels = vgg_lib.OUTPUT_CHANNELS if use_vgg else 3
      self.stem = []
      for i, filters in enumerate(stem_filters):
        shape = [3, 3, channels, int(filters)]
        self.stem.append(vgg_lib.Conv3x3(
            tf.random.normal(shape, stddev=vgg_weights_lib.he_normal_stddev(shape)),
            tf.zeros([int(filters)]), trainable=True, name=f"stem{i}"))
        channels = int(filters)
      self.renet_layers = []
      for i, (units, patch) in enumerate(zip(renet_units, renet_patch_sizes)):
        layer = renet.ReNetLayer(
            channels, units, patch_size=tuple(int(p) for p in patch),
            core=renet_core, sweep_order=sweep_order,
            bidirectional_mode=bidirectional_mode, init=renet_init,
            compute_dtype=self.compute_dtype, name=f"renet{i}")
        self.renet_layers.append(layer)
        channels = layer.output_channels
      self.upsample_layers = []
      for i, filters in enumerate(upsample_filters):
        self.upsample_layers.append(
            TransposedConv(channels, filters, (fh, fw), name=f"upsample{i}"))
        channels = filters
      self.classifier = Conv1x1(channels, self.num_outputs, name="classifier")

  def prepare(self, images: tf.Tensor,
              lowering: lowering_lib.Lowering = lowering_lib.IN_PROCESS) -> tf.Tensor:
    """The parameter-free part of `features`: preprocessing, resize, padding.

    Training keeps it outside XLA even when the front end is trainable: the
    antialiased resize (`ScaleAndTranslate`) has no XLA kernel.

    Args:
      images: `[B, H, W, 3]` RGB in 0..255, uint8 or float.

    Returns:
      `[B, H', W', 3]` float32 BGR minus the mean colour; `H'`, `W'` are `H`,
      `W` times `input_scale`, rounded up to multiples of `stride` (zero
      padding at the bottom and right, i.e. the mean colour).
    """
    x = vgg_lib.caffe_preprocess(images)  # [B, H, W, 3] BGR minus mean.
    if self.input_scale != 1.0:
      size = [scaled_size(shapes.size(x, i), self.input_scale) for i in (1, 2)]
      if lowering.resize == "matrix":  # Static sizes only.
        x = tf.einsum("ih,bhwc->biwc", resize_matrix(x.shape[1], size[0]), x)
        x = tf.einsum("jw,biwc->bijc", resize_matrix(x.shape[2], size[1]), x)
      else:
        x = tf.image.resize(x, size, method="bilinear", antialias=True)
    pads = [[0, (-shapes.size(x, i)) % s] for i, s in zip((1, 2), self.stride)]
    return tf.pad(x, [[0, 0]] + pads + [[0, 0]])  # [B, H', W', 3]

  def front_end(self, prepared: tf.Tensor,
                lowering: lowering_lib.Lowering = lowering_lib.IN_PROCESS) -> tf.Tensor:
    """VGG on the output of `prepare`, or without VGG the scaled pixels."""
    if self.vgg is None:
      return prepared * NO_VGG_INPUT_SCALE
    dtype = tf.float32 if lowering.float32 else None
    return self.vgg(prepared, compute_dtype=dtype)  # [B, H'/4, W'/4, 256]

  def features(self, images: tf.Tensor,
               lowering: lowering_lib.Lowering = lowering_lib.IN_PROCESS) -> tf.Tensor:
    """The front end: `front_end(prepare(images))`.

    Args:
      images: `[B, H, W, 3]` RGB in 0..255, uint8 or float.

    Returns:
      `[B, H'/4, W'/4, 256]` VGG features in `vgg_compute_dtype`, or without
      VGG `[B, H', W', 3]` float32 scaled pixels (`H'`, `W'` as in `prepare`).
    """
    return self.front_end(self.prepare(images, lowering), lowering)

  def head(self, features: tf.Tensor,
           output_size: Union[Tuple[int, int], tf.Tensor],
           lowering: lowering_lib.Lowering = lowering_lib.IN_PROCESS,
           training: bool = False) -> tf.Tensor:
    """The trainable part: the stem (if any), ReNet, upsampling, classifier, crop.

    Args:
      features: the output of `features`.
      output_size: `(H, W)` of the original images.
      lowering: the form of the graph.
      training: apply `dropout_rate` (the train step; everything else,
        evaluation and every export included, leaves it False).

    Returns:
      `[B, H, W, num_outputs]` float32 logits.
    """
    dtype = tf.float32 if lowering.float32 else self.compute_dtype
    x = tf.cast(features, tf.float32)
    if self.stem:
      x = tf.cast(x, dtype)
      for conv in self.stem:
        x = conv(x)  # [B, H', W', stem_filters[-1]]
      x = tf.cast(x, tf.float32)
    for layer in self.renet_layers:
      x = layer(x, lowering.sweep)  # [B, H'/S.., W'/S.., 2U]
      if training and self.dropout_rate:
        x = tf.nn.dropout(x, self.dropout_rate)
    x = tf.cast(x, dtype)
    # Every upsampling layer and the classifier act on each pixel alone, so
    # they run on a list of pixels, each layer turning a pixel into its
    # block, and the blocks are placed once, on the logits: the fewest
    # channels to move (docs/performance.md).
    batch, grid_h, grid_w = (shapes.size(x, i) for i in range(3))
    pixels = tf.reshape(x, [-1, x.shape[-1]])
    for layer in self.upsample_layers:
      pixels = layer.pixel_blocks(pixels)
    pixels = self.classifier(pixels)  # [B * H'' * W'' * blocks, K(+1)]
    blocks = math.prod(layer.size[0] * layer.size[1] for layer in self.upsample_layers)
    logits = tf.reshape(pixels, [batch, grid_h, grid_w, blocks * self.num_outputs])
    for layer in self.upsample_layers:  # The first layer's block is outermost.
      logits = blocks_to_space(logits, layer.size)  # [B, H', W', K(+1)] at the end.
    h, w = output_size[0], output_size[1]
    sh, sw = (scaled_size(s, self.input_scale) for s in (h, w))
    logits = tf.cast(logits[:, :sh, :sw, :], tf.float32)
    if self.input_scale != 1.0:
      logits = tf.image.resize(logits, [h, w], method="bilinear")
    return logits  # [B, H, W, K(+1)]

  def __call__(self, images: tf.Tensor,
               lowering: lowering_lib.Lowering = lowering_lib.IN_PROCESS) -> tf.Tensor:
    """`[B, H, W, 3]` RGB 0..255 -> `[B, H, W, num_outputs]` float32 logits,
    in the form `lowering` gives."""
    return self.head(self.features(images, lowering), shapes.spatial_size(images),
                     lowering)
