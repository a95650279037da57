"""`edgekit explain BUNDLE [--artifact ID] [--json FILE]`: how each quantized artifact was made and
why it is (or is not) within its tolerance, from what compile recorded (nothing is re-run).

For ONNX Runtime INT8: static INT8's numbers on the calibration samples, what it missed, and when
the mixed-precision search ran, the layers kept in float with each one's share of the INT8 output
noise (float-one-layer-at-a-time), then the held-out verification. For PT2E INT8 (LiteRT,
ExecuTorch): the mode (static or dynamic), why, and the numbers on calibration. For FP16: where
the arithmetic is float16 and where (and why) it stayed float32.
"""
from __future__ import annotations

import json
from pathlib import Path

from .bundle import open_bundle, write_atomically
from .errors import UsageError, did_you_mean


def _metrics(d: dict | None) -> str:
    if not d:
        return "-"
    parts = [f"cosine {d['cosine']:.6f}", f"worst-sample cosine {d['cosine_min_sample']:.6f}",
             f"SNR {d['snr_db']:.1f} dB"]
    if "top1_agreement" in d:
        from .agreement import describe

        parts.append(describe(d))
    return ", ".join(parts)


def _layer(r: dict) -> str:
    share = (f"alone {100 * r['noise_share_removed']:6.1f}%" if "noise_share_removed" in r
             else f"alone float: worst cosine {r['cosine_alone_float']:.6f}" if "cosine_alone_float" in r
             else f"local error {r['local_error']:.4f}")
    return f"{r['node']:32s} {r['op']:12s} {share}"


def _fp16(f: dict) -> list[str]:
    """What the FP16 converter recorded: float16 weights, and where the arithmetic stayed float32."""
    c = f.get("compute")
    lines = [f"  fp16: weights {f.get('weights', '?')}; inputs and outputs {f.get('io', '?')}"]
    if isinstance(c, dict):  # ONNX Runtime: per node, from its kernel registry
        lines.append(f"  arithmetic: {c['fp16_nodes']} nodes float16, {c['fp32_nodes']} float32 "
                     f"({', '.join(c['fp32_ops']) or '-'}): {c['why_fp32']}")
    elif c:
        lines.append(f"  arithmetic: {c}")
    return lines


