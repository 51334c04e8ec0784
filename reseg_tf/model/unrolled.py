"""ReSeg at a fixed input size, with the ReNet sweeps unrolled: for LiteRT.

`logits(model, images)` computes `model(images)` (same variables, same
maths) in a form that the TFLite converter turns into builtin ops only
(`tf.lite.OpsSet.TFLITE_BUILTINS`, no Flex), for
`serving/tflite_export.py`:

* every shape is static (the input size is fixed at export);
* the ReNet layers run as `implementation='unrolled'`: `renet.scan_sweep`
  with each direction's recurrence a Python loop over the time steps
  (`renet.run_recurrence(unroll=True)`), so the graph holds one `h @ w_h`
  (FULLY_CONNECTED) and the GRU's elementwise gates per step, and no loop
  at all; same step functions, same time-major layout, one large input
  projection per direction;
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

import tensorflow as tf

from reseg_tf.model import reseg as reseg_lib
from reseg_tf.model import vgg as vgg_lib
from reseg_tf.model import vgg_weights


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
    x = layer(x, implementation="unrolled")
  for layer in model.upsample_layers:
    x = layer(x)  # In the dtype of x: float32.
  x = model.classifier(x)[:, :scaled[0], :scaled[1], :]
  if model.input_scale != 1.0:
    x = tf.image.resize(x, [height, width], method="bilinear")
  return x
