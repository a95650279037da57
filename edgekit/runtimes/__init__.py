"""Runtimes that load and run an artifact: one file each, listed in this one table.

A runner needs numpy and its own runtime, nothing else (no torch), so the same code runs on a
device. Add a runtime: a new file with a `Runner` subclass and one line here.
"""
from __future__ import annotations

import importlib

from ..errors import UsageError, did_you_mean
from .base import Runner

# runtime name -> (module, class, toolchain name in edgekit.deps)
RUNTIMES: dict[str, tuple[str, str, str]] = {
    "onnxruntime": ("edgekit.runtimes.onnxruntime", "OrtRunner", "onnxruntime"),
    "torchscript-lite": ("edgekit.runtimes.torchscript_lite", "TorchScriptLiteRunner", "torch"),
}


def runner_class(name: str) -> type[Runner]:
    if name not in RUNTIMES:
        raise UsageError(f"unknown runtime {name!r}{did_you_mean(name, list(RUNTIMES))}")
    module, cls, _ = RUNTIMES[name]
    return getattr(importlib.import_module(module), cls)


def open_runner(runtime: str, path, threads=None, inputs=None, outputs=None) -> Runner:
    """Load an artifact on its runtime, naming its tensors from the manifest where the format can't."""
    r = runner_class(runtime)(path, threads=threads)
    return r.bind(inputs, outputs) if inputs is not None else r


def toolchain_of(name: str) -> str:
    return RUNTIMES[name][2]
