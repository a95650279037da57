"""PT2E INT8 quantization shared by the LiteRT and ExecuTorch converters.

Static INT8 (per-channel symmetric weights with bias correction, analytical then sequential
(bias_correction.py), per-tensor activations from observers run over the calibration samples,
ReLU6 quantized after the clamp) is tried first. When the quantized model, run in PyTorch on the calibration samples, misses the
profile's cosine tolerance against the float model, a CNN gets the mixed-precision search
(pt2e_mixed.py: the most sensitive layers kept float); if that misses too, dynamic INT8 (weights INT8, activations
quantized per inference), which transformers usually need, is tried too, and the closest to FP32
on calibration ships; the manifest says which and why with both numbers. Held-out verification still decides
pass/fail later.
"""
from __future__ import annotations

import numpy as np

from . import torch_args

# Quantizing more than this many calibration samples buys little and costs minutes on transformers.
MAX_CALIBRATION_SAMPLES = 64


def calibration_samples(work, src) -> tuple[list[dict], str]:
    """The calibration set prepare() saved (built-in set or --calibration), else the example input."""
    calib, _, _ = work.samples("calib") if (work.dir / "calib.npz").exists() else ([], [], None)
    if calib:
        return calib[:MAX_CALIBRATION_SAMPLES], (work.info.get("calibration") or {}).get("source") or "model calibration set"
    return [src.example], "the model's example input only (give --calibration for representative data)"


def _outputs(module, samples: list[dict]) -> np.ndarray:
    """[N, all outputs flattened] of the module over the samples."""
    import torch

    from ..runtimes.base import output_list

    with torch.no_grad():
        return np.stack([np.concatenate([t.detach().float().numpy().ravel() for t in output_list(module(*torch_args(s)))])
                         for s in samples])


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Worst per-sample cosine similarity: verification's own statistic (edgekit.verify)."""
    from ..verify import output_metrics

    return output_metrics(a, b, classifier=False)["cosine_min_sample"]


def int8_step(work, src, candidate, converter: str, module, example: dict, make_quantizer, to_artifact=None, **kw):
    """The precision part every PT2E converter shares: fp32 passes the module through; int8
    quantizes it on the calibration samples (mapped by `to_artifact` into the artifact's input
    layout) and records how in `info["quantization"]`. -> (module, quantizer or None, info)."""
    if candidate.precision in ("fp32", "fp16"):  # fp16 is each converter's own (no calibration)
        return module, None, {}
    if candidate.precision != "int8":
        raise ValueError(f"the {converter} converter builds fp32, fp16 or int8, not {candidate.precision}")
    from edgekit.calibration.methods import resolve

    method = resolve("pt2e", (work.calibration_method or {}).get("method"))  # unsupported: this candidate fails
    calib, calib_source = calibration_samples(work, src)
    if to_artifact:
        calib = [to_artifact(s) for s in calib]
    module, quantizer, qinfo = quantize(module, example, calib, make_quantizer, work.tolerance["cosine_min"],
                                        qat_steps=work.qat_steps, qat_when_missed=work.qat_when_missed, **kw)
    qinfo["calibration"] = calib_source
    qinfo["calibration_method"] = method
    return module, quantizer, {"quantization": qinfo}


def _is_float(node) -> bool:
    val = getattr(node, "meta", {}).get("val")
    return getattr(val, "dtype", None) is not None and val.dtype.is_floating_point


def _is_tensor(node) -> bool:
    """A tensor value, not a size: with a dynamic dim, `view(x, [sym_size(x, 0), -1])` reads a SymInt
    node, which says nothing about whether the op computes in float."""
    return getattr(getattr(node, "meta", {}).get("val"), "dtype", None) is not None


def _keep_integer_math_integer(model):
    """XNNPACKQuantizer turns scalars into tensor constants before annotating (so `x + 1.0` can be
    quantized), and makes them float even when the op is integer: on a transformer `arange + 1`
    became a float tensor used as an index ("tensors used as indices must be long, int, byte or
    bool tensors"). Such constants go back to the integer type the op computes in."""
    import torch

    for node in model.graph.nodes:
        if node.op != "get_attr":
            continue
        value = getattr(model, node.target, None)
        if not isinstance(value, torch.Tensor) or not value.dtype.is_floating_point:
            continue
        out_types = {getattr(u.meta.get("val"), "dtype", None) for u in node.users}
        if len(out_types) == 1 and (t := out_types.pop()) is not None and not t.is_floating_point and t != torch.bool:
            if torch.equal(value, value.round()):
                setattr(model, node.target, value.to(t))
    return model


