"""edgekit's ONNX Runtime INT8 path against NNCF's ONNX post-training quantization, side by side.

Same float graph (the cpu bundle's portable ONNX artifact, through ONNX Runtime's quant_pre_process),
same calibration samples (the model's own), same held-out samples, same ONNX Runtime session
options (CPU, one thread). Variants:

- edgekit static QDQ (converters/ort_int8.static_qdq: per-channel INT8 weights, per-tensor minmax
  activations, uint8 on x86-64) with no bias correction, with the analytical one, and with the
  analytical then the sequential one (what `compile --precision int8` ships before any mixed
  precision);
- NNCF 3.4 with its defaults, and with per-tensor MINMAX activation ranges, full (sequential) bias
  correction and the overflow fix off (the best configuration found when this was first measured),
  in its default (symmetric int8 activations) and mixed (asymmetric) presets.

Reported per variant: top-1 agreement with FP32 as k/n with its Wilson 95% interval and flips split
into near-ties and decisive ones (edgekit.agreement), the logit error's standard deviation, the
latency ratio to the FP32 graph (interleaved ABBA blocks, median of block ratios and its bootstrap
interval), the size ratio, and the quantization time. The CPU is printed: INT8 speed depends on it.

NNCF is a benchmark-only dependency: `.venv/bin/pip install nncf==3.4.0` (it installs beside
edgekit's pins without changing them; the `nncf` extra of pyproject.toml pins it).

    .venv/bin/python benchmarks/nncf_vs_edgekit.py [--model efficientnet-lite0] [--blocks 12]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import cached_bundle, timed_ratio  # this folder is on sys.path when a script runs


def nncf_variants():
    """name -> nncf.quantize keyword arguments."""
    import nncf
    from nncf.quantization.advanced_parameters import (AdvancedQuantizationParameters, OverflowFix,
                                                       QuantizationParameters)
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    tuned = AdvancedQuantizationParameters(overflow_fix=OverflowFix.DISABLE,
                                           activations_quantization_params=QuantizationParameters(per_channel=False),
                                           activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX)
    return {"nncf defaults": {},
            "nncf minmax + sequential bc": {"fast_bias_correction": False, "advanced_parameters": tuned},
            "nncf mixed preset, same": {"preset": nncf.QuantizationPreset.MIXED, "fast_bias_correction": False,
                                        "advanced_parameters": tuned}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="efficientnet-lite0", help="a built-in model with calibration samples")
    ap.add_argument("--blocks", type=int, default=12)
    ap.add_argument("--block-seconds", type=float, default=0.5)
    ap.add_argument("--out", default="build/bench")
    args = ap.parse_args()
    try:
        import nncf
    except ImportError:
        sys.exit("this benchmark needs NNCF: .venv/bin/pip install nncf==3.4.0")
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edgekit.agreement import top1_stats
    from edgekit.converters.bias_correction import correct_qdq, correct_qdq_sequential
    from edgekit.converters.ort_int8 import MAX_CALIBRATION_SAMPLES, static_qdq, weight_range
    from edgekit.converters.ort_mixed import float_outputs
    from edgekit.envinfo import cpu_info

    src, manifest = cached_bundle(args.model, "cpu", Path(args.out) / f"{args.model}-cpu-fp32", "fp32")
    plain = Path(args.out) / f"{args.model}-cpu-fp32" / next(a.path for a in manifest.artifacts
                                                             if a.id == "onnxruntime-fp32-plain")
    calib, held_out = src.calib_inputs[:MAX_CALIBRATION_SAMPLES], src.verify_inputs
    if not calib:
        sys.exit(f"builtin:{args.model} has no calibration samples")
    cpu = cpu_info()
    print(f"CPU: {cpu['model']} ({cpu['logical_cpus']} logical), flags {' '.join(cpu['flags'])}; onnxruntime "
          f"{ort.__version__}, nncf {nncf.__version__}; {len(calib)} calibration and {len(held_out)} held-out samples",
          flush=True)

    def session(path):
        o = ort.SessionOptions()
        o.intra_op_num_threads, o.log_severity_level = 1, 3
        return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])

    with tempfile.TemporaryDirectory(prefix="edgekit-nncf-") as d:
        d = Path(d)
        pre = d / "pre.onnx"
        quant_pre_process(str(plain), str(pre), skip_symbolic_shape=True)
        variants: dict[str, tuple[Path, float]] = {}
        for name, steps in (("edgekit static, no bias correction", ()), ("edgekit + analytical bc", ("a",)),
                            ("edgekit + analytical + sequential bc", ("a", "s"))):
            t0, path = time.perf_counter(), d / f"e{len(steps)}.onnx"
            q = static_qdq(pre, path, calib, reduce_range=weight_range()[0])  # 7-bit weights without VNNI, as compile
            float_outputs(q)  # as ort_int8 ships it
            if "a" in steps:
                correct_qdq(q, str(pre), calib)
            if "s" in steps:
                correct_qdq_sequential(q, str(pre), calib)
            onnx.save(q, str(path))
            variants[name] = path, time.perf_counter() - t0
        model = onnx.load(str(pre))
        for i, (name, kw) in enumerate(nncf_variants().items()):
            t0, path = time.perf_counter(), d / f"n{i}.onnx"
            onnx.save(nncf.quantize(model, nncf.Dataset(calib), subset_size=len(calib), **kw), str(path))
            variants[name] = path, time.perf_counter() - t0

        base = session(pre)
        out_name = base.get_outputs()[0].name
        ref = np.stack([base.run([out_name], f)[0] for f in held_out]).reshape(len(held_out), -1).astype(np.float64)
        feed, rows = held_out[0], []
        for name, (path, secs) in variants.items():
            s = session(path)
            out = np.stack([s.run([out_name], f)[0] for f in held_out]).reshape(len(held_out), -1).astype(np.float64)
            st = top1_stats(ref, out)
            t = timed_ratio(lambda: base.run(None, feed), lambda: s.run(None, feed), args.blocks, args.block_seconds)
            rows.append((name, st, float(np.std(out - ref)), t, os.path.getsize(path) / os.path.getsize(pre), secs))
            print(f"  {name}: {st['top1_agree']}/{st['top1_n']}, latency ratio {t['ratio']:.3f}", flush=True)

    print(f"\n{args.model}: INT8 vs FP32 on ONNX Runtime, {cpu['model']}, 1 thread (ratios: lower is better)")
    print(f"{'variant':38s} {'agree':>8s} {'95% CI':>12s} {'near-tie':>8s} {'decisive':>8s} {'err std':>7s} "
          f"{'latency':>7s} {'95% CI':>11s} {'size':>5s} {'quantize s':>10s}")
    for name, st, std, t, size, secs in rows:
        print(f"{name:38s} {st['top1_agree']:>4d}/{st['top1_n']:<3d} {100 * st['top1_low95']:5.1f}-"
              f"{100 * st['top1_high95']:5.1f}% {st['flips_near_tie']:8d} {st['flips_decisive']:8d} {std:7.3f} "
              f"{t['ratio']:7.3f} {t['lo']:5.3f}-{t['hi']:5.3f} {size:5.3f} {secs:10.1f}")


if __name__ == "__main__":
    main()
