"""Where a number was measured: CPU model and the flags that change kernels, load, governor."""
from __future__ import annotations

import os
import platform
from pathlib import Path

from . import __version__

# Flags that decide which kernels a runtime picks (AVX-512, VNNI and AMX for INT8, NEON/dotprod on ARM).
_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16",
          "amx_tile", "amx_int8", "amx_bf16", "asimd", "asimddp", "fphp", "sve", "i8mm")


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def cpu_info() -> dict:
    model, flags = platform.processor() or platform.machine(), set()
    text = _read("/proc/cpuinfo") or ""
    for line in text.splitlines():
        key, _, val = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model", "Hardware") and val.strip():
            model = val.strip()
        elif key in ("flags", "Features"):
            flags.update(val.split())
    return {"model": model, "arch": platform.machine(), "logical_cpus": os.cpu_count(),
            "flags": [f for f in _FLAGS if f in flags],
            "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")}


def environment(threads: int | None, runtime: str | None = None, runtime_version: str | None = None) -> dict:
    import numpy

    return {
        "cpu": cpu_info(), "threads": threads, "runtime": runtime, "runtime_version": runtime_version,
        "edgekit": __version__, "python": platform.python_version(), "numpy": numpy.__version__,
        "os": f"{platform.system()} {platform.release()}", "loadavg": list(os.getloadavg()),
    }
