"""Converters: one file per step, listed in this table.

A converter runs in a child process (edgekit.isolate) because native toolchains crash. It gets the
prepared work folder (edgekit.steps.Work: the source model, its ONNX export, reference data) and
writes one artifact file. Add one: a new file with `convert(work, candidate, out_path) -> dict`
and `preflight(ctx) -> dict` (edgekit.opcheck: which ops its toolchain cannot take, from the
toolchain's own tables), and a line here naming the toolchains it needs (edgekit.deps).
"""
from __future__ import annotations

import importlib
import re

# converter name -> (module, toolchains it needs, artifact format, file suffix, needs the ONNX export)
CONVERTERS: dict[str, tuple[str, tuple[str, ...], str, str, bool]] = {
    "onnx-ort": ("edgekit.converters.onnx_ort", ("onnx", "onnxscript", "onnxruntime"), "onnx", ".onnx", True),
    "torchscript": ("edgekit.converters.torchscript", ("torch",), "torchscript", ".ptl", False),
    "litert": ("edgekit.converters.litert", ("torch", "litert-torch"), "tflite", ".tflite", False),
    "executorch": ("edgekit.converters.executorch", ("torch", "executorch"), "pte", ".pte", False),
    # One TVM converter, three machines: this CPU, aarch64 Linux CPUs, and an NVIDIA GPU with an aarch64 host.
    "tvm": ("edgekit.converters.tvm", ("onnx", "tvm"), "tvm-module", ".so", True),
    "tvm-aarch64": ("edgekit.converters.tvm", ("onnx", "tvm", "aarch64-g++"), "tvm-module", ".so", True),
    "tvm-cuda": ("edgekit.converters.tvm", ("onnx", "tvm", "aarch64-g++", "nvcc"), "tvm-module", ".so", True),
    # The host half of TensorRT: a TensorRT-ready ONNX; the engine is built on the device (edgekit build).
    "tensorrt": ("edgekit.converters.tensorrt", ("onnx", "onnxscript", "onnxruntime"), "onnx", ".onnx", True),
    # Folder artifacts: a Core ML ML Program package; a TF.js graph model (model.json + weight shards).
    "coreml": ("edgekit.converters.coreml", ("torch", "coremltools"), "mlpackage", ".mlpackage", False),
    "tfjs": ("edgekit.converters.tfjs", ("onnx", "tfjs-converter"), "tfjs-graph-model", ".tfjs", True),
}


# How a converter's artifacts take a model's dynamic dims: "dynamic" keeps them symbolic with their
# bounds; "try" does where the toolchain can lower the model's ops so (litert-torch takes convolutions
# but not a symbolic reshape; onnx2tf most graphs), else falls back to shape buckets; a converter not
# listed always builds buckets: one static artifact per verification shape (edgekit.steps.build_buckets).
# Verification at every shape decides either way.
SHAPE_SUPPORT = {"onnx-ort": "dynamic", "tensorrt": "dynamic", "torchscript": "dynamic", "coreml": "try",
                 # ExecuTorch: FP32 keeps them; PT2E's static INT8 failed on BERT's symbolic views (KeyError: view)
                 "executorch": "try", "litert": "try", "tfjs": "try"}


def torch_args(sample: dict) -> tuple:
    """One sample as the positional tensors a PyTorch module takes (contiguous, owned memory)."""
    import numpy as np
    import torch

    return tuple(torch.from_numpy(np.ascontiguousarray(a).copy()) for a in sample.values())


def torch_dynamic_shapes(example: dict, dims) -> tuple | None:
    """torch.export's `dynamic_shapes` for the positional inputs: one torch.export.Dim per dynamic dim
    (shared by every input that has it), with its bounds; None when every shape is static.
    dims: DynamicDims, or their manifest dicts (work.info["dynamic"])."""
    if not dims:
        return None
    from torch.export import Dim

    from ..sources.dynamic import DynamicDim

    dims = [d if isinstance(d, DynamicDim) else DynamicDim.from_dict(d) for d in dims]
    per_input: dict[str, dict] = {n: {} for n in example}
    for d in dims:
        ident = re.sub(r"\W", "_", d.name)
        sym = Dim(ident if ident.isidentifier() else f"d_{ident}", min=d.lo, max=d.hi)
        for n, axis in d.uses:
            per_input[n][axis] = sym
    return tuple(per_input[n] or None for n in example)


def torch_source(work, converter: str):
    """The compile's source model, which must be a PyTorch one for `converter`. Sources come in
    eval mode already; `.eval()` is not called here because an exported (.pt2) module refuses it."""
    from ..sources import load_model

    src = load_model(work.info["source"], work.info.get("weights"))
    if src.kind != "torch":
        raise ValueError(f"the {converter} converter takes a PyTorch model (this source is ONNX)")
    src.dynamic = work.dims  # prepare's: a factory's, a built-in's, or --input ranges that replaced them
    if (work.dir / "example.npz").exists():  # prepare's example: --example, --input NAME=VALUE applied
        from ..steps import load_samples

        src.example = load_samples(work.dir / "example.npz")[0][0]
    if work.point:  # one static shape bucket of a dynamic model: its example and calibration at that shape
        from ..sources.dynamic import at_point

        src.example = at_point(src.example, src.dynamic, work.point)
        src.calib_inputs = [at_point(s, src.dynamic, work.point) for s in src.calib_inputs]
        src.dynamic = []
    return src


def converter_module(name: str):
    return importlib.import_module(CONVERTERS[name][0])


def toolchains(name: str) -> tuple[str, ...]:
    return CONVERTERS[name][1]
