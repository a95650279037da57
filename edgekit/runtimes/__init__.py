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
}


def runner_class(name: str) -> type[Runner]:
    if name not in RUNTIMES:
        raise UsageError(f"unknown runtime {name!r}{did_you_mean(name, list(RUNTIMES))}")
    module, cls, _ = RUNTIMES[name]
    return getattr(importlib.import_module(module), cls)


def toolchain_of(name: str) -> str:
    return RUNTIMES[name][2]