def explain_artifact(a) -> list[str]:
    conv, v = a.converter or {}, a.verification
    lines = [f"{a.id} ({a.runtime}, {a.precision}, role {a.role}): verification {v.status}"
             + (f" — {v.reason}" if v.reason else "")]
    if a.precision == "fp32":
        return lines + ["  fp32: nothing was quantized"]
    if a.precision == "fp16" and conv.get("fp16"):
        return lines + _fp16(conv["fp16"]) + _held_out(v)
    q = conv.get("quantization") or conv  # PT2E converters nest it; ONNX Runtime's is flat
    lines.append(f"  mode: {q.get('mode', '?')}; weights {q.get('weights', '?')}; "
                 f"activations {q.get('activations', 'per inference' if q.get('mode') == 'dynamic' else '?')}")
    if q.get("weight_range"):
        lines.append(f"  weight range: {q['weight_range']}")
    lines.append(f"  calibration: {q.get('calibration_samples', 0)} samples"
                 + (f" from {q['calibration']}" if q.get("calibration") else "")
                 + (f", method {q['calibration_method']}" if q.get("calibration_method") else ""))
    for key, label in (("static_on_calibration", "static INT8 on calibration"),
                       ("mixed_on_calibration", "mixed precision on calibration"),
                       ("dynamic_on_calibration", "dynamic INT8 on calibration")):
        if q.get(key):
            lines.append(f"  {label}: {_metrics(q[key])}")
    for key in ("static_cosine_on_calibration", "mixed_cosine_on_calibration", "dynamic_cosine_on_calibration"):
        if q.get(key) is not None:
            lines.append(f"  {key.replace('_', ' ')}: {q[key]}")
    if (q.get("qat") or {}).get("skipped"):
        lines.append(f"  quantization-aware fine-tuning skipped: {q['qat']['skipped']}")
    elif q.get("qat"):
        t = q["qat"]
        lines.append(f"  quantization-aware fine-tuning: {t['steps']} of {t['of']} steps of {t['batch']} in {t['seconds']} s "
                     f"on {t['data']}; {t['loss']}, "
                     + (f"mean of the first and last {t['loss_window']} steps: {t['loss_start']} -> {t['loss_end']}"
                        if "loss_window" in t else  # recorded by an earlier edgekit: single steps
                        f"first and last step: {t.get('loss_first_step')} -> {t.get('loss_last_step')}")
                     + (f"; {t['stopped']}" if t.get("stopped") else ""))
    auto = q.get("qat_when_missed")
    if auto:  # --precision auto fine-tuned (or could not) because every post-training variant missed
        lines.append(f"  --precision auto: {auto['why']}; "
                     + (f"no fine-tuning: {auto['skipped']}" if auto.get("skipped") else
                        f"fine-tuned on {auto['trained_on']} samples and compared on {auto['held_back']} held back, "
                        "worst-sample cosine " + ", ".join(f"{m} {c}" for m, c in auto["cosine_on_held_back"].items())
                        + f": shipped {auto['chose']}"))
    if (q.get("bias_correction") or {}).get("layers"):
        bc = q["bias_correction"]
        lines.append(f"  bias correction: {bc['layers']} layers ({bc['method']}); largest shift "
                     f"{100 * bc['largest_shift_vs_bias']:.1f}% of that layer's largest bias (layers with ~0 bias not counted)")
    seq = q.get("bias_correction_sequential") or {}
    if seq.get("layers"):
        lines.append(f"  static graph, then {seq['method']}: {seq['layers']} of {seq['of']} layers in {seq['seconds']} s; largest "
                     f"shift {100 * seq['largest_shift_vs_bias']:.1f}% of that layer's largest bias"
                     + (f"; {seq['stopped']}" if seq.get("stopped") else ""))
    for miss in q.get("static_missed", []):
        lines.append(f"  static INT8 missed: {miss}")
    mp = q.get("mixed_precision")
    if mp:
        kept = mp.get("float_layers") or []
        lines.append(f"  mixed precision: {len(kept)} of {mp['layers']} quantized layers kept in float "
                     f"(search: {mp.get('search_seconds')} s, {mp.get('evaluated')} combinations run)"
                     if kept else f"  mixed precision gave up: {mp.get('gave_up')}")
        mseq = mp.get("bias_correction_sequential")
        if mseq:
            lines.append("  mixed graph: sequential bias correction of its INT8 layers "
                         + ("kept (lower noise on calibration)" if mseq.get("kept") else "not kept (it did not help)"))
        if "int8_noise" in mp:  # ONNX Runtime: ranked float-one-layer-at-a-time
            lines.append(f"  INT8 output noise (noise/signal energy) {mp['int8_noise']:.6f} -> {mp['mixed_noise']:.6f}"
                         f" with {'those layers' if kept else 'the layers tried'} in float")
            how = ("alone: share of the INT8 noise removed when that layer alone runs in float;"
                   " then the noise with it and those above in float")
        else:  # PT2E: ranked by local error in one pass, then the top k kept float
            lines.append("  worst-sample cosine on calibration by number of layers kept float: "
                         + ", ".join(f"{k}: {c}" for k, c in mp.get("cosine_by_float_layers", {}).items()))
            how = mp.get("how") or "local error: relative error this layer adds to its input's, INT8 vs float"
        if kept or mp.get("float_layers_tried"):
            lines.append("  " + ("layers kept in float" if kept else "layers tried in float") + f", in order ({how}):")
            for r in kept or mp["float_layers_tried"]:
                lines.append(f"    {_layer(r)}" + (f"  -> {r['noise_after']:.6f}" if "noise_after" in r else "")
                             + (f"  {r['module']}" if r.get("module") else ""))
        lines.append("  most sensitive layers:")
        for r in mp.get("ranking", [])[:8]:
            lines.append(f"    {_layer(r)}" + (f"  {r['module']}" if r.get("module") else ""))
    if q.get("closest_on_calibration"):
        lines.append(f"  shipped: {q['closest_on_calibration']}")
    if q.get("mixed_precision_skipped"):
        lines.append(f"  mixed precision: {q['mixed_precision_skipped']}")
    for key in ("why_static", "static_anyway"):
        if q.get(key):
            lines.append(f"  shipped: {q[key]}")
    if q.get("why_dynamic"):
        lines.append(f"  why dynamic: {q['why_dynamic']}")
    return lines + _second_try(conv.get("second_try")) + _held_out(v)


def _second_try(t: dict | None) -> list[str]:
    """--precision auto fine-tuned a post-training artifact that failed held-out verification
    (edgekit.qat_policy), or said why it could not."""
    if not t:
        return []
    if t.get("skipped"):
        return [f"  --precision auto did not fine-tune after the failed verification: {t['skipped']}"]
    if t.get("error"):
        return [f"  --precision auto fine-tuned after the failed verification, and that build failed: {t['error']}"]
    out = [f"  --precision auto: {t['why']}; fine-tuned {t['steps']} steps and verified again on the same samples "
           f"({t['note']}); shipped: {t['shipped']}"]
    for label in ("post_training", "fine_tuned"):
        for name, m in (t[label].get("metrics") or {}).items():
            out.append(f"    {label.replace('_', '-')} ({t[label]['status']}), {name}: {_metrics(m)}")
    return out


def _held_out(v) -> list[str]:
    return [f"  held-out verification, {name}: {_metrics(m)}" for name, m in (v.metrics or {}).items()]


def explain(bundle: str, artifact: str | None = None, json_out: str | None = None) -> int:
    m = open_bundle(bundle, check_hashes=False)
    arts = m.artifacts
    if artifact:
        ids = [a.id for a in arts]
        if artifact not in ids:
            raise UsageError(f"no artifact {artifact!r} in {bundle}{did_you_mean(artifact, ids)}")
        arts = [a for a in arts if a.id == artifact]
    print(f"{m.model['name']} -> target '{m.target['name']}' ({bundle})")
    out = []
    for a in arts:
        print("\n".join(explain_artifact(a)))
        conv = a.converter or {}
        out.append({"artifact": a.id, "precision": a.precision, "verification": a.verification.status,
                    "quantization": conv.get("quantization") or (conv if a.precision != "fp32" else None)})
    if json_out:
        write_atomically(Path(json_out), json.dumps(out, indent=1))
    return 0
