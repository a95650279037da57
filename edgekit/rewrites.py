"""Known rewrites for operators edge toolchains commonly refuse: the "what to try" of an error.

This list is hand-kept (the toolchains publish no such advice); last checked 2026-11-28 against
torch 2.13, litert-torch 0.10, executorch 1.5.1, onnxruntime 1.24. tests/test_check.py runs each
gallery model through the real toolchains, so a rewrite that stops being needed shows up there.
"""
from __future__ import annotations

# (what the finding mentions, the advice). First match wins; match on the op name or the reason.
REWRITES: tuple[tuple[str, str], ...] = (
    ("data-dependent", "replace the Python `if` on tensor values with torch.where(cond, a, b) (computes both "
                       "branches) or torch.cond(pred, true_fn, false_fn, operands)"),
    ("aten.nonzero", "keep shapes static: use a mask (x * (x > 0), torch.where) instead of gathering indices "
                     "whose count depends on the data"),
    ("dim_order", "the output's size depends on the data (e.g. torch.nonzero, boolean indexing); keep shapes "
                  "static with a mask"),
    ("aten.cumsum", "write the cumulative sum as a matmul with a triangular matrix: "
                    "x @ torch.triu(torch.ones(n, n)) for a cumsum over the last dimension of size n"),
    ("bfloat16", "export in float32 (model.float()) and let the target's precision (fp32/int8) choose"),
    ("float64", "use float32 (model.float(), x.float()): edge runtimes have few or no float64 kernels"),
    ("double", "use float32 (model.float(), x.float()): edge runtimes have few or no float64 kernels"),
)


def suggest(op: str, why: str) -> str | None:
    text = f"{op} {why}"
    for key, advice in REWRITES:
        if key in text:
            return advice
    return None
