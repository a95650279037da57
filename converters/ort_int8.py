"""INT8 for ONNX Runtime: the ONNX export quantized with ONNX Runtime's own quantizer.

Static INT8 (QDQ format, per-channel symmetric INT8 weights, activation ranges from MinMax
calibration over the calibration set) is tried first when the compile has a calibration set, and
judged on the calibration samples with the tolerance verification applies. Graph outputs stay
float (ort_mixed.float_outputs). When it misses, the
mixed-precision search (ort_mixed.py) keeps the fewest most sensitive layers in float; when that
needs more than half the layers — or there is no calibration set to calibrate on — dynamic INT8
(INT8 weights, activations quantized per inference, what transformers usually need) is used, and
the converter info says why with the numbers.
Held-out verification still decides pass/fail afterwards, like every other artifact.

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


def quantize(work, out_path: Path) -> dict:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edgekit.profiles import Tolerance

    from .ort_mixed import failures, float_outputs, run, search

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
    info: dict = {"name": "onnx-ort", "quantizer": "onnxruntime.quantization", "calibration_samples": len(calib)}
    try:
        has_conv = any(n.op_type == "Conv" for n in onnx.load(str(pre), load_external_data=False).graph.node)
        ref = run(str(pre), calib) if calib else None
        if calib and not has_conv:
            # Static QDQ of a transformer quantizes Softmax, LayerNorm and attention too (MiniLM:
            # cosine 0.29 on calibration, and no layer subset of half the graph recovers it).
            info["why_dynamic"] = "no convolutions (a transformer or MLP): dynamic INT8, weights of MatMul/Gemm only"
        elif calib:
            quantize_static(str(pre), str(out_path), _Reader(calib), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            calibrate_method={"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                                              "percentile": CalibrationMethod.Percentile}[method],
                            extra_options={"QDQKeepRemovableActivations": True,  # see ort_mixed.py
                                           **({"CalibPercentile": pct} if method == "percentile" else {})})
            qmodel = onnx.load(str(out_path))
            info["float_outputs"] = float_outputs(qmodel)
            onnx.save(qmodel, str(out_path))
            static_out = run(str(out_path), calib)
            missed = failures(ref, static_out, tol, classifier)
            info.update(mode="static", weights="int8 per-channel symmetric (QDQ)",
                        activations=f"int8 per-tensor, {method} ranges from calibration",
                        calibration_method=method + (f" {pct}" if method == "percentile" else ""),
                        static_on_calibration=_summary(ref, static_out, classifier))
            if not missed:
                info["quantized_tensors"] = quantized_tensors(out_path)
                return info
            info["static_missed"] = missed[:3]
            mixed, report = search(str(pre), str(out_path), calib, tol, classifier)
            info["mixed_precision"] = report
            if mixed is not None:
                onnx.save(mixed, str(out_path))
                info.update(mode="static, mixed precision",
                            mixed_on_calibration=_summary(ref, run(str(out_path), calib), classifier),
                            quantized_tensors=quantized_tensors(out_path))
                return info
            info["why_dynamic"] = f"static INT8 missed the tolerance on the calibration samples ({missed[0]}); " \
                                  f"mixed precision: {report['gave_up']}"
        else:
            if requested.get("method"):
                info["calibration_method_unused"] = f"{method}: no calibration set, so no static INT8"
            info["why_dynamic"] = "no calibration set (give --calibration for static INT8): activations quantized per inference"
        quantize_dynamic(str(pre), str(out_path), per_channel=True, weight_type=QuantType.QInt8,
                         op_types_to_quantize=list(COMPUTE_OPS), extra_options={"MatMulConstBOnly": True})
        info.update(mode="dynamic", weights="int8 per-channel symmetric", activations="uint8, per inference")
        if calib:
            info["dynamic_on_calibration"] = _summary(ref, run(str(out_path), calib), classifier)
    finally:
        pre.unlink(missing_ok=True)
    info["quantized_tensors"] = quantized_tensors(out_path)
    if not info["quantized_tensors"]:
        raise ValueError("ONNX Runtime's quantizer quantized nothing in this graph (no Conv/MatMul/Gemm it takes): "
                         "the result would be FP32 under an INT8 label; use the fp32 artifact")
    return info
