"""ONNX -> an Apache TVM (Relax) module: one shared library the TVM runtime loads (`.so`).

Three kinds, one converter name each (converters/__init__.py: tvm, tvm-aarch64, tvm-cuda):
- "host": llvm for this machine's CPU (named explicitly: TVM 0.27 refuses `mcpu=native`), run and
  verified here like every other artifact;
- "aarch64": llvm for aarch64 Linux with NEON, linked by Debian's `aarch64-linux-gnu-g++`
  (Raspberry Pi / Jetson CPU); checked here as an ELF file, run on the device;
- "cuda": CUDA kernels for one GPU architecture (sm_87 = Jetson Orin) with an aarch64 host part.
  TVM 0.27 stores the kernels as CUDA C source and compiles them when the module is loaded; here
  the same source is compiled with nvcc for that architecture (a real check that it builds) and
  the cubin ships beside the module, so the device loads it instead of compiling
  (edgekit.runtimes.tvm registers it as TVM's CUDA compile callback).

Untuned TVM schedules are plain loops: correct, but far slower than ONNX Runtime on a CPU
(docs/targets/cpu-tvm.md has the numbers). GPU kernels get TVM's default GPU schedules (dlight).
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

from . import ConvertResult, Converter
from ..locate import cuda_home

CROSS_CXX = "aarch64-linux-gnu-g++"
CROSS_INSTALL = "sudo apt-get install g++-aarch64-linux-gnu  # or scripts/setup-env.sh tvm"
CUDA_INSTALL = "pip install 'nvidia-cuda-nvcc==13.0.88' 'nvidia-nvvm==13.0.88'  # or scripts/setup-env.sh tvm"
KINDS = {"tvm": "host", "tvm-aarch64": "aarch64", "tvm-cuda": "cuda"}  # converter name -> machine
ELF_MACHINES = {62: "x86_64", 183: "aarch64"}  # e_machine values (ELF spec)


def host_cpu() -> str:
    """LLVM's name for this CPU (e.g. 'sapphirerapids'): the host artifact uses its vector units."""
    import tvm_ffi

    return str(tvm_ffi.get_global_func("target.llvm_get_system_cpu")())


