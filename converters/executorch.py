"""PyTorch -> ExecuTorch program (`.pte`) lowered to the XNNPACK backend, FP32, FP16 or INT8 (PT2E).

FP16 is the model cast to float16 (weights and arithmetic; XNNPACK runs float16 natively on Arm
CPUs with it, and emulates it elsewhere) inside a program whose inputs and outputs stay float32
(Float16Inside below), so apps and runners feed it as they feed the FP32 program.

Operators XNNPACK cannot take stay on ExecuTorch's portable kernels (correct, much slower); the
converter records how many nodes were delegated so a partial lowering is visible in the manifest.
"""
from __future__ import annotations

from pathlib import Path

from . import ConvertResult, Converter, torch_args, torch_dynamic_shapes, torch_source
from .pt2e import has_convolutions, int8_step


def _quantizer(dynamic: bool):
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer, get_symmetric_quantization_config)

    return XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=dynamic))


def _kernel_names() -> set[str]:
    """'aten::cumsum' etc.: the operators this ExecuTorch runtime build registers kernels for."""
    from executorch.extension.pybindings.portable_lib import _get_operator_names

    return {n.split(".")[0] for n in _get_operator_names()}


def _kernel_name(op: str) -> str:
    ns, _, rest = op.partition(".")
    return f"{ns}::{rest.rsplit('.', 1)[0]}"


def coverage(delegated_nodes: list, other_nodes: list) -> dict:
    """Share of operators and of FLOPs on XNNPACK; the ops left on portable kernels, counted."""
    from edgekit.graphops import is_bookkeeping, node_flops, op_name

    def compute(nodes):
        return [n for n in nodes if n.op == "call_function" and not is_bookkeeping(op_name(n.target))
                and "call_delegate" not in str(n.target)]

    inside, outside = compute(delegated_nodes), compute(other_nodes)
    f_in, f_out = sum(map(node_flops, inside)), sum(map(node_flops, outside))
    left: dict[str, int] = {}
    for n in outside:
        left[op_name(n.target)] = left.get(op_name(n.target), 0) + 1
    total = len(inside) + len(outside)
    return {"backend": "xnnpack", "ops_total": total, "ops_delegated": len(inside),
            "ops_share": round(len(inside) / total, 4) if total else None,
            "flops_total": f_in + f_out, "flops_share": round(f_in / (f_in + f_out), 4) if f_in + f_out else None,
            "not_delegated": left}


def _delegation(program) -> dict:
    """Coverage of the lowered program: nodes inside XNNPACK subgraphs vs nodes left outside."""
    gm = program.exported_program().graph_module
    lowered = [m for _, m in gm.named_children() if hasattr(m, "original_module")]
    inside = [n for m in lowered for n in m.original_module.graph.nodes]
    cov = coverage(inside, list(gm.graph.nodes))
    cov["xnnpack_subgraphs"] = len(lowered)
    return cov


# Messages that blame the model, not the toolchain (anything else makes the check say "unknown").
_MODEL_PROBLEMS = ("not in Core ATen opset", "dim_order", "data-dependent", "Unsupported")


def _edge_program(exported, partitioner):
    """The edge program exactly as to_edge_transform_and_lower builds it before lowering: the ops
    XNNPACK asks to keep (e.g. max_pool2d, linear) are not decomposed. That step is private API in
    ExecuTorch 1.5; if it moves, plain to_edge is used (a few ops then look less delegable)."""
    from executorch.exir import EdgeCompileConfig, to_edge

    try:
        from executorch.exir.program._program import _gen_edge_manager_for_partitioners
    except ImportError:
        return to_edge(exported).exported_program()
    return _gen_edge_manager_for_partitioners({"forward": [partitioner]}, {"forward": exported},
                                              EdgeCompileConfig(), None).exported_program()


