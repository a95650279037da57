"""PyTorch -> LiteRT/TFLite flatbuffer (`.tflite`) with litert-torch, FP32, FP16 or INT8 (PT2E).

FP16 is LiteRT's float16 quantization (litert-torch's fp16 recipe, applied by ai-edge-quantizer):
float16 weights, each behind a Dequantize op. CPU kernels dequantize them to float32 once when the
interpreter prepares (so the arithmetic is float32 and the speed FP32's); the GPU delegate, and
XNNPACK where the CPU has native float16, compute in float16. The file is about half the size.

Inputs keep the model's layout (NCHW for vision models) unless the candidate asks for
`layout: nhwc`: then 4-D inputs become channel-last (litert_torch.to_channel_last_io), which is what
Android camera pipelines hand over; the artifact records which inputs are NHWC so every runner and
the app package transpose (or not) knowingly. 64-bit integer inputs (token ids) become int32
in the flatbuffer (LiteRT's default); the runner converts and refuses values that do not fit.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from . import ConvertResult, Converter, torch_args, torch_dynamic_shapes, torch_source
from .pt2e import int8_step


def _quantizer(dynamic: bool):
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config

    return PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=dynamic))


@contextmanager
def fx_names_in_tensor_names():
    """litert-torch names each tensor after the nn.Module path of the ops that made it; the torch.export
    node names (conv2d_1, relu_1: what `edgekit debug` lines tensors up by, and what the source's
    stack traces belong to) are dropped when the flatbuffer is written. Prefixed to that name as
    `fx:NODE|`, they stay. Numerics and ops are unchanged (a few bytes of names per tensor). A private
    hook of litert-torch 0.10 (backend.debuginfo.build_mlir_debuginfo): where it is missing, the
    artifact is written as before and debug matches layers by module path only. Yields whether it applied."""
    try:
        from litert_torch.backend import debuginfo
    except ImportError:
        yield False
        return
    plain, node_name = getattr(debuginfo, "build_mlir_debuginfo", None), getattr(debuginfo, "build_nodename_debuginfo", None)
    if plain is None or node_name is None:
        yield False
        return

    def with_node(node):
        where, name = plain(node), node_name(node)
        return f"fx:{name}|{where if where is not None else ';'}" if name else where

    debuginfo.build_mlir_debuginfo = with_node
    try:
        yield True
    finally:
        debuginfo.build_mlir_debuginfo = plain


def convert(work, candidate, out_path: Path) -> ConvertResult:
    import litert_torch
    import torch
    from litert_torch.quantize.quant_config import QuantConfig

    src = torch_source(work, "LiteRT")
    module, example = src.module, src.example
    info: dict = {"name": "litert-torch", "layout": "as the model (NCHW for images)"}
    res = ConvertResult(info)
    # compile_model has refused --layout nhwc for a model without 4-D inputs
    nhwc = [n for n, a in example.items() if a.ndim == 4] if candidate.options.get("layout") == "nhwc" else []

    def to_artifact(sample: dict) -> dict:
        return {n: (a.transpose(0, 2, 3, 1).copy() if n in nhwc else a) for n, a in sample.items()}

    if nhwc:
        names = list(example)
        module = litert_torch.to_channel_last_io(module, args=[names.index(n) for n in nhwc])
        module.training = False  # the wrapper only; the source is in eval mode (a .pt2 one refuses .eval())
        example = to_artifact(example)
        info["layout"] = "NHWC"
        res.input_layout = {n: "NHWC" for n in nhwc}
    # Dynamic dims stay symbolic where litert-torch can lower the ops around them (convolutions, pooling
    # and linear layers can; a symbolic reshape, e.g. an embedding lookup's, cannot): otherwise convert
    # raises and the caller builds shape buckets (edgekit.steps.build_candidate).
    dynamic_shapes = torch_dynamic_shapes(src.example, src.dynamic)
    if dynamic_shapes and nhwc:
        raise ValueError("channel-last inputs (--layout nhwc) with dynamic dims: litert-torch's layout wrapper "
                         "takes static shapes")
    module, quantizer, qinfo = int8_step(work, src, candidate, "LiteRT", module, example, _quantizer, to_artifact,
                                         fold_quantize=False, dynamic_shapes=dynamic_shapes)
    info.update(qinfo)
    config = QuantConfig(pt2e_quantizer=quantizer) if quantizer else None
    if candidate.precision == "fp16":
        from litert_torch.generative.quantize.quant_recipes import full_fp16_recipe

        config = full_fp16_recipe()
        info["fp16"] = {"weights": "float16 (Dequantize ops)", "arithmetic": "fp32",  # on this host's CPU kernels
                        "compute": "float32 on CPU kernels; float16 on GPU and on XNNPACK with native float16 "
                                   "(e.g. Armv8.2-A phones)", "io": "float32"}
    with torch.no_grad(), fx_names_in_tensor_names() as named:
        model = litert_torch.convert(module, torch_args(example), quant_config=config, dynamic_shapes=dynamic_shapes)
    info["tensor_names"] = "fx node + module path" if named else "module path"
    model.export(str(out_path))
    from edgekit.runtimes.litert import delegation_coverage

    try:
        # what the XNNPACK delegate takes at load time (at the example's shapes, for dynamic dims)
        res.delegation = delegation_coverage(out_path, [a.shape for a in example.values()])
    except Exception as e:  # noqa: BLE001 — a metric (private interpreter API); never lose the artifact over it
        res.delegation = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
    return res


def _is_dynamic(node) -> bool:
    """An output whose size depends on the data (an unbacked symbol, e.g. from torch.nonzero)."""
    from torch.fx.experimental.symbolic_shapes import free_unbacked_symbols

    from edgekit.graphops import node_values

    return any(free_unbacked_symbols(v.shape) for v in node_values(node) if hasattr(v, "shape"))


def preflight(ctx) -> dict:
    """litert-torch's own decomposition table, then its lowering registry, node by node; and LiteRT
    flatbuffers have static shapes, so an output whose size depends on the data cannot convert."""
    refused = ctx.needs_torch("LiteRT")
    if refused:
        return refused
    import litert_torch  # noqa: F401 — importing it completes both tables
    from litert_torch import fx_infra
    from litert_torch.backend.lowerings import lookup

    from edgekit.graphops import is_bookkeeping, list_ops, op_name

    ep = ctx.exported.run_decompositions(fx_infra.decomp.pre_lower_decomp())
    described = {o["node"]: o for o in list_ops(ep.graph)}
    unsupported = []
    for n in ep.graph.nodes:
        if n.op != "call_function" or n.name not in described or is_bookkeeping(op_name(n.target)):
            continue
        o = described[n.name]
        if _is_dynamic(n) and not any(_is_dynamic(a) for a in n.all_input_nodes):  # where it starts
            unsupported.append({**o, "why": "its output size depends on the input values; LiteRT needs static shapes"})
        elif "aten." in o["op"] and lookup(n.target) is None:
            unsupported.append({**o, "why": f"litert-torch has no lowering for {o['op']}"})
    return ctx.verdict(unsupported, table="litert-torch decompositions (pre_lower_decomp) + lowering registry")


CONVERTER = Converter(name="litert", format="tflite", suffix=".tflite", toolchains=("torch", "litert-torch"),
                      convert=convert, preflight=preflight, shape_support="try",
                      qat=True)
