"""Accuracy-aware mixed precision for ONNX Runtime's static INT8 (QDQ) graphs.

When static INT8 misses the profile's tolerance on the calibration samples, find the fewest layers
to keep in float:
The QDQ graph must keep its activations (ORT's QDQKeepRemovableActivations): by default ORT drops
a Relu/Clip whose clamp the next QuantizeLinear's range performs, and taking that Q away would
silently lose the activation.
1. Sensitivity, float-one-layer-at-a-time: for each quantized layer, the QDQ graph with only that
   layer's inputs taken back to float (activations: the tensor before its QuantizeLinear; weights
   and biases: the original float initializers) is run on the calibration samples. A layer's
   contribution (on the first 16 samples) is the share of the INT8 output noise (noise energy / signal energy, summed over
   outputs) that disappears when it alone runs in float.
2. Forward selection along that ranking: a layer is kept in float when, with the layers already
   kept, it lowers the output noise on all calibration samples; stop as soon as they meet the same
   tolerance held-out verification applies, or give up at half the layers.
The shipped graph is the one evaluated (unused Q/DQ nodes pruned), so what was measured is what
ships; held-out verification still decides pass/fail. Only calibration data is used here.
"""
from __future__ import annotations

import time

import numpy as np

RANK_SAMPLES = 16  # ranking runs the graph once per layer: keep each run short
QDQ = ("QuantizeLinear", "DequantizeLinear")


def run(model, samples: list[dict]) -> dict[str, np.ndarray]:
    """Outputs by name, stacked over samples; `model` is a path or a ModelProto."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    src = model if isinstance(model, str) else model.SerializeToString()
    sess = ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    outs = [sess.run(None, s) for s in samples]
    return {n: np.stack([np.asarray(o[i]) for o in outs]) for i, n in enumerate(names)}


def noise(ref: dict, out: dict) -> float:
    """Quantization noise energy over signal energy, summed over outputs (0 = identical)."""
    total = 0.0
    for k, r in ref.items():
        r64, o64 = r.astype(np.float64), out[k].astype(np.float64)
        total += float(((o64 - r64) ** 2).sum() / max(float((r64 ** 2).sum()), 1e-30))
    return total


def failures(ref: dict, out: dict, tol, classifier: bool) -> list[str]:
    from edgekit.verify import judge, output_metrics

    return judge({k: output_metrics(r, out[k], classifier) for k, r in ref.items()}, tol)


# Elementwise activations ORT would fold into the previous layer's quantization range: a layer and
# the activation right after it are one unit (a PyTorch Conv+BN+ReLU6 block), kept in float together.
ACTIVATIONS = ("Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh")


def quantized_layers(model) -> list:
    """Compute nodes that take at least one dequantized input (what static INT8 changed); the
    activations that follow a layer belong to that layer's unit and are not listed on their own."""
    producers = {o: n for n in model.graph.node for o in n.output}
    return [n for n in model.graph.node if n.op_type not in QDQ and n.op_type not in ACTIVATIONS
            and any(producers.get(i) is not None and producers[i].op_type == "DequantizeLinear" for i in n.input)]


def _consumers(m) -> dict:
    out: dict = {}
    for n in m.graph.node:
        for i in n.input:
            out.setdefault(i, []).append(n)
    return out


def _through_qdq(t: str, consumers: dict) -> list:
    """(Q node, DQ node, consumer) for every consumer that reads tensor t through a Q/DQ pair."""
    return [(q, dq, c) for q in consumers.get(t, []) if q.op_type == "QuantizeLinear"
            for dq in consumers.get(q.output[0], []) if dq.op_type == "DequantizeLinear"
            for c in consumers.get(dq.output[0], [])]