def _quantize_after_clamp(model) -> int:
    """Quantize a conv/linear's output after the ReLU6 (hardtanh) that follows it, not before.

    XNNPACKQuantizer (and litert-torch's copy of it) fuses conv/linear with relu but not with
    hardtanh: the hardtanh shares the conv's output quantization, so ReLU6's [0, 6] sits on a grid
    sized for the pre-activation range. On EfficientNet-Lite0 that range is up to [-117, 118], and
    static INT8 reached cosine 0.57 on the calibration samples (the issue saw 42 % top-1 on LiteRT).
    Annotated like conv+relu instead (conv output float, hardtanh output observed on its own), the
    backends fuse the clamp into the INT8 convolution (ExecuTorch: FuseActivationPass). Returns
    how many pairs were changed."""
    import torch
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, QuantizationSpec

    key, changed = "quantization_annotation", 0
    for node in model.graph.nodes:
        if node.op != "call_function" or node.target not in (torch.ops.aten.hardtanh.default,
                                                             torch.ops.aten.hardtanh_.default):
            continue
        prev = node.args[0]
        ann = getattr(prev, "meta", {}).get(key)
        if (ann is None or len(prev.users) != 1 or not isinstance(ann.output_qspec, QuantizationSpec)
                or not any(k in str(prev.target) for k in ("conv", "linear"))):
            continue
        node.meta[key] = QuantizationAnnotation(input_qspec_map={}, output_qspec=ann.output_qspec, _annotated=True)
        ann.output_qspec = None
        changed += 1
    return changed


def _read_in_float(model, keep_float) -> None:
    """A kept-float layer reads its inputs unquantized: the producer's output quantization is
    removed, and the producer's other readers that stay INT8 quantize on their own input edge
    instead (the same spec). Without this, a float layer would still read a tensor rounded to
    INT8 at its source, which is where an outlier channel loses the others (awkward.py:outlier)."""
    from torchao.quantization.pt2e.quantizer import QuantizationSpec

    key = "quantization_annotation"
    for node in [n for n in model.graph.nodes if n.name in keep_float]:
        for src in node.all_input_nodes:
            ann = src.meta.get(key)
            if ann is None or not isinstance(ann.output_qspec, QuantizationSpec):
                continue
            spec, ann.output_qspec = ann.output_qspec, None
            for reader in src.users:
                rann = reader.meta.get(key)
                if reader.name not in keep_float and rann is not None and rann.input_qspec_map is not None:
                    rann.input_qspec_map.setdefault(src, spec)


def float_only(inner, keep_float: frozenset = frozenset()):
    """Wrap a toolchain's quantizer so it leaves integer computation alone: only ops whose inputs
    and output are all floating point keep their annotations (ids, positions and shapes are not
    values to approximate). Nodes named in keep_float (mixed precision, pt2e_mixed.py) lose theirs
    and read their inputs in float (_read_in_float)."""
    from torchao.quantization.pt2e.quantizer import Quantizer

    class FloatOnly(Quantizer):
        def transform_for_annotation(self, model):
            return _keep_integer_math_integer(inner.transform_for_annotation(model))

        def annotate(self, model):
            model = inner.annotate(model)
            _quantize_after_clamp(model)
            for node in model.graph.nodes:
                ann = node.meta.get("quantization_annotation")
                if ann is not None and (node.name in keep_float or not (
                        all(_is_float(i) for i in node.all_input_nodes if _is_tensor(i)) and _is_float(node))):
                    ann.input_qspec_map = {}
                    ann.output_qspec = None
            _read_in_float(model, keep_float)
            return model

        def validate(self, model):
            return inner.validate(model)

        def prepare_obs_or_fq_callback(self, model, edge_or_node_to_obs_or_fq):
            return inner.prepare_obs_or_fq_callback(model, edge_or_node_to_obs_or_fq)

    return FloatOnly()


