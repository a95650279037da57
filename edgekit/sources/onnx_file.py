"""`.onnx` model source: checked for escaping external data, then described from its graph.

Input shapes are the model's own when static; symbolic dims need `--input NAME:SHAPE`
(edgekit.sources.input_spec) and are never silently set to 1. A range there (`[1..128]`) keeps
the dim dynamic (edgekit.sources.dynamic): the example sits at its opt size.

The reference for verification is the same file on ONNX Runtime with all graph optimizations
off (the closest thing to "the model as given"); the manifest records that.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..errors import ModelSourceError
from .model import ModelSource, random_like
from .safety import check_onnx_file

_ONNX_TO_NUMPY = {1: "float32", 10: "float16", 11: "float64", 7: "int64", 6: "int32", 3: "int8", 2: "uint8",
                  9: "bool"}


def input_dims(model, path: Path) -> list[tuple[str, list, str]]:
    """(name, dims, numpy dtype) of each real input (initializers that are also listed as inputs are
    not inputs); a dim is an int when fixed, else its symbolic name (or "?")."""
    inits = {i.name for i in model.graph.initializer}
    out = []
    for i in model.graph.input:
        if i.name in inits:
            continue
        tt = i.type.tensor_type
        dtype = _ONNX_TO_NUMPY.get(tt.elem_type)
        if dtype is None:
            raise ModelSourceError(f"{path}: input {i.name!r} has an unsupported element type {tt.elem_type}")
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or "?")
                for d in tt.shape.dim]
        out.append((i.name, dims, dtype))
    return out


def resolved_shapes(model, path: Path, inputs: list[str] | None) -> dict[str, tuple[tuple[int, ...], str]]:
    """{input name: (shape to compile at, dtype)}: the model's own static shapes, or the user's
    --input specs; symbolic dims without a spec are a usage error (never a made-up 1)."""
    from .input_spec import check_names, parse_inputs, resolve_shape

    specs = parse_inputs(inputs)
    found = input_dims(model, path)
    check_names(path, [n for n, _, _ in found], specs)
    return {n: (resolve_shape(path, n, dims, dtype, specs), dtype) for n, dims, dtype in found}


def load_onnx(path: Path, inputs: list[str] | None = None) -> ModelSource:
    from .input_spec import dynamic_dims, parse_inputs

    model = check_onnx_file(path)  # parsed once: refused here if unreadable or unsafe
    dims = dynamic_dims(path, input_dims(model, path), parse_inputs(inputs))
    example = {}
    for name, (shape, dtype) in resolved_shapes(model, path, inputs).items():
        example[name] = np.zeros(shape, dtype=dtype) if dtype != "float32" else \
            np.random.default_rng(0).standard_normal(shape).astype("float32")
    for name, a in example.items():
        if a.dtype.kind in "iu":  # token-id-like inputs: a small range any vocabulary has
            example[name] = np.random.default_rng(1).integers(0, 100, a.shape).astype(a.dtype)
    h = hashlib.sha256(path.read_bytes()).hexdigest()
    return ModelSource(
        name=path.stem, spec=str(path), kind="onnx", sha256=h, example=example, onnx_path=path.resolve(),
        output_names=[o.name for o in model.graph.output],
        verify_inputs=random_like(example, 16, seed=20261127), verify_data="random", dynamic=dims,
    )
