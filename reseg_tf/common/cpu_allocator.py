"""TensorFlow's CPU memory allocator: the BFC allocator unless the user chose.

TensorFlow's default CPU allocator passes every tensor to malloc, and glibc
serves a block over 32 MB with fresh pages from the kernel and returns them
on free. A CamVid train step allocates and frees several GB of such blocks
(the ReNet maps, their gradients, the compiled sweep's saved gates), so
each step faults in about a million new pages: on a 2-core AMD EPYC that was
3.3 s of system time in a 6.8 s fp32 step. TensorFlow's own BFC (best fit with
coalescing) allocator keeps the memory it has taken and reuses it; it is
chosen by an environment variable that TensorFlow reads once, when it
creates its CPU device, so `import reseg_tf` sets it before that happens
(docs/performance.md, "The CPU allocator"; `benchmarks/cpu_allocator.py`
measures both). TF_CPU_ALLOCATOR_USE_BFC=false in the environment keeps
TensorFlow's default. On some CPUs (an Intel Xeon with AMX, here) TensorFlow's
oneDNN build serves CPU tensors from a BFC-backed allocator of its own,
whatever the variable says (unless TF_ENABLE_ONEDNN_OPTS=0): there the
setting changes nothing.
"""

import os

ENV = "TF_CPU_ALLOCATOR_USE_BFC"


def prefer_bfc() -> None:
  """Asks for the BFC allocator unless the environment already chose."""
  os.environ.setdefault(ENV, "true")
