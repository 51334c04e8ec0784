"""ReSeg at a fixed input size, with the ReNet sweeps unrolled: for LiteRT.

`logits(model, images)` computes `model(images)` (same variables, same
maths) in a form that the TFLite converter turns into builtin ops only
(`tf.lite.OpsSet.TFLITE_BUILTINS`, no Flex), for
`serving/tflite_export.py`:

* every shape is static (the input size is fixed at export);
* each direction of each sweep is a Python loop over the time steps, so the
  graph holds one `h @ w_h` (FULLY_CONNECTED) and the GRU's elementwise
  gates per step, and no loop at all. The steps' maths is `gru.step` (or
  `renet.lstm_step`), shared with the training code; the input projections
  stay one large matmul per direction, as in `renet.scan_sweep`, whose
  time-major layout this follows;
* `input_scale`'s antialiased bilinear downscale (`ScaleAndTranslate`, not a
  builtin) is two matmuls with constant resize matrices, taken from
  `tf.image.resize` itself at trace time; the upscale of the logits stays
  `tf.image.resize` (RESIZE_BILINEAR);
* everything runs in float32, whatever the model's compute dtypes (the
  converter has no bfloat16 kernels).

Why unrolled. The fused sweep (`renet_fused.py`) uses XLA-only ops and does
not convert. ReNetLayer's `implementation='scan'` does (static shapes make
`tf.scan`'s TensorArrays lowerable), as 8 WHILE loops; unrolling measured
better at run time and in size, at the CamVid no-VGG configuration
(gin/camvid_no_vgg.gin, 360x480, batch 1, ai-edge-litert 2.3 with its
default XNNPACK delegate, 1 thread; `benchmarks/tflite.py`, on 2 cores
shared with trainings, so the latencies vary by about a third from run to
run):

| form                     | latency    | .tflite  | conversion |
|--------------------------|------------|----------|------------|
| unrolled (this module)   | 130-175 ms | 4.8 MiB  | ~10 s      |
| `tf.scan` (WHILE loops)  | 345-620 ms | 9.0 MiB  | ~2 s       |

The WHILE bodies run op by op, outside XNNPACK's graph, and the converter
stores the scans' TensorArray buffers as constant zeros (4 MiB each at this
size). Unrolling costs graph size instead: about 13 ops per step, 8k ops for
this model (conversion time, not latency: the matmuls dominate). Slicing the
`[B, H, W, C]` maps per step instead of transposing them to time-major was
no faster and doubled the conversion time.
"""

from typing import List, Sequence

import tensorflow as tf

from reseg_tf.model import gru, renet, vgg_weights
from reseg_tf.model import reseg as reseg_lib
from reseg_tf.model import vgg as vgg_lib


def _recurrence(core: str, gates_x: Sequence[tf.Tensor], w_h: tf.Tensor,
                reverse: bool) -> List[tf.Tensor]:
  """Runs one direction from a zero state, step by step in Python.

  Args:
    core: `'gru'` or `'lstm'`.
    gates_x: `T` input projections `[N, G*U]` (bias included), in input order.
    w_h: `[U, G*U]` recurrent weights.
    reverse: process the steps from the last to the first.

  Returns:
    The `T` states `[N, U]`, in input order.
  """
  h = tf.zeros([gates_x[0].shape[0], w_h.shape[0]], gates_x[0].dtype)
  cell = h
  states = [None] * len(gates_x)
  steps = range(len(gates_x))
  for t in (reversed(steps) if reverse else steps):
    if core == "gru":
      h = gru.step(h, gates_x[t], w_h)
    else:
      h, cell = renet.lstm_step((h, cell), gates_x[t], w_h)
    states[t] = h
  return states


