"""Where toolchains that are not plain Python imports live on this machine: the TF.js converter's
own venv, node_modules from `npm ci`, Chromium, the CUDA toolkit of NVIDIA's pip wheels.

Here, apart from the converters and runtimes that use them, because edgekit.deps needs them too to
say whether a toolchain is installed; deps importing those modules made import cycles.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the checkout (edgekit/..)


def tfjs_python() -> str | None:
    """The converter venv's Python: EDGEKIT_TFJS_PYTHON, else .venv-tfjs next to the checkout."""
    env = os.environ.get("EDGEKIT_TFJS_PYTHON")
    py = Path(env) if env else ROOT / ".venv-tfjs" / "bin" / "python"
    site = list(py.parents[1].glob("lib/python3*/site-packages/onnx2tf")) if py.is_file() else []
    return str(py) if site else None


def node_modules() -> Path:
    """Where `npm ci` put @tensorflow/tfjs: EDGEKIT_NODE_MODULES, else the checkout's node_modules."""
    env = os.environ.get("EDGEKIT_NODE_MODULES")
    return Path(env) if env else ROOT / "node_modules"


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def chromium_version() -> str:
    out = subprocess.run([chromium_binary(), "--version"], capture_output=True, text=True).stdout.split()
    return out[1] if len(out) > 1 else "present"


def cuda_home() -> str | None:
    """The CUDA toolkit to compile kernels with: the pip `nvidia-cuda-nvcc` wheel edgekit installs,
    else CUDA_PATH, else nvcc on PATH."""
    try:
        import nvidia

        for base in nvidia.__path__:
            for sub in sorted(Path(base).glob("cu*")):
                if (sub / "bin" / "nvcc").exists():
                    return str(sub)
    except ImportError:
        pass
    if os.environ.get("CUDA_PATH"):
        return os.environ["CUDA_PATH"]
    nvcc = shutil.which("nvcc")
    return str(Path(nvcc).resolve().parent.parent) if nvcc else None