def int8_embeddings(module) -> int:
    """Store every nn.Embedding table as INT8 with one scale per row, dequantizing only the looked-up
    rows: `embedding(ids, q).float() * embedding(ids, scale)`. Standard ops only, so every runtime
    runs it: ExecuTorch's pip runtime has no quantized-embedding kernel, and litert-torch quantized
    the table with a zero point that LiteRT's own EMBEDDING_LOOKUP then refused. On a BERT model the
    word table is half the weights; left in FP32 the "INT8" file is still 0.65x the FP32 one.
    Returns how many tables were replaced."""
    import torch

    class Int8Embedding(torch.nn.Module):
        def __init__(self, weight: torch.Tensor):
            super().__init__()
            w = weight.detach().float()
            scale = (w.abs().amax(dim=1, keepdim=True) / 127.0).clamp(min=1e-12)
            self.register_buffer("q", torch.round(w / scale).clamp(-127, 127).to(torch.int8))
            self.register_buffer("scale", scale)

        def forward(self, ids):
            rows = torch.nn.functional.embedding(ids, self.q).to(torch.float32)
            # index_select (a GATHER), not a second embedding: litert-torch's dynamic-range pass
            # quantizes float EMBEDDING_LOOKUP tables with a zero point LiteRT then refuses.
            scale = torch.index_select(self.scale, 0, ids.reshape(-1)).reshape(*ids.shape, 1)
            return rows * scale

    replaced = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Embedding) and child.max_norm is None:
                setattr(parent, name, Int8Embedding(child.weight))
                replaced += 1
    return replaced


def has_convolutions(graph_module) -> str | None:
    """Why dynamic INT8 cannot serve this model on XNNPACK (its dynamic kernels are for linear
    layers; a dynamically quantized convolution lowered, then failed at run time with
    "Propagating input shapes failed"), or None."""
    n = sum(1 for node in graph_module.graph.nodes if "convolution" in str(node.target) or "conv2d" in str(node.target))
    return f"the model has {n} convolution(s), which XNNPACK cannot run with dynamic INT8" if n else None


