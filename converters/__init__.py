"""Converters: one file per converter, listed in CONVERTER_MODULES below (the list is the registry).

A converter runs in a child process (edgekit.isolate) because native toolchains crash. It gets the
prepared work folder (edgekit.work.Work: the source model, its ONNX export, reference data) and
writes one artifact file or folder. Add one: a new file here that ends with

    CONVERTER = Converter(name=..., format=..., suffix=..., toolchains=(...), convert=convert,
                          preflight=preflight)

(`convert(work, candidate, out_path) -> ConvertResult`; `preflight(ctx) -> dict` says which ops its
toolchain cannot take, from the toolchain's own tables: edgekit.opcheck), and its module name in
CONVERTER_MODULES. A converter outside the repository is the same file named in EDGEKIT_PLUGINS
(edgekit.plugins). Then a target profile (targets/) names it in a Candidate.
"""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field, fields
from typing import Callable

# Modules of this package that define CONVERTER (or CONVERTERS, several records of one module).
CONVERTER_MODULES = ["onnx_ort", "torchscript", "litert", "executorch", "tvm", "tensorrt", "coreml", "tfjs"]


@dataclass(frozen=True)
class Converter:
    """What one converter is: the contract every part of edgekit reads, declared in one place."""

    name: str  # what a target's Candidate names
    format: str  # the artifact's format in the manifest ("onnx", "tflite", "pte", ...)
    suffix: str  # the artifact file's (or folder's) suffix
    toolchains: tuple[str, ...]  # edgekit.deps names it needs on the host; the last one names it in errors
    convert: Callable  # (work, candidate, out_path) -> ConvertResult; runs in a child process
    preflight: Callable | None = None  # (edgekit.opcheck.OpContext) -> verdict dict, before any conversion
    # Which sources it takes: the ONNX export (any source, PyTorch or .onnx) or the PyTorch module itself.
    needs_onnx: bool = False
    # How its artifacts take a model's dynamic dims: "dynamic" keeps them symbolic with their bounds;
    # "try" does where the toolchain can lower the model's ops so, else falls back to shape buckets;
    # "buckets" always builds one static artifact per verification shape (edgekit.steps.build_buckets).
    # Verification at every shape decides either way.
    shape_support: str = "buckets"
    # It fine-tunes its INT8 graph with `compile --qat` (quantization-aware, converters/qat.py).
    qat: bool = False

    @property
    def source_kinds(self) -> tuple[str, ...]:
        return ("torch", "onnx") if self.needs_onnx else ("torch",)


@dataclass
class ConvertResult:
    """What convert() returns. The typed fields are the ones the pipeline acts on; `details` is the
    converter's own record (fusions applied, quantization numbers ...), kept in the manifest as is.
    to_dict() is the artifact's `converter` record in manifest.json."""

    details: dict = field(default_factory=dict)
    input_layout: dict | None = None  # {input: "NHWC"}: the artifact takes these inputs channel-last
    artifact_io: dict | None = None  # the file's own tensors when they differ from the model's
    delegation: dict | None = None  # the share of FLOPs an accelerated backend (XNNPACK) takes
    runs_on: dict | None = None  # {"arch", "gpu", "os", "runtime"}: another machine runs it
    deferred: dict | None = None  # a step the device must run first (TensorRT's engine build)
    host_check: dict | None = None  # the prepared graph's numerics on another runtime here
    artifact_checks: dict | None = None  # file-level checks where the artifact cannot run here
    shape_support: str | None = None  # how dynamic dims were kept (dynamic, or buckets and why)
    buckets: list | None = None  # one static artifact per shape (edgekit.runtimes.buckets)

    def to_dict(self) -> dict:
        typed = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "details"}
        return {**self.details, **{k: v for k, v in typed.items() if v is not None}}


def _builtin() -> list[Converter]:
    out = []
    for m in CONVERTER_MODULES:
        mod = importlib.import_module(f"{__name__}.{m}")
        out += [mod.CONVERTER] if hasattr(mod, "CONVERTER") else list(mod.CONVERTERS)
    return out


def all_converters() -> dict[str, Converter]:
    """name -> Converter: the built-in ones, then plug-ins (EDGEKIT_PLUGINS)."""
    from ..plugins import exported, merged

    return merged({c.name: c for c in _builtin()}, exported("CONVERTER", "CONVERTERS"), lambda c: c.name, "converter")


def get(name: str) -> Converter:
    from ..errors import UsageError, did_you_mean

    found = all_converters()
    if name not in found:
        raise UsageError(f"unknown converter {name!r}{did_you_mean(name, list(found))}; converters: "
                         + ", ".join(found))
    return found[name]


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
        from ..samples import load_samples

        src.example = load_samples(work.dir / "example.npz")[0][0]
    if work.point:  # one static shape bucket of a dynamic model: its example and calibration at that shape
        from ..sources.dynamic import at_point

        src.example = at_point(src.example, src.dynamic, work.point)
        src.calib_inputs = [at_point(s, src.dynamic, work.point) for s in src.calib_inputs]
        src.dynamic = []
    return src
