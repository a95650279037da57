"""ONNX -> an ONNX Runtime artifact: the exported graph with ONNX Runtime's transformer fusions.

onnxscript's `optimize_for_ort` rewrites attention, layer-norm and GELU patterns of dynamo
exports into ORT's fused kernels (Attention, SkipLayerNormalization, BiasGelu ...). ORT's older
`onnxruntime.transformers.optimizer` finds no attention in dynamo exports, so it is not used.
The fused graph uses com.microsoft ops: it runs on ONNX Runtime only, which is this artifact's
runtime. Hardware-specific layout optimizations are left to session creation on the device.
"""
from __future__ import annotations

import shutil
from pathlib import Path


def convert(work, candidate, out_path: Path) -> dict:
    import onnx_ir as ir

    info: dict = {"name": "onnx-ort", "fusions": {}}
    if not candidate.options.get("fuse", True):
        shutil.copyfile(work.onnx_path, out_path)
        return info
    from onnxscript.rewriter.ort_fusions import optimize_for_ort

    model = ir.load(str(work.onnx_path))
    try:
        model, counts = optimize_for_ort(model)
    except Exception as e:  # a rewriter bug must not cost the user the artifact: ship it unfused, say so
        info["fusion_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
        shutil.copyfile(work.onnx_path, out_path)
        return info
    info["fusions"] = {k: int(v) for k, v in counts.items() if v}
    ir.save(model, str(out_path))
    return info
