"""ONNX -> an ONNX Runtime artifact: the exported graph with ONNX Runtime's transformer fusions.

onnxscript's `optimize_for_ort` rewrites attention, layer-norm and GELU patterns of dynamo
exports into ORT's fused kernels (Attention, SkipLayerNormalization, BiasGelu ...). ORT's older
`onnxruntime.transformers.optimizer` finds no attention in dynamo exports, so it is not used.
The fused graph uses com.microsoft ops: it runs on ONNX Runtime only, which is this artifact's
runtime. Hardware-specific layout optimizations are left to session creation on the device.
INT8 candidates go through ONNX Runtime's quantizer instead (ort_int8.py); FP16 ones convert the
fused graph (ort_fp16.py).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from . import ConvertResult, Converter
from .ort_kernels import cpu_kernels, ort_version


def convert(work, candidate, out_path: Path) -> ConvertResult:
    if candidate.precision == "int8":
        from .ort_int8 import quantize

        return ConvertResult(quantize(work, out_path))
    if candidate.precision == "fp16":  # the fused FP32 graph first, then its float16 form (ort_fp16.py)
        from .ort_fp16 import convert as to_fp16

        fused = out_path.with_name(out_path.name + ".fp32")
        info = _fp32(work, candidate, fused)
        try:
            info["fp16"] = to_fp16(fused, out_path)
        finally:
            fused.unlink(missing_ok=True)
        return ConvertResult(info)
    return ConvertResult(_fp32(work, candidate, out_path))


def _fp32(work, candidate, out_path: Path) -> dict:
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


def preflight(ctx) -> dict:
    """Every node of the ONNX export against ONNX Runtime's CPU kernel registry (op, opset, dtype)."""
    if ctx.onnx_error:
        return ctx.failed_before("ONNX export (torch.onnx.export, dynamo)", ctx.onnx_error)
    import onnx_ir as ir

    from edgekit.graphops import user_frame

    model = ir.load(str(ctx.onnx_path))
    kernels, first_input = cpu_kernels()
    local_functions = {(f.domain, f.name) for f in model.functions.values()}
    unsupported = []
    for node in model.graph.all_nodes() if hasattr(model.graph, "all_nodes") else model.graph:
        domain = node.domain or "ai.onnx"
        opset = model.opset_imports.get(node.domain or "", model.opset_imports.get(domain, 1))
        if node.op_type == "Constant" or (node.domain, node.op_type) in local_functions \
                or _expanded_by_ort(node.op_type, opset, node.domain):
            continue  # no kernel needed: a stored tensor, or a function ORT inlines into kernels it has
        rows = [r for r in kernels.get((domain, node.op_type), []) if r[0] <= opset <= r[1]]
        dtype = node.inputs[0].dtype.name.lower() if node.inputs and node.inputs[0] is not None \
            and node.inputs[0].dtype is not None else None
        why = None
        if not rows:
            why = f"ONNX Runtime has no CPU kernel for {node.op_type} (opset {opset})"
        elif dtype:
            constraint = first_input.get((domain, node.op_type))
            allowed = sorted({t for r in rows for t in r[2].get(constraint, [])}) if constraint in rows[0][2] else None
            if allowed is not None and f"tensor({dtype})" not in allowed:
                why = (f"ONNX Runtime's CPU {node.op_type} takes {', '.join(a[7:-1] for a in allowed)}, "
                       f"not {dtype}")
        if why:
            meta = node.metadata_props
            fx = meta.get("pkg.torch.onnx.fx_node", "")
            unsupported.append({"op": f"{node.op_type} (from {fx.split('target=')[-1].split(']')[0]})" if fx
                                else node.op_type, "node": node.name,
                                "source": user_frame(meta.get("pkg.torch.onnx.stack_trace")), "why": why})
    return ctx.verdict(unsupported, table=f"onnxruntime {ort_version()} CPU kernel registry "
                                          "(onnxruntime.capi get_all_opkernel_def)")


def _expanded_by_ort(op_type: str, opset: int, domain: str) -> bool:
    """ONNX ops defined as functions (HardSwish, Mish, GroupNormalization ...) run without a kernel
    of their own: ONNX Runtime expands them into the ops of their body."""
    import onnx

    try:
        schema = onnx.defs.get_schema(op_type, max_inclusive_version=opset, domain=domain or "")
    except Exception:  # noqa: BLE001 — not an ONNX-defined op (e.g. com.microsoft): the registry decides
        return False
    return bool(schema.has_function or schema.has_context_dependent_function)


CONVERTER = Converter(name="onnx-ort", format="onnx", suffix=".onnx", toolchains=("onnx", "onnxscript", "onnxruntime"),
                      convert=convert, preflight=preflight, needs_onnx=True, shape_support="dynamic")
