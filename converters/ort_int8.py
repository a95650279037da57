"""INT8 for ONNX Runtime: the ONNX export quantized with ONNX Runtime's own quantizer.

Static INT8 (QDQ format, per-channel symmetric INT8 weights with bias correction, analytical then
sequential (bias_correction.py), activation ranges from the calibration method over the
calibration set) is
tried first when the compile has a calibration set, and judged on the calibration samples with the
tolerance verification applies. Graph outputs stay float (ort_mixed.float_outputs). When it
misses, the mixed-precision search (ort_mixed.py) keeps the fewest most sensitive layers in
float. When that does not meet the tolerance either, the closest to FP32 on the calibration
samples of static, the search's best mixed graph and dynamic INT8 (INT8 weights, activations
quantized per inference: what transformers usually need) ships; without a calibration set, dynamic
INT8. The converter info says which and why, with the numbers.
Held-out verification still decides pass/fail afterwards, like every other artifact.

Why edgekit's own quantization path and not NNCF's ONNX PTQ (the maintained library for it):
measured side by side (benchmarks/nncf_vs_edgekit.py; EfficientNet-Lite0, the same export, 60
calibration and 200 held-out crops, ONNX Runtime 1.32, one thread, 2-core AMD EPYC with AVX-512
VNNI), this path's all-INT8 graph agreed with FP32 on 190/200 (no decisive flip, logit error std
0.104) at 0.44x FP32 latency; NNCF 3.4's best configuration (per-tensor MINMAX activations, full
sequential bias correction, overflow fix off) 187/200 (1 decisive, 0.118) at 0.84x, because its
activations are int8 with zero points, which ONNX Runtime's x86 kernels run slower than uint8; its
defaults 153/200 at 2.37x. Both are ORT's own QDQ underneath; NNCF would add a dependency to get less.

The graph is quantized unfused: ORT's transformer fusions (com.microsoft Attention ...) are float
kernels the quantizer leaves alone, so fusing first would hide the MatMuls it should quantize.
"""
from __future__ import annotations

from pathlib import Path


MAX_CALIBRATION_SAMPLES = 64
# Dynamic INT8 quantizes only these, and MatMuls only with a constant weight: attention's
# activation x activation products stay float.
COMPUTE_OPS = ("Conv", "MatMul", "Gemm")
# Ops whose presence shows the quantizer changed something (a QDQ pair, or a dynamic kernel).
QUANT_OPS = ("QuantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul",
             "QLinearConv", "QLinearMatMul", "MatMulIntegerToFloat")


X86 = ("x86_64", "amd64", "i686")  # platform.machine() names of x86 CPUs


def activation_type(machine: str | None = None):
    """uint8 activations on x86-64, int8 elsewhere. ONNX Runtime's x86 kernels are built around
    u8 x s8 products (VPMADDUBSW / VNNI); with int8 activations EfficientNet-Lite0's static INT8
    ran 10.0 ms vs 5.5 ms with uint8 here (FP32 10.6 ms), one thread, same accuracy. On Arm, s8 x s8
    is the native dot product."""
    import platform

    from onnxruntime.quantization import QuantType

    arch = (machine or platform.machine()).lower()
    return (QuantType.QUInt8, "uint8") if arch in X86 else (QuantType.QInt8, "int8")


# x86 CPU flags with an int8 dot product that accumulates in 32 bits.
_VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def weight_range(machine: str | None = None, cpu_flags: set[str] | None = None) -> tuple[bool, str]:
    """(reduce_range, why): 7-bit INT8 weights on x86-64 without VNNI. There ONNX Runtime's u8 x s8
    kernels use VPMADDUBSW, which adds two u8*s8 products into a saturating int16: with full-range
    weights (|w| up to 127) and activations up to 255 the pair sum overflows and is clipped.
    Measured on EfficientNet-Lite0 on an AVX2-only EPYC: held-out top-1 agreement 87.5 % and
    logit error std 0.53 with 8-bit weights, 95.8 % and 0.175 with 7-bit, same speed. ONNX
    Runtime documents reduce_range for exactly this case. With VNNI (or on Arm) the products
    accumulate in int32 and all 8 bits are kept. cpu_flags: for tests; default /proc/cpuinfo."""
    import platform

    arch = (machine or platform.machine()).lower()
    if arch not in X86:
        return False, f"8-bit weights ({arch}: int8 dot products accumulate in 32 bits)"
    if cpu_flags is None:
        cpu_flags = _cpu_flags()
    found = sorted(f for f in _VNNI_FLAGS if f in (cpu_flags or set()))
    if found:
        return False, f"8-bit weights (this CPU has {found[0]}: u8 x s8 products accumulate in int32)"
    return True, ("7-bit weights (reduce_range): " + ("this x86-64 CPU has no VNNI" if cpu_flags else
                  "could not read this CPU's flags, so no VNNI assumed")
                  + ", and ONNX Runtime's u8 x s8 kernels there add product pairs in saturating int16")


