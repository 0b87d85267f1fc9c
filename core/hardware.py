"""What this machine computes fast: bf16 matrix units (Intel AMX) on the CPU.

On a CPU with AMX (Sapphire Rapids and later; `amx_bf16` in /proc/cpuinfo) oneDNN runs
bf16 matrix products on the tile units, about 4x the fp32 speed of the same cores for an
encoder's forward pass (me5-small here: ~165 vs ~38 reviews/s). Without AMX, bf16 on the
CPU is emulated or AVX512-BF16 at best and rarely faster than fp32, so it stays off.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


@lru_cache(maxsize=1)
def cpu_has_amx(cpuinfo: Path = CPUINFO) -> bool:
    """True when the CPU reports AMX bf16 tiles (False where there is no /proc, e.g. macOS)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return "amx_bf16" in line.split()
    return False


def resolve_bf16(mode: str, *, quantized: bool = False) -> bool:
    """`mode` on/off/auto -> whether to compute in bf16 (autocast). auto: on with AMX, off on a
    quantized (bitsandbytes) base, whose kernels choose their own compute dtype."""
    if mode == "on":
        return True
    if mode == "off":
        return False
    return cpu_has_amx() and not quantized


INFERENCE_DTYPES = ("auto", "fp32", "bf16")


def resolve_inference_dtype(mode: str) -> str:
    """`mode` auto/fp32/bf16 -> the dtype classifiers and encoders compute in: auto is bf16
    where the CPU has AMX, else fp32 (measured in bot/quantization.py's docstring)."""
    if mode not in INFERENCE_DTYPES:
        raise ValueError(f"unknown inference dtype {mode!r}: use one of {', '.join(INFERENCE_DTYPES)}")
    if mode == "auto":
        return "bf16" if cpu_has_amx() else "fp32"
    return mode