def preflight(ctx) -> dict:
    """XNNPACK's own partitioner on the edge program decides what is delegated; what is left must
    have a kernel in this runtime build (its registry), or the program fails to load."""
    refused = ctx.needs_torch("ExecuTorch")
    if refused:
        return refused
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from edgekit.graphops import list_ops, ops_in_text, source_in_text
    from edgekit.errors import root_cause

    table = "XnnpackPartitioner decisions + the ExecuTorch runtime's kernel registry (pip build)"
    try:
        edge = _edge_program(ctx.exported, XnnpackPartitioner())
    except Exception as e:  # e.g. "Failed to map a given dim_order" on a data-dependent shape
        named = ops_in_text(str(e), ctx.ops)
        src = source_in_text(str(e)) or (named[0]["source"] if named else None)
        if not (named or src or any(k in str(e) for k in _MODEL_PROBLEMS)):
            return {"status": "unknown", "unsupported": [], "not_accelerated": [], "table": table,
                    "error": f"ExecuTorch's edge program could not be built for the check: {root_cause(e)}"}
        return ctx.verdict([{"op": named[0]["op"] if named else "-", "node": named[0]["node"] if named else "",
                             "source": src, "why": f"ExecuTorch to_edge failed: {root_cause(e)}"}], table=table)
    tagged = XnnpackPartitioner().partition(edge).tagged_exported_program
    nodes = [n for n in tagged.graph.nodes if n.op == "call_function"]
    inside = [n for n in nodes if n.meta.get("delegation_tag")]
    outside = [n for n in nodes if not n.meta.get("delegation_tag")]
    kernels = _kernel_names()
    left = {o["node"]: o for o in list_ops(tagged.graph)}
    unsupported, slow = [], []
    for n in outside:
        o = left.get(n.name)
        if o is None:
            continue
        if _kernel_name(o["op"]) in kernels:
            slow.append({**o, "why": "not taken by XNNPACK; runs on a portable (reference) kernel"})
        else:
            unsupported.append({**o, "why": f"no ExecuTorch kernel for {_kernel_name(o['op'])} in this runtime "
                                            "and XNNPACK does not take it: the program would fail to load"})
    return ctx.verdict(unsupported, slow, table=table, extra={"coverage": coverage(inside, outside)})


# A layer kept float reads its input unquantized, so the INT8 layer producing that input ends in
# a float output: XNNPACK does not take such a layer, and ExecuTorch's portable kernels have no
# dequantize_per_channel for its weights ("Missing out variants"; measured on awkward.py:outlier).
MIXED_UNSUPPORTED = ("not for ExecuTorch yet: an INT8 layer whose reader is kept float has a float output, "
                     "which XNNPACK does not take and the portable runtime cannot dequantize")


def _float16_inside(module):
    import copy

    import torch

    class Float16Inside(torch.nn.Module):
        """float32 in, float16 inside, float32 out. The input cast goes through a flat view: cast on a
        4-D tensor with one channel, ExecuTorch 1.5 plans a channels-last copy whose dim order the
        runtime then rejects (measured on builtin:digits: "_to_dim_order_copy.out: 0x12")."""

        def __init__(self, inner):
            super().__init__()
            self.inner = copy.deepcopy(inner).half()

        def forward(self, *xs):
            out = self.inner(*[x.reshape(-1).half().reshape(x.shape) if x.is_floating_point() else x for x in xs])
            if isinstance(out, (tuple, list)):
                return tuple(o.float() if o.is_floating_point() else o for o in out)
            return out.float() if out.is_floating_point() else out

    return Float16Inside(module).eval()


def convert(work, candidate, out_path: Path) -> ConvertResult:
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    src = torch_source(work, "ExecuTorch")
    # Dynamic dims stay symbolic with their bounds (torch.export.Dim); XNNPACK resizes its
    # subgraphs to each call's shapes, within the bounds the program was lowered with.
    dynamic_shapes = torch_dynamic_shapes(src.example, src.dynamic)
    module, _, qinfo = int8_step(work, src, candidate, "ExecuTorch", src.module, src.example, _quantizer,
                                 dynamic_unsupported=has_convolutions, mixed_precision=MIXED_UNSUPPORTED,
                                 dynamic_shapes=dynamic_shapes)
    info: dict = {"name": "executorch", "backend": "xnnpack", **qinfo}
    if candidate.precision == "fp16":
        module = _float16_inside(module)
        info["fp16"] = {"weights": "float16", "arithmetic": "fp16",
                        "compute": "float16 (XNNPACK; native on Arm CPUs with float16, emulated on x86-64)",
                        "io": "float32"}
    with torch.no_grad():
        exported = torch.export.export(module, torch_args(src.example), dynamic_shapes=dynamic_shapes)
    if candidate.precision == "fp16" and has_convolutions(exported.graph_module):
        # ExecuTorch's XNNPACK conv2d serializer defines filters and biases with force_fp32=True
        # (backends/xnnpack/operators/op_conv2d.py): float16 conv weights are written float32 and
        # XNNPACK converts them when it packs the layer. EfficientNet-Lite0's .pte: 0.86 of FP32,
        # only the Linear classifier halved.
        info["fp16"]["weights"] = ("float16 except convolution filters and biases, which ExecuTorch's "
                                   "XNNPACK serializer stores float32 (converted to float16 at load)")
    edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
    res = ConvertResult(info)
    try:
        res.delegation = _delegation(edge)
    except Exception as e:  # noqa: BLE001 — a metric; never lose the artifact over it
        res.delegation = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
    program = edge.to_executorch()
    with open(out_path, "wb") as f:
        program.write_to_file(f)
    return res


# FP32 keeps dynamic dims; PT2E's static INT8 failed on BERT's symbolic views (KeyError: view): buckets then.
CONVERTER = Converter(name="executorch", format="pte", suffix=".pte", toolchains=("torch", "executorch"),
                      convert=convert, preflight=preflight, shape_support="try",
                      qat=True)