def _cpu_flags() -> set[str] | None:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8", errors="replace"):
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


class _Reader:
    """onnxruntime.quantization's CalibrationDataReader protocol over a list of feeds."""

    def __init__(self, samples: list[dict]):
        self._it = iter(samples)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):  # some calibrators read twice
        pass


def quantized_tensors(path: Path) -> int:
    import onnx

    return sum(n.op_type in QUANT_OPS for n in onnx.load(str(path), load_external_data=False).graph.node)


def _summary(ref: dict, out: dict, classifier: bool) -> dict:
    """The numbers explain shows: worst over outputs of cosine, worst-sample cosine, SNR, top-1."""
    from edgekit.verify import output_metrics

    ms = [output_metrics(r, out[k], classifier) for k, r in ref.items()]
    s = {"cosine": min(m["cosine"] for m in ms), "cosine_min_sample": min(m["cosine_min_sample"] for m in ms),
         "snr_db": min(m["snr_db"] for m in ms)}
    if classifier:
        s["top1_agreement"] = min(m["top1_agreement"] for m in ms)
    return {k: round(v, 6) for k, v in s.items()}


ENTROPY_BINS, ENTROPY_QUANTIZED_BINS = 2048, 128  # TensorRT's entropy calibration (Migacz, GTC 2017)


def _entropy_ranges(pre: Path, calib: list[dict], cache: Path) -> dict:
    """Entropy (KL) ranges computed with ONNX Runtime's own EntropyCalibrater, written where
    quantize_static reads a calibration cache. quantize_static alone does not pass a bin count to
    it, and at its default (128 histogram bins for 128 quantized bins) the KL search has a single
    candidate, the full range: "entropy" gave exactly minmax's ranges (EfficientNet-Lite0, to 6
    digits). With 2048 bins the search has 961 thresholds to choose from."""
    import tempfile

    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator, save_tensors_data

    with tempfile.TemporaryDirectory(prefix="edgekit-entropy-") as d:
        calibrator = create_calibrator(pre, None, augmented_model_path=str(Path(d) / "augmented.onnx"),
                                       calibrate_method=CalibrationMethod.Entropy,
                                       extra_options={"num_bins": ENTROPY_BINS, "num_quantized_bins": ENTROPY_QUANTIZED_BINS})
        calibrator.collect_data(_Reader(calib))
        save_tensors_data(calibrator.compute_data(), cache)
    return {"bins": ENTROPY_BINS, "quantized_bins": ENTROPY_QUANTIZED_BINS,
            "why": "quantize_static's default (128 for 128) leaves the KL search one candidate: the minmax range"}


def _dynamic(src: Path, dst: Path, reduce_range: bool, exclude: list[str] | None = None) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), per_channel=True, weight_type=QuantType.QInt8, reduce_range=reduce_range,
                     op_types_to_quantize=list(COMPUTE_OPS),
                     # dynamic mode first rewrites a Gemm as MatMul "<name>_MatMul" + Add, and excludes by
                     # the rewritten name: a Gemm's own name alone would silently quantize it anyway
                     nodes_to_exclude=[n for x in exclude or [] for n in (x, f"{x}_MatMul")],
                     extra_options={"MatMulConstBOnly": True})


