"""PyTorch -> TorchScript Mobile (`.ptl`, the lite-interpreter format) via torch.jit.trace.

`optimize_for_mobile` is applied when the installed torch supports it; the PyPI CPU wheel of
torch 2.13 is built without XNNPACK and refuses ("Mobile optimization only available with
XNNPACK"), so the manifest records whether it was applied and why not.
"""
from __future__ import annotations

from pathlib import Path

from . import ConvertResult, Converter


def convert(work, candidate, out_path: Path) -> ConvertResult:
    import torch

    from . import torch_args, torch_source

    src = torch_source(work, "TorchScript Mobile")
    with torch.no_grad():
        traced = torch.jit.trace(src.module, torch_args(src.example), strict=False)
    applied, why = False, ""
    try:
        from torch.utils.mobile_optimizer import optimize_for_mobile

        traced = optimize_for_mobile(traced)
        applied = True
    except Exception as e:  # recorded, not hidden
        why = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
    traced._save_for_lite_interpreter(str(out_path))
    return ConvertResult({"name": "torchscript", "optimize_for_mobile": applied, "optimize_for_mobile_error": why or None})


def preflight(ctx) -> dict:
    """torch.jit.trace + the lite interpreter of this torch build run every ATen op; the risk is
    control flow: a trace records only the path the example input took."""
    if not ctx.is_torch:
        return ctx.needs_torch("TorchScript Mobile")
    table = "the lite interpreter is part of this torch build: every ATen operator has a kernel"
    err = ctx.export_error
    if err and err["kind"] == "data-dependent-control-flow":
        return ctx.verdict([], table=table, risks=[{
            "op": "data-dependent branch", "node": "", "source": err["source"],
            "why": "torch.jit.trace records only the branch the example input takes; the artifact computes that "
                   "branch for every input (verification on held-out data decides)"}])
    if err:
        return {"status": "unknown", "unsupported": [], "not_accelerated": [], "table": table,
                "error": f"torch.export failed ({err['error']}); torch.jit.trace may still trace it"}
    return ctx.verdict([], table=table)


CONVERTER = Converter(name="torchscript", format="torchscript", suffix=".ptl", toolchains=("torch",),
                      convert=convert, preflight=preflight, shape_support="dynamic")
