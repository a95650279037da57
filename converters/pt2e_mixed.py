"""Accuracy-aware mixed precision for PT2E static INT8 (LiteRT and ExecuTorch).

When static INT8 misses the cosine tolerance on the calibration samples, keep the fewest layers in
float that meet it:
1. Sensitivity in one pass: the float graph (BatchNorm folded, as prepared) and the INT8 graph run
   side by side on a few calibration samples; a layer's *local error* is how much the relative
   error of its output exceeds that of its input (what quantizing this layer adds, not what it
   inherits). Rebuilding the quantized model once per layer, as ort_mixed does, would cost an export
   and a calibration per layer here.
2. Along that ranking, the top k layers are kept float (unannotated: float weights, and inputs
   read before quantization, pt2e._read_in_float) and the model is quantized again, for
   k = 1, 2, 4, ... up to half the layers; after the first k that meets the tolerance, a bisection finds the smallest k that does.
The shipped graph is the one evaluated; held-out verification still decides pass/fail.
"""
from __future__ import annotations

import time


RANK_SAMPLES = 8
LAYER_OPS = ("conv2d", "linear", "add", "mul", "matmul", "bmm")


def _is_dequantize(node) -> bool:
    return getattr(node, "op", None) == "call_function" and "dequantize" in str(node.target)


def quantized_layers(q) -> list:
    """Compute nodes of a converted graph that read at least one dequantized input."""
    return [n for n in q.graph.nodes if n.op == "call_function" and not _is_dequantize(n)
            and "quantize" not in str(n.target) and any(k in str(n.target) for k in LAYER_OPS)
            and any(_is_dequantize(a) for a in n.all_input_nodes)]


def _module_of(node) -> str | None:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return None
    path, cls = list(stack.values())[-1]
    return f"{path} ({getattr(cls, '__name__', str(cls).rsplit('.', 1)[-1])})"


def _capture(gm, samples: list[tuple], names: set[str]) -> dict:
    """name -> (first input, output) of those nodes, stacked over samples."""
    import torch

    from .fx_visit import visit_nodes

    got: dict = {}

    def record(n, env, out):
        xs, outs = got.setdefault(n.name, ([], []))
        xs.append(env[n.all_input_nodes[0]].detach().double().flatten())
        outs.append(out.detach().double().flatten())

    visit_nodes(gm, samples, names, record)
    return {k: (torch.cat(a), torch.cat(b)) for k, (a, b) in got.items()}


def rank(float_graph, q, samples: list[tuple]) -> list[dict]:
    """Layers by local error, largest first."""
    layers = quantized_layers(q)
    names = {n.name for n in layers}
    ref, out = _capture(float_graph, samples, names), _capture(q, samples, names)

    def rel(a, b):
        return float((a - b).norm() / max(float(b.norm()), 1e-30))

    ranking = []
    for n in layers:
        if n.name not in ref or n.name not in out or ref[n.name][1].shape != out[n.name][1].shape:
            continue
        err_in = rel(out[n.name][0], ref[n.name][0]) if ref[n.name][0].shape == out[n.name][0].shape else 0.0
        err_out = rel(out[n.name][1], ref[n.name][1])
        ranking.append({"node": n.name, "op": str(n.target).split(".")[-2] if "." in str(n.target) else str(n.target),
                        "module": _module_of(n), "local_error": round(err_out - err_in, 5),
                        "output_error": round(err_out, 5)})
    ranking.sort(key=lambda r: -r["local_error"])
    return ranking


def search(quantize_keeping, ranking: list[dict], cosine_min: float, n_layers: int) -> tuple[object, dict]:
    """quantize_keeping(frozenset of node names) -> (quantized graph, worst-sample cosine on all
    calibration samples). -> (graph or None, report); report["met"] says whether it met cosine_min."""
    t0 = time.perf_counter()
    limit = max(2, n_layers // 2)
    tried: dict[int, tuple] = {}

    def trial(k: int):
        if k not in tried:
            tried[k] = quantize_keeping(frozenset(r["node"] for r in ranking[:k]))
        return tried[k]

    k, met = 1, None
    while k <= min(limit, len(ranking)):
        if trial(k)[1] >= cosine_min:
            met = k
            break
        k *= 2
    if met is not None:
        lo, hi = k // 2, k  # lo fails (or is 0), hi meets: bisect
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if trial(mid)[1] >= cosine_min else (mid, hi)
        met = hi
    best = met if met is not None else max(tried, key=lambda j: tried[j][1])
    report = {"met": met is not None, "layers": n_layers,
              "float_layers" if met is not None else "float_layers_tried":
                  [{**r, "cosine_after": None} for r in ranking[:best]],
              "cosine_by_float_layers": {str(j): round(c, 6) for j, (_, c) in sorted(tried.items())},
              "ranking": ranking[:20], "evaluated": len(tried),
              "search_seconds": round(time.perf_counter() - t0, 1)}
    report[("float_layers" if met is not None else "float_layers_tried")][-1]["cosine_after"] = round(tried[best][1], 6)
    if met is None:
        report["gave_up"] = (f"{best} of {n_layers} layers in float (the most locally sensitive) reach worst-sample "
                             f"cosine {tried[best][1]:.6f} < {cosine_min} on the calibration samples")
    return tried[best][0], report
