"""Mixed precision for ONNX Runtime's dynamic INT8 (transformers): the fewest weight MatMul/Gemm
layers kept in float so the worst calibration sample's cosine clears the tolerance with margin.

Dynamic INT8 quantizes each MatMul's activations per inference; a few layers carry activation
outliers (in BERT-style encoders, typically some attention projections and FFN layers) whose
per-tensor scale flattens everything else. Measured on MiniLM-L6 (36 weight MatMuls, 64 calibration
and 32 held-out sentences, ONNX Runtime, 2-core AMD EPYC with AVX-512 VNNI): all layers INT8,
worst held-out cosine 0.9885; the search below kept 12 float for a held-out worst of 0.9942.

1. Sensitivity: each layer alone kept float, the rest dynamic INT8, on the first RANK_SAMPLES
   calibration samples; ranked by the worst-sample cosine that gives.
2. Forward selection along the ranking: a layer joins the float set when it raises the worst
   calibration cosine; stop when it reaches the target, or give up at half the layers.
The target is stricter than the tolerance: calibration is what the search fits, and held-out data
has its own tail (MiniLM: 1 layer float met 0.99 on calibration but gave 0.987 held-out). It asks
for half the tolerance's error budget: cosine >= 1 - (1 - cosine_min) / 2 (0.995 for 0.99).
Only calibration data is used; held-out verification still decides.
"""
from __future__ import annotations

import time
from pathlib import Path

RANK_SAMPLES = 16
BUDGET_S = 600.0  # a large encoder stops ranking/selecting here and ships the best graph so far, saying so
MARGIN = 0.5  # the share of the tolerance's error (1 - cosine_min) the calibration samples may use


def target_cosine(cosine_min: float) -> float:
    return 1.0 - MARGIN * (1.0 - cosine_min)


def weight_layers(model) -> list:
    """MatMul/Gemm nodes whose second input is a constant: what dynamic INT8 quantizes."""
    inits = {i.name for i in model.graph.initializer}
    return [n for n in model.graph.node if n.op_type in ("MatMul", "Gemm") and len(n.input) > 1 and n.input[1] in inits]


def worst_cosine(ref: dict, out: dict) -> float:
    from edgekit.verify import output_metrics

    return min(output_metrics(r, out[k], False)["cosine_min_sample"] for k, r in ref.items())


def search(pre: Path, dst: Path, calib: list[dict], ref: dict, cosine_min: float, quantize) -> dict:
    """quantize(src, dst, exclude: list of node names) writes dynamic INT8. Leaves at dst the best
    graph found (the all-INT8 one when no layer helped) and returns the report; report["met"] says
    whether the calibration target was reached."""
    import onnx

    from .ort_mixed import _where, run

    t0 = time.perf_counter()
    target = target_cosine(cosine_min)
    layers = weight_layers(onnx.load(str(pre), load_external_data=False))
    scopes = _where(onnx.load(str(pre), load_external_data=False))
    trial = dst.with_name(dst.stem + ".trial.onnx")
    rank_ref = {k: v[:RANK_SAMPLES] for k, v in ref.items()}
    ranking = []
    try:
        for n in layers:
            if time.perf_counter() - t0 > BUDGET_S:
                break
            quantize(pre, trial, [n.name])
            ranking.append({"node": n.name, "op": n.op_type, "module": scopes.get(n.name),
                            "cosine_alone_float": round(worst_cosine(rank_ref, run(str(trial), calib[:RANK_SAMPLES])), 6)})
        ranking.sort(key=lambda r: -r["cosine_alone_float"])
        quantize(pre, dst, [])
        current = worst_cosine(ref, run(str(dst), calib))
        kept, by_count, evaluated = [], {0: round(current, 6)}, 0
        for r in ranking[:max(1, len(layers) // 2)]:
            if current >= target or time.perf_counter() - t0 > BUDGET_S:
                break
            quantize(pre, trial, [k["node"] for k in kept] + [r["node"]])
            evaluated += 1
            c = worst_cosine(ref, run(str(trial), calib))
            if c <= current:
                continue
            kept.append({**r, "cosine_after": round(c, 6)})
            current = c
            by_count[len(kept)] = round(c, 6)
            trial.replace(dst)
    finally:
        trial.unlink(missing_ok=True)
    report = {"met": current >= target, "layers": len(layers), "float_layers": kept, "ranking": ranking[:20],
              "target_cosine": round(target, 6), "cosine_by_float_layers": by_count, "evaluated": evaluated,
              "samples": len(calib), "rank_samples": min(RANK_SAMPLES, len(calib)),
              "how": "alone: worst calibration cosine with only that layer in float; then the worst with it "
                     "and those above in float",
              "search_seconds": round(time.perf_counter() - t0, 1)}
    if time.perf_counter() - t0 > BUDGET_S:
        report["stopped"] = f"time budget of {BUDGET_S:.0f} s ({len(ranking)} of {len(layers)} layers ranked)"
    if not report["met"]:
        report["gave_up"] = (f"{len(kept)} of {len(layers)} layers in float reach worst-sample cosine {current:.6f} "
                             f"on calibration, short of the search's target {target:.4f}")
    return report
