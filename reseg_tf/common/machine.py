"""What CPU this is, from Linux's /proc/cpuinfo: named beside every speed
figure and results entry, and part of the cached XLA choice's key."""

import platform


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