def quantize(module, example: dict, calib: list[dict], make_quantizer, cosine_min: float,
             fold_quantize: bool = True, dynamic_unsupported=None, mixed_precision: str | None = None,
             dynamic_shapes=None, qat_steps: int | None = None, qat_when_missed: bool = False):
    """-> (quantized GraphModule, quantizer used, info). make_quantizer(dynamic: bool) builds the
    toolchain's own quantizer, so its observers and kernels match the backend that runs the model.
    dynamic_unsupported(exported graph) -> reason or None: where the backend cannot run dynamic INT8,
    a static result below the tolerance ships with that reason recorded (held-out verification then
    decides) instead of an artifact that would crash. mixed_precision: None, or why this backend
    cannot take the mixed-precision search's graphs (recorded, the search is skipped). dynamic_shapes:
    torch.export's, for a model with dynamic dims (the quantized graph keeps them symbolic).
    qat_steps: fine-tune the static graph this many steps first (qat.py; the mixed-precision search's
    rebuilds and dynamic INT8 stay post-training). qat_when_missed (compile --precision auto): when
    every post-training variant misses cosine_min, fine-tune one more (qat.STEPS) on part of the
    calibration samples and ship whichever variant is closest on the part held back (_when_missed)."""
    import copy

    import torch
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from .bias_correction import correct_pt2e, correct_pt2e_sequential, pt2e_float_weights

    float_out = _outputs(module, calib)
    teacher = module  # the FP32 model, before its embeddings are made INT8 below
    info: dict = {"calibration_samples": len(calib), "weights": "int8 per-channel symmetric"}
    module = copy.deepcopy(module)
    tables = int8_embeddings(module)
    if tables:
        info["embeddings"] = f"{tables} table(s) stored int8, one scale per row, dequantized after lookup"
    samples = [torch_args(s) for s in calib]

    def build(dynamic: bool, keep_float: frozenset = frozenset(), want_float_graph: bool = False, qat: bool = False,
              train: list[tuple] | None = None, steps: int | None = qat_steps):
        exported = torch.export.export(module, torch_args(example), dynamic_shapes=dynamic_shapes).module()
        quantizer = make_quantizer(dynamic)
        prepared = prepare_pt2e(exported, float_only(quantizer, keep_float))
        with torch.no_grad():
            for args in samples[:1] if dynamic else samples:  # observers record activation ranges
                prepared(*args)
        float_graph = copy.deepcopy(prepared) if want_float_graph else None  # BatchNorm folded, float
        if qat:
            from .qat import finetune

            info["qat"] = finetune(prepared, teacher, samples if train is None else train, steps=steps)
            qat = "skipped" not in info["qat"]  # left post-training: corrected like any static graph
        # The analytical correction's reference is the graph's own float weights: after fine-tuning,
        # no longer the FP32 model's (the sequential one's reference, float_graph, still is).
        float_weights = pt2e_float_weights(prepared) if not dynamic and not qat else {}
        q = convert_pt2e(prepared, fold_quantize=fold_quantize)
        bc = correct_pt2e(q, float_weights, samples) if float_weights else None
        if not dynamic and float_graph is not None and has_convolutions(exported):
            # The static graph of a CNN only: the mixed search's rebuilds would each pay for it, and
            # a transformer's static graph is rarely what ships (dynamic INT8 is), while a pass per
            # linear layer over every bucket cost MiniLM minutes.
            info["bias_correction_sequential"] = correct_pt2e_sequential(q, float_graph, samples)
        quantized = sum(1 for n in q.graph.nodes if n.op == "call_function" and "dequantize" in str(n.target))
        return q, quantizer, quantized, bc, exported, float_graph

    q, quantizer, quantized, info["bias_correction"], exported, float_graph = build(
        False, want_float_graph=True, qat=bool(qat_steps))
    if not quantized and not tables:  # an "INT8" artifact that is FP32 inside would be a lie
        ops = sorted({str(n.target).split(".")[1] if str(n.target).startswith("aten.") else str(n.target)
                      for n in exported.graph.nodes if n.op == "call_function"})[:8]
        raise ValueError("INT8 was requested but the quantizer quantized none of this model's operators "
                         f"(its ops: {', '.join(ops)}); the artifact would be FP32 under an INT8 label. "
                         "Use the FP32 artifact")
    cos = cosine(float_out, _outputs(q, calib))
    info["static_cosine_on_calibration"] = round(cos, 6)
    results = {"static": (cos, q, quantizer, quantized)}
    if cos < cosine_min and has_convolutions(exported) and mixed_precision:
        info["mixed_precision_skipped"] = mixed_precision
    elif cos < cosine_min and has_convolutions(exported):
        # A CNN: keep the most sensitive layers float (transformers go to dynamic INT8 instead:
        # a search over their hundreds of matmuls would cost an export and calibration each).
        from .pt2e_mixed import RANK_SAMPLES, quantized_layers, rank, search

        def keeping(names: frozenset):
            try:
                mq, _, mcount, _, _, _ = build(False, names)
            except Exception as e:  # noqa: BLE001 — the quantizer refused this split: not a candidate
                return (None, 0, str(e).splitlines()[0][:200]), -1.0
            return (mq, mcount, None), cosine(float_out, _outputs(mq, calib))

        ranking = rank(float_graph, q, samples[:RANK_SAMPLES])
        (mq, mcount, refused), info["mixed_precision"] = search(keeping, ranking, cosine_min,
                                                                 len(quantized_layers(q)))
        if mq is not None:
            mixed_cos = max(float(c) for c in info["mixed_precision"]["cosine_by_float_layers"].values())
            info["mixed_cosine_on_calibration"] = round(mixed_cos, 6)
            results["static, mixed precision"] = (mixed_cos, mq, quantizer, mcount)
        else:
            info["mixed_precision"]["refused"] = refused
    if max(r[0] for r in results.values()) < cosine_min:
        if dynamic_unsupported and (why := dynamic_unsupported(exported)):
            # The backend has no dynamic INT8 for this model: ship the closest static variant;
            # held-out verification decides, with this recorded.
            info["static_anyway"] = (f"static INT8 reached cosine {info['static_cosine_on_calibration']} on the "
                                     f"calibration samples (tolerance {cosine_min}) and dynamic INT8 is no way out: "
                                     f"{why}. More representative --calibration data may help")
        else:
            dq, dquantizer, dcount, _, _, _ = build(True)
            dcos = cosine(float_out, _outputs(dq, calib))
            info["dynamic_cosine_on_calibration"] = round(dcos, 6)
            results["dynamic"] = (dcos, dq, dquantizer, dcount)
    # The one closest to FP32 on calibration ships: dynamic when static misses on a transformer,
    # but a CNN's dynamic INT8 can be worse than its near-miss static INT8.
    mode = max(results, key=lambda k: results[k][0])
    if qat_when_missed and not qat_steps and results[mode][0] < cosine_min:
        mode = _when_missed(build, results, calib, float_out, cosine_min, info) or mode
    _, q, quantizer, info["quantized_tensors"] = results[mode]
    info["mode"] = mode
    info["activations"] = ("int8 per-tensor, computed per inference (dynamic)" if mode == "dynamic"
                           else "int8 per-tensor, ranges from calibration (static)")
    if mode == "static, mixed precision" and not info["mixed_precision"]["met"]:
        info["closest_on_calibration"] = f"{mode}; none met the tolerance: {info['mixed_precision']['gave_up']}"
    if mode == FINE_TUNED:
        info["why_fine_tuned"] = info["qat_when_missed"]["why"]
    elif mode == "dynamic":
        info["why_dynamic"] = (f"static INT8 reached cosine {info['static_cosine_on_calibration']} on the "
                               f"calibration samples, below the tolerance {cosine_min}")
    elif "dynamic" in results:
        info["why_static"] = (f"every variant misses the tolerance {cosine_min} on calibration; {mode} is closest "
                              f"(dynamic: {info['dynamic_cosine_on_calibration']})")
    return q, quantizer, info


