"""Where a number was measured: CPU model and the flags that change kernels, load, governor."""
from __future__ import annotations

import os
import platform
from pathlib import Path

from . import __version__

# Flags that decide which kernels a runtime picks (AVX-512, VNNI and AMX for INT8, NEON/dotprod on ARM).
_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16",
          "amx_tile", "amx_int8", "amx_bf16", "asimd", "asimddp", "fphp", "sve", "i8mm", "sme")


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


# arm64 Linux HWCAP bits (asm/hwcap.h): what the kernel (or QEMU) says this CPU can do.
_HWCAP = {"asimd": 1, "fphp": 9, "asimddp": 20, "sve": 22}
_HWCAP2 = {"i8mm": 13, "sme": 23}


def arm_hwcaps() -> set[str] | None:
    """aarch64 Linux: the CPU features from getauxval, which QEMU answers truthfully even where
    /proc/cpuinfo is not the guest's; None elsewhere."""
    if platform.machine() != "aarch64" or platform.system() != "Linux":
        return None
    import ctypes

    try:
        getauxval = ctypes.CDLL(None).getauxval
    except (OSError, AttributeError):
        return None
    getauxval.restype = ctypes.c_ulong
    hw, hw2 = getauxval(16), getauxval(26)  # AT_HWCAP, AT_HWCAP2
    return ({n for n, b in _HWCAP.items() if hw >> b & 1} | {n for n, b in _HWCAP2.items() if hw2 >> b & 1})


def emulation() -> dict | None:
    """On edgekit's emulated arm64 device (edgekit.emulated): {"kind": "aarch64-emulated", "emulator",
    "cpu" (the QEMU CPU model of this session)}; None on a real machine."""
    import json

    text = _read("/etc/edgekit-device.json")
    if not text:
        return None
    try:
        info = json.loads(text)
    except ValueError:
        return None
    return {"kind": info.get("kind", "aarch64-emulated"), "emulator": info.get("emulator", "QEMU user mode"),
            "cpu": os.environ.get("QEMU_CPU") or "max (QEMU's default)"}


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
    emulated, hwcaps = emulation(), arm_hwcaps()
    if hwcaps is not None:
        flags = hwcaps
    if emulated:
        model = f"{emulated['cpu']} (emulated: {emulated['emulator']})"
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