def static_qdq(pre: Path, out_path: Path, calib: list[dict], method: str = "minmax", pct: float | None = None,
               act_type=None, reduce_range: bool = False, cache: Path | None = None):
    """ONNX Runtime's static QDQ quantization as edgekit runs it (per-channel symmetric INT8 weights,
    per-tensor activations of act_type, ranges by method); the model is written to out_path and
    returned (a ModelProto) for the bias corrections. cache: entropy ranges (_entropy_ranges)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    quantize_static(str(pre), str(out_path), _Reader(calib), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=act_type or activation_type()[0], weight_type=QuantType.QInt8,
                    reduce_range=reduce_range,
                    calibrate_method={"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                                      "percentile": CalibrationMethod.Percentile}[method],
                    calibration_cache_path=str(cache) if cache else None,
                    extra_options={"QDQKeepRemovableActivations": True,  # see ort_mixed.py
                                   **({"CalibPercentile": pct} if method == "percentile" else {})})
    return onnx.load(str(out_path))


def quantize(work, out_path: Path) -> dict:
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edgekit.profiles import Tolerance

    from .bias_correction import correct_qdq, correct_qdq_sequential
    from .ort_dynamic_mixed import search as dynamic_search
    from .ort_dynamic_mixed import target_cosine, worst_cosine
    from .ort_mixed import failures, float_outputs, noise, run, search

    from edgekit.calibration.methods import DEFAULT_PERCENTILE, resolve

    requested = work.calibration_method or {}
    method = resolve("onnxruntime", requested.get("method"))
    pct = requested.get("percentile") or DEFAULT_PERCENTILE
    tol = Tolerance(**work.tolerance)
    classifier = work.info.get("task") == "classification"
    pre = out_path.with_name(out_path.stem + ".pre.onnx")
    # Shape inference and constant folding the quantizer needs (it skips tensors of unknown shape).
    quant_pre_process(str(work.onnx_path), str(pre), skip_symbolic_shape=True)
    calib = work.samples("calib")[0][:MAX_CALIBRATION_SAMPLES] if (work.dir / "calib.npz").exists() else []
    reduce, why_range = weight_range()
    bits = ", 7-bit values" if reduce else ""  # "weight_range" says why
    info: dict = {"name": "onnx-ort", "quantizer": "onnxruntime.quantization", "calibration_samples": len(calib),
                  "weight_range": why_range}
    try:
        has_conv = any(n.op_type == "Conv" for n in onnx.load(str(pre), load_external_data=False).graph.node)
        ref = run(str(pre), calib) if calib else None
        if calib and not has_conv:
            # Static QDQ of a transformer quantizes Softmax, LayerNorm and attention too (MiniLM:
            # cosine 0.29 on calibration, and no layer subset of half the graph recovers it).
            info["why_dynamic"] = "no convolutions (a transformer or MLP): dynamic INT8, weights of MatMul/Gemm only"
        elif calib:
            act_type, act_name = activation_type()
            cache = out_path.with_name(out_path.stem + ".ranges.json")
            if method == "entropy":
                info["entropy_histogram"] = _entropy_ranges(pre, calib, cache)
            qmodel = static_qdq(pre, out_path, calib, method, pct, act_type, reduce,
                                cache if method == "entropy" else None)
            cache.unlink(missing_ok=True)
            info["float_outputs"] = float_outputs(qmodel)
            info["bias_correction"] = correct_qdq(qmodel, str(pre), calib)
            # The mixed-precision search starts from this graph, not the sequentially corrected one:
            # sequential biases absorb their INT8 prefix's errors, so a layer taken back to float
            # would leave the layers after it over-corrected, and the search would reject it.
            analytical = out_path.with_name(out_path.stem + ".analytical.onnx")
            onnx.save(qmodel, str(analytical))
            info["bias_correction_sequential"] = correct_qdq_sequential(qmodel, str(pre), calib)
            onnx.save(qmodel, str(out_path))
            static_out = run(str(out_path), calib)
            missed = failures(ref, static_out, tol, classifier)
            info.update(mode="static", weights="int8 per-channel symmetric (QDQ)" + bits,
                        activations=f"{act_name} per-tensor, {method} ranges from calibration"
                                    + (" (uint8: ONNX Runtime's fast u8 x s8 kernels on x86-64)" if act_name == "uint8" else ""),
                        calibration_method=method + (f" {pct}" if method == "percentile" else ""),
                        static_on_calibration=_summary(ref, static_out, classifier))
            if not missed:
                info["quantized_tensors"] = quantized_tensors(out_path)
                return info
            info["static_missed"] = missed[:3]
            mixed, mixed_out, report = search(str(pre), str(analytical), calib, tol, classifier, ref,
                                              run(str(analytical), calib))
            if mixed is not None:  # then the sequential correction of its INT8 layers, kept if it helps
                corrected = onnx.ModelProto()
                corrected.CopyFrom(mixed)
                seq = correct_qdq_sequential(corrected, str(pre), calib)
                out = run(corrected, calib)
                met_after = not failures(ref, out, tol, classifier)
                # kept when it lowers the noise without losing a tolerance the search's graph met
                keep = noise(ref, out) < noise(ref, mixed_out) and (met_after or not report["met"])
                report["bias_correction_sequential"] = {**seq, "kept": keep}
                if keep:
                    mixed, mixed_out = corrected, out
                    report["mixed_noise"] = round(noise(ref, out), 6)
                    if met_after and not report["met"]:  # the correction is what met it
                        report.update(met=True, float_layers=report.pop("float_layers_tried", []))
                        report.pop("gave_up", None)
            info["mixed_precision"] = report
            if mixed is not None and report["met"]:
                onnx.save(mixed, str(out_path))
                info.update(mode="static, mixed precision", mixed_on_calibration=_summary(ref, mixed_out, classifier),
                            quantized_tensors=quantized_tensors(out_path))
                return info
            # Neither meets the tolerance on calibration. Dynamic INT8 is the way out for
            # transformers but not for CNNs (EfficientNet-Lite0: top-1 40 % on calibration, static
            # 88 %): ship whichever of the three is closest to FP32 on the calibration samples and
            # let held-out verification decide, with every number recorded.
            options = {"static": (None, static_out)}
            if mixed is not None:
                options["static, mixed precision"] = (mixed, mixed_out)
            dyn = out_path.with_name(out_path.stem + ".dynamic.onnx")
            _dynamic(pre, dyn, reduce)
            options["dynamic"] = (dyn, run(str(dyn), calib))
            for mode, (_, out) in options.items():
                info[{"static, mixed precision": "mixed"}.get(mode, mode) + "_on_calibration"] = _summary(ref, out, classifier)
            mode = min(options, key=lambda k: noise(ref, options[k][1]))
            info["closest_on_calibration"] = f"{mode} (lowest output noise of {', '.join(options)}); " \
                                             "none met the tolerance there: " + (report.get("gave_up") or missed[0])
            chosen = options[mode][0]
            if isinstance(chosen, Path):
                chosen.replace(out_path)
            elif chosen is not None:
                onnx.save(chosen, str(out_path))
            dyn.unlink(missing_ok=True)
            info["mode"] = mode
            if mode == "dynamic":
                info.update(weights="int8 per-channel symmetric" + bits, activations="uint8, per inference")
            info["quantized_tensors"] = quantized_tensors(out_path)
            return info
        else:
            if requested.get("method"):
                info["calibration_method_unused"] = f"{method}: no calibration set, so no static INT8"
            info["why_dynamic"] = "no calibration set (give --calibration for static INT8): activations quantized per inference"
        _dynamic(pre, out_path, reduce)
        info.update(mode="dynamic", weights="int8 per-channel symmetric" + bits, activations="uint8, per inference")
        if calib:
            dyn_out = run(str(out_path), calib)
            info["dynamic_on_calibration"] = _summary(ref, dyn_out, classifier)
            if not has_conv and worst_cosine(ref, dyn_out) < target_cosine(tol.cosine_min):
                # a transformer's few outlier layers: keep the fewest in float (ort_dynamic_mixed.py)
                try:
                    info["mixed_precision"] = dynamic_search(pre, out_path, calib, ref, tol.cosine_min,
                                                             lambda s, d, ex: _dynamic(s, d, reduce, ex))
                except Exception as e:  # noqa: BLE001 — an optional search: all-INT8 dynamic still ships, said here
                    _dynamic(pre, out_path, reduce)
                    info["mixed_precision"] = {"float_layers": [], "met": False, "layers": 0,
                                               "gave_up": f"the search failed: {str(e).splitlines()[0][:200]}"}
                if info["mixed_precision"]["float_layers"]:
                    info["mode"] = "dynamic, mixed precision"
                    info["mixed_on_calibration"] = _summary(ref, run(str(out_path), calib), classifier)
    finally:
        pre.unlink(missing_ok=True)
        out_path.with_name(out_path.stem + ".analytical.onnx").unlink(missing_ok=True)
    info["quantized_tensors"] = quantized_tensors(out_path)
    if not info["quantized_tensors"]:
        raise ValueError("ONNX Runtime's quantizer quantized nothing in this graph (no Conv/MatMul/Gemm it takes): "
                         "the result would be FP32 under an INT8 label; use the fp32 artifact")
    return info
