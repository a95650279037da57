"""Converters: one file per step, listed in this table.

A converter runs in a child process (edgekit.isolate) because native toolchains crash. It gets the
prepared work folder (edgekit.steps.Work: the source model, its ONNX export, reference data) and
writes one artifact file. Add one: a new file with `convert(work, candidate, out_path) -> dict`
and a line here naming the toolchains it needs (edgekit.deps).
"""
from __future__ import annotations

import importlib

# converter name -> (module, toolchains it needs, artifact format, file suffix, needs the ONNX export)
CONVERTERS: dict[str, tuple[str, tuple[str, ...], str, str, bool]] = {
    "onnx-ort": ("edgekit.converters.onnx_ort", ("onnx", "onnxscript", "onnxruntime"), "onnx", ".onnx", True),
    "torchscript": ("edgekit.converters.torchscript", ("torch",), "torchscript", ".ptl", False),
    "litert": ("edgekit.converters.litert", ("torch", "litert-torch"), "tflite", ".tflite", False),
    "executorch": ("edgekit.converters.executorch", ("torch", "executorch"), "pte", ".pte", False),
}


def converter_module(name: str):
    return importlib.import_module(CONVERTERS[name][0])


def toolchains(name: str) -> tuple[str, ...]:
    return CONVERTERS[name][1]
