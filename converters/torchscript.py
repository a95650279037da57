"""PyTorch -> TorchScript Mobile (`.ptl`, the lite-interpreter format) via torch.jit.trace.

`optimize_for_mobile` is applied when the installed torch supports it; the PyPI CPU wheel of
torch 2.13 is built without XNNPACK and refuses ("Mobile optimization only available with
XNNPACK"), so the manifest records whether it was applied and why not.
"""
from __future__ import annotations

from pathlib import Path


def convert(work, candidate, out_path: Path) -> dict:
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
    return {"name": "torchscript", "optimize_for_mobile": applied, "optimize_for_mobile_error": why or None}