def keep_float(qdq, float_inits: dict, names: set[str]):
    """A copy of the QDQ graph where each named layer's unit (the layer and the activation that
    follows it) runs in float: float inputs (activations before their QuantizeLinear, original
    float weights and biases). Its outputs are still quantized for readers that stay INT8."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(qdq)
    producers = {o: n for n in m.graph.node for o in n.output}
    consumers = _consumers(m)
    inits = {i.name for i in m.graph.initializer}

    def float_inputs(node):
        for idx, name in enumerate(node.input):
            dq = producers.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = producers.get(dq.input[0])
            if q is not None and q.op_type == "QuantizeLinear":  # an activation: the tensor before Q
                node.input[idx] = q.input[0]
            elif dq.input[0] in inits:  # a weight or bias: its float original, by ORT's naming
                orig = dq.input[0].removesuffix("_quantized")
                if orig in float_inits:
                    # The DQ output may carry the original name itself: the float copy gets its own.
                    fname = orig if orig not in producers else f"{orig}_float"
                    if fname not in inits:
                        t = onnx.TensorProto()
                        t.CopyFrom(float_inits[orig])
                        t.name = fname
                        m.graph.initializer.append(t)
                        inits.add(fname)
                    node.input[idx] = fname

    for node in [n for n in m.graph.node if n.name in names]:
        unit, tensors = [node], list(node.output)
        while True:  # the activation that alone reads the unit's output joins the unit
            reads = [c for t in tensors[-len(unit[-1].output):] for _, _, c in _through_qdq(t, consumers)]
            if len(reads) == 1 and reads[0].op_type in ACTIVATIONS and reads[0] not in unit:
                unit.append(reads[0])
                tensors += list(reads[0].output)
            else:
                break
        for n in unit:
            float_inputs(n)
        # The unit's outputs keep their Q/DQ: an INT8 reader still gets INT8 input and stays one
        # fused QLinearConv. Giving it float input instead left its weights behind a
        # DequantizeLinear run every inference, and EfficientNet-Lite0 with 10 of 60 layers float
        # ran 1.2x slower than FP32. A reader that is itself kept float reads the tensor before Q.
    _prune(m)
    return m


def float_outputs(m) -> int:
    """Take the Q/DQ pair off every graph output, in place; returns how many. Quantizing the
    final logits to 256 levels flips top-1 between close classes and saves no compute."""
    producers = {o: n for n in m.graph.node for o in n.output}
    count = 0
    for out in m.graph.output:
        dq = producers.get(out.name)
        q = producers.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        src = producers.get(q.input[0]) if q is not None and q.op_type == "QuantizeLinear" else None
        if src is not None:
            m.graph.node.remove(dq)
            src.output[list(src.output).index(q.input[0])] = out.name
            count += 1
    _prune(m)
    return count


def _prune(m) -> None:
    outputs = {o.name for o in m.graph.output}
    while True:
        used = {i for n in m.graph.node for i in n.input} | outputs
        dead = [n for n in m.graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            m.graph.node.remove(n)
    used = {i for n in m.graph.node for i in n.input}
    for init in [i for i in m.graph.initializer if i.name not in used]:
        m.graph.initializer.remove(init)


def _where(float_model) -> dict[str, str]:
    """node name -> the PyTorch module the exporter recorded ("_blocks.0._bn2 (BatchNorm2d)"): a
    Conv that ORT folded a BatchNorm into carries the BatchNorm's name."""
    out = {}
    for n in float_model.graph.node:
        meta = {p.key: p.value for p in n.metadata_props}
        scopes = meta.get("pkg.torch.onnx.name_scopes", "").strip("[]").replace("'", "").split(", ")
        classes = meta.get("pkg.torch.onnx.class_hierarchy", "").strip("[]").replace("'", "").split(", ")
        if len(scopes) >= 2 and scopes[-2]:
            out[n.name] = scopes[-2] + (f" ({classes[-2].rsplit('.', 1)[-1]})" if len(classes) >= 2 else "")
    return out


def search(float_path: str, qdq_path: str, samples: list[dict], tol, classifier: bool, ref: dict,
           qdq_out: dict) -> tuple[object, dict, dict]:
    """(mixed-precision ModelProto or None, its outputs on the samples, report). ref and qdq_out: the
    float and QDQ graphs' outputs on the samples (the caller has them). report["met"] says whether it
    meets the tolerance on the samples; when it does not, the model is the closest the search came
    (the float layers that each lowered the noise), or None when no layer helped."""
    import onnx

    t0 = time.perf_counter()
    fmodel, qdq = onnx.load(float_path), onnx.load(qdq_path)
    float_inits = {i.name: i for i in fmodel.graph.initializer}
    best, best_out = None, qdq_out  # the closest graph so far (none kept float: the QDQ one); acceptance: every sample
    base = noise(ref, best_out)
    rank_samples = samples[:RANK_SAMPLES]
    rank_ref = {k: v[:RANK_SAMPLES] for k, v in ref.items()}
    rank_base = noise(rank_ref, run(qdq, rank_samples))
    layers = quantized_layers(qdq)
    scopes = _where(fmodel)
    ranking = []
    unrankable = []
    for node in layers:
        try:
            n = noise(rank_ref, run(keep_float(qdq, float_inits, {node.name}), rank_samples))
        except Exception as e:  # noqa: BLE001 — ORT refused this edit: the layer stays INT8, said below
            unrankable.append({"node": node.name, "op": node.op_type, "error": str(e).splitlines()[0][-200:]})
            continue
        ranking.append({"node": node.name, "op": node.op_type, "module": scopes.get(node.name),
                        "noise_share_removed": round((rank_base - n) / rank_base, 4) if rank_base > 0 else 0.0})
    ranking.sort(key=lambda r: -r["noise_share_removed"])
    # Forward selection along the ranking: a layer joins the float set only if, with the layers
    # already kept, it lowers the output noise (single-layer gains do not add up: a layer that
    # reads an outlier activation only helps once the layer producing it is float too).
    limit = max(1, len(ranking) // 2)
    kept, current, evaluated = [], base, 0
    for r in ranking:
        if len(kept) >= limit:
            break
        trial = keep_float(qdq, float_inits, {k["node"] for k in kept} | {r["node"]})
        evaluated += 1
        try:
            out = run(trial, samples)
        except Exception:  # noqa: BLE001 — ORT refused this combination: skip the layer
            continue
        n = noise(ref, out)
        if n >= current * 0.98:  # less than 2 % better: not worth a float layer
            continue
        kept.append({**r, "noise_after": round(n, 6)})
        current, best, best_out = n, trial, out
        if not failures(ref, out, tol, classifier):
            return trial, out, {"met": True, "layers": len(layers), "float_layers": kept, "ranking": ranking[:20],
                           "unrankable": unrankable, "int8_noise": round(base, 6), "mixed_noise": round(n, 6),
                           "evaluated": evaluated, "samples": len(samples), "rank_samples": len(rank_samples),
                           "search_seconds": round(time.perf_counter() - t0, 1)}
    last = failures(ref, best_out, tol, classifier)
    return best, best_out, {
        "met": False, "layers": len(layers), "float_layers_tried": kept, "ranking": ranking[:20],
        "unrankable": unrankable, "int8_noise": round(base, 6), "mixed_noise": round(current, 6), "evaluated": evaluated,
        "gave_up": f"{len(kept)} of {len(layers)} layers in float (each lowering the noise) still miss the "
                   f"tolerance: " + "; ".join(last[:2]),
        "search_seconds": round(time.perf_counter() - t0, 1)}
