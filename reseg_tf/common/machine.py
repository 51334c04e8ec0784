"""What machine this is: its CPU, from Linux's /proc/cpuinfo (named beside
every speed figure and results entry, part of the cached XLA choice's key,
and what the compiled sweep's GEMMs are chosen by), and reseg_tf's cache
folder on it."""

import os
import platform

CACHE_ENV = "RESEG_TF_CACHE_DIR"


def _cpuinfo() -> dict:
  """The first CPU's `model name` and `flags` fields (empty off Linux)."""
  fields = {}
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "flags") and key not in fields:
          fields[key] = value.strip()
        if len(fields) == 2:
          break
  except OSError:
    pass
  return fields


def cpu_model() -> str:
  """E.g. 'AMD EPYC'; what `platform` knows where /proc/cpuinfo is absent."""
  return (_cpuinfo().get("model name") or platform.processor() or platform.machine()
          or "unknown CPU")


def cpu_flags() -> set:
  """The CPU's feature flags (`amx_bf16`, `avx512_bf16`, ...); empty off Linux."""
  return set(_cpuinfo().get("flags", "").split())


BF16_UNITS = ("amx_bf16", "avx512_bf16")


def bf16_in_software() -> bool:
  """Whether this is an x86 CPU without bf16 units (AMX, AVX512-BF16): there
  oneDNN and the compiled sweep emulate bfloat16, which runs slower than
  float32 (docs/performance.md, "Which CPU are you on?")."""
  cpu = cpu_flags()
  return "avx2" in cpu and not cpu & set(BF16_UNITS)


def cache_dir() -> str:
  """Where reseg_tf keeps what it measures or builds once per machine:
  `$RESEG_TF_CACHE_DIR`, else `~/.cache/reseg_tf`."""
  return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "reseg_tf")