FINE_TUNED = "static, fine-tuned (QAT)"


def _when_missed(build, results: dict, calib: list[dict], float_out: np.ndarray, cosine_min: float,
                 info: dict) -> str | None:
    """--precision auto, every post-training variant below cosine_min: fine-tune the static graph
    (qat.STEPS) on three quarters of the calibration samples and compare every variant on the
    quarter held back. The fine-tuned graph's cosine on samples it trained on would be optimistic
    and unfair to the post-training variants, which only took activation ranges and bias
    corrections from them (as the fine-tuned graph does too). Adds the fine-tuned variant to
    `results` and records the comparison; -> the mode to ship, or None when there are too few
    samples to hold some back (nothing is fine-tuned then)."""
    from .qat import MIN_SAMPLES, STEPS

    n = len(calib)
    held = set(range(3, n, 4))  # every 4th: calibration sets list crops photo by photo, so each photo lends some
    train = [torch_args(calib[i]) for i in range(n) if i not in held]
    record: dict = {"why": f"every post-training variant missed the tolerance {cosine_min} on the calibration "
                           f"samples (closest: {max(r[0] for r in results.values()):.6f})"}
    info["qat_when_missed"] = record
    if len(train) < MIN_SAMPLES or len(held) < 2:
        record["skipped"] = (f"{n} calibration samples: too few to fine-tune on {MIN_SAMPLES} and hold some back to "
                             "judge the result; give --calibration with more representative inputs")
        return None
    post_training_correction = info.get("bias_correction_sequential")
    q, quantizer, count, _, _, _ = build(False, want_float_graph=True, qat=True, train=train, steps=STEPS)
    fine_tuned, tuned_correction = info.pop("qat"), info.pop("bias_correction_sequential", None)
    info["bias_correction_sequential"] = post_training_correction  # until the fine-tuned graph is chosen
    if "skipped" in fine_tuned:
        record["skipped"] = fine_tuned["skipped"]
        return None
    idx = sorted(held)
    held_samples = [calib[i] for i in idx]
    scores = {mode: cosine(float_out[idx], _outputs(r[1], held_samples)) for mode, r in results.items()}
    tuned_out = _outputs(q, calib)  # once: its held-back rows score it, all of them record its calibration cosine
    scores[FINE_TUNED] = cosine(float_out[idx], tuned_out[idx])
    results[FINE_TUNED] = (cosine(float_out, tuned_out), q, quantizer, count)
    pick = max(scores, key=scores.get)
    record.update({"trained_on": len(train), "held_back": len(idx),
                   "held_back_note": "every 4th calibration sample; crops of one photo are correlated, so the held-back "
                                     "quarter is not independent of the rest",
                   "cosine_on_held_back": {m: round(c, 6) for m, c in scores.items()}, "chose": pick})
    if pick == FINE_TUNED:  # its records replace the post-training graph's (no analytical correction after training)
        info.update({"qat": fine_tuned, "bias_correction_sequential": tuned_correction, "bias_correction": None})
    else:
        record["qat"] = fine_tuned
    return pick
