"""PyTorch -> ExecuTorch program (`.pte`) lowered to the XNNPACK backend, FP32 or INT8 (PT2E).

Operators XNNPACK cannot take stay on ExecuTorch's portable kernels (correct, much slower); the
converter records how many nodes were delegated so a partial lowering is visible in the manifest.
"""
from __future__ import annotations

from pathlib import Path

from . import torch_args, torch_source
from .pt2e import has_convolutions, int8_step


def _quantizer(dynamic: bool):
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer, get_symmetric_quantization_config)

    return XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=dynamic))


def _delegation(program) -> dict:
    """Count call_delegate nodes vs other compute nodes left in the lowered graph."""
    graph = program.exported_program().graph
    calls = [n for n in graph.nodes if n.op == "call_function"]
    delegated = sum(1 for n in calls if "call_delegate" in str(n.target))
    left = sorted({getattr(n.target, "__name__", str(n.target)) for n in calls
                   if "call_delegate" not in str(n.target) and "getitem" not in str(n.target)})
    return {"xnnpack_subgraphs": delegated, "ops_not_delegated": left}


def convert(work, candidate, out_path: Path) -> dict:
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    src = torch_source(work, "ExecuTorch")
    module, _, qinfo = int8_step(work, src, candidate, "ExecuTorch", src.module, src.example, _quantizer,
                                 dynamic_unsupported=has_convolutions)
    info: dict = {"name": "executorch", "backend": "xnnpack", **qinfo}
    with torch.no_grad():
        exported = torch.export.export(module, torch_args(src.example))
    edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
    info["delegation"] = _delegation(edge)
    program = edge.to_executorch()
    with open(out_path, "wb") as f:
        program.write_to_file(f)
    return info