def sweep(bidirectional: renet.BidirectionalSweep, x: tf.Tensor, axis: int) -> tf.Tensor:
  """`renet.scan_sweep` of `bidirectional`'s weights, unrolled.

  Args:
    bidirectional: the sweep whose weights, core and mode to use.
    x: `[B, H, W, C]` float32, static shape.
    axis: 1 (down the columns) or 2 (along the rows).

  Returns:
    `[B, H, W, 2U]`: forward and backward states, both in input order.
  """
  perm = [2, 0, 1, 3] if axis == 2 else [1, 0, 2, 3]
  steps, batch, lines = (x.shape[p] for p in perm[:3])
  xt = tf.reshape(tf.transpose(x, perm), [steps, batch * lines, x.shape[3]])  # [T, N, C]
  (wx_f, wh_f, b_f), (wx_b, wh_b, b_b) = (bidirectional.forward.weights,
                                          bidirectional.backward.weights)
  core = bidirectional.core
  if bidirectional.backward_reads_forward:
    h_fw = _recurrence(core, tf.unstack(gru.project(xt, wx_f, b_f)), wh_f, False)
    # The backward RNN reads the forward states; in reverse, but kept in
    # input order, so no tf.reverse is needed.
    gx = gru.project(tf.stack(h_fw), wx_b, b_b)  # [T, N, G*U]
    h_bw = _recurrence(core, tf.unstack(gx), wh_b, True)
  else:
    gx = gru.project(xt, tf.concat([wx_f, wx_b], 1), tf.concat([b_f, b_b], 0))
    gx_fw, gx_bw = tf.split(gx, 2, axis=-1)
    h_fw = _recurrence(core, tf.unstack(gx_fw), wh_f, False)
    h_bw = _recurrence(core, tf.unstack(gx_bw), wh_b, True)
  out = tf.concat([tf.stack(h_fw), tf.stack(h_bw)], axis=-1)  # [T, N, 2U]
  out = tf.reshape(out, [steps, batch, lines, out.shape[-1]])
  return tf.transpose(out, perm if axis == 1 else [1, 2, 0, 3])


def renet_layer(layer: renet.ReNetLayer, x: tf.Tensor) -> tf.Tensor:
  """`layer(x)` with unrolled sweeps; `x` has a static shape."""
  x = renet.extract_patches(x, layer.patch_size)
  first, second = (2, 1) if layer.sweep_order == "horizontal_first" else (1, 2)
  x = sweep(layer.first_sweep, x, first)
  return sweep(layer.second_sweep, x, second)


def resize_matrix(size: int, new_size: int) -> tf.Tensor:
  """`[new_size, size]` constant: `tf.image.resize`'s antialiased bilinear
  resize of one axis, as a matrix (the resize is separable and linear)."""
  with tf.init_scope():  # Eager even while tracing: values, not ops.
    eye = tf.eye(size)[None, :, None, :]  # [1, size, 1, size]: pixel p in channel p.
    matrix = tf.image.resize(eye, [new_size, 1], method="bilinear", antialias=True)
    matrix = matrix[0, :, 0, :].numpy()
  # Made here, a Const of the traced graph: an eager tensor would be a
  # captured input, which tf2onnx turns into an input of the ONNX model.
  return tf.constant(matrix)


def logits(model: reseg_lib.ReSeg, images: tf.Tensor) -> tf.Tensor:
  """`model(images)` in builtin TFLite ops: see the module docstring.

  Mirrors `ReSeg.features` and `ReSeg.head` (the tests compare them).

  Args:
    model: a `ReSeg`.
    images: `[B, H, W, 3]` RGB in 0..255, uint8 or float, static shape.

  Returns:
    `[B, H, W, num_outputs]` float32 logits.

  Raises:
    ValueError: the shape of `images` is not static.
  """
  if not images.shape.is_fully_defined():
    raise ValueError(f"the unrolled model needs a static input shape, got {images.shape}")
  height, width = images.shape[1], images.shape[2]
  scaled = [reseg_lib.scaled_size(s, model.input_scale) for s in (height, width)]
  x = vgg_lib.caffe_preprocess(images)  # [B, H, W, 3] float32.
  if model.input_scale != 1.0:
    x = tf.einsum("ih,bhwc->biwc", resize_matrix(height, scaled[0]), x)
    x = tf.einsum("jw,biwc->bijc", resize_matrix(width, scaled[1]), x)
  pads = [[0, (-x.shape[i]) % s] for i, s in zip((1, 2), model.stride)]
  x = tf.pad(x, [[0, 0]] + pads + [[0, 0]])
  if model.vgg is None:
    x = x * reseg_lib.NO_VGG_INPUT_SCALE
  else:
    convs = iter(model.vgg.convs)
    for spec in vgg_weights.ARCHITECTURE:  # As VGGFrontEnd, but in float32.
      x = (tf.nn.max_pool2d(x, ksize=2, strides=2, padding="VALID") if spec is None
           else next(convs)(x))
  for layer in model.renet_layers:
    x = renet_layer(layer, x)
  for layer in model.upsample_layers:
    x = layer(x)  # In the dtype of x: float32.
  x = model.classifier(x)[:, :scaled[0], :scaled[1], :]
  if model.input_scale != 1.0:
    x = tf.image.resize(x, [height, width], method="bilinear")
  return x
