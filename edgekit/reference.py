"""Can the reference judge anything? Checks on the source model's own outputs, before any artifact
is compared with them.

Verification compares each artifact with the reference (the source model on the held-out inputs).
That comparison means nothing when the reference itself is broken, so:

- a reference that raises on the verification inputs is its own failure (ReferenceFailed, exit 14),
  not "conversion failed": nothing was converted yet;
- a reference that gives different outputs for the same input on two calls (state kept between
  calls, dropout or batch norm in training mode, random ops) is refused with advice: an artifact
  would be blamed for the reference's own drift ("outputs off in scale or value");
- a reference with NaN/Inf outputs on the verification inputs is refused;
- a degenerate reference (identical outputs for every input, or all below 1e-30 in magnitude) is
  flagged: verification cannot tell a right artifact from a wrong one, and every artifact's
  verification carries that caveat.
"""
from __future__ import annotations

import numpy as np

from .errors import ReferenceFailed

TINY = 1e-30


def reference_outputs(src, samples: list[dict], compute) -> list[dict]:
    """compute(src, samples) -> outputs, checked: raises ReferenceFailed when the reference fails,
    is not repeatable, or is not finite."""
    from .errors import root_cause

    what = _describe(src)
    try:
        refs = compute(src, samples)
        again = compute(src, samples[:1])[0] if samples else {}  # after all the others: state carried over shows
    except Exception as e:  # noqa: BLE001 - whatever the model raised, it is the model's failure
        raise ReferenceFailed(f"the reference ({what}) failed on the verification inputs ({src.verify_data}): "
                              f"{root_cause(e)}", hint=_input_hint(src)) from None
    drift = [k for k in again if not np.allclose(np.asarray(refs[0][k], np.float64), np.asarray(again[k], np.float64),
                                                 rtol=1e-5, atol=1e-6, equal_nan=True)]
    if drift:
        worst = max(float(np.abs(np.asarray(refs[0][k], np.float64) - np.asarray(again[k], np.float64)).max())
                    for k in drift)
        raise ReferenceFailed(
            f"the reference ({what}) gave different outputs for the same input on two calls (output(s) {drift}, "
            f"max difference {worst:.3g}): it keeps state between calls or is nondeterministic, so no artifact "
            "can be compared with it", hint="call model.eval() before returning it (dropout, batch norm); make any "
            "state an explicit input and output; remove random ops from forward()")
    bad = [k for k in refs[0] if not all(np.all(np.isfinite(r[k])) for r in refs if np.asarray(r[k]).dtype.kind == "f")]
    if bad:
        raise ReferenceFailed(f"the reference ({what}) gives NaN or Inf in output(s) {bad} on the verification inputs "
                              f"({src.verify_data}); no artifact can be compared with that", hint=_input_hint(src))
    return refs


def degenerate(refs: list[dict]) -> dict | None:
    """{"outputs": [...], "why": ...} when the reference cannot discriminate, else None."""
    constant, tiny = [], []
    for k in refs[0]:
        ys = np.stack([np.asarray(r[k], np.float64) for r in refs])
        if ys.size and np.abs(ys).max() < TINY:
            tiny.append(k)
        elif len(refs) > 1 and np.all(ys == ys[0]):
            constant.append(k)
    if not constant and not tiny:
        return None
    why = "; ".join(filter(None, [
        f"output(s) {constant} are identical for every one of the {len(refs)} verification inputs" if constant else "",
        f"output(s) {tiny} are all below {TINY:g} in magnitude" if tiny else ""]))
    return {"outputs": constant + tiny, "why": why,
            "caveat": f"the reference is degenerate ({why}): this verification cannot tell a right artifact from a "
                      "wrong one"}


def _describe(src) -> str:
    return "PyTorch eager" if src.kind == "torch" else "the ONNX file on ONNX Runtime"


def _input_hint(src) -> str:
    if src.verify_data == "random":
        return ("the verification inputs were made up (random, shaped like the example): give real ones, e.g. a "
                "factory's verification_inputs, or the input values the model expects")
    return "check that the verification inputs are what the model expects (shape, dtype, value range)"


def run_source(src, samples: list[dict]) -> list[dict]:
    """The source model's outputs on each sample: PyTorch eager under no_grad, or an .onnx source on
    ONNX Runtime with graph optimizations off (the model as given)."""
    if src.kind == "torch":
        import torch

        from .converters import torch_args
        from .runtimes.base import output_list

        names = None
        outs = []
        with torch.no_grad():
            for s in samples:
                y = src.module(*torch_args(s))
                ys = output_list(y)
                if isinstance(y, dict):
                    names = names or list(y)
                if names is None:
                    names = src.output_names or (["output"] if len(ys) == 1 else [f"output_{i}" for i in range(len(ys))])
                outs.append({n: t.detach().numpy().copy() for n, t in zip(names, ys)})
        src.output_names = names
        return outs
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the model as given
    sess = ort.InferenceSession(str(src.onnx_path), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return [dict(zip(names, sess.run(names, s))) for s in samples]