def _targets(kind: str, options: dict):
    import tvm

    if kind == "host":
        return tvm.target.Target({"kind": "llvm", "mcpu": host_cpu()}), None
    aarch64 = {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"]}
    if kind == "aarch64":
        return tvm.target.Target(aarch64), CROSS_CXX
    if kind == "cuda":
        return tvm.target.Target({"kind": "cuda", "arch": options.get("cuda_arch", "sm_87")}, host=aarch64), CROSS_CXX
    raise ValueError(f"unknown tvm_target {kind!r} (host, aarch64, cuda)")


def _compile_cuda(source: str, arch: str, out: Path) -> dict:
    """nvcc -cubin for `arch`; ptxas' resource report kept (registers, spills per kernel)."""
    from edgekit.errors import ToolchainMissing

    home = cuda_home()
    if not home:
        raise ToolchainMissing("nvcc (CUDA compiler) not found: CUDA kernels for the device cannot be compiled here",
                               hint=CUDA_INSTALL)
    src = out.with_suffix(".cu")
    src.write_text(source)
    cmd = [f"{home}/bin/nvcc", f"-arch={arch}", "-cubin", "-Xptxas", "-v", "-o", str(out), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    src.unlink()
    if proc.returncode:
        raise RuntimeError(f"nvcc failed for {arch}: {proc.stderr.strip()[-800:]}")
    version = subprocess.run([f"{home}/bin/nvcc", "--version"], capture_output=True, text=True).stdout.strip()
    spills = sum(int(n) for n in re.findall(r"(\d+) bytes spill stores", proc.stderr))
    release = next((ln.split("release")[-1].strip() for ln in version.splitlines() if "release" in ln), version)
    return {"nvcc": release, "arch": arch, "cubin_bytes": out.stat().st_size,
            "kernels": proc.stderr.count("Compiling entry function"), "spill_bytes": spills}


def convert(work, candidate, out_path: Path) -> ConvertResult:
    import onnx
    import tvm
    import tvm_ffi
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx
    from tvm.support import cc

    from edgekit.errors import ToolchainMissing

    kind = KINDS[candidate.converter]
    target, cross = _targets(kind, candidate.options)
    if cross and not shutil.which(cross):
        raise ToolchainMissing(f"{cross} (aarch64 cross compiler) not found: the {kind} TVM module cannot be linked",
                               hint=CROSS_INSTALL)
    # Weights become constants inside the module: one file, and constant folding sees them.
    mod = from_onnx(onnx.load(str(work.onnx_path)), keep_params_in_input=False)
    info: dict = {"name": "tvm", "tvm_target": kind, "target": str(target.export() if hasattr(target, "export") else target),
                  "tvm": tvm.__version__, "input_names": [p.name for p in mod["main"].params]}
    cuda_sources: list[str] = []
    if kind == "cuda":
        from tvm.s_tir import dlight as dl

        @tvm_ffi.register_global_func("tvm_callback_cuda_postproc", override=True)
        def _keep(code, *_):  # the generated kernels, exactly as the module stores them
            cuda_sources.append(code)
            return code

        with target:
            mod = relax.get_pipeline("zero")(mod)
            mod = dl.ApplyDefaultSchedule(dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(),
                                          dl.gpu.GeneralReduction(), dl.gpu.Fallback())(mod)
    with target:
        ex = tvm.compile(mod, target=target)
    tmp = out_path.with_name(out_path.name + ".tmp.so")
    ex.export_library(str(tmp), fcompile=cc.cross_compiler(cross) if cross else None)
    os.replace(tmp, out_path)
    if kind == "cuda":
        if len(cuda_sources) != 1:
            raise RuntimeError(f"expected one CUDA module from TVM, got {len(cuda_sources)}")
        arch = candidate.options.get("cuda_arch", "sm_87")
        cubin = out_path.with_suffix(".cubin")
        built = _compile_cuda(cuda_sources[0], arch, cubin)
        if cubin_sm(cubin) != int(arch.removeprefix("sm_")):
            raise RuntimeError(f"nvcc's cubin is for sm_{cubin_sm(cubin)}, not {arch}")
        info["cuda"] = {**built, "cubin_sm": cubin_sm(cubin),
                        "source_sha256": hashlib.sha256(cuda_sources[0].encode()).hexdigest(),
                        "cubin": cubin.name, "cubin_sha256": hashlib.sha256(cubin.read_bytes()).hexdigest()}
        # The runner hands this cubin to TVM only for the exact source it came from.
        cubin.with_suffix(".source-sha256").write_text(info["cuda"]["source_sha256"] + "\n")
        info["sidecars"] = [cubin.name, cubin.with_suffix(".source-sha256").name]
    if kind == "host":
        return ConvertResult(info)
    return ConvertResult(info, runs_on={"arch": "aarch64", "gpu": "cuda " + candidate.options.get("cuda_arch", "sm_87")
                                        if kind == "cuda" else None},
                         artifact_checks=check_library(out_path, "aarch64", gpu=kind == "cuda"))


def elf_header(path: Path) -> dict:
    """Class, byte order, OS ABI, type and machine from an ELF header (the spec's fixed offsets)."""
    head = Path(path).read_bytes()[:64]
    if head[:4] != b"\x7fELF":
        return {"elf": False}
    little = head[5] == 1
    e_type, e_machine = struct.unpack("<HH" if little else ">HH", head[16:20])
    return {"elf": True, "class": {1: 32, 2: 64}.get(head[4]), "little_endian": little, "os_abi": head[7],
            "type": {2: "executable", 3: "shared object"}.get(e_type, e_type),
            "machine": ELF_MACHINES.get(e_machine, str(e_machine))}


def cubin_sm(path: Path) -> int | None:
    """The SM architecture a cubin was compiled for, from its ELF header (EM_CUDA = 190; e_flags
    holds the SM number in bits 8-15 from ELF ABI version 8 on, in bits 0-7 before)."""
    head = Path(path).read_bytes()[:64]
    if head[:4] != b"\x7fELF" or struct.unpack("<H", head[18:20])[0] != 190:
        return None
    flags = struct.unpack("<I", head[48:52])[0]
    return (flags >> 8) & 0xFF if head[8] >= 8 else flags & 0xFF


def dynamic_symbols(path: Path) -> set[str]:
    """Exported symbols of a shared object, read with binutils' nm for its architecture."""
    for nm in ("aarch64-linux-gnu-nm", "nm"):
        if shutil.which(nm):
            out = subprocess.run([nm, "-D", "--defined-only", str(path)], capture_output=True, text=True)
            if out.returncode == 0:
                return {line.split()[-1] for line in out.stdout.splitlines() if line.strip()}
    return set()


# What the TVM runtime looks up when it loads a module (tvm_ffi's library loader): the embedded
# module blob (the VM program and constants). Compiled functions are exported as __tvm_ffi_<name>.
ENTRY_POINTS = ("__tvm_ffi__library_bin",)


def check_library(path: Path, machine: str, gpu: bool = False) -> dict:
    """What can be checked here of a module built for another machine: ELF class/machine/ABI, the
    runtime's entry points, and (for CUDA) that the CUDA kernels are embedded."""
    head = elf_header(path)
    syms = dynamic_symbols(path)
    failures = []
    if not head.get("elf"):
        failures.append("not an ELF file")
    else:
        if head["machine"] != machine or head["class"] != 64 or not head["little_endian"]:
            failures.append(f"ELF is {head['class']}-bit {head['machine']}, expected 64-bit little-endian {machine}")
        if head["type"] != "shared object":
            failures.append(f"ELF type {head['type']}, expected a shared object")
        if head["os_abi"] not in (0, 3):  # System V or GNU/Linux
            failures.append(f"ELF OS ABI {head['os_abi']} is not Linux")
    missing = [s for s in ENTRY_POINTS if s not in syms]
    if missing:
        failures.append(f"missing TVM entry points {missing}")
    kernels = [s for s in syms if s.startswith("__tvm_ffi_") and not s.startswith("__tvm_ffi__")]
    if not kernels:
        failures.append("no compiled TVM functions (__tvm_ffi_*) exported")
    if gpu and b"extern \"C\" __global__" not in Path(path).read_bytes():
        failures.append("no CUDA kernels embedded")
    return {"elf": head, "entry_points": [s for s in ENTRY_POINTS if s in syms], "host_functions": len(kernels),
            "failures": failures, "passed": not failures}


def preflight(ctx) -> dict:
    """TVM's ONNX importer has a converter per op: the ones the export uses must be in its table."""
    if ctx.onnx_error:
        return ctx.failed_before("ONNX export (torch.onnx.export, dynamo)", ctx.onnx_error)
    import onnx
    from tvm.relax.frontend.onnx import onnx_frontend

    table = onnx_frontend._get_convert_map()
    model = onnx.load(str(ctx.onnx_path), load_external_data=False)
    unsupported = [{"op": n.op_type, "node": n.name, "source": None,
                    "why": f"TVM's ONNX importer has no converter for {n.op_type}"}
                   for n in model.graph.node if n.op_type not in table and n.domain in ("", "ai.onnx")]
    return ctx.verdict(unsupported, table="tvm.relax.frontend.onnx converter table (_get_convert_map)")


# One TVM converter, three machines: this CPU, aarch64 Linux CPUs, and an NVIDIA GPU with an aarch64 host.
# TVM builds one static module per shape bucket (Relax's symbolic shapes are not tried yet).
CONVERTERS = [
    Converter(name="tvm", format="tvm-module", suffix=".so", toolchains=("onnx", "tvm"), convert=convert,
              preflight=preflight, needs_onnx=True),
    Converter(name="tvm-aarch64", format="tvm-module", suffix=".so", toolchains=("onnx", "tvm", "aarch64-g++"),
              convert=convert, preflight=preflight, needs_onnx=True),
    Converter(name="tvm-cuda", format="tvm-module", suffix=".so", toolchains=("onnx", "tvm", "aarch64-g++", "nvcc"),
              convert=convert, preflight=preflight, needs_onnx=True),
]
