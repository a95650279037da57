"""An emulated aarch64 device on this x86-64 machine: real Arm code of the real runtimes, under QEMU.

    python -m edgekit device start arm64 [--cpu cortex-a76 | --target rpi]   # prints ssh://...
    python -m edgekit device stop arm64

What it is: a Debian 12 arm64 root (built once by root.py, cached outside the clone) whose
programs run under QEMU user-mode emulation (binfmt_misc), with PyPI's aarch64 wheels of ONNX
Runtime, LiteRT and Apache TVM pinned like the host's, and an sshd inside it listening on
127.0.0.1 only (sshd.py). edgekit's remote path (`verify`/`bench`/`build --device ssh://...`)
reaches it like a board. The runtimes' Arm kernels (XNNPACK NEON/dot-product, ORT's aarch64 GEMMs,
TFLite builtins) really run; the CPU is QEMU's model of one, so the results are numerics on Arm
kernels (`where: "aarch64-emulated"`), never device timings.

The CPU model decides which kernels run (dot product or not) and, on QEMU 7.2, whether INT8 is
right at all: its default `max` CPU exposes SVE/SME, which no phone or Pi has, and computes wrong
INT8 results there (../shared/ARM64.md measured 32-61 of 64 outputs off). So every session runs
with a named CPU (QEMU_CPU, set by sshd for each session), and `max` must be asked for.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ArmCpu:
    """A QEMU CPU model, and what it stands for."""
    qemu: str  # QEMU's -cpu name
    stands_for: str  # the real core(s) it emulates, in words
    part: str  # MIDR part number (/proc/cpuinfo "CPU part"; cpuinfo libraries read it)
    features: str  # /proc/cpuinfo "Features" of that core (the HWCAPs QEMU exposes for the model)


_V8_0 = "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid"
_V8_2_DOT = _V8_0 + " atomics fphp asimdhp asimdrdm lrcpc dcpop asimddp"
CPUS = {c.qemu: c for c in (
    ArmCpu("cortex-a53", "Cortex-A53 (Raspberry Pi 3, low-end phones): no dot product", "0xd03", _V8_0),
    ArmCpu("cortex-a72", "Cortex-A72 (Raspberry Pi 4): NEON, no dot product", "0xd08", _V8_0),
    ArmCpu("cortex-a76", "Cortex-A76 (Raspberry Pi 5, typical phones' big cores): NEON + dot product + FP16", "0xd0b",
           _V8_2_DOT),
    ArmCpu("neoverse-n1", "Neoverse-N1 (Arm servers; Cortex-A76-class): NEON + dot product + FP16", "0xd0c", _V8_2_DOT),
    # Not a real core: every feature QEMU has, SVE/SVE2/SME included. Only on request.
    ArmCpu("max", "QEMU's 'max': every feature QEMU emulates, SVE/SVE2/SME included (no phone or Pi has them)",
           "0xd0b", _V8_2_DOT + " sve i8mm sve2"),
)}
DEFAULT_CPU = "cortex-a76"
NAMED_ONLY = {"max"}  # never a default, never a profile's


def cache_dir() -> Path:
    """Where the root and the devices' state live: outside any clone, kept between runs.
    $EDGEKIT_ARM64_HOME, else $XDG_CACHE_HOME/edgekit/arm64 (~/.cache/edgekit/arm64)."""
    if os.environ.get("EDGEKIT_ARM64_HOME"):
        return Path(os.environ["EDGEKIT_ARM64_HOME"]).expanduser().resolve()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return (base / "edgekit" / "arm64").resolve()


def cpu_for(name: str | None) -> ArmCpu:
    """A QEMU CPU model by name (default cortex-a76); a wrong name is a usage error naming the choices."""
    from ..errors import UsageError, did_you_mean

    name = name or DEFAULT_CPU
    if name not in CPUS:
        raise UsageError(f"unknown emulated CPU {name!r}{did_you_mean(name, list(CPUS))}",
                         hint="choose one of: " + ", ".join(CPUS))
    return CPUS[name]
