"""reseg-tf: ReSeg recurrent semantic segmentation in TensorFlow 2.

    import reseg_tf
    result = reseg_tf.load_model("horse_no_vgg").segment("photo.jpg")

`load_model`, `SegmentationModel`, `Segmentation` and `TestTimeAugmentation`
live in `reseg_tf.segmentation`, loaded on first use: `import reseg_tf` alone does
not import TensorFlow. The first use imports it without its start-up lines
(unless TF_CPP_MIN_LOG_LEVEL is 0 or 1; `common/quiet_tensorflow.py`).
`ResegError` is the exception of every expected failure.

Importing the package asks TensorFlow for its BFC CPU allocator, unless
TF_CPU_ALLOCATOR_USE_BFC is already set (`common/cpu_allocator.py`: fresh
pages for every large tensor cost a third of a train step on some CPUs).
"""

from reseg_tf.common import cpu_allocator
from reseg_tf.common.errors import ResegError

cpu_allocator.prefer_bfc()

_API = ("load_model", "SegmentationModel", "Segmentation", "TestTimeAugmentation")
__all__ = ["ResegError", *_API]


def __getattr__(name):
  if name in _API:
    from reseg_tf.common import quiet_tensorflow  # noqa: PLC0415
    if quiet_tensorflow.wanted():
      quiet_tensorflow.import_quietly()
    from reseg_tf import segmentation  # noqa: PLC0415
    return getattr(segmentation, name)
  raise AttributeError(f"module 'reseg_tf' has no attribute {name!r}")
