"""Toolchains edgekit can use: how to find their version and the exact command that installs them.

Heavy toolchains are only ever imported inside functions, after `require()` says they exist,
so `import edgekit` and the on-device loader need nothing but numpy.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from .errors import ToolchainMissing


@dataclass(frozen=True)
class Toolchain:
    name: str  # what edgekit calls it
    module: str  # the import that proves it is usable
    dist: str  # the PyPI distribution whose version we record
    install: str  # the exact command that installs it
    purpose: str
    binary: str = ""  # a program on PATH instead of a Python module (e.g. a cross compiler)
    where: str = "host"  # "host", or "device" when only the target device can have it (TensorRT)


# One readable table. A target names toolchains from here; `doctor` prints it.
TOOLCHAINS: dict[str, Toolchain] = {
    t.name: t
    for t in [
        Toolchain("numpy", "numpy", "numpy", "pip install numpy", "bundle loader (always needed)"),
        Toolchain("matplotlib", "matplotlib", "matplotlib", "pip install 'edgekit[report]'",
                  "plots of `edgekit report` (PNG, inlined in the HTML page)"),
        Toolchain("torch", "torch", "torch", "pip install 'edgekit[torch]'  # torch==2.13.0 CPU build",
                  "PyTorch models: load, export, reference outputs"),
        Toolchain("onnx", "onnx", "onnx", "pip install 'edgekit[onnx]'", "ONNX graphs: export, checks"),
        Toolchain("onnxscript", "onnxscript", "onnxscript", "pip install 'edgekit[onnx]'",
                  "torch.onnx dynamo exporter; ONNX Runtime transformer fusions"),
        Toolchain("onnxruntime", "onnxruntime", "onnxruntime", "pip install 'edgekit[onnxruntime]'",
                  "runtime for the cpu target"),
        Toolchain("litert-torch", "litert_torch", "litert-torch", "pip install 'edgekit[litert]'",
                  "PyTorch -> LiteRT/TFLite (.tflite), FP32 and PT2E INT8"),
        Toolchain("ai-edge-litert", "ai_edge_litert", "ai-edge-litert", "pip install 'edgekit[litert-runtime]'",
                  "LiteRT interpreter (runs .tflite, XNNPACK delegate)"),
        Toolchain("executorch", "executorch", "executorch", "pip install 'edgekit[executorch]'",
                  "PyTorch -> ExecuTorch (.pte, XNNPACK) and its runtime"),
        Toolchain("tvm", "tvm", "apache-tvm", "scripts/setup-env.sh tvm  # apache-tvm 0.27 + its runtime",
                  "PyTorch/ONNX -> Apache TVM modules (x86 llvm, aarch64, CUDA) and the TVM runtime"),
        Toolchain("aarch64-g++", "", "", "sudo apt-get install g++-aarch64-linux-gnu  # scripts/apt-tvm.txt",
                  "links TVM modules for aarch64 Linux (Raspberry Pi, Jetson CPU)", binary="aarch64-linux-gnu-g++"),
        Toolchain("nvcc", "", "nvidia-cuda-nvcc",
                  "pip install 'nvidia-cuda-nvcc==13.0.88' 'nvidia-nvvm==13.0.88'  # scripts/setup-env.sh tvm",
                  "compiles TVM's CUDA kernels for the device GPU (sm_87 = Jetson Orin)", binary="nvcc"),
        Toolchain("tensorrt", "tensorrt", "tensorrt",
                  "on the device: JetPack's python3-libnvinfer (Jetson) or `pip install tensorrt` (x86 + NVIDIA GPU)",
                  "builds and runs TensorRT engines (needs an NVIDIA GPU)", where="device"),
        Toolchain("cuda-python", "cuda.bindings.runtime", "cuda-bindings", "pip install cuda-python  # on the device",
                  "GPU buffers for the TensorRT runner", where="device"),
        Toolchain("coremltools", "coremltools", "coremltools", "pip install 'edgekit[mobile]'  # coremltools 9.0",
                  "PyTorch -> Core ML ML Program (.mlpackage); predictions need macOS"),
        Toolchain("tfjs-converter", "", "", "scripts/setup-env.sh web  # onnx2tf + tensorflowjs in .venv-tfjs",
                  "ONNX -> TF SavedModel (onnx2tf) -> TF.js graph model (tensorflowjs), in their own venv",
                  binary="tfjs-converter"),
        Toolchain("node-tfjs", "", "", "scripts/setup-env.sh web  # node + npm ci (@tensorflow/tfjs, package-lock.json)",
                  "runs TF.js graph models in Node (@tensorflow/tfjs, wasm backend)", binary="node-tfjs"),
        Toolchain("chromium", "", "", "sudo apt-get install chromium  # scripts/apt-web.txt",
                  "headless browser: runs TF.js models in a real page", binary="chromium"),
        Toolchain("ray", "ray", "ray", "pip install 'edgekit[sweep]'",
                  "`edgekit sweep --ray ADDRESS`: runs sweep cells on a Ray cluster"),
        Toolchain("cryptography", "cryptography", "cryptography", "pip install 'edgekit[sign]'",
                  "ed25519 bundle signatures: `edgekit sign`, `verify --require-signature`, load(trusted_keys=)"),
        Toolchain("builtin-models", "sklearn", "scikit-learn", "pip install 'edgekit[builtin]'",
                  "built-in models and their data (digits, photos, MiniLM)"),
    ]
}


def available(name: str) -> bool:
    tc = TOOLCHAINS[name]
    if tc.binary:
        return _find_binary(tc) is not None
    try:
        return importlib.util.find_spec(TOOLCHAINS[name].module) is not None
    except (ImportError, ValueError):  # a broken or partial install counts as missing
        return False


def _find_binary(tc: Toolchain) -> str | None:
    import shutil

    if tc.name == "nvcc":  # the pip wheel's nvcc (not on PATH) counts
        from .locate import cuda_home

        home = cuda_home()
        return f"{home}/bin/nvcc" if home else None
    if tc.name == "tfjs-converter":  # onnx2tf + tensorflowjs live in their own venv
        from .locate import tfjs_python

        return tfjs_python()
    if tc.name == "node-tfjs":  # node itself, and @tensorflow/tfjs where npm ci put it
        from .locate import node_modules

        return shutil.which("node") if (node_modules() / "@tensorflow/tfjs/package.json").is_file() else None
    if tc.name == "chromium":
        from .locate import chromium_binary

        return chromium_binary()
    return shutil.which(tc.binary)


def version(name: str) -> str | None:
    tc = TOOLCHAINS[name]
    try:
        if tc.dist:
            return importlib.metadata.version(tc.dist)
    except importlib.metadata.PackageNotFoundError:
        if not tc.binary:
            return None
    path = _find_binary(tc) if tc.binary else None
    if not path:
        return None
    if tc.name in _VERSION_OF:
        return _VERSION_OF[tc.name]()
    import subprocess

    out = subprocess.run([path, "--version"], capture_output=True, text=True).stdout.strip().splitlines()
    return out[0].split()[-1] if out else "present"


def _tfjs_converter_version() -> str:
    from .locate import tfjs_python

    site = list(Path(tfjs_python()).parents[1].glob("lib/python3*/site-packages"))
    found = {d.name.removesuffix(".dist-info").split("-")[0].lower(): d.name.removesuffix(".dist-info").split("-")[1]
             for s in site for d in s.glob("*.dist-info") if d.name.lower().startswith(("onnx2tf-", "tensorflowjs-", "tensorflow-"))}
    return " ".join(f"{k} {v}" for k, v in sorted(found.items()))


def _node_tfjs_version() -> str:
    import json
    import subprocess

    from .locate import node_modules

    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    tfjs = json.loads((node_modules() / "@tensorflow/tfjs/package.json").read_text())["version"]
    return f"@tensorflow/tfjs {tfjs} on node {node}"


def _chromium_version() -> str:
    from .locate import chromium_version

    return chromium_version()


_VERSION_OF = {"tfjs-converter": _tfjs_converter_version, "node-tfjs": _node_tfjs_version, "chromium": _chromium_version}


def require(name: str, needed_for: str = ""):
    """Import and return the toolchain's module, or raise ToolchainMissing with the install command."""
    tc = TOOLCHAINS[name]
    if not available(name):
        why = f" (needed for {needed_for})" if needed_for else ""
        raise ToolchainMissing(f"{tc.name} is not installed{why}", hint=tc.install)
    return _find_binary(tc) if tc.binary else importlib.import_module(tc.module)


def versions(names) -> dict[str, str | None]:
    return {n: version(n) for n in names}
