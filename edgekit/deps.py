"""Toolchains edgekit can use: how to find their version and the exact command that installs them.

Heavy toolchains are only ever imported inside functions, after `require()` says they exist,
so `import edgekit` and the on-device loader need nothing but numpy.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass

from .errors import ToolchainMissing


@dataclass(frozen=True)
class Toolchain:
    name: str  # what edgekit calls it
    module: str  # the import that proves it is usable
    dist: str  # the PyPI distribution whose version we record
    install: str  # the exact command that installs it
    purpose: str


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
        Toolchain("ray", "ray", "ray", "pip install 'edgekit[sweep]'",
                  "`edgekit sweep --ray ADDRESS`: runs sweep cells on a Ray cluster"),
        Toolchain("builtin-models", "sklearn", "scikit-learn", "pip install 'edgekit[builtin]'",
                  "built-in models and their data (digits, photos, MiniLM)"),
    ]
}


def available(name: str) -> bool:
    try:
        return importlib.util.find_spec(TOOLCHAINS[name].module) is not None
    except (ImportError, ValueError):  # a broken or partial install counts as missing
        return False


def version(name: str) -> str | None:
    try:
        return importlib.metadata.version(TOOLCHAINS[name].dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def require(name: str, needed_for: str = ""):
    """Import and return the toolchain's module, or raise ToolchainMissing with the install command."""
    tc = TOOLCHAINS[name]
    if not available(name):
        why = f" (needed for {needed_for})" if needed_for else ""
        raise ToolchainMissing(f"{tc.name} is not installed{why}", hint=tc.install)
    return importlib.import_module(tc.module)


def versions(names) -> dict[str, str | None]:
    return {n: version(n) for n in names}
